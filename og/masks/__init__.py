"""og.masks."""
