"""The segmenter contract: `segmenter(image) -> Masks` at the image's own size, deterministic.

Images are PIL images or uint8 numpy arrays (H, W, 3). Every segmenter returns its masks in
the canonical order of `Masks.sorted()` (score, then area, then position).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from og.masks.masks import Masks
from og.spec import SegmenterSpec


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL image or an array (gray and RGBA are converted)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"image array must be (H, W, 3); got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8) if arr.dtype.kind == "f" else arr.astype(np.uint8)
    return arr


class Segmenter:
    """Base class; subclasses implement `segment(rgb uint8 (H, W, 3)) -> Masks`."""

    spec: SegmenterSpec

    @classmethod
    def from_spec(cls, spec: SegmenterSpec, path: str | None = None, device: str | None = None,
                  **kwargs: Any) -> Segmenter:
        raise NotImplementedError

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        raise NotImplementedError

    def __call__(self, image: Image.Image | np.ndarray, key: str = "") -> Masks:
        """`key` (the image's path or id) seeds per-image randomness where a segmenter has any."""
        return self.segment(as_rgb_array(image), key=key).sorted()
