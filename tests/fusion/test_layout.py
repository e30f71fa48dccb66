"""Token layouts: the planning policy against a naive loop reference, packing, degenerate cases."""

import dataclasses

import pytest
import torch

from og.fusion import PackedLayout, TokenLayout, plan_layout
from og.fusion.layout import BOM, GLOBAL_MEAN, GLOBAL_PATCH, PATCH, POOLED
from og.registry import FUSIONS
from og.spec import FusionSpec

GRID = (4, 5)
N = 20


def random_coverage(m: int, seed: int) -> torch.Tensor:
    """Coverage in quarters (exact sums), sparse, with some empty and some faint masks."""
    g = torch.Generator().manual_seed(seed)
    cov = torch.randint(0, 5, (m, *GRID), generator=g).float() / 4
    cov *= torch.rand(m, *GRID, generator=g) > 0.6
    if m > 2:
        cov[1] = 0  # covers nothing at all
        cov[2] = 0
        cov[2, 3, 1] = 0.25  # only faintly: dropped, or rescued by min_one_patch
    return cov


def naive_groups(spec: FusionSpec, cov: torch.Tensor, scores, cost):
    """The documented policy with plain loops: [(mask id, [patches])], n_empty, n_over_budget, n_uncovered.

    `cost(patches)` is a group's tokens (begin-of-mask included)."""
    m = cov.shape[0]
    flat = cov.reshape(m, N).tolist()
    members = []
    for i in range(m):
        mem = [p for p in range(N) if flat[i][p] >= spec.threshold]
        if not mem and spec.min_one_patch and max(flat[i]) > 0:
            mem = [max(range(N), key=lambda p, i=i: (flat[i][p], -p))]
        members.append(mem)
    cand = [i for i in range(m) if members[i]]
    area = [sum(row) for row in flat]
    score = [0.0] * m if scores is None else scores.tolist()
    kept, covered, total = [], set(), len(naive_global(spec))
    for i in sorted(cand, key=lambda i: (-score[i], -area[i], i)):
        now = covered | set(members[i])
        rest = [p for p in range(N) if p not in now]
        filler = cost(rest) if spec.filler and rest else 0
        if spec.max_tokens is None or total + cost(members[i]) + filler <= spec.max_tokens:
            kept.append(i)
            covered, total = now, total + cost(members[i])
    key = {"segmenter": lambda i: i, "area": lambda i: (-area[i], i), "raster": lambda i: (members[i][0], i)}
    groups = [(i, members[i]) for i in sorted(kept, key=key[spec.order])]
    rest = [p for p in range(N) if p not in covered]
    if (spec.filler or not cand) and rest:
        groups.append((m, rest))
    shown = {p for _, patches in groups for p in patches}
    uncovered = 0 if spec.global_view == "all" else N - len(shown)
    return groups, m - len(cand), len(cand) - len(kept), uncovered


def naive_global(spec):
    return {"mean": [(GLOBAL_MEAN, -1, -1, 0, 0)], "none": [],
            "all": [(GLOBAL_PATCH, p, -1, 0, 0) for p in range(N)]}[spec.global_view]


def naive_masktoken(spec, cov, scores):
    groups, n_empty, n_over, n_unc = naive_groups(spec, cov, scores, lambda ps: len(ps) + int(spec.bom_token))
    tokens, g = naive_global(spec), int(spec.global_view != "none")
    for k, (mask_id, patches) in enumerate(groups):
        tokens += [(BOM, -1, mask_id, k + 1, k + g)] if spec.bom_token else []
        tokens += [(PATCH, p, mask_id, k + 1, k + g) for p in patches]
    return tokens, n_empty, n_over, n_unc


def as_tuples(lay: TokenLayout):
    return list(zip(*(getattr(lay, k).tolist() for k in ("kind", "patch", "mask", "segment", "group")), strict=True))


