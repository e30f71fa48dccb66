"""Pictures of masks: `overlay_masks(image, masks)` draws each mask in its own colour, with its
outline and an optional label (e.g. its number) inside it. Used by `og segment`, `og masks
show` and anything else that wants to look at masks (transformed masks, patch-grid masks).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import distance_transform_edt
from skimage.segmentation import find_boundaries

_GOLDEN = 0.618033988749895


def mask_colors(n: int) -> np.ndarray:
    """n distinct, deterministic RGB colours (uint8 (n, 3)): hues spread by the golden ratio."""
    return np.asarray([[round(c * 255) for c in colorsys.hsv_to_rgb((i * _GOLDEN) % 1.0, 0.75, 0.95)]
                       for i in range(n)], dtype=np.uint8).reshape(n, 3)


def _as_bool_masks(masks: Any) -> np.ndarray:
    data = getattr(masks, "data", masks)  # a Masks value, or an array / tensor
    if hasattr(data, "detach"):
        data = data.detach().cpu().numpy()
    data = np.asarray(data).astype(bool)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"masks must be (M, H, W); got shape {data.shape}")
    return data


def _inner_point(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of the mask pixel farthest from its boundary (inside even when not convex)."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]  # (H, W)
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(r), int(c)


def overlay_masks(image: Image.Image | np.ndarray, masks: Any, outlines: bool = True,
                  labels: Sequence[str] | None = None, alpha: float = 0.45) -> Image.Image:
    """The image with every mask filled in its own colour (blended by `alpha`), its outline drawn
    opaque, and `labels[i]` written at mask i's inner point. Larger masks are drawn first so
    that small ones stay visible. `masks`: a Masks, or bool (M, H, W) array / tensor."""
    img = image.convert("RGB") if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image)).convert("RGB")
    data = _as_bool_masks(masks)
    if data.shape[1:] != (img.height, img.width):
        raise ValueError(f"masks are {data.shape[1]}x{data.shape[2]} but the image is {img.height}x{img.width}")
    if labels is not None and len(labels) != len(data):
        raise ValueError(f"{len(labels)} labels for {len(data)} masks; give one label per mask")
    canvas = np.asarray(img, dtype=np.float32).copy()  # (H, W, 3)
    colors = mask_colors(len(data)).astype(np.float32)
    order = np.argsort(-data.sum(axis=(1, 2)), kind="stable")
    for i in order:
        canvas[data[i]] = (1 - alpha) * canvas[data[i]] + alpha * colors[i]
    if outlines:
        for i in order:
            canvas[find_boundaries(data[i], mode="inner")] = colors[i]
    out = Image.fromarray(canvas.round().clip(0, 255).astype(np.uint8))
    if labels is not None:
        draw = ImageDraw.Draw(out)
        font = ImageFont.load_default()
        for i in order:
            if data[i].any():
                r, c = _inner_point(data[i])
                draw.text((c, r), str(labels[i]), fill=(255, 255, 255), font=font, anchor="mm",
                          stroke_width=1, stroke_fill=(0, 0, 0))
    return out
