"""Text of the synthetic `shapes` data: captions (stage 1) and short-answer questions (stage 2).

Every answer is a deterministic function of the scene (attributes and visible boxes); the
generator only chooses which question to ask. Objects are named by referring expressions that
identify them uniquely without the attribute being asked ("What color is the triangle?",
"What shape is the green object?"). Spatial questions are asked only for pairs that are
clearly apart on that axis (one box ends before the other begins).

Question kinds (`QUESTION_KINDS`): level 1 asks about one object, level 2 about several; the
curriculum puts level 1 first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from og.data.shapes.scene import Scene, ShapesConfig

ATTRS = ("size", "color", "shape")
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
CAPTION_PROMPTS = ("Describe the image.", "What is in the image?", "List the objects in the image.",
                   "Give a short description of the picture.")
PROBE_CAPTION_PROMPT = CAPTION_PROMPTS[0]
TEMPLATES: dict[str, str] = {
    "color": "What color is the {ref}?",
    "shape": "What shape is the {ref}?",
    "size": "What size is the {ref}?",
    "exist": "Is there a {color} {shape}?",
    "count": "How many objects are there?",
    "left_right": "Is the {a} left or right of the {b}?",
    "above_below": "Is the {a} above or below the {b}?",
    "further_left": "Which is further left, the {a} or the {b}?",
    "higher": "Which is higher, the {a} or the {b}?",
}
LEVELS: dict[str, int] = {k: 1 for k in ("color", "shape", "size", "exist")} | {
    k: 2 for k in ("count", "left_right", "above_below", "further_left", "higher", "caption")}
ANSWER_WORDS = ("yes", "no", "left", "right", "above", "below", "object", "a", "and", ",", ".")


@dataclass(frozen=True)
class QA:
    """One question with its short answer; `kind` names the template, its `level` is 1 or 2."""

    question: str
    answer: str
    kind: str

    @property
    def level(self) -> int:
        return LEVELS[self.kind]


def phrase(attrs: dict[str, str], keys: tuple[str, ...] | set[str]) -> str:
    """Noun phrase from some attributes, in the order size, colour, shape ("large red object")."""
    words = [attrs[k] for k in ("size", "color") if k in keys]
    return " ".join([*words, attrs["shape"] if "shape" in keys else "object"])


def unique(scene: Scene, i: int, keys: tuple[str, ...]) -> bool:
    """The attributes `keys` of object i match no other object of the scene."""
    mine = scene.objects[i]
    return not any(all(getattr(o, a) == getattr(mine, a) for a in keys)
                   for j, o in enumerate(scene.objects) if j != i)


def refs(scene: Scene, i: int, exclude: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Attribute subsets (fewest first) that name object i uniquely without the `exclude`d ones."""
    allowed = [a for a in ATTRS if a not in exclude]
    return [keys for k in range(1, len(allowed) + 1) for keys in combinations(allowed, k) if unique(scene, i, keys)]


def short_ref(scene: Scene, i: int, exclude: tuple[str, ...], rng: np.random.Generator) -> str | None:
    """A shortest unique name of object i not using `exclude` (random among ties), or None."""
    found = refs(scene, i, exclude)
    if not found:
        return None
    best = [k for k in found if len(k) == len(found[0])]
    return phrase(scene.objects[i].attrs(), best[int(rng.integers(len(best)))])


def full_ref(scene: Scene, i: int) -> str | None:
    """'red circle' if that is unique, else 'large red circle' if that is, else None."""
    for keys in (("color", "shape"), ("size", "color", "shape")):
        if unique(scene, i, keys):
            return phrase(scene.objects[i].attrs(), keys)
    return None


def join_items(triples: list[tuple[str, str, str]]) -> str:
    """'a large red circle, a small blue square and a small green triangle.' from (size, colour, shape)."""
    items = [f"a {size} {color} {shape}" for size, color, shape in triples]
    return (items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]) + "."


def caption(scene: Scene, order: np.ndarray | list[int] | None = None) -> str:
    """The caption naming every object with its size, colour and shape, objects in `order`."""
    order = range(len(scene.objects)) if order is None else order
    return join_items([(scene.objects[int(i)].size, scene.objects[int(i)].color, scene.objects[int(i)].shape)
                       for i in order])


def _attr_question(attr: str) -> Callable[[Scene, np.random.Generator], QA | None]:
    template = TEMPLATES[attr]

    def ask(scene: Scene, rng: np.random.Generator) -> QA | None:
        for i in rng.permutation(len(scene.objects)):
            ref = short_ref(scene, int(i), (attr,), rng)
            if ref is not None:
                return QA(template.format(ref=ref), scene.objects[int(i)].attrs()[attr], attr)
        return None
    return ask


