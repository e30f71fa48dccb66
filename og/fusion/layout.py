"""Token layouts: which visual tokens an image gets, and the packed form a batch hands the model.

A `TokenLayout` (one image, CPU tensors, built by `og.fusion.plan_layout`) says for each output
token where it comes from (`kind`), which patch / mask, its segment id (0 = global, 1..K = the
mask groups in order), its patch row / column and its rope group. Pooled tokens (the global
mean is not one of them; `maskpool`'s and `patchpool`'s tokens are) carry sparse weights over
patches, and so do `roialign`'s cells (kind ROI: roi_align's weights); a `selected` token's patch is
chosen in the forward (`prune(by=norm|cls)`).

`PackedLayout.pack(layouts)` concatenates the layouts of a batch into flat tensors, with the
gather indices the fusion forward needs precomputed on the CPU, so the forward on the device is
dense work only (no `.item()`, no `nonzero`, no host round trip). Packing never changes an
image's tokens: every index is local to its image plus that image's offset.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

# token kinds
GLOBAL_MEAN, GLOBAL_PATCH, BOM, PATCH, POOLED, SELECTED, ROI = 0, 1, 2, 3, 4, 5, 6
KIND_NAMES = {GLOBAL_MEAN: "global-mean", GLOBAL_PATCH: "global-patch", BOM: "begin-of-mask",
              PATCH: "patch", POOLED: "pooled", SELECTED: "selected-patch", ROI: "roi-cell"}
COUNTS = ("n_masks_in", "n_empty", "n_over_budget", "n_uncovered")  # per-image counters (host ints)


def pooled(kind: torch.Tensor) -> torch.Tensor:
    """(T,) bool: the tokens that are weighted sums of patches (`pool_*` entries): pooled and roi cells."""
    return (kind == POOLED) | (kind == ROI)


_PER_TOKEN = ("kind", "patch", "mask", "segment", "row", "col", "group")


@dataclass(eq=False)
class TokenLayout:
    """One image's visual tokens (T,) plus the sparse pooling weights of its pooled tokens (E,).

    `mask` is the index of the token's mask in the coverage given to `plan_layout` (the filler,
    and the no-mask fallback, get index M; -1 for global tokens). `patch` is -1 for tokens that
    are not one patch (global mean, begin-of-mask, pooled); `row` / `col` are -1 where there is no
    position (a pooled token gets its mask's coverage-weighted centroid patch).
    """

    grid: tuple[int, int]
    kind: torch.Tensor  # (T,) long, one of the kinds above
    patch: torch.Tensor  # (T,) long, raster patch index or -1
    mask: torch.Tensor  # (T,) long
    segment: torch.Tensor  # (T,) long
    row: torch.Tensor  # (T,) long
    col: torch.Tensor  # (T,) long
    group: torch.Tensor  # (T,) long, rope group 0, 1, 2, ... consecutive
    pool_token: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # (E,)
    pool_patch: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # (E,)
    pool_weight: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # (E,) sums to 1 per token
    masks: tuple[int, ...] = ()  # the kept masks' indices, in layout order (M for the filler)
    n_masks_in: int = 0  # masks given
    n_empty: int = 0  # dropped: covered no patch
    n_over_budget: int = 0  # dropped: did not fit max_tokens
    n_uncovered: int = 0  # patches no token shows (the global mean aside): outside every kept group
    fallback: bool = False  # no mask survived: the layout is global view + all patches

    @property
    def n_dropped(self) -> int:
        """Masks dropped for any reason (empty or over the budget)."""
        return self.n_empty + self.n_over_budget

    def __len__(self) -> int:
        return int(self.kind.numel())

    def __repr__(self) -> str:
        kinds = {KIND_NAMES[k]: int((self.kind == k).sum()) for k in KIND_NAMES if (self.kind == k).any()}
        return (f"TokenLayout({len(self)} tokens, grid={self.grid}, masks={len(self.masks)}/{self.n_masks_in}, "
                f"dropped={self.n_dropped}, {kinds})")


def _tensors(obj: object) -> dict[str, torch.Tensor]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)
            if isinstance(getattr(obj, f.name), torch.Tensor)}


@dataclass(eq=False)
class PackedLayout:
    """The layouts of a batch as flat tensors (ΣT,) with image 0's tokens first.

    Gather plan for the fusion forward (features flattened to (B*h*w, D)):
    `src` (ΣT,) row of every token (patch tokens; others point at their image's first patch and
    are overwritten); `bom_pos` positions of begin-of-mask tokens; `mean_pos` / `mean_img`
    positions of global-mean tokens and their image; `pool_pos` positions of pooled tokens and
    the entries `pool_slot` (which pooled token; entries sorted by it, `pool_offsets` where each
    token's entries start: the bags of one `embedding_bag`), `pool_src` (feature row), `pool_weight`;
    `select_pos` the `select_k` selected tokens of every image (patch chosen in the forward);
    """

    grid: tuple[int, int]
    lengths: torch.Tensor  # (B,) long
    starts: torch.Tensor  # (B,) long, offset of each image's first token
    image: torch.Tensor  # (ΣT,) long, image index of every token
    kind: torch.Tensor  # (ΣT,)
    patch: torch.Tensor  # (ΣT,)
    mask: torch.Tensor  # (ΣT,)
    segment: torch.Tensor  # (ΣT,)
    row: torch.Tensor  # (ΣT,)
    col: torch.Tensor  # (ΣT,)
    group: torch.Tensor  # (ΣT,)
    src: torch.Tensor  # (ΣT,)
    bom_pos: torch.Tensor  # (n_bom,)
    mean_pos: torch.Tensor  # (n_mean,)
    mean_img: torch.Tensor  # (n_mean,)
    pool_pos: torch.Tensor  # (n_pool,)
    pool_slot: torch.Tensor  # (E,)
    pool_src: torch.Tensor  # (E,)
    pool_weight: torch.Tensor  # (E,) float32
    pool_offsets: torch.Tensor  # (n_pool,) first entry of each pooled token (entries sorted by slot)
    select_pos: torch.Tensor  # (B * select_k,)
    total: int = 0  # ΣT
    max_segment: int = 0  # the largest segment id in the batch (host int: checks need no sync)
    select_k: int = 0  # selected tokens per image (the same for every image)
    n_dropped: tuple[int, ...] = ()  # per image
    counts: dict[str, tuple[int, ...]] = field(default_factory=dict)  # COUNTS + "n_tokens" -> per image (host)
    fallbacks: tuple[int, ...] = ()  # per image: 1 where no mask survived
    identity: bool = False  # every image is exactly its h*w patches in raster order

    @classmethod
    def pack(cls, layouts: list[TokenLayout]) -> PackedLayout:
        if not layouts:
            raise ValueError("PackedLayout.pack got no layouts; pass one TokenLayout per image")
        grid = tuple(layouts[0].grid)
        bad = [i for i, lay in enumerate(layouts) if tuple(lay.grid) != grid]
        if bad:
            raise ValueError(f"layout {bad[0]} has grid {layouts[bad[0]].grid} but layout 0 has {grid}; "
                             "every image of a batch must use the same encoder grid")
        n = grid[0] * grid[1]
        lengths = torch.tensor([len(lay) for lay in layouts], dtype=torch.long)  # (B,)
        starts = torch.cumsum(lengths, 0) - lengths  # (B,)
        cat = {k: torch.cat([getattr(lay, k) for lay in layouts]) for k in _PER_TOKEN}  # each (ΣT,)
        image = torch.repeat_interleave(torch.arange(len(layouts)), lengths)  # (ΣT,)
        kind, pos = cat["kind"], torch.arange(int(lengths.sum()))
        src = image * n + cat["patch"].clamp(min=0)  # (ΣT,)
        is_mean = kind == GLOBAL_MEAN
        n_pool = torch.tensor([int(pooled(lay.kind).sum()) for lay in layouts], dtype=torch.long)
        e = torch.tensor([lay.pool_token.numel() for lay in layouts], dtype=torch.long)  # (B,)
        pool_img = torch.repeat_interleave(torch.arange(len(layouts)), e)  # (E,)
        # pooled tokens of image b are numbered after those of images < b, in token order
        local_slot = torch.cat([_pool_rank(lay) for lay in layouts]) if e.sum() else e[:0]  # (E,)
        slot_base = torch.cumsum(n_pool, 0) - n_pool  # (B,)
        slot = slot_base[pool_img] + local_slot  # (E,) the pooled token of each entry
        order = torch.argsort(slot, stable=True)  # (E,) entries grouped by token: one bag each
        per_slot = torch.bincount(slot, minlength=int(n_pool.sum()))  # (n_pool,) entries per pooled token
        pool_src = pool_img * n + torch.cat([lay.pool_patch for lay in layouts])  # (E,)
        return cls(**_selected(layouts, kind, pos),
            grid=grid, lengths=lengths, starts=starts, image=image, src=src,
            bom_pos=pos[kind == BOM], mean_pos=pos[is_mean], mean_img=image[is_mean],
            pool_pos=pos[pooled(kind)], pool_slot=slot[order], pool_src=pool_src[order],
            pool_weight=torch.cat([lay.pool_weight for lay in layouts]).float()[order],
            pool_offsets=torch.cumsum(per_slot, 0) - per_slot,
            total=int(lengths.sum()), max_segment=int(cat["segment"].max()) if len(kind) else 0,
            n_dropped=tuple(lay.n_dropped for lay in layouts), identity=all(_is_raster(lay, n) for lay in layouts),
            counts={**{c: tuple(int(getattr(lay, c)) for lay in layouts) for c in COUNTS},
                    "n_tokens": tuple(len(lay) for lay in layouts)},
            fallbacks=tuple(int(lay.fallback) for lay in layouts),
            **cat,
        )

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PackedLayout:
        """A copy with every tensor on `device` (weights keep float32; the fusion casts them)."""
        moved = {k: v.to(device, non_blocking=non_blocking) for k, v in _tensors(self).items()}
        return dataclasses.replace(self, **moved)

    @property
    def device(self) -> torch.device:
        return self.src.device

    @property
    def batch_size(self) -> int:
        return int(self.lengths.numel())

    def __len__(self) -> int:
        return self.total


def _is_raster(layout: TokenLayout, n: int) -> bool:
    return len(layout) == n and bool((layout.kind == GLOBAL_PATCH).all()) and bool(
        torch.equal(layout.patch, torch.arange(n)))


def _selected(layouts: list[TokenLayout], kind: torch.Tensor, pos: torch.Tensor) -> dict:
    """The selected-token positions; every image must hold the same number of them."""
    per = {int((lay.kind == SELECTED).sum()) for lay in layouts}
    if len(per) > 1:
        raise ValueError(f"images hold {sorted(per)} selected tokens; every image of a batch must be planned "
                         "with the same fusion spec")
    return {"select_pos": pos[kind == SELECTED], "select_k": per.pop()}


def _pool_rank(layout: TokenLayout) -> torch.Tensor:
    """(E,) the rank among the image's pooled tokens of each pooling entry's token."""
    rank = torch.cumsum(pooled(layout.kind).long(), 0) - 1  # (T,) rank of each pooled token
    return rank[layout.pool_token]
