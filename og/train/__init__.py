"""og.train."""
