"""`Masks`: RLE round trips (exact), canonical ordering, COCO polygons / RLE, size errors."""

import itertools

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from og.masks.masks import Masks


def random_masks(rng, m, h, w):
    data = rng.random((m, h, w)) < rng.uniform(0.05, 0.95, (m, 1, 1))
    return Masks(data, rng.random(m).astype(np.float32))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (6, 33, 17), (4, 64, 64), (2, 1, 40)])
def test_rle_round_trip_is_exact(shape):
    rng = np.random.default_rng(sum(shape))
    m = random_masks(rng, *shape)
    data = m.data.copy()
    data[0] = True  # a full mask and an empty one are edge cases of RLE
    if len(data) > 1:
        data[1] = False
    m = Masks(data, m.scores)
    back = Masks.from_rle(m.to_rle(), m.scores)
    assert back == m and back.data.dtype == bool and back.size == m.size
    again = Masks.from_counts(m.rle_counts(), m.size, m.scores)
    assert np.array_equal(again.data, m.data)
    assert all(isinstance(r["counts"], str) and r["size"] == list(m.size) for r in m.to_rle())


def test_rle_matches_pycocotools_on_a_known_mask():
    data = np.zeros((1, 4, 3), bool)
    data[0, 1:3, 1] = True  # column-major runs: 5 zeros, 2 ones, 5 zeros
    (rle,) = Masks(data, None).to_rle()
    decoded = mask_utils.decode({"size": [4, 3], "counts": rle["counts"].encode()})  # (H, W) uint8
    assert np.array_equal(decoded.astype(bool), data[0])
    unc = {"size": [4, 3], "counts": [5, 2, 5]}  # uncompressed COCO RLE (iscrowd style)
    assert np.array_equal(Masks.from_rle([unc]).data, data)


def test_empty_masks_round_trip_and_need_a_size():
    empty = Masks.empty(5, 6)
    assert len(empty) == 0 and empty.size == (5, 6) and empty.areas.shape == (0,)
    assert empty.to_rle() == [] and empty.rle_counts() == []
    assert Masks.from_counts([], (5, 6)) == empty
    assert len(empty.sorted()) == 0
    with pytest.raises(ValueError, match="size"):
        Masks.from_rle([])


def test_order_is_score_then_area_then_position():
    h, w = 6, 6
    data = np.zeros((5, h, w), bool)
    data[0, 0:2, 0:2] = True  # score .5, area 4, first pixel (0, 0)
    data[1, 3:5, 3:5] = True  # score .5, area 4, first pixel (3, 3)
    data[2, 0:3, 3:6] = True  # score .5, area 9
    data[3, 5, 5] = True  # score .9, area 1
    data[4, 0:1, 4:6] = True  # score .5, area 2, first pixel (0, 4)
    scores = np.array([0.5, 0.5, 0.5, 0.9, 0.5], np.float32)
    m = Masks(data, scores)
    # naive reference: sort by (-score, -area, row, col) of the first pixel in raster order
    def key(i):
        r, c = divmod(int(np.flatnonzero(data[i].ravel())[0]), w)
        return (-scores[i], -data[i].sum(), r, c)

    expected = sorted(range(5), key=key)
    assert m.order().tolist() == expected == [3, 2, 0, 1, 4]
    s = m.sorted()
    assert np.array_equal(s.data, data[expected]) and np.allclose(s.scores, scores[expected])
    assert s.sorted() == s  # idempotent
    perm = np.random.default_rng(0).permutation(5)
    assert m.select(perm).sorted() == s  # the input order does not matter


def test_ties_in_row_are_broken_by_column():
    data = np.zeros((2, 3, 5), bool)
    data[0, 1, 3] = True
    data[1, 1, 1] = True
    assert Masks(data, None).order().tolist() == [1, 0]


def test_polygons_fill_the_inside():
    h, w = 12, 16
    square = [[2.0, 3.0, 10.0, 3.0, 10.0, 9.0, 2.0, 9.0]]  # x 2..10, y 3..9
    two_parts = [[0.0, 0.0, 3.0, 0.0, 3.0, 2.0, 0.0, 2.0], [12.0, 8.0, 15.0, 8.0, 15.0, 11.0, 12.0, 11.0]]
    m = Masks.from_polygons([square, two_parts], h, w)
    assert m.size == (h, w) and len(m) == 2
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    inside = (xx > 3) & (xx < 9) & (yy > 4) & (yy < 8)  # well inside the square
    outside = (xx < 1) | (xx > 11) | (yy < 2) | (yy > 10)
    assert m.data[0][inside].all() and not m.data[0][outside].any()
    assert m.data[1][0:1, 0:2].all() and m.data[1][9:10, 13:14].all() and not m.data[1][5, 7]
    again = Masks.from_coco([square, two_parts], h, w)
    assert again == m


def test_from_coco_accepts_every_segmentation_kind():
    rng = np.random.default_rng(3)
    ref = random_masks(rng, 3, 9, 11)
    rles = ref.to_rle()
    fortran = np.asfortranarray(ref.data[2].astype(np.uint8))
    runs = [len(list(g)) for _, g in itertools.groupby(fortran.ravel(order="F"))]
    if fortran.ravel(order="F")[0]:
        runs = [0] + runs
    segs = [rles[0], {"size": [9, 11], "counts": rles[1]["counts"].encode()}, {"size": [9, 11], "counts": runs}]
    got = Masks.from_coco(segs, 9, 11)
    assert np.array_equal(got.data, ref.data)
    with pytest.raises(ValueError, match="annotation 0"):
        Masks.from_coco([{"size": [3, 3], "counts": rles[0]["counts"]}], 9, 11)
    with pytest.raises(ValueError, match="neither polygons nor RLE"):
        Masks.from_coco([[]], 9, 11)


def test_wrong_size_is_a_clear_error():
    m = Masks(np.ones((2, 4, 5), bool), None)
    m.check_size(4, 5)
    with pytest.raises(ValueError, match=r"masks for 'a/b.jpg' are 4x5 but the image is 5x4"):
        m.check_size(5, 4, "a/b.jpg")


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one score per mask"):
        Masks(np.ones((2, 3, 3), bool), np.ones(3))
    with pytest.raises(ValueError, match=r"\(M, H, W\)"):
        Masks(np.ones((1, 2, 3, 3), bool), None)
    one = Masks(np.ones((3, 3), bool), None)  # a single (H, W) mask is promoted
    assert len(one) == 1 and one.scores.tolist() == [1.0] and one.areas.tolist() == [9]


def test_as_boxes_fills_each_masks_bounding_box_like_torchvision():
    from torchvision.ops import masks_to_boxes

    rng = np.random.default_rng(0)
    data = rng.random((4, 9, 11)) > 0.93  # (M, H, W) scattered pixels
    data[3] = False  # an empty mask stays empty
    boxes = Masks(data, np.arange(4, dtype=np.float32)).as_boxes()
    x0, y0, x1, y1 = masks_to_boxes(torch.from_numpy(data[:3])).long().T  # inclusive corners
    for k in range(3):
        expected = np.zeros((9, 11), bool)
        expected[y0[k]:y1[k] + 1, x0[k]:x1[k] + 1] = True
        assert (boxes.data[k] == expected).all()
    assert not boxes.data[3].any() and (boxes.scores == np.arange(4)).all()
