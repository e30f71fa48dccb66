"""`patchpool(k=...)`: the patch grid average-pooled to k x k tokens (LLaVA-OneVision-style).

Cell (a, b) of the k x k grid is the area-weighted mean of the patches it overlaps: along each
axis the h patches span k cells evenly, and a patch's weight is the exact length of its
overlap with the cell (`og.fusion.downsample.overlap_matrix`), so the weights of a cell sum to
one. When k divides the grid this is plain average pooling over (h/k) x (w/k) blocks; when it
does not, a patch on a cell border is split between the cells by the fraction it lies in each.

An image gets exactly k*k tokens (pooled tokens in raster order of the cells, each its own rope
group, positioned at its centroid patch), whatever its masks; `global_view`, `bom_token`,
`filler` and the mask switches have no effect. k larger than the grid, or k*k over
`max_tokens`, is an error. The forward is the shared one (one weighted segment-sum).
"""

from __future__ import annotations

import torch

from og.fusion.downsample import overlap_matrix
from og.fusion.layout import POOLED, TokenLayout
from og.fusion.plan import check_fixed_count
from og.fusion.strategies import Fusion
from og.registry import FUSIONS
from og.spec import FusionSpec


def pool_weights(grid: tuple[int, int], k: int) -> torch.Tensor:
    """(k*k, h*w) area weights: row c is cell c's share of every patch; each row sums to 1."""
    h, w = grid
    rows = overlap_matrix(h, k)  # (k, h) float64, cell units
    cols = overlap_matrix(w, k)  # (k, w)
    return (rows[:, None, :, None] * cols[None, :, None, :]).reshape(k * k, h * w).float()  # (k*k, N)


@FUSIONS.register("patchpool")
class PatchPoolFusion(Fusion):
    """The patch grid average-pooled to k x k tokens (area-weighted when k does not divide)."""

    uses_masks = False

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        h, w = grid
        k = spec.k
        if k > min(h, w):
            raise ValueError(f"fusion {spec.id!r}: k={k} is larger than the {h}x{w} patch grid; use k <= {min(h, w)}")
        check_fixed_count(spec, k * k, f"k*k for k={k}")
        weight = pool_weights(grid, k)  # (k*k, N)
        p = torch.arange(h * w, dtype=torch.float32)  # (N,)
        nz = torch.nonzero(weight > 0)  # (E, 2) (cell, patch)
        n = k * k
        none = torch.full((n,), -1, dtype=torch.long)
        return TokenLayout(
            grid=grid, kind=torch.full((n,), POOLED, dtype=torch.long), patch=none, mask=none.clone(),
            segment=torch.zeros(n, dtype=torch.long), group=torch.arange(n),
            row=(weight @ (p // w)).round().long(),  # (k*k,) centroid row
            col=(weight @ (p % w)).round().long(),  # (k*k,) centroid col
            pool_token=nz[:, 0], pool_patch=nz[:, 1], pool_weight=weight[nz[:, 0], nz[:, 1]],
            n_masks_in=0 if coverage is None else int(coverage.shape[0]))
