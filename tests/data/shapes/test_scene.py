"""shapes scenes: determinism, exact masks against a naive per-pixel reference, placement, mask order."""

import dataclasses
import math

import numpy as np
import pytest

from og.data.shapes.render import COLOR_RGB, SHAPE_FNS, shape_mask
from og.data.shapes.scene import ShapesConfig, generate_scene
from og.masks.masks import Masks


def naive_inside(shape, x, y, r):
    """Reference geometry, one point at a time (independent of the vectorised predicates)."""
    dx, dy = x, y
    if shape == "circle":
        return math.hypot(dx, dy) <= r
    if shape == "square":
        return max(abs(dx), abs(dy)) <= 0.85 * r
    if shape == "diamond":
        return abs(dx) + abs(dy) <= r
    if shape == "cross":
        w = 0.35 * r
        return (abs(dx) <= r and abs(dy) <= w) or (abs(dx) <= w and abs(dy) <= r)
    if shape == "triangle":  # point in triangle by the signs of three cross products
        h = 1.7 * r / math.sqrt(3.0)
        a, b, c = (0.0, -r), (-h, 0.7 * r), (h, 0.7 * r)

        def side(p, q):
            return (q[0] - p[0]) * (dy - p[1]) - (q[1] - p[1]) * (dx - p[0])
        s = [side(a, b), side(b, c), side(c, a)]
        return all(v <= 1e-9 for v in s) or all(v >= -1e-9 for v in s)
    raise AssertionError(shape)


def naive_mask(shape, cx, cy, r, size):
    out = np.zeros((size, size), bool)
    for y in range(size):
        for x in range(size):
            out[y, x] = naive_inside(shape, x + 0.5 - cx, y + 0.5 - cy, r)
    return out


@pytest.mark.parametrize("shape", sorted(SHAPE_FNS))
def test_shape_masks_match_naive_geometry_and_stay_in_their_box(shape):
    rng = np.random.default_rng(1)
    for _ in range(3):
        r = float(rng.uniform(4, 9))
        cx, cy = rng.uniform(r + 1, 31 - r, size=2)
        mask = shape_mask(shape, cx, cy, r, 32, 32)
        ref = naive_mask(shape, cx, cy, r, 32)
        assert np.array_equal(mask, ref), shape
        ys, xs = np.nonzero(mask)
        assert mask.sum() > 0.35 * (2 * r) ** 2  # a solid shape, not a sliver
        # every pixel centre lies in the box [c - r, c + r]: boxes apart means masks apart
        assert np.all(np.abs(xs + 0.5 - cx) <= r) and np.all(np.abs(ys + 0.5 - cy) <= r)


def test_masks_are_clipped_at_the_border():
    m = shape_mask("circle", 1.0, 1.0, 5.0, 16, 16)
    assert m[0, 0] and m.shape == (16, 16) and not m[15, 15]
    with pytest.raises(ValueError, match="unknown shape 'star'"):
        shape_mask("star", 5, 5, 3, 16, 16)


CONFIGS = [
    ShapesConfig(),
    ShapesConfig(background="noise", image_size=48),
    ShapesConfig(distinct=False, min_objects=3, max_objects=6, image_size=96),
    ShapesConfig(max_overlap=0.4, min_objects=3),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "noise48", "nondistinct96", "overlap"])
def test_pixels_inside_each_mask_are_its_colour_and_the_union_is_every_non_grey_pixel(cfg):
    for seed in range(25):
        scene = generate_scene(np.random.default_rng(seed), cfg)
        img, masks = scene.image, scene.object_masks
        n = len(scene.objects)
        assert img.shape == (cfg.image_size, cfg.image_size, 3) and img.dtype == np.uint8
        assert masks.shape == (n, cfg.image_size, cfg.image_size) and masks.dtype == bool
        assert cfg.min_objects <= n <= cfg.max_objects
        assert masks.sum(0).max() <= 1  # visible masks are disjoint
        for obj, m in zip(scene.objects, masks, strict=True):
            assert m.any()
            assert np.all(img[m] == COLOR_RGB[obj.color])
        grey = (img[..., 0] == img[..., 1]) & (img[..., 1] == img[..., 2])
        assert np.array_equal(masks.any(0), ~grey)
        if cfg.background == "plain":
            assert len(np.unique(img[grey][:, 0])) == 1


