"""og.data."""
