"""Which masks an image keeps, and in what order: the shared part of every fusion's layout plan.

`plan_layout(spec, coverage, grid, scores)` (processor side, CPU) asks the spec's fusion class
for its layout; the mask-based fusions all start from `select_masks`:

1. Membership: patch p belongs to mask m under the spec's downsampler rule (`area`: coverage
   >= threshold). A mask with no member patch is dropped and counted (`n_empty`); with
   `min_one_patch` it keeps its best-covered patch instead (a mask whose coverage is zero
   everywhere, e.g. cropped away, is still dropped).
2. Filler (`filler=true`): one more mask of the patches that no surviving mask covers, placed
   last. No surviving mask at all -> the fallback: a single group of every patch (whatever
   `filler` says), so the image is always seen.
3. Token budget, the same for every image whatever its batch-mates: `max_tokens` (None -> the
   grid's patch count h*w) bounds the PATCH tokens of the mask groups: the patch features copied
   into `masktoken` groups (a patch shared by two masks counts twice) or `maskpool`'s pooled
   tokens (one each), the filler included. The begin-of-mask token of each kept group and the
   global view (1 token for `mean`, h*w for `all`) come on top and are never dropped; so a
   partition of the image (SLIC, a grid) always fits the default budget, and an image has at
   most global + max_tokens + (kept groups) <= global + 2 * max_tokens tokens. The no-mask
   fallback is always kept (it exceeds the budget only when max_tokens < h*w). Policy: the
   filler first (it is the rest of the image), then the masks in priority order (highest
   score, then largest coverage area, then the given index), each kept if its patch tokens
   still fit, else dropped and counted (`n_over_budget`); smaller masks later in priority may
   still fit.
4. Order of the kept masks (`order`): `segmenter` (as given), `area` (largest coverage first),
   `raster` (by first covered patch in raster order); ties by the given index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from og.fusion.layout import TokenLayout
from og.registry import DOWNSAMPLERS, FUSIONS
from og.spec import FusionSpec


@dataclass
class Selection:
    """The kept mask groups of one image, in layout order (the filler, if any, last)."""

    member: torch.Tensor  # (K, N) bool
    weight: torch.Tensor  # (K, N) float coverage (1.0 for the filler)
    ids: tuple[int, ...]  # the groups' mask indices (M for the filler)
    n_in: int
    n_empty: int
    n_over_budget: int
    fallback: bool


def check_coverage(coverage: torch.Tensor | np.ndarray | None, grid: tuple[int, int]) -> torch.Tensor:
    """float (M, h*w) coverage on the CPU; None means no masks."""
    h, w = grid
    if coverage is None:
        return torch.zeros(0, h * w)
    coverage = torch.as_tensor(coverage)
    if coverage.ndim != 3 or tuple(coverage.shape[1:]) != (h, w):
        raise ValueError(f"coverage must be (M, {h}, {w}) for grid {grid}; got shape {tuple(coverage.shape)}; "
                         "downsample the masks with og.fusion.downsample(masks, grid) first")
    return coverage.detach().to("cpu", torch.float32).reshape(coverage.shape[0], h * w)  # (M, N)


def _stable_order(*keys: torch.Tensor) -> torch.Tensor:
    """Indices sorting by keys[0] ascending, then keys[1], ... (ties by position)."""
    idx = torch.arange(len(keys[0]))
    for key in reversed(keys):
        idx = idx[torch.sort(key[idx], stable=True).indices]
    return idx


def select_masks(spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
                 scores: torch.Tensor | None, cost: Callable[[int], int]) -> Selection:
    """Membership, dropping, filler, budget and order (see the module docstring).

    `cost(n_patches)` is the number of budgeted tokens a group of `n_patches` patches takes.
    """
    cov = check_coverage(coverage, grid)  # (M, N)
    m, n = cov.shape
    member = DOWNSAMPLERS.get(spec.downsampler).member(cov, spec.threshold).clone()  # (M, N)
    counts = member.sum(1)  # (M,)
    if spec.min_one_patch:
        rescue = torch.nonzero((counts == 0) & (cov.amax(1) > 0)).squeeze(1)  # (R,)
        member[rescue, cov[rescue].argmax(1)] = True
        counts = member.sum(1)
    cand = torch.nonzero(counts > 0).squeeze(1)  # (C,) surviving mask indices
    area = cov.sum(1)  # (M,) coverage mass, in patches
    if scores is None:
        score = torch.zeros(m)
    else:
        score = torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu()
        if score.numel() != m:
            raise ValueError(f"{score.numel()} scores for {m} masks; give one score per mask")
    fallback = cand.numel() == 0
    uncovered = ~member[cand].any(0)  # (N,) all True when no mask survives
    budget = spec.max_tokens if spec.max_tokens is not None else n
    use_filler = fallback or (spec.filler and bool(uncovered.any()))
    if use_filler and not fallback:
        filler_cost = cost(int(uncovered.sum()))
        use_filler = filler_cost <= budget
        budget -= filler_cost if use_filler else 0
    prio = cand[_stable_order(-score[cand], -area[cand])]  # (C,) priority order
    kept: list[int] = []
    for mask_id, c in zip(prio.tolist(), counts[prio].tolist(), strict=True):
        if cost(c) <= budget:
            kept.append(mask_id)
            budget -= cost(c)
    keep = torch.tensor(sorted(kept), dtype=torch.long)  # (K,) given order
    first = member[keep].float().argmax(1)  # (K,) first covered patch
    order_keys = {"segmenter": (keep,), "area": (-area[keep], keep), "raster": (first, keep)}[spec.order]
    keep = keep[_stable_order(*order_keys)]
    rows, weights, ids = [member[keep]], [cov[keep]], keep.tolist()
    if use_filler:
        rows.append(uncovered[None])
        weights.append(uncovered[None].float())
        ids.append(m)
    return Selection(member=torch.cat(rows), weight=torch.cat(weights) * torch.cat(rows), ids=tuple(ids),
                     n_in=m, n_empty=m - cand.numel(), n_over_budget=cand.numel() - len(kept),
                     fallback=fallback)


def plan_layout(spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
                scores: torch.Tensor | None = None) -> TokenLayout:
    """The token layout of one image for the spec's fusion (CPU; see the module docstring)."""
    return FUSIONS.get(spec.name).plan(spec, coverage, (int(grid[0]), int(grid[1])), scores)
