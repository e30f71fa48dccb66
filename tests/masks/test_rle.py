"""RLE runs: the vectorised decoder agrees with pycocotools; stored masks read without copies."""

from __future__ import annotations

import numpy as np
import pytest

from og.masks.masks import Masks
from og.masks.rle import StoredMasks, decode_runs, runs_of_many, runs_to_dense
from og.masks.store import MaskStore, MaskStoreWriter


def _stored(masks: Masks) -> StoredMasks:
    counts = masks.rle_counts()
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in counts])]).astype(np.int64)
    return StoredMasks(np.frombuffer(b"".join(counts), np.uint8), offsets, *masks.size, masks.scores)


def _random_masks(rng: np.random.Generator, m: int, h: int, w: int) -> Masks:
    data = np.zeros((m, h, w), bool)
    for i in range(m):
        kind = i % 4
        if kind == 0:
            data[i] = rng.random((h, w)) > rng.uniform(0.1, 0.9)  # noise: many short runs
        elif kind == 1:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            data[i, y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = True  # a box
        elif kind == 2:
            data[i] = True if i % 8 == 2 else False  # full, or empty
        else:
            yy, xx = np.mgrid[:h, :w]
            data[i] = (yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 3) ** 2  # a disc
    return Masks(data, rng.random(m).astype(np.float32))


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (33, 64), (120, 97)])
def test_runs_decode_exactly_like_pycocotools(size):
    rng = np.random.default_rng(sum(size))
    masks = _random_masks(rng, 12, *size)
    stored = _stored(masks)
    runs = decode_runs(stored.data, stored.offsets)
    assert runs.n_masks == 12 and np.all(runs.end > runs.start)
    assert np.array_equal(runs_to_dense(runs, size), masks.data)
    assert stored.decode() == masks
    assert stored.decode([3, 1]) == masks.select([3, 1])


def test_long_runs_and_no_masks():
    data = np.zeros((2, 900, 1000), bool)
    data[0, :, 3:997] = True  # one run of about 900k pixels: counts of many 5-bit groups
    data[1, 450:] = True
    masks = Masks(data, np.ones(2, np.float32))
    assert np.array_equal(runs_to_dense(_stored(masks).runs(), (900, 1000)), data)
    empty = decode_runs(np.zeros(0, np.uint8), np.zeros(1, np.int64))
    assert empty.n_masks == 0 and len(empty.start) == 0


def test_a_corrupt_string_is_named():
    with pytest.raises(ValueError, match="not a COCO compressed RLE"):
        decode_runs(np.frombuffer(b"0\x00", np.uint8), np.array([0, 2]))
    with pytest.raises(ValueError, match="cut count"):  # the last group says more groups follow
        decode_runs(np.frombuffer(b"0P", np.uint8), np.array([0, 2]))


def test_store_read_is_the_stored_masks_and_prefetch_batches(tmp_path):
    rng = np.random.default_rng(0)
    ref = {f"img/{i:03d}.jpg": _random_masks(rng, 1 + i % 5, 20 + i, 30) for i in range(20)}
    with MaskStoreWriter(tmp_path / "s", "test", flush_every=12) as writer:
        for key, masks in ref.items():
            writer.add(key, masks)
    store = MaskStore(tmp_path / "s")
    store.prefetch(list(ref)[::3] + ["nope.jpg"])  # unknown keys are left to get / read
    cached = len(store._groups)
    assert cached >= 2  # groups of both shards were read
    for key, masks in ref.items():
        stored = store.read(key)
        assert stored.size == masks.size and np.array_equal(stored.scores, masks.scores)
        assert np.array_equal(runs_to_dense(stored.runs(), stored.size), masks.data)
        assert store.get(key, index=[0]) == masks.select([0])
        assert stored.scores.flags.writeable and not stored.data.flags.owndata  # a view on the parquet buffer
    with pytest.raises(KeyError, match="nope.jpg"):
        store.read("nope.jpg")


def test_many_images_decode_in_one_pass_like_each_alone():
    rng = np.random.default_rng(3)
    sizes = [(33, 64), (7, 5), (20, 20), (120, 97)]
    stored = [_stored(_random_masks(rng, m, *size)) for m, size in zip((5, 0, 1, 9), sizes, strict=True)]
    for one, alone in zip(runs_of_many(stored), [s.runs() for s in stored], strict=True):
        assert one.n_masks == alone.n_masks
        for name in ("mask", "start", "end"):
            assert np.array_equal(getattr(one, name), getattr(alone, name)), name
    assert runs_of_many([]) == []


def test_a_cut_count_inside_a_batch_is_named():
    """A string whose last count is cut would run into the next mask's string: it is an error."""
    masks = _random_masks(np.random.default_rng(4), 3, 16, 16)
    stored = _stored(masks)
    cut = np.frombuffer(b"".join([stored.counts([0])[0] + b"a", *stored.counts([1, 2])]), np.uint8)  # 'a' = 0x61 >= 80
    offsets = stored.offsets.copy()
    offsets[1:] += 1
    with pytest.raises(ValueError, match="not a COCO compressed RLE"):
        decode_runs(cut, offsets)
