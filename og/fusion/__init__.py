"""og.fusion."""
