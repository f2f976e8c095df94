"""Assembling responses from plugin contributions: pure functions, no HTTP and no database."""