def _exist(scene: Scene, rng: np.random.Generator) -> QA | None:
    """'Is there a red circle?': half yes; a no is half the time a mix of two objects' attributes."""
    present = {(o.color, o.shape) for o in scene.objects}
    if rng.random() < 0.5:
        color, shape = sorted(present)[int(rng.integers(len(present)))]
        return QA(TEMPLATES["exist"].format(color=color, shape=shape), "yes", "exist")
    colors = sorted({o.color for o in scene.objects}) if rng.random() < 0.5 else list(scene.config.colors)
    shapes = sorted({o.shape for o in scene.objects}) if rng.random() < 0.5 else list(scene.config.shapes)
    absent = [(c, s) for c in colors for s in shapes if (c, s) not in present]
    if not absent:
        return None
    color, shape = absent[int(rng.integers(len(absent)))]
    return QA(TEMPLATES["exist"].format(color=color, shape=shape), "no", "exist")


def _pairs(scene: Scene, rng: np.random.Generator, apart: Callable[[int, int], bool]) -> tuple[int, int] | None:
    """A random ordered pair (a, b) of nameable objects apart on an axis (either way round)."""
    named = [i for i in range(len(scene.objects)) if full_ref(scene, i)]
    ok = [(a, b) for a in named for b in named if a != b and (apart(a, b) or apart(b, a))]
    return ok[int(rng.integers(len(ok)))] if ok else None


def _pair_on_axis(scene: Scene, rng: np.random.Generator, axis: str) -> tuple[int, int, bool] | None:
    """Two objects apart along `axis` ("x" or "y") and whether the first is left of / above the second."""
    apart = scene.left_of if axis == "x" else scene.above
    pair = _pairs(scene, rng, apart)
    return None if pair is None else (pair[0], pair[1], bool(apart(*pair)))


def _relation(axis: str) -> Callable[[Scene, np.random.Generator], QA | None]:
    kind, words = {"x": ("left_right", ("left", "right")), "y": ("above_below", ("above", "below"))}[axis]
    template = TEMPLATES[kind]

    def ask(scene: Scene, rng: np.random.Generator) -> QA | None:
        pair = _pair_on_axis(scene, rng, axis)
        if pair is None:
            return None
        a, b, first = pair
        question = template.format(a=full_ref(scene, a), b=full_ref(scene, b))
        return QA(question, words[0] if first else words[1], kind)
    return ask


def _which(axis: str) -> Callable[[Scene, np.random.Generator], QA | None]:
    kind = "further_left" if axis == "x" else "higher"
    template = TEMPLATES[kind]

    def ask(scene: Scene, rng: np.random.Generator) -> QA | None:
        pair = _pair_on_axis(scene, rng, axis)
        if pair is None:
            return None
        a, b, first = pair
        ra, rb = full_ref(scene, a), full_ref(scene, b)
        return QA(template.format(a=ra, b=rb), ra if first else rb, kind)
    return ask


def _count(scene: Scene, rng: np.random.Generator) -> QA | None:
    return QA(TEMPLATES["count"], NUMBERS[len(scene.objects)], "count")


def _describe(scene: Scene, rng: np.random.Generator) -> QA | None:
    prompt = CAPTION_PROMPTS[int(rng.integers(len(CAPTION_PROMPTS)))]
    return QA(prompt, caption(scene, rng.permutation(len(scene.objects))), "caption")


QUESTION_KINDS: dict[str, Callable[[Scene, np.random.Generator], QA | None]] = {
    "color": _attr_question("color"),
    "shape": _attr_question("shape"),
    "size": _attr_question("size"),
    "exist": _exist,
    "count": _count,
    "left_right": _relation("x"),
    "above_below": _relation("y"),
    "further_left": _which("x"),
    "higher": _which("y"),
    "caption": _describe,
}


def ask(scene: Scene, kind: str, rng: np.random.Generator) -> QA | None:
    """One question of `kind` about the scene, or None when the scene has no such question."""
    if kind not in QUESTION_KINDS:
        raise ValueError(f"unknown question kind {kind!r}; use one of {sorted(QUESTION_KINDS)}")
    return QUESTION_KINDS[kind](scene, rng)


def questions(scene: Scene, rng: np.random.Generator, n: int, kinds: tuple[str, ...] = tuple(QUESTION_KINDS),
              levels: tuple[int, ...] = (1, 2)) -> list[QA]:
    """Up to n questions of different kinds (random kinds, random order); fewer if the scene has fewer."""
    kinds = tuple(k for k in kinds if LEVELS.get(k, 0) in levels or k not in QUESTION_KINDS)
    out: list[QA] = []
    for k in rng.permutation(len(kinds)):
        qa = ask(scene, kinds[int(k)], rng)
        if qa is not None:
            out.append(qa)
        if len(out) == n:
            break
    return out


def vocabulary_text(config: ShapesConfig | None = None) -> str:
    """Every word and punctuation mark the generator can write (to build a tokenizer with no <unk>)."""
    cfg = config or ShapesConfig()
    fixed = [re.sub(r"\{\w+\}", " ", t) for t in (*TEMPLATES.values(), *CAPTION_PROMPTS)]
    return " ".join([*fixed, *NUMBERS, *ANSWER_WORDS, *cfg.shapes, *cfg.colors, *cfg.sizes])
