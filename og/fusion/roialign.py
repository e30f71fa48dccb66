"""`roialign(r=...)`: subobject tokens, each mask's box pooled to r x r cells by `roi_align`.

Plan (CPU): the masks are selected as for `masktoken` (`og.fusion.plan.select_masks`: budget,
filler, order). A group's box is the bounding box of its member patches on the patch grid
(x1, y1, x2, y2 in patch units, patch (i, j) spanning [j, j+1) x [i, i+1)); each of its r x r
cells gets the group's coverage averaged over the cell's area (exact overlaps, as
`patchpool`). `cells=drop` keeps the cells whose coverage reaches `threshold` (a group keeps
at least its best cell); `cells=weight` keeps all r*r cells, each token scaled by its
coverage. Tokens: the global view, then per group a begin-of-mask token (`bom_token`, a
learned (1, D) vector like `masktoken`'s) and its cells in raster order, positioned at the
cell's centre patch. A group costs (bom) + its cells against `max_tokens`.

Weights (CPU, in the plan): `roi_align` is linear in its input and, for one box, separable: its
samples form a grid (adaptive `sampling_ratio`, `aligned=True`, so a cell of exactly one patch is
that patch's feature) and its bilinear weight is a product of a row weight and a column weight.
So the plan runs `torchvision.ops.roi_align` itself on the one-hot basis of the grid's rows and of
its columns (`roi_weights`: (K, r, h) and (K, r, w)), and a cell's weight over the patches is
their outer product (times the cell's coverage with `cells=weight`).
Forward: the shared pooled-token sum of `Fusion.forward` (one weighted `embedding_bag`, in
float32): equal to `roi_align` of the (B, D, h, w) feature map (tested against it), without the
(B, h*w, D) -> (B, D, h, w) copy roi_align's CPU kernel needs or its per-channel sampling.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from og.fusion.layout import BOM, ROI, TokenLayout
from og.fusion.plan import select_masks
from og.fusion.strategies import Fusion, full, global_part, make_layout
from og.registry import FUSIONS
from og.spec import FusionSpec

_TOL = 1e-6


def _axis_weights(lo: torch.Tensor, hi: torch.Tensor, n: int, r: int) -> torch.Tensor:
    """(K, r, n): the share of each of n patches in each of r equal cells spanning [lo, hi) (rows sum to 1)."""
    size = (hi - lo).float()[:, None] / r  # (K, 1) cell length in patches
    edges = lo.float()[:, None] + size * torch.arange(r + 1, dtype=torch.float32)  # (K, r+1)
    p = torch.arange(n, dtype=torch.float32)  # (n,)
    inter = torch.minimum(edges[:, 1:, None], p + 1) - torch.maximum(edges[:, :-1, None], p)  # (K, r, n)
    return inter.clamp(min=0) / size[:, :, None]


def group_cells(member: torch.Tensor, weight: torch.Tensor, grid: tuple[int, int], r: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (K, 4) x1, y1, x2, y2 and cell coverage (K, r*r) of groups given as member / weight (K, N)."""
    h, w = grid
    k = member.shape[0]
    rows, cols = member.reshape(k, h, w).any(2), member.reshape(k, h, w).any(1)  # (K, h), (K, w)
    y0, x0 = rows.float().argmax(1), cols.float().argmax(1)  # (K,) first covered row / column
    y1, x1 = h - rows.flip(1).float().argmax(1), w - cols.flip(1).float().argmax(1)  # (K,) one past the last
    cy, cx = _axis_weights(y0, y1, h, r), _axis_weights(x0, x1, w, r)  # (K, r, h), (K, r, w)
    cells = torch.einsum("kah,khw,kbw->kab", cy, weight.reshape(k, h, w).float(), cx)  # (K, r, r)
    return torch.stack([x0, y0, x1, y1], 1).float(), cells.reshape(k, r * r)


