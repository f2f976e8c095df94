"""Calling plugins: per-plugin isolation, deadlines, validation, contexts."""
