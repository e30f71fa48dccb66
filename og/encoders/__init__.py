"""og.encoders."""