SPECS = [
    FusionSpec(),
    FusionSpec(filler=True),
    FusionSpec(min_one_patch=True, order="area"),
    FusionSpec(order="raster", global_view="none", bom_token=False),
    FusionSpec(global_view="all", threshold=0.25, filler=True),
    FusionSpec(max_tokens=9),
    FusionSpec(max_tokens=26, filler=True, order="area"),
    FusionSpec(max_tokens=21, filler=True, global_view="none", bom_token=False),
    FusionSpec(max_tokens=12, threshold=0.75, global_view="none", min_one_patch=True),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("m", [0, 1, 3, 7])
def test_masktoken_layout_matches_naive_policy(spec, m):
    for seed in range(4):
        cov = random_coverage(m, seed)
        scores = torch.rand(m, generator=torch.Generator().manual_seed(seed + 100)) if seed % 2 else None
        lay = plan_layout(spec, cov if m else None, GRID, scores)
        tokens, n_empty, n_over, n_unc = naive_masktoken(spec, cov, scores)
        assert as_tuples(lay) == tokens
        assert (lay.n_empty, lay.n_over_budget, lay.n_dropped) == (n_empty, n_over, n_empty + n_over)
        assert lay.n_uncovered == n_unc and (n_unc == 0 or not spec.filler)
        assert spec.max_tokens is None or lay.fallback or len(lay) <= spec.max_tokens
        assert torch.equal(lay.row, torch.where(lay.patch >= 0, lay.patch // GRID[1], -1))
        assert torch.equal(lay.col, torch.where(lay.patch >= 0, lay.patch % GRID[1], -1))
        n_global = {"mean": 1, "all": N, "none": 0}[spec.global_view]
        n_patch_tokens = int((lay.kind == PATCH).sum())
        assert len(lay) == n_global + n_patch_tokens + int(spec.bom_token) * len(lay.masks)


@pytest.mark.parametrize("spec", [dataclasses.replace(s, name="maskpool") for s in SPECS], ids=lambda s: s.id)
def test_maskpool_layout_matches_naive_policy(spec):
    for seed, m in enumerate([0, 2, 5, 7]):
        cov = random_coverage(m, seed)
        lay = plan_layout(spec, cov, GRID)
        groups, n_empty, n_over, n_unc = naive_groups(spec, cov, None, lambda ps: 1)
        g = int(spec.global_view != "none")
        expected = naive_global(spec) + [(POOLED, -1, i, k + 1, k + g) for k, (i, _) in enumerate(groups)]
        assert as_tuples(lay) == expected and lay.n_dropped == n_empty + n_over and lay.n_uncovered == n_unc
        assert spec.max_tokens is None or lay.fallback or len(lay) <= spec.max_tokens
        flat = cov.reshape(m, N)
        for k, (mask_id, patches) in enumerate(groups):
            sel = lay.pool_token == len(naive_global(spec)) + k
            assert lay.pool_patch[sel].tolist() == patches
            w = torch.ones(len(patches)) if mask_id == m else flat[mask_id, patches]
            torch.testing.assert_close(lay.pool_weight[sel], w / w.sum())


def test_no_masks_falls_back_to_global_and_every_patch():
    for cov in (None, torch.zeros(0, *GRID), torch.zeros(3, *GRID)):
        lay = plan_layout(FusionSpec(), cov, GRID)
        assert lay.fallback and lay.kind.tolist() == [GLOBAL_MEAN, BOM] + [PATCH] * N
        assert lay.patch[2:].tolist() == list(range(N)) and lay.mask[1:].unique().tolist() == [lay.n_masks_in]
        pooled = plan_layout(FusionSpec("maskpool", global_view="none"), cov, GRID)
        assert pooled.kind.tolist() == [POOLED] and torch.allclose(pooled.pool_weight, torch.full((N,), 1 / N))


def test_empty_mask_dropped_or_kept_with_min_one_patch():
    cov = torch.zeros(2, *GRID)
    cov[0, 0] = 1.0
    cov[1, 2, 3], cov[1, 1, 1] = 0.2, 0.1  # never reaches the threshold
    lay = plan_layout(FusionSpec(), cov, GRID)
    assert lay.n_empty == 1 and lay.masks == (0,)
    lay = plan_layout(FusionSpec(min_one_patch=True), cov, GRID)
    assert lay.n_empty == 0 and lay.masks == (0, 1)
    assert lay.patch[lay.mask == 1].tolist() == [-1, 2 * GRID[1] + 3]  # begin-of-mask, best patch


def test_overlapping_masks_each_carry_shared_patches():
    cov = torch.zeros(2, *GRID)
    cov[0, :2] = 1
    cov[1, 1:3] = 1
    lay = plan_layout(FusionSpec(global_view="none"), cov, GRID)  # 20 patch tokens: the default budget
    shared = set(range(5, 10))
    assert shared <= set(lay.patch[lay.mask == 0].tolist()) and shared <= set(lay.patch[lay.mask == 1].tolist())
    assert len(lay) == 2 + 10 + 10


def test_filler_covers_the_rest_last():
    cov = torch.zeros(2, *GRID)
    cov[0, 0] = 1
    cov[1, 3] = 1
    lay = plan_layout(FusionSpec(filler=True), cov, GRID)  # a partition: fits the default budget
    assert lay.masks == (0, 1, 2) and len(lay) == 1 + 3 + N
    assert lay.patch[lay.mask == 2].tolist() == [-1] + list(range(5, 15))
    assert lay.segment.max() == 3 and lay.group.tolist() == sorted(lay.group.tolist())
    # budget 23: mask 0 (1 + 5) fits with the filler of the other 15 patches (1 + 15); mask 1 then does
    # not (1 + 6 + 6 + 11 = 24), and its patches go to the filler: none is left unseen
    lay = plan_layout(FusionSpec(filler=True, max_tokens=23), cov, GRID)
    assert lay.masks == (0, 2) and lay.n_over_budget == 1 and len(lay) == 23 and lay.n_uncovered == 0
    assert set(lay.patch[lay.mask == 2].tolist()) >= set(range(15, 20))
    with pytest.raises(ValueError, match="at least 22 tokens"):
        plan_layout(FusionSpec(filler=True, max_tokens=21), cov, GRID)


def test_partition_fits_the_default_budget():
    cov = torch.zeros(4, *GRID)
    for k in range(4):
        cov[k].view(-1)[k * 5 : (k + 1) * 5] = 1  # 4 disjoint masks covering every patch
    lay = plan_layout(FusionSpec(), cov, GRID)
    assert lay.n_dropped == 0 and len(lay) == 1 + 4 + N


def test_budget_keeps_global_and_priority_masks():
    cov = torch.zeros(3, *GRID)
    cov[0, 0] = 1  # 5 patches
    cov[1, 1:3] = 1  # 10 patches
    cov[2, 3, :2] = 1  # 2 patches
    scores = torch.tensor([0.1, 0.9, 0.5])
    lay = plan_layout(FusionSpec(max_tokens=13), cov, GRID, scores)
    # every token counts: mean 1 + priority 1 (1 + 10) fits; 2 (1 + 2) and 0 (1 + 5) do not
    assert lay.masks == (1,) and lay.n_over_budget == 2 and lay.n_dropped == 2
    assert lay.kind[0] == GLOBAL_MEAN and len(lay) == 1 + 1 + 10 and lay.n_uncovered == N - 10
    lay = plan_layout(FusionSpec(max_tokens=31, global_view="all"), cov, GRID, scores)
    assert (lay.kind == GLOBAL_PATCH).sum() == N and len(lay) == N + 11 and lay.n_uncovered == 0
    lay = plan_layout(FusionSpec(max_tokens=10), cov, GRID, scores)  # 1 no longer fits; 2 and 0 do
    assert lay.masks == (0, 2) and lay.n_over_budget == 1 and len(lay) == 10
    pooled = plan_layout(FusionSpec("maskpool", max_tokens=3), cov, GRID, scores)  # mean + 2 pooled tokens
    assert pooled.masks == (1, 2) and len(pooled) == 3 and pooled.n_over_budget == 1
    with pytest.raises(ValueError, match="the global view 'all' alone is 20 tokens"):
        plan_layout(FusionSpec(max_tokens=19, global_view="all"), cov, GRID)


def test_default_budget_is_unbounded():
    cov = torch.ones(30, *GRID)  # 30 full masks of 20 patches each: the published model keeps them all
    lay = plan_layout(FusionSpec(), cov, GRID)
    assert lay.masks == tuple(range(30)) and len(lay) == 1 + 30 * (1 + N) and lay.n_dropped == 0
    assert lay.n_uncovered == 0


def test_og_llava_presets_are_unbounded_and_drop_no_sam2_mask():
    from og.presets import preset

    g = torch.Generator().manual_seed(0)
    for name in ("og-llava", "og-llava-3b"):
        spec = preset(name).fusion
        assert spec.max_tokens is None
        for m in (20, 50, 100):  # overlapping blobs, as SAM2 gives: nothing dropped but empty masks
            cov = (torch.rand(m, *GRID, generator=g) > 0.7).float()
            lay = plan_layout(spec, cov, GRID)
            assert lay.n_over_budget == 0 and lay.n_dropped == int((cov.sum((1, 2)) == 0).sum())


def test_patches_layout_and_errors():
    lay = plan_layout(FusionSpec("patches"), torch.rand(3, *GRID), GRID)
    assert lay.patch.tolist() == list(range(N)) and lay.group.tolist() == list(range(N))
    assert lay.n_dropped == 0 and lay.n_masks_in == 3
    with pytest.raises(ValueError, match="max_tokens=5 is smaller"):
        plan_layout(FusionSpec("patches", max_tokens=5), None, GRID)
    with pytest.raises(ValueError, match=r"coverage must be \(M, 4, 5\)"):
        plan_layout(FusionSpec(), torch.rand(2, 5, 4), GRID)
    cov = random_coverage(3, 5)
    assert as_tuples(plan_layout(FusionSpec(), cov.numpy(), GRID, cov.sum((1, 2)).numpy())) == as_tuples(
        plan_layout(FusionSpec(), cov, GRID, cov.sum((1, 2))))
    with pytest.raises(ValueError, match="3 scores for 2 masks"):
        plan_layout(FusionSpec(), torch.rand(2, *GRID), GRID, torch.rand(3))


def test_pack_offsets_and_batch_invariance():
    spec = FusionSpec("masktoken", filler=True)
    lays = [plan_layout(spec, random_coverage(m, m), GRID) for m in (3, 0, 5)]
    packed = PackedLayout.pack(lays)
    assert packed.lengths.tolist() == [len(lay) for lay in lays] and packed.total == sum(map(len, lays))
    for b, lay in enumerate(lays):
        alone = PackedLayout.pack([lay])
        sl = slice(int(packed.starts[b]), int(packed.starts[b] + packed.lengths[b]))
        for key in ("kind", "patch", "mask", "segment", "row", "col", "group"):
            assert torch.equal(getattr(packed, key)[sl], getattr(alone, key))
        assert torch.equal(packed.src[sl] - b * N, alone.src)
    assert packed.max_segment == max(int(lay.segment.max()) for lay in lays)
    assert packed.to("cpu").src is not None and packed.to("cpu").device.type == "cpu"


def test_pack_maskpool_slots_and_errors():
    spec = FusionSpec("maskpool")
    lays = [plan_layout(spec, random_coverage(m, m + 7), GRID) for m in (4, 6)]
    packed = PackedLayout.pack(lays)
    assert packed.pool_slot.max() + 1 == packed.pool_pos.numel() == sum(int((la.kind == POOLED).sum()) for la in lays)
    first = [int((packed.pool_slot == k).nonzero()[0]) for k in range(packed.pool_pos.numel())]
    assert packed.pool_offsets.tolist() == first and bool((packed.pool_slot.diff() >= 0).all())
    # entries given in any order are grouped by token when packed: the same tokens come out
    perm = torch.randperm(lays[1].pool_token.numel(), generator=torch.Generator().manual_seed(0))
    shuffled = dataclasses.replace(lays[1], pool_token=lays[1].pool_token[perm], pool_patch=lays[1].pool_patch[perm],
                                   pool_weight=lays[1].pool_weight[perm])
    fusion = FUSIONS.get("maskpool")(spec, 3, GRID)
    feats = torch.randn(2, N, 3)
    torch.testing.assert_close(fusion(feats, PackedLayout.pack([lays[0], shuffled])), fusion(feats, packed))
    with pytest.raises(ValueError, match="same encoder grid"):
        PackedLayout.pack([lays[0], plan_layout(spec, None, (2, 2))])
    with pytest.raises(ValueError, match="no layouts"):
        PackedLayout.pack([])
    assert "pooled" in repr(lays[0])
