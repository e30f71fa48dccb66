"""Lockstep geometry: pixels as LLaVA makes them, masks on the same pixels (property test),
and the area rule against a naive dense-matrix reference."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from og.masks.geometry import ImageTransform
from og.masks.masks import Masks

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def expand2square(img, color):
    """LLaVA's own `expand2square` (llava/mm_utils.py), the reference for the padding."""
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), color)
    out.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return out


@pytest.mark.parametrize("size", [(480, 640), (333, 100), (50, 50), (17, 29), (20, 33)])
@pytest.mark.parametrize("pad", [True, False])
def test_pixels_match_llava_preprocessing(size, pad):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    proc = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                 image_mean=CLIP_MEAN, image_std=CLIP_STD)
    rng = np.random.default_rng(size[0])
    img = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    ref_in = expand2square(img, tuple(int(x * 255) for x in CLIP_MEAN)) if pad else img
    ref = torch.as_tensor(np.asarray(proc(ref_in, return_tensors="np")["pixel_values"][0]))
    pixels, masks = ImageTransform((32, 32), CLIP_MEAN, CLIP_STD, pad_to_square=pad).transform(img)
    assert masks is None and pixels.dtype == torch.float32 and pixels.shape == (3, 32, 32)
    assert torch.allclose(pixels, ref, atol=1e-5)


def overlap_matrix(n_out, padded, resized, crop, offset, n):
    """(n_out, n) fraction of output pixel k's footprint covered by input pixel j (float64)."""
    scale = padded / resized
    k = np.arange(crop, crop + n_out)[:, None]
    a, b = k * scale, (k + 1) * scale  # footprint in padded coordinates
    j = np.arange(n)[None] + offset  # input pixel j occupies [j + offset, j + offset + 1)
    return np.clip(np.minimum(b, j + 1) - np.maximum(a, j), 0, None) / scale


