"""PatchCoverage: the composed separable map against the reference path (resample, crop, area),
from RLE runs and from pixels, and item 6: only the pixels the encoder's patches see count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage import transform as sktransform

from og.fusion import member
from og.fusion.coverage import PatchCoverage
from og.masks.geometry import ImageTransform
from og.masks.masks import Masks
from og.masks.rle import StoredMasks
from og.registry import ENCODERS
from og.segmenters import build_segmenter

MEAN = STD = (0.5, 0.5, 0.5)


def _stored(masks: Masks) -> StoredMasks:
    counts = masks.rle_counts()
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in counts])]).astype(np.int64)
    return StoredMasks(np.frombuffer(b"".join(counts), np.uint8), offsets, *masks.size, masks.scores)


def _blobs(h: int, w: int, n: int, key: str) -> Masks:
    return build_segmenter(f"random(count={n})")(np.zeros((h, w, 3), np.uint8), key=key)


def _slic(h: int, w: int, n: int) -> Masks:
    photo = (sktransform.resize(skdata.astronaut(), (h, w)) * 255).astype(np.uint8)
    return build_segmenter(f"slic(n_segments={n})")(photo)


@pytest.mark.parametrize("size,pad", [((37, 53), True), ((80, 60), False), ((64, 64), True), ((150, 211), True)])
def test_runs_and_pixels_give_the_same_map(size, pad):
    cov = PatchCoverage(ImageTransform(64, MEAN, STD, pad_to_square=pad), (8, 8))
    masks = _blobs(*size, 9, f"k{size}")
    from_runs = cov(_stored(masks))
    from_pixels = cov(masks)
    assert from_runs.shape == (9, 8, 8) and torch.allclose(from_runs, from_pixels, atol=1e-5)
    assert float(from_runs.min()) >= 0.0 and float(from_runs.max()) <= 1.0


def test_aligned_geometry_is_exactly_the_reference():
    """The image at the encoder's size (no resampling): coverage equals the reference path."""
    cov = PatchCoverage(ImageTransform(64, MEAN, STD), (8, 8))
    masks = _blobs(64, 64, 12, "aligned")
    ref = cov.resampled(masks)
    assert torch.equal(cov(_stored(masks)), ref) and torch.equal(cov(masks), ref)


def test_aligned_scaling_with_padding_is_exactly_the_reference():
    """A 2x downscale with padding whose masks are made of whole 2x2 blocks: same coverage."""
    cov = PatchCoverage(ImageTransform(64, MEAN, STD), (8, 8))
    small = _blobs(32, 64, 10, "blocks").data  # (M, 32, 64)
    masks = Masks(small.repeat(2, axis=1).repeat(2, axis=2), np.ones(len(small), np.float32))  # (M, 64, 128)
    assert torch.allclose(cov(_stored(masks)), cov.resampled(masks), atol=1e-6)


@pytest.mark.parametrize("kind", ["slic", "sam-like"])
def test_membership_agrees_with_the_reference_on_real_shapes(kind):
    """>= 99.5 % of (mask, patch) pairs agree at the default threshold, through pad + resize."""
    cov = PatchCoverage(ImageTransform(336, MEAN, STD), (24, 24))
    agree = total = 0
    for i, (h, w) in enumerate([(300, 451), (480, 360), (250, 250)]):
        masks = _slic(h, w, 40) if kind == "slic" else _blobs(h, w, 40, f"img{i}")
        direct, ref = member(cov(_stored(masks)), 0.5), member(cov.resampled(masks), 0.5)
        agree += int((direct == ref).sum())
        total += ref.numel()
    assert agree / total >= 0.995, f"{kind}: {agree / total:.4f}"


def _unaligned_variants() -> list[tuple[str, str, int, int]]:
    """(encoder, variant, image size, patch) of every registered encoder variant whose image size
    is not a multiple of its patch."""
    out = []
    for name in ENCODERS.list():
        for variant, cfg in getattr(ENCODERS.get(name), "variants", {}).items():
            size, patch = cfg.get("image_size"), cfg.get("patch_size")
            if isinstance(size, int) and isinstance(patch, int) and size % patch:
                out.append((name, variant, size, patch))
    return out


def test_there_is_an_unaligned_encoder_to_test():
    assert ("siglip", "so400m-384", 384, 14) in _unaligned_variants()


@pytest.mark.parametrize("name,variant,size,patch", _unaligned_variants())
def test_only_the_pixels_the_patches_see_count(name, variant, size, patch):
    """Issue 12 item 6: SigLIP-384/14 patches cover 378 of 384 px; a mask on exactly encoder
    patch column g-1 (and row g-1) covers that patch and nothing else."""
    g = size // patch
    cov = PatchCoverage(ImageTransform(size, MEAN, STD), (g, g))
    assert cov.patch == (patch, patch) and cov.visible == (g * patch, g * patch)
    data = np.zeros((2, size, size), bool)
    data[0, :, (g - 1) * patch: g * patch] = True  # encoder patch column g-1
    data[1, (g - 1) * patch: g * patch, : patch] = True  # patch (g-1, 0)
    masks = Masks(data, np.ones(2, np.float32))
    for c in (cov(masks), cov(_stored(masks)), cov.resampled(masks)):
        expected = torch.zeros(2, g, g)
        expected[0, :, g - 1] = 1.0
        expected[1, g - 1, 0] = 1.0
        assert torch.allclose(c, expected, atol=1e-6)


def test_a_real_unaligned_encoder_sees_grid_times_patch_pixels():
    """A tiny SigLIP built with image size 68 and patch 8: grid 8, 64 of 68 px seen."""
    cfg = {**ENCODERS.get("siglip").variants["tiny"], "image_size": 68}
    from og.spec import EncoderSpec

    enc_cls = ENCODERS.get("siglip")
    encoder = enc_cls(EncoderSpec("siglip", "tiny"), enc_cls.model_class(enc_cls.config_class(**cfg)), MEAN, STD)
    cov = PatchCoverage(ImageTransform.for_encoder(encoder), encoder.grid)
    assert encoder.grid == (8, 8) and cov.visible == (64, 64)
    data = np.zeros((1, 68, 68), bool)
    data[0, :, 56:64] = True  # the last patch column the encoder sees
    assert torch.equal(member(cov(Masks(data, None)), 0.5)[0].nonzero()[:, 1].unique(), torch.tensor([7]))


def test_bad_grid_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        PatchCoverage(ImageTransform(64, MEAN, STD), (8, 8), patch=(9, 9))


@pytest.mark.parametrize("box", [(5, 20, 9, 30), (0, 64, 3, 40)])  # inside one column band; crossing columns
def test_runs_inside_and_across_column_boundaries(box):
    top, bottom, left, right = box
    data = np.zeros((1, 64, 64), bool)
    data[0, top:bottom, left:right] = True
    cov = PatchCoverage(ImageTransform(48, MEAN, STD), (6, 6))
    assert torch.allclose(cov(_stored(Masks(data, None))), cov.from_dense(data), atol=1e-6)
