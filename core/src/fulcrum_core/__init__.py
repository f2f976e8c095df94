"""The Fulcrum host."""
