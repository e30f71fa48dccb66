"""Lockstep geometry: the image transform LLaVA uses, applied identically to the image's masks.

Steps, in LLaVA-1.5's order (`image_aspect_ratio=pad`, then CLIPImageProcessor):

1. pad to square (optional): the image is centred on a square canvas of its longer side filled
   with the mean colour (`int(m * 255)` per channel, as LLaVA's `expand2square`); masks are
   padded with False at the same offset;
2. resize so the image covers the target (H', W') keeping its aspect ratio (for a square target
   this is CLIP's "shortest edge" rule, the long side truncated with `int()`): the image with
   PIL bicubic, the masks with the *area rule*: an output pixel is in a mask when at least half
   of its footprint (its box in input pixels, fractions included) is covered by the mask
   (exactly half counts as inside). This is exact box-filter coverage, up- or down-sampling,
   computed with cumulative sums along each axis over each mask's bounding box;
3. centre crop to (H', W') with `top = (h - H') // 2` (CLIP's rule), identically for both.

`transform(image, masks)` returns pixels normalised by mean/std and the masks on the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from og.masks.masks import Masks

_EPS = 1e-5  # coverage tolerance: float rounding must not flip an exactly-half-covered pixel


@dataclass(frozen=True)
class AxisPlan:
    """One axis: input length n, placed at `offset` on a canvas of `padded`, resized to `resized`,
    then cropped to [crop, crop + out)."""

    n: int
    offset: int
    padded: int
    resized: int
    crop: int
    out: int

    def footprints(self) -> tuple[np.ndarray, np.ndarray]:
        """[a, b) of each output pixel in the input's own coordinates (unclamped), float64."""
        k = np.arange(self.crop, self.crop + self.out, dtype=np.float64)
        scale = self.padded / self.resized
        return k * scale - self.offset, (k + 1) * scale - self.offset


def _resized_size(h: int, w: int, target: tuple[int, int]) -> tuple[int, int]:
    """(rh, rw) covering `target` with the aspect ratio kept; the binding side exact, the other
    truncated as CLIP's `int(size * long / short)`."""
    th, tw = target
    if th * w >= tw * h:  # height binds (th / h >= tw / w)
        return th, max(tw, int(th * w / h))
    return max(th, int(tw * h / w)), tw


def _area_axis(block: np.ndarray, a: np.ndarray, b: np.ndarray, foot: float) -> np.ndarray:
    """Coverage along axis 0: (n, X) bool -> (K, X) float32, output pixel k covering [a_k, b_k)
    of the block's rows (clamped to [0, n]); `foot` is the footprint length b_k - a_k."""
    n = block.shape[0]
    cum = np.zeros((n + 1, block.shape[1]), np.float32)
    np.cumsum(block, axis=0, dtype=np.float32, out=cum[1:])  # mass in rows [0, t) at integer t

    def mass_before(t: np.ndarray) -> np.ndarray:  # (K, X): mass in [0, t), linear inside a row
        t = np.clip(t, 0.0, float(n))
        i = np.minimum(np.floor(t), n - 1).astype(np.int64)
        frac = (t - i).astype(np.float32)[:, None]
        return cum[i] + frac * (cum[i + 1] - cum[i])

    return (mass_before(b) - mass_before(a)) / np.float32(foot)


def _touched(plan: AxisPlan, lo: int, hi: int) -> tuple[int, int]:
    """Output pixels [k0, k1) whose footprints meet input pixels [lo, hi)."""
    a, b = plan.footprints()
    return int(np.searchsorted(b, lo, side="right")), int(np.searchsorted(a, hi, side="left"))


def area_resample(masks: np.ndarray, rows: AxisPlan, cols: AxisPlan) -> np.ndarray:
    """bool (M, H, W) -> bool (M, out_h, out_w) by the area rule; each mask is processed over its
    bounding box only (the cost follows the masks' extent, not M x H x W)."""
    out = np.zeros((len(masks), rows.out, cols.out), dtype=bool)
    (ra, rb), (ca, cb) = rows.footprints(), cols.footprints()
    for i, mask in enumerate(masks):
        ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if len(ys) == 0:
            continue
        (y0, y1), (x0, x1) = (int(ys[0]), int(ys[-1]) + 1), (int(xs[0]), int(xs[-1]) + 1)
        (k0, k1), (l0, l1) = _touched(rows, y0, y1), _touched(cols, x0, x1)
        if k0 >= k1 or l0 >= l1:
            continue  # the mask lies entirely in the cropped-away part
        cov = _area_axis(mask[y0:y1, x0:x1], ra[k0:k1] - y0, rb[k0:k1] - y0, rows.padded / rows.resized)
        cov = _area_axis(cov.T, ca[l0:l1] - x0, cb[l0:l1] - x0, cols.padded / cols.resized).T  # (K, L)
        out[i, k0:k1, l0:l1] = cov >= 0.5 - _EPS
    return out


