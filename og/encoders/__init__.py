"""Vision encoders (ENCODERS): clip, siglip (transformers), open_clip, timm.

Every family implements `og.encoders.base.VisionEncoder`; importing this package registers
them all.
"""

from og.encoders import clip, open_clip, siglip, timm  # noqa: F401  (registers the entries)
from og.encoders.base import VisionEncoder

__all__ = ["VisionEncoder"]
