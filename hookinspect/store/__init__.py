"""Stores: sqlite (the live capture store) and fixtures (TinyDB fixture files)."""