class ImageTransform:
    """Pad to square (mean colour) -> resize (cover) -> centre crop, for an image and its masks."""

    def __init__(self, image_size: Sequence[int] | int, mean: Sequence[float], std: Sequence[float],
                 pad_to_square: bool = True) -> None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(int(s) for s in image_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size={image_size!r}; give (H, W) with positive sides")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean={mean!r}, std={std!r}; give 3 values each, std > 0")
        self.image_size: tuple[int, int] = size  # (H', W')
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.pad_to_square = pad_to_square
        self.fill = tuple(int(v * 255) for v in self.mean)  # LLaVA's expand2square colour

    @classmethod
    def for_encoder(cls, encoder: Any, pad_to_square: bool = True) -> ImageTransform:
        """From anything with `image_size`, `mean` and `std` attributes (a VisionEncoder)."""
        missing = [a for a in ("image_size", "mean", "std") if not hasattr(encoder, a)]
        if missing:
            raise TypeError(f"{type(encoder).__name__} lacks {', '.join(missing)}; pass an encoder")
        return cls(encoder.image_size, encoder.mean, encoder.std, pad_to_square)

    def plan(self, height: int, width: int) -> tuple[AxisPlan, AxisPlan]:
        """The row and column plans for an input of (height, width)."""
        side = max(height, width) if self.pad_to_square else 0
        ph, pw = (side, side) if self.pad_to_square else (height, width)
        oy, ox = ((ph - height) // 2, (pw - width) // 2)
        rh, rw = _resized_size(ph, pw, self.image_size)
        th, tw = self.image_size
        return (AxisPlan(height, oy, ph, rh, (rh - th) // 2, th),
                AxisPlan(width, ox, pw, rw, (rw - tw) // 2, tw))

    def transform_image(self, image: Image.Image | np.ndarray) -> torch.Tensor:
        """float32 (3, H', W'), normalised."""
        img = Image.fromarray(np.asarray(image)) if not isinstance(image, Image.Image) else image
        img = img.convert("RGB")
        rows, cols = self.plan(img.height, img.width)
        if (rows.padded, cols.padded) != (img.height, img.width):  # pad_to_square
            canvas = Image.new("RGB", (cols.padded, rows.padded), self.fill)
            canvas.paste(img, (cols.offset, rows.offset))
            img = canvas
        img = img.resize((cols.resized, rows.resized), Image.Resampling.BICUBIC)
        img = img.crop((cols.crop, rows.crop, cols.crop + cols.out, rows.crop + rows.out))
        arr = np.asarray(img, dtype=np.float32) / 255.0  # (H', W', 3)
        arr = (arr - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))  # (3, H', W')

    def transform_masks(self, masks: Masks | np.ndarray | torch.Tensor) -> torch.Tensor:
        """bool (M, H, W) at the image's size -> bool (M, H', W') on the transformed pixels."""
        data = masks.data if isinstance(masks, Masks) else masks
        data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
        if data.ndim != 3:
            raise ValueError(f"masks must be (M, H, W); got shape {tuple(data.shape)}")
        rows, cols = self.plan(int(data.shape[1]), int(data.shape[2]))
        return torch.from_numpy(area_resample(data.astype(bool, copy=False), rows, cols))  # (M, H', W')

    def transform(self, image: Image.Image | np.ndarray, masks: Masks | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(pixels (3, H', W'), masks bool (M, H', W') or None); masks must be at the image's size."""
        img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        if masks is None:
            return self.transform_image(img), None
        if isinstance(masks, Masks):
            masks.check_size(img.height, img.width)
        elif tuple(np.shape(masks)[1:]) != (img.height, img.width):
            raise ValueError(f"masks are {tuple(np.shape(masks)[1:])} but the image is "
                             f"{(img.height, img.width)}; masks must be at the image's size")
        return self.transform_image(img), self.transform_masks(masks)

    def __repr__(self) -> str:
        return (f"ImageTransform(image_size={self.image_size}, mean={self.mean}, std={self.std}, "
                f"pad_to_square={self.pad_to_square})")
