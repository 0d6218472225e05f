"""Helpers shared by several test modules (real files, small sizes)."""
