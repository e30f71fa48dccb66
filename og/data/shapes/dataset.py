"""In-memory `shapes` items: `ShapesDataset(n, seed, split)[i]` is made on demand, deterministically.

Item i of a split is drawn from its own generators, seeded by (seed, split, i, purpose), so any
item can be made alone, the splits never share a stream, and the text streams are separate from
the scene stream (changing the questions never changes the images).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from og.data.shapes.probes import PROBE_TYPES, Probe, probes
from og.data.shapes.scene import Scene, ShapesConfig, generate_scene
from og.data.shapes.text import (
    CAPTION_PROMPTS,
    DEFAULT_KINDS,
    QA,
    caption,
    check_kinds,
    every_question,
    questions,
)
from og.masks.masks import Masks

SPLITS = {"train": 0, "test": 1, "val": 2}
_SCENE, _TEXT, _PROBE = 0, 1, 2  # one generator stream per purpose


def image_hash(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


@dataclass(frozen=True, eq=False)
class ShapesItem:
    """One generated image with its text: a caption, stage-2 questions, and (test split) probes."""

    id: str
    image_path: str  # where write_shapes puts it, relative to out_dir
    scene: Scene
    caption_prompt: str
    caption: str
    qas: tuple[QA, ...]
    probes: tuple[Probe, ...] = ()
    redraws: int = 0  # times the scene was redrawn because it equalled an excluded (train) image

    @property
    def image(self) -> Image.Image:
        return self.scene.pil()

    @property
    def masks(self) -> Masks:
        return self.scene.masks


@dataclass
class ShapesDataset:
    """Random-access generated items: `ds[i]` is made on demand from (seed, split, i).

    `exclude` holds image hashes (`image_hash`) that must not appear: such a scene is redrawn.
    Probes are made for the `test` and `val` splits (`probe_types`); `questions_per_image` stage-2
    questions of `kinds` at `levels` for every split (different kinds), or with `None` every question
    the scene has (`every_question`: each attribute of every object, each spatial kind of every pair).
    """

    n: int
    seed: int = 0
    split: str = "train"
    config: ShapesConfig = field(default_factory=ShapesConfig)
    questions_per_image: int | None = 4
    kinds: tuple[str, ...] = DEFAULT_KINDS
    levels: tuple[int, ...] = (1, 2)
    probe_types: tuple[str, ...] = PROBE_TYPES
    exclude: frozenset[bytes] = frozenset()

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r}; use one of {tuple(SPLITS)}")
        if self.questions_per_image is not None and self.questions_per_image < 1:
            raise ValueError(f"questions_per_image={self.questions_per_image}; use a count >= 1, or None for "
                             "every question a scene has")
        if self.n < 0:
            raise ValueError(f"n={self.n}; use a count >= 0")
        check_kinds(self.kinds)

    def __len__(self) -> int:
        return self.n

    def _rng(self, index: int, purpose: int, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], index, purpose, attempt])

    def __getitem__(self, index: int) -> ShapesItem:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} {self.split} items")
        index %= self.n
        attempt = 0
        scene = generate_scene(self._rng(index, _SCENE), self.config)
        while self.exclude and image_hash(scene.image) in self.exclude:
            attempt += 1
            if attempt > 100:
                raise RuntimeError(f"{self.split} item {index}: 100 redraws all equal excluded images; "
                                   "use a larger config (more objects, shapes or colours)")
            scene = generate_scene(self._rng(index, _SCENE, attempt), self.config)
        text = self._rng(index, _TEXT)
        prompt = CAPTION_PROMPTS[int(text.integers(len(CAPTION_PROMPTS)))]
        cap = caption(scene, text.permutation(len(scene.objects)))
        qas = (every_question(scene, text, self.kinds, self.levels) if self.questions_per_image is None
               else questions(scene, text, self.questions_per_image, self.kinds, self.levels))
        prb = probes(scene, self._rng(index, _PROBE), self.probe_types) if self.split != "train" else []
        return ShapesItem(f"{self.split}-{index:06d}", f"images/{self.split}/{index:06d}.png", scene,
                          prompt, cap, tuple(qas), tuple(prb), attempt)

    def __iter__(self) -> Iterator[ShapesItem]:
        return (self[i] for i in range(self.n))

    def texts(self) -> Iterator[str]:
        """Every text of every item (prompts, captions, questions, answers, probe options)."""
        for item in self:
            yield item.caption_prompt
            yield item.caption
            for qa in item.qas:
                yield qa.question
                yield qa.answer
            for p in item.probes:
                yield p.question
                yield from p.options