def naive_area(data, target, pad):
    """Reference: dense overlap matrices in float64, with LLaVA's pad and CLIP's resize/crop."""
    _, h, w = data.shape
    ph, pw = (max(h, w),) * 2 if pad else (h, w)
    th, tw = target
    scale = max(th / ph, tw / pw)
    rh = th if th / ph >= tw / pw else max(th, int(tw * ph / pw))
    rw = tw if tw / pw > th / ph else max(tw, int(th * pw / ph))
    assert abs(rh - ph * scale) < 1 and abs(rw - pw * scale) < 1
    rows = overlap_matrix(th, ph, rh, (rh - th) // 2, (ph - h) // 2, h)
    cols = overlap_matrix(tw, pw, rw, (rw - tw) // 2, (pw - w) // 2, w)
    return np.einsum("kj,mji,li->mkl", rows, data.astype(np.float64), cols)  # (M, th, tw) coverage


def test_area_rule_matches_naive_reference():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(30):
        h, w = rng.integers(3, 60, 2)
        square = (int(rng.integers(4, 40)),) * 2
        target = tuple(int(t) for t in rng.integers(4, 40, 2)) if rng.random() < 0.4 else square
        pad = bool(rng.random() < 0.6)
        data = rng.random((3, h, w)) < 0.4
        data[0] = False
        data[0, rng.integers(0, h), :] = True  # a one-pixel line: thin structures are the hard case
        got = ImageTransform(target, (0.5,) * 3, (0.5,) * 3, pad_to_square=pad).transform_masks(data)
        cov = naive_area(data, target, pad)
        assert got.shape == (3, *target) and got.dtype == torch.bool
        clear = np.abs(cov - 0.5) > 1e-6  # exact ties are documented as inside; skip float noise there
        assert np.array_equal(got.numpy()[clear], (cov >= 0.5)[clear]), (h, w, target, pad)
        checked += clear.sum()
    assert checked > 10_000


def test_left_half_and_padding_land_exactly():
    t = ImageTransform((8, 8), (0.5,) * 3, (0.5,) * 3)
    left = np.zeros((1, 16, 16), bool)
    left[0, :, :8] = True
    out = t.transform_masks(left)[0]
    assert out[:, :4].all() and not out[:, 4:].any()
    full = np.ones((1, 8, 16), bool)  # a wide image: padded top and bottom by 4 rows of False
    out = t.transform_masks(full)[0]
    assert out[2:6].all() and not out[:2].any() and not out[6:].any()


def test_rectangles_land_on_the_same_pixels_as_on_the_image():
    """Property test (seeded loop): a pure-colour rectangle painted on the image and the same
    rectangle as a mask agree after the transform, up to a 1-pixel border."""
    rng = np.random.default_rng(7)
    rect_rgb, back_rgb = np.array([255, 0, 0]), np.array([0, 0, 255])
    for case in range(40):
        h, w = (int(v) for v in rng.integers(4, 120, 2))
        pad = bool(rng.random() < 0.7)
        target = (int(rng.integers(8, 64)),) * 2 if pad or rng.random() < 0.5 else tuple(int(v) for v in
                                                                                           rng.integers(8, 64, 2))
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
        image = np.tile(back_rgb.astype(np.uint8), (h, w, 1))
        image[y0:y1, x0:x1] = rect_rgb
        mask = np.zeros((1, h, w), bool)
        mask[0, y0:y1, x0:x1] = True
        t = ImageTransform(target, (0.5,) * 3, (0.5,) * 3, pad_to_square=pad)
        pixels, masks = t.transform(Image.fromarray(image), Masks(mask, None))
        rgb = (pixels.permute(1, 2, 0).numpy() * 0.5 + 0.5) * 255  # (H', W', 3)
        palette = np.stack([rect_rgb, back_rgb, np.array(t.fill)])
        painted = np.argmin(((rgb[:, :, None] - palette) ** 2).sum(-1), -1) == 0  # nearest colour is the rect's
        # the rectangle in output coordinates, from the plan (pad offset, scale, crop)
        rows, cols = t.plan(h, w)
        ry = [(v + rows.offset) * rows.resized / rows.padded - rows.crop for v in (y0, y1)]
        rx = [(v + cols.offset) * cols.resized / cols.padded - cols.crop for v in (x0, x1)]
        cy, cx = np.mgrid[0:target[0], 0:target[1]] + 0.5

        def within(margin, cy=cy, cx=cx, ry=ry, rx=rx):
            return (cy > ry[0] - margin) & (cy < ry[1] + margin) & (cx > rx[0] - margin) & (cx < rx[1] + margin)

        inner, outer = within(-1.0), within(1.0)
        got = masks[0].numpy()
        assert got[inner].all() and painted[inner].all(), case
        assert not got[~outer].any() and not painted[~outer].any(), case
        assert np.array_equal(got[inner | ~outer], painted[inner | ~outer]), case


def test_for_encoder_and_errors():
    enc = SimpleNamespace(image_size=(24, 32), mean=CLIP_MEAN, std=CLIP_STD)
    t = ImageTransform.for_encoder(enc)
    assert t.image_size == (24, 32) and t.mean == CLIP_MEAN and t.pad_to_square
    pixels, masks = t.transform(Image.new("RGB", (10, 20)), Masks.empty(20, 10))
    assert pixels.shape == (3, 24, 32) and masks.shape == (0, 24, 32)
    with pytest.raises(TypeError, match="lacks image_size"):
        ImageTransform.for_encoder(SimpleNamespace(mean=CLIP_MEAN, std=CLIP_STD))
    with pytest.raises(ValueError, match="are 20x10 but the image is 10x20"):
        t.transform(Image.new("RGB", (20, 10)), Masks.empty(20, 10))
    with pytest.raises(ValueError, match="image_size"):
        ImageTransform((0, 5), CLIP_MEAN, CLIP_STD)
