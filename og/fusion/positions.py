"""Position encodings of the visual tokens (POSITIONS), composable with any fusion.

Built as ``POSITIONS.get(name)(spec: PositionSpec, vision_dim, text_dim, grid)``; the model calls
the module, ``position(tokens, layout, "before")`` and ``position(tokens, layout, "after")``,
which run ``before_projector(tokens (ΣT, Dv), layout)`` and ``after_projector(tokens (ΣT, Dl),
layout)``. Every table is read inside the module's own forward: DeepSpeed ZeRO-3 gathers a
module's partitioned parameters only around its forward, so a table read from outside it would
be an empty shard there. Every table is created once in ``__init__`` (learned ones are
parameters that train).

- `none`: nothing.
- `segment` (the paper's): a learned embedding per segment id (0 = global, 1..K = mask groups),
  added after the projector; the table has ``max_segments + 1`` rows (ids 0..max_segments). A
  batch whose layouts reach a larger id is refused with a clear error (checked on the host
  from ``layout.max_segment``: no device sync); raise ``max_segments`` or lower the budget.
- `sincos2d`: fixed 2-D sin/cos of the token's patch row and column, added before the
  projector (half the channels encode the row, half the column; channels beyond the largest
  multiple of 4 stay zero). Tokens without a position (row -1: global mean, begin-of-mask)
  get zero.
- `learned2d`: a learned (h*w, Dv) table over the encoder's grid, added before the projector
  at the token's patch; tokens without a position get zero.
- `grouped_rope` (the published ``--custom_rotary_embedding``): no tensor change;
  ``grouped_positions = True`` tells the model to build the LLM position ids from
  ``layout.group`` (one rotary position per token group).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from og.fusion.layout import PackedLayout
from og.registry import POSITIONS
from og.spec import PositionSpec

SIDES = {"before": "before_projector", "after": "after_projector"}  # forward's `side` -> the method it runs


class PositionEncoding(nn.Module):
    """Base: identity on both sides."""

    grouped_positions: bool = False

    def __init__(self, spec: PositionSpec, vision_dim: int, text_dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.spec, self.vision_dim, self.text_dim = spec, int(vision_dim), int(text_dim)
        self.grid = (int(grid[0]), int(grid[1]))

    def forward(self, tokens: torch.Tensor, layout: PackedLayout, side: str) -> torch.Tensor:
        """`side` "before" or "after" the projector: (ΣT, Dv) or (ΣT, Dl), same shape out."""
        if side not in SIDES:
            raise ValueError(f"position side {side!r}; use one of {', '.join(SIDES)}")
        return getattr(self, SIDES[side])(tokens, layout)

    def before_projector(self, tokens: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        return tokens  # (ΣT, Dv)

    def after_projector(self, tokens: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        return tokens  # (ΣT, Dl)

    def grid_index(self, layout: PackedLayout) -> torch.Tensor:
        """(ΣT,) the token's raster patch from its row / col, h*w where it has none."""
        if tuple(layout.grid) != self.grid:
            raise ValueError(f"layout grid {layout.grid} != position grid {self.grid}; "
                             "build the position encoding with the encoder's grid")
        h, w = self.grid
        return torch.where(layout.row >= 0, layout.row * w + layout.col, h * w)


@POSITIONS.register("none")
class NoPosition(PositionEncoding):
    """No position encoding."""


@POSITIONS.register("segment")
class SegmentPosition(PositionEncoding):
    """A learned embedding per segment id, after the projector (the paper's)."""

    def __init__(self, spec: PositionSpec, vision_dim: int, text_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(spec, vision_dim, text_dim, grid)
        self.table = nn.Embedding(spec.max_segments + 1, self.text_dim)  # (S+1, Dl)
        nn.init.normal_(self.table.weight, std=0.02)

    def after_projector(self, tokens: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        if layout.max_segment > self.spec.max_segments:
            raise ValueError(f"a layout has segment id {layout.max_segment} but the segment table holds ids "
                             f"0..{self.spec.max_segments}; raise position max_segments or lower fusion max_tokens")
        return tokens + self.table(layout.segment).to(tokens.dtype)  # (ΣT, Dl)


def sincos_2d(grid: tuple[int, int], dim: int, base: float = 10_000.0) -> torch.Tensor:
    """(h*w, dim) fixed encoding: rows in the first half of the channels, columns in the second."""
    h, w = grid
    quarter = dim // 4
    freq = base ** (-torch.arange(quarter, dtype=torch.float64) / max(quarter, 1))  # (dim/4,)
    rows = torch.arange(h, dtype=torch.float64)[:, None, None].expand(h, w, 1) * freq  # (h, w, dim/4)
    cols = torch.arange(w, dtype=torch.float64)[None, :, None].expand(h, w, 1) * freq  # (h, w, dim/4)
    pe = torch.cat([rows.sin(), rows.cos(), cols.sin(), cols.cos()], -1).reshape(h * w, 4 * quarter)
    return F.pad(pe, (0, dim - 4 * quarter)).float()  # (h*w, dim)


@POSITIONS.register("sincos2d")
class SinCos2dPosition(PositionEncoding):
    """Fixed 2-D sin/cos of the patch row / column, before the projector."""

    def __init__(self, spec: PositionSpec, vision_dim: int, text_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(spec, vision_dim, text_dim, grid)
        table = F.pad(sincos_2d(self.grid, self.vision_dim), (0, 0, 0, 1))  # (h*w + 1, Dv), last row zero
        self.register_buffer("table", table, persistent=False)

    def before_projector(self, tokens: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        return tokens + self.table.index_select(0, self.grid_index(layout)).to(tokens.dtype)  # (ΣT, Dv)


@POSITIONS.register("learned2d")
class Learned2dPosition(PositionEncoding):
    """A learned table over the encoder's patch grid, before the projector."""

    def __init__(self, spec: PositionSpec, vision_dim: int, text_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(spec, vision_dim, text_dim, grid)
        self.table = nn.Parameter(torch.empty(self.grid[0] * self.grid[1], self.vision_dim))  # (h*w, Dv)
        nn.init.trunc_normal_(self.table, std=0.02)

    def before_projector(self, tokens: torch.Tensor, layout: PackedLayout) -> torch.Tensor:
        padded = F.pad(self.table, (0, 0, 0, 1))  # (h*w + 1, Dv), last row zero for "no patch"
        return tokens + padded.index_select(0, self.grid_index(layout)).to(tokens.dtype)  # (ΣT, Dv)


@POSITIONS.register("grouped_rope")
class GroupedRopePosition(PositionEncoding):
    """One LLM rotary position per token group (the model reads `layout.group`)."""

    grouped_positions = True

