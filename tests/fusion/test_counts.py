"""LayoutCounts: per-image counters summed from packed layouts and from single layouts alike."""

import torch

from og.fusion import PackedLayout, plan_layout
from og.fusion.counts import LayoutCounts
from og.spec import FusionSpec

GRID = (4, 5)


def test_packed_and_single_layouts_count_the_same():
    spec = FusionSpec(max_tokens=10)
    g = torch.Generator().manual_seed(0)
    lays = [plan_layout(spec, (torch.rand(m, *GRID, generator=g) > 0.6).float(), GRID) for m in (5, 0, 3)]
    packed, single = LayoutCounts(), LayoutCounts()
    packed.add(PackedLayout.pack(lays))
    for lay in lays:
        single.add(lay)
    s = packed.summary()
    assert s == single.summary() and s["images"] == 3 and s["masks"] == 8 and s["fallbacks"] == 1
    assert s["masks_over_budget"] == sum(lay.n_over_budget for lay in lays)
    assert s["patches_uncovered_mean"] == round(sum(lay.n_uncovered for lay in lays) / 3, 2)
    assert s["tokens"]["max"] == max(len(lay) for lay in lays)
    picked = LayoutCounts()
    picked.add(PackedLayout.pack(lays), images=[0])
    assert picked.summary()["masks"] == 5 and "of 5 masks dropped" in picked.line()
    assert packed.merge([picked]).images == 4 and packed.take()["images"] == 3 and packed.images == 0
