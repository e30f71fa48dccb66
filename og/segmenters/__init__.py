"""og.segmenters."""
