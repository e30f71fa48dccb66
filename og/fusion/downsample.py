"""Downsamplers: masks at image size -> coverage on the encoder's patch grid (DOWNSAMPLERS).

Each entry is a class with two static methods:

- ``coverage(masks bool (M, H, W), grid (h, w)) -> float32 (M, h, w)`` in [0, 1];
- ``member(coverage (M, h, w), threshold) -> bool (M, h, w)``: which patches belong to a mask.

``area`` (the default) is the 2-D fraction of each patch's pixels inside the mask. When H and W
divide by h and w it is an integer block count (exact); otherwise each pixel is split between
the patches it overlaps by the exact length of the overlap (separable, so two small matrix
products; exact up to float32 rounding, about 1e-7). The grid is assumed to span the whole
image evenly. Membership: ``coverage >= threshold`` (with a 1e-6 tolerance for that rounding).

``raster1d`` reproduces the published OG-LLaVA code (``downsample_mask_to_1d_counts``): each
mask is flattened over the raster to H*W values and pooled with 1-D adaptive average pooling
to h*w bins; a bin (patch) belongs to the mask when ``fraction * (H*W)/(h*w) >= 0.5``, i.e. it
holds "at least half a pixel". Because the bins run along the flattened raster, a bin mixes
pixels from several image rows of the full width: the patches selected are not where the
object is (a left-half mask selects every patch). It is SPATIALLY WRONG and kept only to
reproduce the published models. Its rule has no threshold (``threshold`` is ignored); since a
bin of the adaptive pool holds at most ceil(s) + 1 pixels for s = H*W/(h*w), one True pixel
always passes when s >= 2, so the rule is "any True pixel in the bin", which is what
``member`` applies (exact for every image with at least twice as many pixels as patches).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from og.registry import DOWNSAMPLERS

_TOL = 1e-6  # float rounding of the fractional-overlap path


def as_mask_tensor(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """bool (M, H, W) tensor from a tensor or array (a single (H, W) mask gets M = 1)."""
    t = torch.from_numpy(np.ascontiguousarray(masks)) if isinstance(masks, np.ndarray) else masks
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise ValueError(f"masks must be (M, H, W); got shape {tuple(t.shape)}")
    return t.bool()


def _block_counts(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Integer count of True pixels per patch (M, h, w) when H % h == 0 and W % w == 0.

    The row sum runs over bytes packed into wide integer lanes (SWAR): a lane of 8 bytes holds
    8 neighbouring pixels and no byte can carry into the next while kh <= 255 rows are summed.
    """
    m, H, W = masks.shape
    h, w = grid
    kh, kw = H // h, W // w
    u8 = masks.contiguous().view(torch.uint8)  # (M, H, W), 0/1
    lane = next((b for b in (8, 4, 2) if W % b == 0), 1) if kh <= 255 else 1
    if lane == 1:
        return u8.reshape(m, h, kh, w, kw).sum((2, 4), dtype=torch.int32)  # (M, h, w)
    lanes = {8: torch.int64, 4: torch.int32, 2: torch.int16}[lane]
    rows = u8.view(lanes).reshape(m, h, kh, W // lane).sum(2, dtype=lanes)  # (M, h, W/lane) packed
    return rows.view(torch.uint8).reshape(m, h, w, kw).sum(-1, dtype=torch.int32)  # (M, h, w)


def overlap_matrix(n_pixels: int, n_patches: int) -> torch.Tensor:
    """(n_patches, n_pixels): the fraction of each patch covered by each pixel along one axis."""
    edges = torch.arange(n_pixels + 1, dtype=torch.float64) * (n_patches / n_pixels)  # patch units
    lo, hi = edges[:-1], edges[1:]  # (n_pixels,) each pixel's span
    idx = torch.arange(n_patches, dtype=torch.float64)[:, None]  # (n_patches, 1)
    return (torch.minimum(hi, idx + 1) - torch.maximum(lo, idx)).clamp_(min=0)  # (n_patches, n_pixels)


@DOWNSAMPLERS.register("area")
class AreaDownsampler:
    """2-D coverage fraction of each patch (exact block counts, or exact fractional overlap)."""

    @staticmethod
    def coverage(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        if isinstance(masks, np.ndarray) and masks.ndim == 3 and not masks.flags.c_contiguous \
                and masks.transpose(0, 2, 1).flags.c_contiguous:
            # COCO RLE decodes column-major (MaskStore.get): pool the transposed view instead of copying
            flipped = AreaDownsampler.coverage(masks.transpose(0, 2, 1), (grid[1], grid[0]))  # (M, w, h)
            return flipped.transpose(1, 2).contiguous()  # (M, h, w)
        masks = as_mask_tensor(masks)
        m, H, W = masks.shape
        h, w = grid
        if m == 0:
            return torch.zeros(0, h, w, device=masks.device)
        if H % h == 0 and W % w == 0:
            return _block_counts(masks, grid).float() / float((H // h) * (W // w))  # (M, h, w)
        rows = overlap_matrix(H, h).float().to(masks.device)  # (h, H)
        cols = overlap_matrix(W, w).float().to(masks.device)  # (w, W)
        cov = rows @ (masks.float() @ cols.T)  # (M, h, w)
        return cov.clamp_(0.0, 1.0)

    @staticmethod
    def member(coverage: torch.Tensor | np.ndarray, threshold: float) -> torch.Tensor | np.ndarray:
        return coverage >= threshold - _TOL  # (M, h, w), a tensor or an array as given


@DOWNSAMPLERS.register("raster1d")
class Raster1dDownsampler:
    """The published code's flattened 1-D pooling; spatially wrong, kept only to reproduce it."""

    @staticmethod
    def coverage(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        masks = as_mask_tensor(masks)
        m = masks.shape[0]
        h, w = grid
        if m == 0:
            return torch.zeros(0, h, w, device=masks.device)
        flat = masks.reshape(m, 1, -1).float()  # (M, 1, H*W) over the raster
        return F.adaptive_avg_pool1d(flat, h * w).reshape(m, h, w)  # (M, h, w) fraction per bin

    @staticmethod
    def member(coverage: torch.Tensor | np.ndarray, threshold: float) -> torch.Tensor | np.ndarray:
        return coverage > 0  # "at least half a pixel" (see the module docstring); threshold unused


def downsample(masks: torch.Tensor | np.ndarray, grid: tuple[int, int], name: str = "area") -> torch.Tensor:
    """Coverage float (M, h, w) in [0, 1] of bool masks (M, H, W) on the patch grid (h, w)."""
    if len(grid) != 2 or min(grid) < 1:
        raise ValueError(f"grid must be (h, w) with positive sizes; got {grid!r}")
    return DOWNSAMPLERS.get(name).coverage(masks, (int(grid[0]), int(grid[1])))


def member(coverage: torch.Tensor, threshold: float, name: str = "area") -> torch.Tensor:
    """bool (M, h, w): the patches that belong to each mask under the downsampler's rule."""
    return DOWNSAMPLERS.get(name).member(coverage, threshold)
