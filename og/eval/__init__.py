"""og.eval."""
