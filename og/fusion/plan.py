"""Which masks an image keeps, and in what order: the shared part of every fusion's layout plan.

`plan_layout(spec, coverage, grid, scores, key)` (processor side, CPU) asks the spec's fusion
class for its layout; the mask-based fusions (`masktoken`, `maskpool`, `roialign`) all start
from `select_masks`:

1. Membership: patch p belongs to mask m under the spec's downsampler rule (`area`: coverage
   >= threshold). A mask with no member patch is dropped and counted (`n_empty`); with
   `min_one_patch` it keeps its best-covered patch instead (a mask whose coverage is zero
   everywhere, e.g. cropped away, is still dropped).
2. Token budget. `max_tokens=None` (the default, and the published OG-LLaVA behaviour) is
   unbounded: every non-empty mask is kept. A set `max_tokens` is the number of visual tokens
   the image contributes, everything included, and means the same for every fusion: the global
   view (1 token for `mean`, h*w for `all`), each kept group's begin-of-mask token, its patch
   copies (`masktoken`: a patch shared by two masks counts twice), pooled tokens (`maskpool`)
   or roi cells (`roialign`), and the filler. Policy (deterministic, per image, whatever its
   batch-mates): the masks in priority order (highest score, then largest coverage area, then
   the given index), each kept if the image's total with it still fits, else dropped and
   counted (`n_over_budget`); smaller masks later in priority may still fit. A global view
   larger than the budget is an error.
3. Filler (`filler=true`): one more group of the patches no KEPT mask covers, placed last. It
   is computed after the budget, and its tokens are reserved while masks are kept, so a
   patch of a dropped mask is never left unseen. A budget smaller than the smallest layout
   that shows every patch (global view + one group of all patches) is an error.
4. No surviving mask: the fallback, one group of every patch (whatever `filler` says), so the
   image is always seen; it is the one layout that may exceed a budget (flagged `fallback`).
5. Order of the kept masks (`order`): `segmenter` (as given), `area` (largest coverage first),
   `raster` (by first covered patch in raster order); ties by the given index.

Counted per image (TokenLayout fields): `n_masks_in`, `n_empty`, `n_over_budget` and
`n_uncovered`, the patches that no kept group and no global patch token shows (a patch outside
every mask reaches the LLM only through the mean token, if at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from og.fusion.layout import TokenLayout
from og.registry import DOWNSAMPLERS, FUSIONS
from og.spec import FusionSpec

GLOBAL_TOKENS = {"mean": lambda n: 1, "all": lambda n: n, "none": lambda n: 0}  # view -> tokens for n patches
Cost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (member (K, N) bool, weight (K, N)) -> (K,) tokens


@dataclass
class Selection:
    """The kept mask groups of one image, in layout order (the filler, if any, last)."""

    member: torch.Tensor  # (K, N) bool
    weight: torch.Tensor  # (K, N) float coverage (1.0 for the filler)
    ids: tuple[int, ...]  # the groups' mask indices (M for the filler)
    n_in: int
    n_empty: int
    n_over_budget: int
    n_uncovered: int
    fallback: bool

    def counts(self) -> dict:
        """The TokenLayout fields this selection fills."""
        return {"masks": self.ids, "n_masks_in": self.n_in, "n_empty": self.n_empty,
                "n_over_budget": self.n_over_budget, "n_uncovered": self.n_uncovered, "fallback": self.fallback}


def check_coverage(coverage: torch.Tensor | np.ndarray | None, grid: tuple[int, int]) -> np.ndarray:
    """float32 (M, h*w) coverage as a numpy array (a view where it can be); None means no masks."""
    h, w = grid
    if coverage is None:
        return np.zeros((0, h * w), np.float32)
    if isinstance(coverage, torch.Tensor):
        coverage = coverage.detach()
        coverage = (coverage if coverage.device.type == "cpu" else coverage.cpu()).numpy()
    if coverage.ndim != 3 or coverage.shape[1:] != (h, w):
        raise ValueError(f"coverage must be (M, {h}, {w}) for grid {grid}; got shape {tuple(coverage.shape)}; "
                         "downsample the masks with og.fusion.downsample(masks, grid) first")
    return np.asarray(coverage, np.float32).reshape(coverage.shape[0], h * w)  # (M, N)


def global_tokens(spec: FusionSpec, n: int) -> int:
    """Tokens of the global view for n patches; checked against the budget."""
    g = GLOBAL_TOKENS[spec.global_view](n)
    if spec.max_tokens is not None and g > spec.max_tokens:
        raise ValueError(f"fusion {spec.id!r}: the global view {spec.global_view!r} alone is {g} tokens, over "
                         f"max_tokens={spec.max_tokens}; raise max_tokens or use global_view=mean|none")
    return g


def check_fixed_count(spec: FusionSpec, tokens: int, what: str) -> None:
    """A fusion with a fixed token count refuses a smaller budget."""
    if spec.max_tokens is not None and tokens > spec.max_tokens:
        raise ValueError(f"fusion {spec.id!r} always gives {tokens} tokens ({what}) but max_tokens="
                         f"{spec.max_tokens} is smaller: unset max_tokens or lower the fusion's own count")


def _scores(scores: torch.Tensor | np.ndarray | None, m: int) -> np.ndarray:
    if scores is None:
        return np.zeros(m, np.float32)
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().numpy()
    score = np.asarray(scores, np.float32).reshape(-1)
    if score.size != m:
        raise ValueError(f"{score.size} scores for {m} masks; give one score per mask")
    return score


def _keep_within_budget(spec: FusionSpec, member: np.ndarray, cov: np.ndarray, prio: np.ndarray,
                        cost: Cost, fixed: int) -> np.ndarray:
    """The masks of `prio` kept, in priority order, while the image's total fits (filler reserved)."""
    if spec.max_tokens is None:
        return prio
    n = member.shape[1]
    costs = cost(torch.from_numpy(member[prio]), torch.from_numpy(cov[prio] * member[prio])).tolist()  # (C,)
    covered = np.zeros(n, dtype=bool)  # (N,)
    total, kept = fixed, []
    for mask_id, c in zip(prio.tolist(), costs, strict=True):
        now = covered | member[mask_id]  # (N,)
        rest = torch.from_numpy(~now)  # (N,) the filler if this mask is kept
        filler = int(cost(rest[None], rest[None].float())[0]) if spec.filler and bool(rest.any()) else 0
        if total + c + filler <= spec.max_tokens:
            kept.append(mask_id)
            covered, total = now, total + c
    return np.asarray(kept, dtype=np.int64)


