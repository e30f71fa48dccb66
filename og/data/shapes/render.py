"""Drawing for the synthetic `shapes` data: exact, aliasing-free rasters of simple shapes.

Every shape is a predicate on pixel centres, `inside(dx, dy, r) -> bool`, where (dx, dy) is a
pixel centre relative to the object's centre and `r` its half-extent: each shape fits in the
box [-r, r]^2, so two objects whose boxes do not meet never share a pixel. No anti-aliasing:
a pixel is the object's colour exactly when it is in the object's (visible) mask, so the
renderer's masks are an exact oracle segmentation.

Backgrounds are grey (R == G == B) and object colours are never grey, so "not grey" is exactly
the union of the object masks, whatever the background's texture.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ShapeFn = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


def _triangle(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Upward equilateral triangle: apex at (0, -r), base at dy = 0.7 r (half-width 0.98 r)."""
    return (dy <= 0.7 * r) & (np.abs(dx) <= (dy + r) / np.sqrt(3.0))


def _cross(dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Plus sign with arms of half-width 0.35 r."""
    ax, ay, w = np.abs(dx), np.abs(dy), 0.35 * r
    return ((ax <= r) & (ay <= w)) | ((ax <= w) & (ay <= r))


SHAPE_FNS: dict[str, ShapeFn] = {
    "circle": lambda dx, dy, r: dx * dx + dy * dy <= r * r,
    "square": lambda dx, dy, r: (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r),
    "triangle": _triangle,
    "cross": _cross,
    "diamond": lambda dx, dy, r: np.abs(dx) + np.abs(dy) <= r,
}

# Saturated colours, pairwise far apart in RGB and never grey (R == G == B).
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 225),
    "yellow": (240, 210, 20),
    "purple": (145, 50, 195),
    "cyan": (20, 195, 205),
}

BACKGROUNDS = ("plain", "noise")


def shape_mask(shape: str, cx: float, cy: float, r: float, height: int, width: int) -> np.ndarray:
    """bool (H, W): the pixels whose centres lie inside `shape` centred at (cx, cy), half-extent r."""
    if shape not in SHAPE_FNS:
        raise ValueError(f"unknown shape {shape!r}; use one of {sorted(SHAPE_FNS)}")
    out = np.zeros((height, width), bool)
    x0, x1 = max(int(np.floor(cx - r)) - 1, 0), min(int(np.ceil(cx + r)) + 1, width)
    y0, y1 = max(int(np.floor(cy - r)) - 1, 0), min(int(np.ceil(cy + r)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return out
    dy, dx = np.mgrid[y0:y1, x0:x1].astype(np.float64)  # (h', w') each
    out[y0:y1, x0:x1] = SHAPE_FNS[shape](dx + 0.5 - cx, dy + 0.5 - cy, r)
    return out


def visible_masks(full: np.ndarray) -> np.ndarray:
    """(N, H, W) visible part of each object when drawn in order (later objects on top)."""
    vis = full.copy()
    covered = np.zeros(full.shape[1:], bool)
    for i in range(len(full) - 1, -1, -1):
        vis[i] &= ~covered
        covered |= full[i]
    return vis


def background(rng: np.random.Generator, kind: str, height: int, width: int,
               grey: tuple[int, int] = (100, 180), noise: int = 12) -> np.ndarray:
    """uint8 (H, W, 3) grey background: one level per image, plus grey noise for `noise`."""
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; use one of {BACKGROUNDS}")
    level = int(rng.integers(grey[0], grey[1] + 1))
    g = np.full((height, width), level, np.int16)  # (H, W)
    if kind == "noise":
        g = g + rng.integers(-noise, noise + 1, size=(height, width), dtype=np.int16)
    g = np.clip(g, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)  # (H, W, 3)


def paint(canvas: np.ndarray, masks: np.ndarray, colors: list[str]) -> np.ndarray:
    """Draw each visible mask (N, H, W) in its colour on a copy of `canvas` (H, W, 3)."""
    img = canvas.copy()
    for mask, color in zip(masks, colors, strict=True):
        img[mask] = COLOR_RGB[color]
    return img
