"""roialign: plan against naive per-cell loops, features against per-mask roi_align calls."""

import pytest
import torch
from torchvision.ops import roi_align

from og.fusion import PackedLayout, plan_layout
from og.fusion.layout import BOM, GLOBAL_MEAN, ROI
from og.registry import FUSIONS
from og.spec import FusionSpec

GRID, N, D = (5, 6), 30, 4
MASK_COUNTS = (3, 0, 6, 1)


def coverages(seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for m in MASK_COUNTS:
        cov = torch.zeros(m, *GRID)
        for i in range(m):  # a random box of random coverage, some faint patches
            y0, x0 = torch.randint(0, 4, (2,), generator=g).tolist()
            y1 = y0 + torch.randint(1, 3, (1,), generator=g).item()
            x1 = x0 + torch.randint(1, 4, (1,), generator=g).item()
            cov[i, y0 : y1 + 1, x0 : x1 + 1] = torch.randint(1, 5, (y1 - y0 + 1, x1 - x0 + 1), generator=g) / 4
        out.append(cov)
    return out


def naive_cells(spec, cov_mask, member):
    """Box (x0, y0, x1, y1) of the member patches and each cell's area-averaged coverage, by loops."""
    h, w = GRID
    ys = [i for i in range(h) if any(member[i * w + j] for j in range(w))]
    xs = [j for j in range(w) if any(member[i * w + j] for i in range(h))]
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    r, cells = spec.r, []
    for a in range(r):
        for b in range(r):
            cy0, cy1 = y0 + a * (y1 - y0) / r, y0 + (a + 1) * (y1 - y0) / r
            cx0, cx1 = x0 + b * (x1 - x0) / r, x0 + (b + 1) * (x1 - x0) / r
            acc = 0.0
            for i in range(y0, y1):
                for j in range(x0, x1):
                    area = max(0.0, min(cy1, i + 1) - max(cy0, i)) * max(0.0, min(cx1, j + 1) - max(cx0, j))
                    acc += area * cov_mask[i * w + j] * member[i * w + j]
            cells.append(acc / ((cy1 - cy0) * (cx1 - cx0)))
    return (x0, y0, x1, y1), cells


def naive_tokens(spec, fusion, f, cov):
    """One image: mean, then per mask (unbounded, given order) bom + its kept cells, each by its own roi_align."""
    h, w = GRID
    flat = cov.reshape(cov.shape[0], N)
    groups = [(flat[m].tolist(), [float(v) >= spec.threshold for v in flat[m]]) for m in range(cov.shape[0])]
    groups = [(c, mem) for c, mem in groups if any(mem)] or [([1.0] * N, [True] * N)]
    out = [f.mean(0)]
    fmap = f.T.reshape(1, D, h, w)
    for c, mem in groups:
        box, cells = naive_cells(spec, c, mem)
        pooled = roi_align(fmap, [torch.tensor([box], dtype=torch.float32)], spec.r, 1.0, -1, True)  # (1, D, r, r)
        pooled = pooled[0].permute(1, 2, 0).reshape(-1, D)
        keep = [i for i, v in enumerate(cells) if v >= spec.threshold - 1e-6] if spec.cells == "drop" else []
        if spec.cells == "drop" and max(range(len(cells)), key=lambda i: (cells[i], -i)) not in keep:
            keep = sorted(keep + [max(range(len(cells)), key=lambda i: (cells[i], -i))])
        out.append(fusion.bom[0])
        if spec.cells == "drop":
            out.extend(pooled[i] for i in keep)
        else:
            out.extend(pooled[i] * cells[i] for i in range(len(cells)))
    return torch.stack(out)


@pytest.mark.parametrize("spec", [FusionSpec("roialign"), FusionSpec("roialign", r=3),
                                  FusionSpec("roialign", r=2, cells="weight", threshold=0.25)], ids=lambda s: s.id)
def test_matches_naive_per_mask_roi_align_and_is_batch_invariant(spec):
    covs = coverages(0)
    feats = torch.randn(len(covs), N, D, generator=torch.Generator().manual_seed(1))
    layouts = [plan_layout(spec, c, GRID) for c in covs]
    fusion = FUSIONS.get("roialign")(spec, D, GRID)
    with torch.no_grad():
        out = fusion(feats, PackedLayout.pack(layouts))
        expected = torch.cat([naive_tokens(spec, fusion, feats[b], covs[b]) for b in range(len(covs))])
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        start = 0
        for b, lay in enumerate(layouts):
            assert lay.kind[0] == GLOBAL_MEAN and int((lay.kind == BOM).sum()) == len(lay.masks)
            alone = fusion(feats[b : b + 1], PackedLayout.pack([lay]))
            assert torch.equal(out[start : start + len(lay)], alone)
            start += len(lay)


def test_a_cell_of_one_patch_is_that_patch_and_budget_is_respected():
    cov = torch.zeros(2, *GRID)
    cov[0, 1:3, 2:4] = 1  # 2x2 patches: with r=2 every cell is exactly one patch
    cov[1, 0:5, 0:6] = 1  # the whole grid: 4 cells
    feats = torch.randn(1, N, D)
    spec = FusionSpec("roialign", global_view="none", bom_token=False)
    lay = plan_layout(spec, cov, GRID)
    out = FUSIONS.get("roialign")(spec, D, GRID)(feats, PackedLayout.pack([lay]))
    torch.testing.assert_close(out[:4], feats[0, [8, 9, 14, 15]])
    assert lay.row[:4].tolist() == [1, 1, 2, 2] and lay.col[:4].tolist() == [2, 3, 2, 3]
    for budget in (3, 5, 6, 9):
        lay = plan_layout(FusionSpec("roialign", max_tokens=budget), cov, GRID, torch.tensor([0.9, 0.1]))
        assert len(lay) <= budget and (lay.kind == ROI).sum() == 4 * len(lay.masks)
        assert lay.n_over_budget == 2 - len(lay.masks)
    # with the filler: mean 1 + mask 0 (1 + 4) + the filler of the rest (1 + 4 cells) = 11
    filled = plan_layout(FusionSpec("roialign", filler=True, max_tokens=11), cov[:1], GRID)
    assert filled.masks == (0, 1) and len(filled) == 11 and filled.n_uncovered == 0
    filled = plan_layout(FusionSpec("roialign", filler=True, max_tokens=10), cov[:1], GRID)
    assert filled.masks == (1,) and len(filled) == 6 and filled.n_over_budget == 1 and filled.n_uncovered == 0
    assert FusionSpec.parse("roialign(r=3,cells=weight)").id == "roialign(r=3,cells=weight)"