def select_masks(spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
                 scores: torch.Tensor | None, cost: Cost) -> Selection:
    """Membership, dropping, budget, filler and order (see the module docstring).

    `cost(member (K, N) bool, weight (K, N) float)` gives the tokens each group takes, its
    begin-of-mask token included. The work is numpy on small arrays (a torch op costs several
    microseconds of dispatch here, about the whole budget of a data-loader sample)."""
    cov = check_coverage(coverage, grid)  # (M, N)
    m, n = cov.shape
    fixed = global_tokens(spec, n)
    if spec.filler and spec.max_tokens is not None:
        everything = torch.ones(1, n, dtype=torch.bool)  # (1, N)
        least = fixed + int(cost(everything, everything.float())[0])
        if least > spec.max_tokens:
            raise ValueError(f"fusion {spec.id!r}: filler=true shows every patch, which takes at least {least} "
                             f"tokens on a {grid[0]}x{grid[1]} grid, over max_tokens={spec.max_tokens}; raise "
                             "max_tokens or set filler=false")
    member = DOWNSAMPLERS.get(spec.downsampler).member(cov, spec.threshold)  # (M, N) bool, a new array
    counts = member.sum(1)  # (M,)
    if spec.min_one_patch and m:
        rescue = np.flatnonzero((counts == 0) & (cov.max(1) > 0))  # (R,)
        member[rescue, cov[rescue].argmax(1)] = True
        counts = member.sum(1)
    cand = np.flatnonzero(counts > 0)  # (C,) surviving mask indices
    area = cov.sum(1)  # (M,) coverage mass, in patches
    score = _scores(scores, m)
    prio = cand[np.lexsort((-area[cand], -score[cand]))]  # (C,) by score, then area, then index (stable)
    keep = np.sort(_keep_within_budget(spec, member, cov, prio, cost, fixed))  # (K,) given order
    first = member[keep].argmax(1)  # (K,) first covered patch
    order = {"segmenter": lambda: np.arange(len(keep)), "area": lambda: np.lexsort((keep, -area[keep])),
             "raster": lambda: np.lexsort((keep, first))}[spec.order]()
    keep = keep[order]
    rows, weights, ids = [member[keep]], [cov[keep]], keep.tolist()
    uncovered = ~rows[0].any(0)  # (N,) all True when nothing is kept
    fallback = cand.size == 0
    if (fallback or spec.filler) and bool(uncovered.any()):
        rows.append(uncovered[None])
        weights.append(uncovered[None].astype(np.float32))
        ids.append(m)
    member_out = np.concatenate(rows)  # (K', N)
    shown = member_out.any(0)  # (N,)
    n_uncovered = 0 if spec.global_view == "all" else int((~shown).sum())
    return Selection(member=torch.from_numpy(member_out), weight=torch.from_numpy(np.concatenate(weights) * member_out),
                     ids=tuple(ids), n_in=m, n_empty=m - cand.size, n_over_budget=cand.size - len(keep),
                     n_uncovered=n_uncovered, fallback=fallback)


def plan_layout(spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
                scores: torch.Tensor | np.ndarray | None = None, key: str = "") -> TokenLayout:
    """The token layout of one image for the spec's fusion (CPU; see the module docstring).

    `key` names the image (its mask-store key, or a digest of its pixels): fusions that draw at
    random (`prune(by=random)`) seed on it, so an image gets the same tokens in every run."""
    return FUSIONS.get(spec.name).plan(spec, coverage, (int(grid[0]), int(grid[1])), scores, key=key)
