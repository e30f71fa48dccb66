"""Scenes of the synthetic `shapes` data: objects (shape x colour x size) placed on a canvas.

`generate_scene(rng, config)` draws one scene from a numpy Generator, deterministically: the
same generator state gives the same objects, pixels and masks. Objects are placed by rejection
sampling: by default their boxes keep `min_gap` pixels apart (no overlap); with
`max_overlap > 0` an object may hide up to that fraction of another (the masks are then the
visible parts, still disjoint).

Oracle masks (`Scene.masks`) are in the segmenter's canonical order (`Masks.sorted()`: equal
scores, so by area descending, ties by the top-most then left-most pixel). The order carries
no left-to-right information: a model cannot read "left of" from the mask order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from og.data.shapes.render import BACKGROUNDS, COLOR_RGB, SHAPE_FNS, background, paint, shape_mask, visible_masks
from og.masks.masks import Masks

SHAPES: tuple[str, ...] = tuple(SHAPE_FNS)
COLORS: tuple[str, ...] = tuple(COLOR_RGB)
SIZES: dict[str, float] = {"small": 0.085, "large": 0.15}  # half-extent as a fraction of the side


@dataclass(frozen=True)
class ShapesConfig:
    """What scenes look like. Defaults: 64x64, 2-4 objects, distinct shapes and colours."""

    image_size: int = 64
    min_objects: int = 2
    max_objects: int = 4
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = COLORS
    sizes: tuple[str, ...] = tuple(SIZES)
    distinct: bool = True  # objects of one image have pairwise different shapes and colours
    background: str = "plain"  # "plain" (one grey) or "noise" (grey with grey noise)
    max_overlap: float = 0.0  # largest hidden fraction of an object; 0 = no overlap
    min_gap: int = 2  # pixels between object boxes when max_overlap == 0
    size_jitter: float = 0.1  # half-extent varies by +-this fraction
    max_tries: int = 200  # placement attempts per object before the scene is redrawn

    def __post_init__(self) -> None:
        for name, values, valid in (("shapes", self.shapes, SHAPES), ("colors", self.colors, COLORS),
                                    ("sizes", self.sizes, tuple(SIZES))):
            bad = [v for v in values if v not in valid]
            if bad or not values:
                raise ValueError(f"ShapesConfig.{name}={values!r}: use a non-empty subset of {valid}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects; got {self.min_objects}, {self.max_objects}")
        if self.distinct and self.max_objects > min(len(self.shapes), len(self.colors)):
            raise ValueError(f"max_objects={self.max_objects} distinct objects need as many shapes and colours; "
                             f"have {len(self.shapes)} shapes, {len(self.colors)} colours (or set distinct=False)")
        combos = len(self.shapes) * len(self.colors) * len(self.sizes)
        if not self.distinct and self.max_objects > combos:
            raise ValueError(f"max_objects={self.max_objects} different objects need as many (shape, colour, size) "
                             f"combinations; the config has {combos}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"background={self.background!r}; use one of {BACKGROUNDS}")
        if not 0.0 <= self.max_overlap < 1.0:
            raise ValueError(f"max_overlap={self.max_overlap}; use a fraction in [0, 1)")
        if self.image_size < 16:
            raise ValueError(f"image_size={self.image_size} is too small to draw shapes; use 16 or more")


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: attributes and geometry (centre and half-extent in pixels)."""

    shape: str
    color: str
    size: str
    cx: float
    cy: float
    r: float

    def attrs(self) -> dict[str, str]:
        return {"size": self.size, "color": self.color, "shape": self.shape}


