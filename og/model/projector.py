"""Projectors (PROJECTORS)."""
