"""`prune(keep=N, by=random|norm|cls)`: N patch tokens of the grid, in raster order.

- `random`: N patches drawn without replacement, seeded by the image key (`plan_layout(...,
  key=)`: the mask-store key, or a digest of the pixels when the processor has none), so an
  image gets the same patches in training and evaluation; chosen in the plan (CPU).
- `norm`: the N patches of largest feature norm (the forward decides: one batched `topk`,
  then a sort back to raster order).
- `cls`: the N patches the encoder's CLS token attends to most in its last layer (VisionZip /
  FastV-style dominant tokens); the model passes the attention (B, h*w) from the encoder's
  `forward_with_cls_attention` (`clip`, `timm` ViTs). An encoder without a CLS token (e.g.
  SigLIP) is an error.

An image gets min(N, h*w) tokens, each its own rope group; `global_view`, `bom_token`,
`filler` and the mask switches have no effect; N over `max_tokens` is an error. Tokens chosen in
the forward carry no row / column in the layout (position encodings see them as unplaced).
`n_uncovered` counts the h*w - N patches left out.
"""

from __future__ import annotations

import hashlib

import torch

from og.fusion.layout import GLOBAL_PATCH, SELECTED, PackedLayout, TokenLayout
from og.fusion.plan import check_fixed_count
from og.fusion.strategies import Fusion
from og.registry import FUSIONS
from og.spec import FusionSpec


def key_seed(key: str) -> int:
    """A stable 63-bit seed from an image key (the same on every machine and run)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1


def random_patches(key: str, n: int, keep: int) -> torch.Tensor:
    """(keep,) patch indices in raster order, drawn without replacement, seeded by `key`."""
    g = torch.Generator().manual_seed(key_seed(key))
    return torch.randperm(n, generator=g)[:keep].sort().values


@FUSIONS.register("prune")
class PruneFusion(Fusion):
    """Keep N patch tokens in raster order: random (per image key), largest norm, or CLS attention."""

    uses_key = True
    uses_masks = False

    def __init__(self, spec: FusionSpec, dim: int, grid: tuple[int, int]) -> None:
        super().__init__(spec, dim, grid)
        self.needs_cls_attention = spec.by == "cls"

    @classmethod
    def plan(cls, spec: FusionSpec, coverage: torch.Tensor | None, grid: tuple[int, int],
             scores: torch.Tensor | None = None, key: str = "") -> TokenLayout:
        n = grid[0] * grid[1]
        keep = min(spec.keep, n)
        check_fixed_count(spec, keep, f"keep={spec.keep} on a {grid[0]}x{grid[1]} grid")
        if spec.by == "random":
            patch = random_patches(key, n, keep)  # (keep,)
            kind = torch.full((keep,), GLOBAL_PATCH, dtype=torch.long)
            row, col = patch // grid[1], patch % grid[1]
        else:  # chosen in the forward
            patch = torch.full((keep,), -1, dtype=torch.long)
            kind = torch.full((keep,), SELECTED, dtype=torch.long)
            row, col = patch.clone(), patch.clone()
        return TokenLayout(grid=grid, kind=kind, patch=patch, mask=torch.full((keep,), -1, dtype=torch.long),
                           segment=torch.zeros(keep, dtype=torch.long), row=row, col=col, group=torch.arange(keep),
                           n_masks_in=0 if coverage is None else int(coverage.shape[0]), n_uncovered=n - keep)

    def forward(self, features: torch.Tensor, layout: PackedLayout,
                cls_attention: torch.Tensor | None = None) -> torch.Tensor:
        out = super().forward(features, layout)  # (ΣT, D)
        if layout.select_k == 0:
            return out
        b, n, d = features.shape
        if self.spec.by == "cls":
            if cls_attention is None or tuple(cls_attention.shape) != (b, n):
                got = None if cls_attention is None else tuple(cls_attention.shape)
                raise ValueError(f"fusion {self.spec.id!r} needs the encoder's CLS attention ({b}, {n}), got {got}; "
                                 "the model passes it from encoder.forward_with_cls_attention")
            score = cls_attention.float()  # (B, N)
        else:
            score = features.float().norm(dim=-1)  # (B, N)
        idx = score.topk(layout.select_k, dim=1).indices.sort(dim=1).values  # (B, K) raster order
        rows = (idx + torch.arange(b, device=idx.device)[:, None] * n).reshape(-1)  # (B*K,)
        return out.index_copy_(0, layout.select_pos, features.reshape(b * n, d).index_select(0, rows))