def roi_weights(boxes: torch.Tensor, grid: tuple[int, int], r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, r, h), (K, r, w): roi_align's weight of each grid row / column in each of a box's r cells
    along that axis, from `roi_align` on a one-hot basis (boxes (K, 4) x1, y1, x2, y2 in patches)."""
    def axis(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
        basis = torch.eye(n).reshape(1, n, n, 1)  # (1, n, n, 1): channel c is one-hot on row c
        zero, one = torch.zeros_like(lo), torch.ones_like(lo)
        rois = torch.stack([zero, zero, lo, one, hi], 1)  # (K, 5) image 0, a one-column-wide box
        return roi_align(basis, rois, (r, 1), 1.0, -1, True)[..., 0].transpose(1, 2)  # (K, n, r) -> (K, r, n)
    return axis(boxes[:, 1], boxes[:, 3], grid[0]), axis(boxes[:, 0], boxes[:, 2], grid[1])


def kept_cells(spec: FusionSpec, cells: torch.Tensor) -> torch.Tensor:
    """(K, r*r) bool: the cells each group's tokens show (see the module docstring)."""
    if spec.cells == "weight":
        return torch.ones_like(cells, dtype=torch.bool)
    keep = cells >= spec.threshold - _TOL  # (K, r*r)
    keep[torch.arange(len(cells)), cells.argmax(1)] = True
    return keep


@FUSIONS.register("roialign")
class RoiAlignFusion(Fusion):
    """Per mask a begin-of-mask token and its box's r x r roi_align cells (those the mask covers)."""

    def __init__(self, spec: FusionSpec, dim: int, grid: tuple[int, int]) -> None:
        super().__init__(spec, dim, grid)
        if spec.bom_token:
            self.bom = nn.Parameter(torch.randn(1, self.dim) * 0.02)  # (1, D), encoder space

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        b, r = int(spec.bom_token), spec.r

        def cost(member: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            return kept_cells(spec, group_cells(member, weight, grid, r)[1]).sum(1) + b  # (K,)

        sel = select_masks(spec, coverage, grid, scores, cost)
        boxes, cells = group_cells(sel.member, sel.weight, grid, r)  # (K, 4), (K, r*r)
        keep = kept_cells(spec, cells)  # (K, r*r)
        sizes = keep.sum(1) + b  # (K,) tokens per group
        head = global_part(spec.global_view, grid)
        g = len(head["kind"])
        tok_group = torch.repeat_interleave(torch.arange(len(sizes)), sizes)  # (L,)
        kind = full(len(tok_group), ROI)
        if b:
            kind[torch.cumsum(sizes, 0) - sizes] = BOM
        nz = torch.nonzero(keep)  # (R, 2) (group, cell), raster order within each group
        a, c = nz[:, 1] // r, nz[:, 1] % r  # (R,) cell row / column
        x0, y0, x1, y1 = boxes[nz[:, 0]].unbind(1)  # (R,) each
        row, col = full(len(tok_group), -1), full(len(tok_group), -1)
        is_roi = kind == ROI
        row[is_roi] = (y0 + (a + 0.5) * (y1 - y0) / r).floor().long()
        col[is_roi] = (x0 + (c + 0.5) * (x1 - x0) / r).floor().long()
        body = {"kind": kind, "patch": full(len(tok_group), -1),
                "mask": torch.tensor(sel.ids, dtype=torch.long)[tok_group], "segment": tok_group + 1,
                "group": tok_group + int(g > 0), "row": row, "col": col}
        wy, wx = roi_weights(boxes, grid, r)  # (K, r, h), (K, r, w)
        per_cell = wy[nz[:, 0], a, :, None] * wx[nz[:, 0], c, None, :]  # (R, h, w) roi_align's weights
        if spec.cells == "weight":
            per_cell = per_cell * cells[nz[:, 0], nz[:, 1], None, None]  # (R, h, w) scaled by cell coverage
        per_cell = per_cell.reshape(len(nz), grid[0] * grid[1])  # (R, N)
        entry = torch.nonzero(per_cell)  # (E, 2) (roi cell, patch)
        roi_token = g + torch.nonzero(is_roi).squeeze(1)  # (R,) token index of each kept cell
        return make_layout(grid, [head, body], sel, pool_token=roi_token[entry[:, 0]], pool_patch=entry[:, 1],
                           pool_weight=per_cell[entry[:, 0], entry[:, 1]])