def test_objects_follow_the_config():
    cfg = ShapesConfig(shapes=("circle", "square"), colors=("red", "blue", "green"), sizes=("large",),
                       max_objects=2)
    for seed in range(20):
        scene = generate_scene(np.random.default_rng(seed), cfg)
        shapes = [o.shape for o in scene.objects]
        colors = [o.color for o in scene.objects]
        assert set(shapes) <= {"circle", "square"} and set(colors) <= {"red", "blue", "green"}
        assert len(set(shapes)) == len(shapes) and len(set(colors)) == len(colors)  # distinct
        assert {o.size for o in scene.objects} == {"large"}
    cfg = ShapesConfig(distinct=False, min_objects=6, max_objects=6, shapes=("circle", "cross"),
                       colors=("red", "blue"), image_size=128)
    scene = generate_scene(np.random.default_rng(0), cfg)
    triples = [(o.shape, o.color, o.size) for o in scene.objects]
    assert len(set(triples)) == 6 == len(triples)  # non-distinct mode still never repeats an object


def test_no_overlap_keeps_boxes_apart_and_overlap_is_bounded():
    cfg = ShapesConfig(min_objects=4)
    for seed in range(20):
        s = generate_scene(np.random.default_rng(seed), cfg)
        for i, a in enumerate(s.objects):
            for b in s.objects[i + 1:]:
                assert abs(a.cx - b.cx) >= a.r + b.r + cfg.min_gap or abs(a.cy - b.cy) >= a.r + b.r + cfg.min_gap
    cfg = ShapesConfig(min_objects=4, max_overlap=0.5, image_size=40)
    overlapped = 0
    for seed in range(30):
        s = generate_scene(np.random.default_rng(seed), cfg)
        full = np.stack([shape_mask(o.shape, o.cx, o.cy, o.r, 40, 40) for o in s.objects])
        overlapped += int(full.sum(0).max() > 1)
        visible = s.object_masks.reshape(len(full), -1).sum(1)
        assert np.all(visible >= 0.5 * full.reshape(len(full), -1).sum(1))
    assert overlapped > 0  # the option really lets objects overlap


def test_generation_is_deterministic_for_a_seed():
    for cfg in (ShapesConfig(), ShapesConfig(background="noise", max_overlap=0.3)):
        a = generate_scene(np.random.default_rng(7), cfg)
        b = generate_scene(np.random.default_rng(7), cfg)
        c = generate_scene(np.random.default_rng(8), cfg)
        assert a.objects == b.objects and np.array_equal(a.image, b.image)
        assert np.array_equal(a.object_masks, b.object_masks) and a.masks == b.masks
        assert not np.array_equal(a.image, c.image)


def test_oracle_masks_use_the_segmenter_order_and_do_not_encode_left_to_right():
    left_first, n = 0, 0
    cfg = ShapesConfig(min_objects=2, max_objects=2)
    for seed in range(300):
        s = generate_scene(np.random.default_rng(seed), cfg)
        m = s.masks
        assert isinstance(m, Masks) and np.all(m.scores == 1.0)
        assert m == Masks(s.object_masks, np.ones(2, np.float32)).sorted()
        assert np.all(np.diff(m.areas) <= 0)  # equal scores: area descending
        xs = [np.nonzero(k)[1].mean() for k in m.data]
        left_first += xs[0] < xs[1]
        n += 1
    assert 0.4 < left_first / n < 0.6  # the mask order says nothing about left and right


def test_relations_use_the_visible_boxes():
    s = generate_scene(np.random.default_rng(3), ShapesConfig(min_objects=3, max_objects=3))
    for a in range(3):
        for b in range(3):
            xa, xb = np.nonzero(s.object_masks[a])[1], np.nonzero(s.object_masks[b])[1]
            assert s.left_of(a, b) == (xa.max() < xb.min())
            ya, yb = np.nonzero(s.object_masks[a])[0], np.nonzero(s.object_masks[b])[0]
            assert s.above(a, b) == (ya.max() < yb.min())


@pytest.mark.parametrize("kwargs, message", [
    ({"shapes": ("circle", "star")}, "ShapesConfig.shapes"),
    ({"colors": ()}, "ShapesConfig.colors"),
    ({"min_objects": 3, "max_objects": 2}, "min_objects <= max_objects"),
    ({"max_objects": 6}, "max_objects=6 distinct objects"),
    ({"distinct": False, "shapes": ("circle",), "colors": ("red",)}, "combinations; the config has 2"),
    ({"background": "stripes"}, "background='stripes'"),
    ({"max_overlap": 1.0}, "max_overlap=1.0"),
    ({"image_size": 8}, "image_size=8"),
])
def test_bad_configs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShapesConfig(**kwargs)


def test_a_canvas_too_small_for_the_objects_is_a_clear_error():
    cfg = dataclasses.replace(ShapesConfig(), image_size=16, min_objects=4, sizes=("large",), min_gap=10,
                              max_tries=5)
    with pytest.raises(RuntimeError, match="could not place 4 objects on a 16x16 canvas"):
        generate_scene(np.random.default_rng(0), cfg)
