"""Fusion strategies (FUSIONS): encoder patch features + a packed layout -> the visual tokens.

Each strategy is an `nn.Module` built as ``FUSIONS.get(name)(spec, dim, grid)`` with a
classmethod ``plan(spec, coverage, grid, scores, key="") -> TokenLayout`` (CPU, processor side;
see `og.fusion.plan`) and one shared forward over the whole batch:

    features (B, h*w, D) --one index_select--> (ΣT, D), then the few special rows are written
    in place: global means (one dense mean over patches), begin-of-mask vectors, pooled tokens
    (one weighted `embedding_bag` sum over their entries, in float32: no (E, D) intermediate).

No Python loop over images or masks, no `.item()`, no host transfer; any device and dtype.

- `patches`: every patch in raster order (LLaVA-1.5); the features come back unchanged.
- `masktoken` (OG-LLaVA): the global view (mean token / all patches / none), then per mask a
  learned begin-of-mask vector (one (1, D) parameter in encoder space, before the projector;
  `bom_token=false` leaves it out) and the features of its patches in raster order. Overlapping
  masks each carry their own copy of shared patches, as published.
- `maskpool`: the global view, then one token per mask: the coverage-weighted mean of its
  member patches. `bom_token` has no effect here (there are no mask spans to mark).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from og.fusion.layout import BOM, GLOBAL_MEAN, GLOBAL_PATCH, PATCH, POOLED, PackedLayout, TokenLayout
from og.fusion.plan import Selection, check_fixed_count, select_masks
from og.registry import FUSIONS
from og.spec import FusionSpec

_KEYS = ("kind", "patch", "mask", "segment", "row", "col", "group")


def full(n: int, value: int) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.long)


def _rowcol(part: dict[str, np.ndarray], w: int) -> dict[str, np.ndarray]:
    """Adds each token's patch row and column (-1 where it is not one patch)."""
    p = part["patch"]
    part["row"] = np.where(p >= 0, p // w, -1)
    part["col"] = np.where(p >= 0, p % w, -1)
    return part


def one_each(member: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cost of groups that take one token each (K,)."""
    return torch.ones(member.shape[0], dtype=torch.long)


@functools.lru_cache(maxsize=64)
def global_part(view: str, grid: tuple[int, int]) -> dict[str, np.ndarray]:
    """The global view's tokens: one mean token, every patch (one rope group), or nothing
    (int64 arrays, cached per grid and read-only: `make_layout` copies them)."""
    n = {"mean": 1, "all": grid[0] * grid[1], "none": 0}[view]
    kind, patch = {
        "mean": ([GLOBAL_MEAN], [-1]),
        "all": (np.full(n, GLOBAL_PATCH), np.arange(n)),
        "none": ([], []),
    }[view]
    part = {"kind": kind, "patch": patch, "mask": np.full(n, -1), "segment": np.zeros(n), "group": np.zeros(n)}
    part = _rowcol({k: np.asarray(v, dtype=np.int64) for k, v in part.items()}, grid[1])
    for array in part.values():
        array.setflags(write=False)
    return part


def make_layout(grid: tuple[int, int], parts: list[dict[str, np.ndarray | torch.Tensor]], sel: Selection | None,
                **fields: Any) -> TokenLayout:
    """One TokenLayout from token parts (numpy int64 arrays or long tensors), concatenated in order."""
    block = np.concatenate([np.stack([np.asarray(p[k], dtype=np.int64) for k in _KEYS]) for p in parts], 1)  # (7, T)
    cat = dict(zip(_KEYS, torch.from_numpy(block), strict=True))  # row views of one block
    return TokenLayout(grid=grid, **cat, **fields, **({} if sel is None else sel.counts()))


class Fusion(nn.Module):
    """Base: the shared batched forward; subclasses add parameters and `plan`."""

    def __init__(self, spec: FusionSpec, dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.spec, self.dim, self.grid = spec, int(dim), (int(grid[0]), int(grid[1]))
        self.register_parameter("bom", None)  # (1, D) begin-of-mask vector where a fusion has one

    uses_masks = True  # False: the plan ignores masks (the processor then reads none)
    needs_cls_attention = False  # True: forward takes the encoder's CLS attention (B, h*w)
    uses_key = False  # True: plan draws at random, seeded by the image key

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        raise NotImplementedError

    def forward(self, features: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        b, n, d = features.shape
        if (n, d) != (self.grid[0] * self.grid[1], self.dim) or b != layout.batch_size:
            raise ValueError(f"features {tuple(features.shape)} do not match this fusion (grid {self.grid}, "
                             f"dim {self.dim}) and the layout's {layout.batch_size} images")
        if tuple(layout.grid) != self.grid:
            raise ValueError(f"layout grid {layout.grid} != fusion grid {self.grid}; plan with the encoder's grid")
        flat = features.reshape(b * n, d)  # (B*N, D)
        if layout.identity:
            return flat  # every image is the plain raster of its patches
        out = flat.index_select(0, layout.src)  # (ΣT, D)
        if layout.mean_pos.numel():
            means = features.mean(1).index_select(0, layout.mean_img)  # (n_mean, D)
            out.index_copy_(0, layout.mean_pos, means)
        if layout.bom_pos.numel():
            if self.bom is None:
                raise ValueError(f"the layout has begin-of-mask tokens but fusion {self.spec.id!r} has none; "
                                 "plan layouts with the same fusion spec as the model")
            bom = self.bom.to(out.dtype).expand(layout.bom_pos.numel(), d)  # (n_bom, D)
            out.index_copy_(0, layout.bom_pos, bom)
        if layout.pool_pos.numel():
            table = flat if flat.dtype in (torch.float32, torch.float64) else flat.float()  # (B*N, D)
            pooled = F.embedding_bag(layout.pool_src, table, layout.pool_offsets, mode="sum",
                                     per_sample_weights=layout.pool_weight.to(table.dtype))  # (n_pool, D)
            out.index_copy_(0, layout.pool_pos, pooled.to(out.dtype))  # (n_pool, D) written
        return out


@FUSIONS.register("patches")
class PatchesFusion(Fusion):
    """Every patch in raster order, unchanged (LLaVA-1.5, the baseline)."""

    uses_masks = False

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        n = grid[0] * grid[1]
        check_fixed_count(spec, n, "h*w patches")
        part = dict(global_part("all", grid), group=np.arange(n))
        m = 0 if coverage is None else int(coverage.shape[0])
        return make_layout(grid, [part], None, n_masks_in=m)


@FUSIONS.register("masktoken")
class MaskTokenFusion(Fusion):
    """OG-LLaVA: global view, then per mask a begin-of-mask vector and its patches."""

    def __init__(self, spec: FusionSpec, dim: int, grid: tuple[int, int]) -> None:
        super().__init__(spec, dim, grid)
        if spec.bom_token:
            self.bom = nn.Parameter(torch.randn(1, self.dim) * 0.02)  # (1, D), encoder space

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        b = int(spec.bom_token)
        sel = select_masks(spec, coverage, grid, scores, cost=lambda member, _: member.sum(1) + b)
        head = global_part(spec.global_view, grid)
        member = sel.member.numpy()  # (K, N) bool
        sizes = member.sum(1) + b  # (K,) tokens per group
        tok_group = np.repeat(np.arange(len(sizes)), sizes)  # (L,)
        kind = np.full(len(tok_group), PATCH)
        if b:
            kind[np.cumsum(sizes) - sizes] = BOM
        patch = np.full(len(tok_group), -1)
        patch[kind == PATCH] = np.nonzero(member)[1]  # raster order within each mask
        body = {"kind": kind, "patch": patch, "mask": np.asarray(sel.ids, dtype=np.int64)[tok_group],
                "segment": tok_group + 1, "group": tok_group + int(len(head["kind"]) > 0)}
        return make_layout(grid, [head, _rowcol(body, grid[1])], sel)


@FUSIONS.register("maskpool")
class MaskPoolFusion(Fusion):
    """Global view, then one coverage-weighted mean token per mask."""

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        sel = select_masks(spec, coverage, grid, scores, cost=one_each)
        head = global_part(spec.global_view, grid)
        g, k = len(head["kind"]), len(sel.ids)
        weight = sel.weight / sel.weight.sum(1, keepdim=True)  # (K, N) each row sums to 1
        p = torch.arange(grid[0] * grid[1], dtype=torch.float32)  # (N,)
        body = {"kind": full(k, POOLED), "patch": full(k, -1), "mask": torch.tensor(sel.ids, dtype=torch.long),
                "segment": torch.arange(k) + 1, "group": torch.arange(k) + int(g > 0),
                "row": (weight @ (p // grid[1])).round().long(),  # (K,) centroid row
                "col": (weight @ (p % grid[1])).round().long()}  # (K,) centroid col
        nz = torch.nonzero(sel.member)  # (E, 2) (mask group, patch)
        return make_layout(grid, [head, body], sel, pool_token=nz[:, 0] + g, pool_patch=nz[:, 1],
                       pool_weight=weight[nz[:, 0], nz[:, 1]])
