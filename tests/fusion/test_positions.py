"""Position encodings: naive per-token references, gradients into learned tables, clear errors."""

import math

import pytest
import torch

from og.fusion import PackedLayout, plan_layout
from og.registry import POSITIONS
from og.spec import FusionSpec, PositionSpec

GRID = (3, 4)
DV, DL = 10, 8  # DV not a multiple of 4: the last channels stay zero


def packed(spec=FusionSpec("masktoken", filler=True, global_view="mean"), counts=(2, 0, 3)):
    g = torch.Generator().manual_seed(0)
    covs = [(torch.rand(m, *GRID, generator=g) > 0.6).float() for m in counts]
    return PackedLayout.pack([plan_layout(spec, c, GRID) for c in covs])


def build(name, max_segments=300):
    return POSITIONS.get(name)(PositionSpec(name, max_segments=max_segments), DV, DL, GRID)


def test_registered_and_grouped_flag():
    assert set(POSITIONS.list()) == {"none", "segment", "sincos2d", "learned2d", "grouped_rope"}
    assert build("grouped_rope").grouped_positions and not build("segment").grouped_positions
    lay, x = packed(), torch.randn(packed().total, DV)
    for name in ("none", "grouped_rope"):
        assert torch.equal(build(name).before_projector(x, lay), x)
        assert torch.equal(build(name).after_projector(x[:, :DL], lay), x[:, :DL])


def test_segment_adds_the_row_of_each_tokens_segment():
    lay = packed()
    pos = build("segment")
    x = torch.randn(lay.total, DL)
    out = pos.after_projector(x, lay)
    for t in range(lay.total):
        assert torch.equal(out[t], x[t] + pos.table.weight[lay.segment[t]])
    assert torch.equal(pos.before_projector(x, lay), x)
    out.sum().backward()
    assert pos.table.weight.grad[: lay.max_segment + 1].abs().sum(-1).gt(0).all()


def test_segment_beyond_table_is_refused():
    lay = packed(counts=(5,))
    pos = build("segment", max_segments=2)
    assert pos.table.num_embeddings == 3
    with pytest.raises(ValueError, match=r"segment id \d+ but the segment table holds ids 0..2"):
        pos.after_projector(torch.zeros(lay.total, DL), lay)


def naive_sincos(row: int, col: int) -> torch.Tensor:
    q = DV // 4
    out = torch.zeros(DV)
    if row < 0:
        return out
    for i in range(q):
        f = 10000 ** (-i / q)
        out[i], out[q + i] = math.sin(row * f), math.cos(row * f)
        out[2 * q + i], out[3 * q + i] = math.sin(col * f), math.cos(col * f)
    return out


@pytest.mark.parametrize("fusion", ["masktoken", "maskpool", "patches"])
def test_sincos2d_per_token(fusion):
    lay = packed(FusionSpec(fusion, global_view="mean" if fusion != "patches" else "all"))
    pos = build("sincos2d")
    x = torch.randn(lay.total, DV)
    out = pos.before_projector(x, lay)
    for t in range(lay.total):
        torch.testing.assert_close(out[t], x[t] + naive_sincos(int(lay.row[t]), int(lay.col[t])))
    assert not list(pos.parameters()) and "table" not in pos.state_dict()
    assert torch.equal(pos.after_projector(out[:, :DL], lay), out[:, :DL])


def test_learned2d_indexes_by_patch_and_trains():
    lay = packed()
    pos = build("learned2d")
    assert pos.table.shape == (GRID[0] * GRID[1], DV)
    table_id = id(pos.table)
    x = torch.randn(lay.total, DV)
    out = pos.before_projector(x, lay)
    for t in range(lay.total):
        r, c = int(lay.row[t]), int(lay.col[t])
        expected = x[t] + (pos.table[r * GRID[1] + c] if r >= 0 else 0)
        assert torch.equal(out[t], expected)
    out.sum().backward()
    assert pos.table.grad.abs().sum(-1).gt(0).all()  # every patch appears in the layout
    pos.before_projector(x, lay)
    assert id(pos.table) == table_id  # created once, not per step


def test_bf16_and_grid_mismatch():
    lay = packed()
    for name in ("segment", "sincos2d", "learned2d"):
        pos = build(name).bfloat16()
        x = torch.randn(lay.total, DV, dtype=torch.bfloat16)
        assert pos.before_projector(x, lay).dtype == torch.bfloat16
        assert pos.after_projector(x[:, :DL], lay).dtype == torch.bfloat16
    other = POSITIONS.get("sincos2d")(PositionSpec("sincos2d"), DV, DL, (4, 3))
    with pytest.raises(ValueError, match="layout grid"):
        other.before_projector(torch.zeros(lay.total, DV), lay)


@pytest.mark.parametrize("name", sorted(POSITIONS.list()))
def test_the_module_call_runs_each_side(name):
    """The model calls the module (so ZeRO-3 gathers its tables around forward): the same values."""
    lay = packed()
    pos = build(name)
    x, y = torch.randn(lay.total, DV), torch.randn(lay.total, DL)
    assert torch.equal(pos(x, lay, "before"), pos.before_projector(x, lay))
    assert torch.equal(pos(y, lay, "after"), pos.after_projector(y, lay))
    with pytest.raises(ValueError, match="position side 'middle'; use one of before, after"):
        pos(x, lay, "middle")
