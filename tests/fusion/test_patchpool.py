"""patchpool: area-weighted k x k pooling against a naive per-cell loop; budget; errors."""

import pytest
import torch
import torch.nn.functional as F

from og.fusion import PackedLayout, plan_layout
from og.fusion.layout import POOLED
from og.registry import FUSIONS
from og.spec import FusionSpec

D = 5


def naive_pool(f: torch.Tensor, grid: tuple[int, int], k: int) -> torch.Tensor:
    """One image, plain loops: each cell the exact-area-weighted mean of the patches it overlaps."""
    h, w = grid
    out = []
    for a in range(k):
        for b in range(k):
            y0, y1, x0, x1 = a * h / k, (a + 1) * h / k, b * w / k, (b + 1) * w / k
            acc, total = torch.zeros(f.shape[1], dtype=torch.float64), 0.0
            for i in range(h):
                for j in range(w):
                    area = max(0.0, min(y1, i + 1) - max(y0, i)) * max(0.0, min(x1, j + 1) - max(x0, j))
                    acc += area * f[i * w + j].double()
                    total += area
            out.append(acc / total)
    return torch.stack(out).float()


@pytest.mark.parametrize(("grid", "k"), [((4, 4), 2), ((5, 7), 3), ((6, 4), 4), ((3, 3), 1)])
def test_matches_naive_area_pooling(grid, k):
    spec = FusionSpec("patchpool", k=k)
    n = grid[0] * grid[1]
    feats = torch.randn(3, n, D, generator=torch.Generator().manual_seed(k))
    layouts = [plan_layout(spec, torch.rand(m, *grid), grid) for m in (0, 2, 5)]
    assert all(len(lay) == k * k and (lay.kind == POOLED).all() for lay in layouts)
    assert all(lay.n_uncovered == 0 and lay.n_dropped == 0 for lay in layouts)
    fusion = FUSIONS.get("patchpool")(spec, D, grid)
    out = fusion(feats, PackedLayout.pack(layouts))  # (3*k*k, D)
    expected = torch.cat([naive_pool(feats[b], grid, k) for b in range(3)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for b in range(3):  # batch invariance
        alone = fusion(feats[b : b + 1], PackedLayout.pack([layouts[b]]))
        assert torch.equal(out[b * k * k : (b + 1) * k * k], alone)


def test_dividing_k_is_plain_average_pooling():
    grid, k = (6, 6), 3
    feats = torch.randn(2, 36, D)
    spec = FusionSpec("patchpool", k=k)
    out = FUSIONS.get("patchpool")(spec, D, grid)(feats, PackedLayout.pack([plan_layout(spec, None, grid)] * 2))
    ref = F.avg_pool2d(feats.transpose(1, 2).reshape(2, D, 6, 6), 2).reshape(2, D, 9).transpose(1, 2)
    torch.testing.assert_close(out, ref.reshape(-1, D))


def test_budget_and_errors():
    lay = plan_layout(FusionSpec("patchpool", k=3, max_tokens=9), None, (6, 6))
    assert len(lay) == 9 and lay.row.tolist()[:3] == [0, 0, 0] and lay.col.tolist()[:3] == [0, 2, 4]
    with pytest.raises(ValueError, match="always gives 9 tokens"):
        plan_layout(FusionSpec("patchpool", k=3, max_tokens=8), None, (6, 6))
    with pytest.raises(ValueError, match="k=7 is larger than the 6x6"):
        plan_layout(FusionSpec("patchpool", k=7), None, (6, 6))
    assert FusionSpec.parse("patchpool(k=3)").id == "patchpool(k=3)"
