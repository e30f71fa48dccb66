"""og.model."""
