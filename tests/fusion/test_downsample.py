"""Downsamplers: exact area coverage (block counts and fractional overlap) and the published raster1d."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from og.fusion import downsample, member
from og.fusion.downsample import _block_counts
from og.registry import DOWNSAMPLERS


def _left_half(h_img: int, w_img: int) -> torch.Tensor:
    m = torch.zeros(1, h_img, w_img, dtype=torch.bool)
    m[:, :, : w_img // 2] = True
    return m


def test_registered():
    assert DOWNSAMPLERS.list() == ["area", "raster1d"]


@pytest.mark.parametrize("size,grid", [((336, 336), (24, 24)), ((48, 64), (6, 8))])
def test_left_half_is_left_half_of_columns_under_area(size, grid):
    cov = downsample(_left_half(*size), grid)  # (1, h, w)
    expected = torch.zeros(grid)
    expected[:, : grid[1] // 2] = 1.0
    assert torch.equal(cov[0], expected)
    assert torch.equal(member(cov, 0.5)[0], expected.bool())


def test_left_half_is_not_left_half_under_raster1d_published_bug():
    cov = downsample(_left_half(336, 336), (24, 24), "raster1d")
    sel = member(cov, 0.5, "raster1d")[0]  # (24, 24)
    assert sel[:, 12:].any()  # patches on the right side are selected
    assert sel.all()  # in fact every patch: each bin of 196 raster pixels straddles a left half-row


def test_block_counts_all_lane_widths_match_plain_sum():
    g = torch.Generator().manual_seed(0)
    for w_img, grid in [(336, (4, 24)), (12, (4, 3)), (6, (4, 3)), (9, (4, 3))]:
        masks = torch.rand(5, 8, w_img, generator=g) > 0.5
        kh, kw = 8 // grid[0], w_img // grid[1]
        plain = masks.float().reshape(5, grid[0], kh, grid[1], kw).sum((2, 4))
        assert torch.equal(_block_counts(masks, grid).float(), plain), w_img


def test_dividing_sizes_give_exact_fractions():
    masks = torch.rand(3, 20, 30) > 0.3
    cov = downsample(masks, (4, 5))
    counts = masks.float().reshape(3, 4, 5, 5, 6).sum((2, 4))
    assert torch.equal(cov, counts / 30)


@pytest.mark.parametrize("size,grid", [((10, 7), (4, 3)), ((15, 9), (6, 4))])
def test_non_dividing_sizes_equal_exact_overlap(size, grid):
    g = torch.Generator().manual_seed(1)
    masks = torch.rand(4, *size, generator=g) > 0.5
    # exact reference: upsample each pixel into an integer block so patches align with pixels
    fh, fw = math.lcm(size[0], grid[0]) // size[0], math.lcm(size[1], grid[1]) // size[1]
    up = masks.repeat_interleave(fh, 1).repeat_interleave(fw, 2).float()
    H, W = up.shape[1:]
    ref = up.reshape(4, grid[0], H // grid[0], grid[1], W // grid[1]).mean((2, 4))
    cov = downsample(masks, grid)
    assert cov.shape == (4, *grid)
    torch.testing.assert_close(cov, ref, atol=1e-6, rtol=0)


def test_raster1d_member_matches_published_rule():
    g = torch.Generator().manual_seed(2)
    masks = torch.rand(6, 30, 20, generator=g) > 0.97  # sparse: bins with 0 or 1 pixel
    grid = (4, 5)
    flat = masks.reshape(6, 1, -1).float()
    counts = F.adaptive_avg_pool1d(flat, 20).reshape(6, 4, 5) * (600 / 20)  # published: fraction * bin size
    published = counts >= 0.5
    cov = downsample(masks, grid, "raster1d")
    assert torch.equal(member(cov, 0.5, "raster1d"), published)


def test_numpy_input_empty_and_bad_shapes():
    arr = np.zeros((2, 8, 8), bool)
    arr[1, :4, :4] = True
    cov = downsample(arr, (2, 2))
    assert cov.dtype == torch.float32 and cov[1, 0, 0] == 1 and cov.sum() == 1
    assert downsample(torch.zeros(0, 8, 8, dtype=torch.bool), (2, 2)).shape == (0, 2, 2)
    assert downsample(torch.ones(8, 8, dtype=torch.bool), (2, 2)).shape == (1, 2, 2)
    with pytest.raises(ValueError, match="must be \\(M, H, W\\)"):
        downsample(torch.ones(1, 1, 8, 8, dtype=torch.bool), (2, 2))
    with pytest.raises(ValueError, match="grid"):
        downsample(arr, (0, 2))
    with pytest.raises(KeyError, match="unknown downsampler 'areas'.*Did you mean 'area'"):
        downsample(arr, (2, 2), "areas")


def test_area_threshold_membership():
    cov = torch.tensor([[[0.25, 0.5], [0.75, 1.0]]])
    assert member(cov, 0.5).tolist() == [[[False, True], [True, True]]]
    assert member(cov, 1.0).tolist() == [[[False, False], [False, True]]]


def test_column_major_masks_from_rle_give_the_same_coverage():
    """MaskStore masks decode column-major (COCO RLE); coverage must not depend on the memory layout."""
    from og.fusion.downsample import AreaDownsampler
    from og.masks.masks import Masks

    rng = np.random.default_rng(3)
    masks = rng.random((5, 48, 40)) > 0.6  # (M, H, W), H != W so a swapped grid would show
    decoded = Masks.from_rle(Masks(masks, None).to_rle()).data
    assert not decoded.flags.c_contiguous
    for grid in ((6, 5), (7, 3)):  # block sums and fractional overlap
        want = AreaDownsampler.coverage(torch.from_numpy(masks), grid)
        got = AreaDownsampler.coverage(decoded, grid)
        assert got.shape == (5, *grid) and got.is_contiguous()
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
