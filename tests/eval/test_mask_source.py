"""Mask sources: a real MaskStore read by key, a segmenter on the fly, crops of masks."""

import numpy as np
import pytest
from PIL import Image

from og.eval.mask_source import MaskSource, crop_masks
from og.masks.masks import Masks
from og.masks.store import MaskStore


def test_crop_masks():
    data = np.zeros((2, 10, 12), bool)
    data[0, 2:5, 3:7] = True
    masks = Masks(data, None)
    cropped = crop_masks(masks, (3, 2, 4, 3), (10, 12), "k")
    assert cropped.size == (3, 4) and cropped.data[0].all() and not cropped.data[1].any()
    assert crop_masks(cropped, (3, 2, 4, 3), (10, 12), "k") is cropped  # already at the crop's size
    assert crop_masks(masks, None, (10, 12), "k") is masks
    with pytest.raises(ValueError, match="masks for 'k' are 10x12 but the image is 8x12"):
        crop_masks(masks, None, (8, 12), "k")


def test_store_source_by_key(tmp_path):
    written = {f"img/{k}.png": Masks(np.random.default_rng(k).random((k + 1, 6, 8)) > 0.5, None) for k in range(3)}
    with MaskStore.writer(tmp_path / "store", "slic(n_segments=4)") as writer:
        for key, masks in written.items():
            writer.add(key, masks)
    source = MaskSource.from_store(tmp_path / "store")
    assert source.describe() == f"store:{tmp_path / 'store'}"
    assert source.missing(["img/1.png", "img/9.png"]) == ["img/9.png"]
    for key in ("img/2.png", "img/0.png"):
        assert np.array_equal(source.get(key, None).data, written[key].data)


def test_segmenter_source_is_deterministic():
    source = MaskSource.from_segmenter("slic(n_segments=4)")
    assert source.describe().startswith("segmenter:slic") and source.missing(["a"]) == []
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8))
    a, b = source.get("a.png", image), source.get("a.png", image)
    assert a == b and a.size == (32, 40) and len(a) >= 1
    with pytest.raises(ValueError, match="exactly one of store or segmenter"):
        MaskSource()
