"""The Fulcrum marketplace registry."""