@dataclass(frozen=True, eq=False)
class Scene:
    """A rendered scene: objects in drawing order, the image, and each object's visible mask."""

    objects: tuple[ShapeObject, ...]
    image: np.ndarray  # (H, W, 3) uint8
    object_masks: np.ndarray  # (N, H, W) bool, visible pixels, in `objects` order
    config: ShapesConfig = field(default_factory=ShapesConfig)  # the vocabulary it was drawn from
    boxes: np.ndarray = field(init=False)  # (N, 4) int: x0, y0, x1, y1 of the visible pixels, inclusive
    centroids: np.ndarray = field(init=False)  # (N, 2) float: x, y of the visible pixels' centres

    def __post_init__(self) -> None:
        n = len(self.objects)
        boxes, cents = np.zeros((n, 4), np.int64), np.zeros((n, 2), np.float64)
        for i, m in enumerate(self.object_masks):
            ys, xs = np.nonzero(m)
            boxes[i] = xs.min(), ys.min(), xs.max(), ys.max()
            cents[i] = xs.mean() + 0.5, ys.mean() + 0.5
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "centroids", cents)

    @property
    def masks(self) -> Masks:
        """Oracle masks in the segmenter's canonical order (score, area, position): no spatial leak."""
        return Masks(self.object_masks, np.ones(len(self.objects), np.float32)).sorted()

    def pil(self) -> Image.Image:
        return Image.fromarray(self.image)

    def left_of(self, a: int, b: int) -> bool:
        """Object a lies wholly left of object b (its visible box ends before b's begins)."""
        return bool(self.boxes[a, 2] < self.boxes[b, 0])

    def above(self, a: int, b: int) -> bool:
        """Object a lies wholly above object b."""
        return bool(self.boxes[a, 3] < self.boxes[b, 1])


def _attributes(rng: np.random.Generator, cfg: ShapesConfig, n: int) -> list[tuple[str, str, str]]:
    """(shape, colour, size) of n objects; distinct shapes and colours when cfg.distinct,
    otherwise distinct (shape, colour, size) triples."""
    sizes = [cfg.sizes[int(i)] for i in rng.integers(len(cfg.sizes), size=n)]
    if cfg.distinct:
        shapes = rng.choice(len(cfg.shapes), size=n, replace=False)
        colors = rng.choice(len(cfg.colors), size=n, replace=False)
        return [(cfg.shapes[int(s)], cfg.colors[int(c)], z) for s, c, z in zip(shapes, colors, sizes, strict=True)]
    combos = [(s, c, z) for s in cfg.shapes for c in cfg.colors for z in cfg.sizes]
    return [combos[int(i)] for i in rng.choice(len(combos), size=n, replace=False)]


def _fits(cfg: ShapesConfig, placed: list[tuple[float, float, float]], cx: float, cy: float, r: float) -> bool:
    """Boxes apart by at least min_gap pixels (the no-overlap test)."""
    return all(abs(cx - px) >= r + pr + cfg.min_gap or abs(cy - py) >= r + pr + cfg.min_gap
               for px, py, pr in placed)


def _hidden_ok(cfg: ShapesConfig, full: np.ndarray) -> bool:
    """Every object keeps at least 1 - max_overlap of its pixels visible."""
    vis = visible_masks(full)
    areas = full.reshape(len(full), -1).sum(1)
    return bool(np.all(vis.reshape(len(vis), -1).sum(1) >= (1.0 - cfg.max_overlap) * areas) and areas.min() > 0)


def generate_scene(rng: np.random.Generator, config: ShapesConfig | None = None) -> Scene:
    """Draw one scene (objects, image, visible masks) from `rng`, deterministically."""
    cfg = config or ShapesConfig()
    side = cfg.image_size
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for _ in range(20):
        objs: list[ShapeObject] = []
        full = np.zeros((0, side, side), bool)
        for shape, color, size in _attributes(rng, cfg, n):
            r = SIZES[size] * side * (1.0 + cfg.size_jitter * (2.0 * rng.random() - 1.0))
            for _ in range(cfg.max_tries):
                cx, cy = rng.uniform(r + 1, side - r - 1, size=2)
                if cfg.max_overlap == 0.0:
                    if _fits(cfg, [(o.cx, o.cy, o.r) for o in objs], cx, cy, r):
                        break
                elif _hidden_ok(cfg, np.concatenate([full, shape_mask(shape, cx, cy, r, side, side)[None]])):
                    break
            else:
                break  # this object found no place: redraw the whole layout
            objs.append(ShapeObject(shape, color, size, float(cx), float(cy), float(r)))
            full = np.concatenate([full, shape_mask(shape, cx, cy, r, side, side)[None]])  # (N, H, W)
        if len(objs) == n:
            vis = visible_masks(full)  # (N, H, W)
            img = paint(background(rng, cfg.background, side, side), vis, [o.color for o in objs])
            return Scene(tuple(objs), img, vis, cfg)
    raise RuntimeError(f"could not place {n} objects on a {side}x{side} canvas in 20 layouts; "
                       "use fewer objects, a larger image_size or a larger max_overlap")
