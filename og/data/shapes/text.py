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
    "left_right_center": "Is the {a} left or right of the center?",
    "above_below_center": "Is the {a} above or below the center?",
}
LEVELS: dict[str, int] = {k: 1 for k in ("color", "shape", "size", "exist", "left_right_center",
                                          "above_below_center")} | {
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


def _attr_qa(scene: Scene, i: int, attr: str, rng: np.random.Generator) -> QA | None:
    """The question about object i's `attr`, or None when i has no name without it."""
    ref = short_ref(scene, i, (attr,), rng)
    return None if ref is None else QA(TEMPLATES[attr].format(ref=ref), scene.objects[i].attrs()[attr], attr)


def _attr_question(attr: str) -> Callable[[Scene, np.random.Generator], QA | None]:
    def ask(scene: Scene, rng: np.random.Generator) -> QA | None:
        for i in rng.permutation(len(scene.objects)):
            qa = _attr_qa(scene, int(i), attr, rng)
            if qa is not None:
                return qa
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


AXES = {"left_right": "x", "further_left": "x", "above_below": "y", "higher": "y", "left_right_center": "x",
        "above_below_center": "y"}


def _apart_pairs(scene: Scene, axis: str) -> list[tuple[int, int]]:
    """Every ordered pair (a, b) of nameable objects apart along `axis` ("x" or "y"), either way round."""
    apart = scene.left_of if axis == "x" else scene.above
    named = [i for i in range(len(scene.objects)) if full_ref(scene, i)]
    return [(a, b) for a in named for b in named if a != b and (apart(a, b) or apart(b, a))]


def _spatial_qa(scene: Scene, kind: str, a: int, b: int) -> QA:
    """The spatial question of `kind` about objects a and b (apart on the kind's axis)."""
    first = (scene.left_of if AXES[kind] == "x" else scene.above)(a, b)
    ra, rb = full_ref(scene, a), full_ref(scene, b)
    words = {"left_right": ("left", "right"), "above_below": ("above", "below")}.get(kind, (ra, rb))
    return QA(TEMPLATES[kind].format(a=ra, b=rb), words[0] if first else words[1], kind)


def _spatial(kind: str) -> Callable[[Scene, np.random.Generator], QA | None]:
    def ask(scene: Scene, rng: np.random.Generator) -> QA | None:
        pairs = _apart_pairs(scene, AXES[kind])
        return _spatial_qa(scene, kind, *pairs[int(rng.integers(len(pairs)))]) if pairs else None
    return ask


CENTER_KINDS = ("left_right_center", "above_below_center")


def center_side(start: float, end: float, middle: float) -> int | None:
    """Which side of the line at `middle` the pixels [start, end) lie wholly on: 0 before it (left /
    above), 1 after it, None when they straddle it."""
    return None if start < middle < end else int(end > middle)


def _center_qa(scene: Scene, kind: str, i: int) -> QA | None:
    """Is object i wholly on one side of the image's centre line on the kind's axis? (None if it
    crosses the line or has no name.)"""
    ref, axis = full_ref(scene, i), AXES[kind]
    lo, hi = scene.boxes[i, [0, 2] if axis == "x" else [1, 3]]  # inclusive pixels
    side = center_side(lo, hi + 1, scene.image.shape[1 if axis == "x" else 0] / 2)
    if ref is None or side is None:
        return None
    words = ("left", "right") if axis == "x" else ("above", "below")
    return QA(TEMPLATES[kind].format(a=ref), words[side], kind)


def _center(kind: str) -> Callable[[Scene, np.random.Generator], QA | None]:
    def ask(scene: Scene, rng: np.random.Generator) -> QA | None:
        for i in rng.permutation(len(scene.objects)):
            qa = _center_qa(scene, kind, int(i))
            if qa is not None:
                return qa
        return None
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
    "left_right": _spatial("left_right"),
    "above_below": _spatial("above_below"),
    "further_left": _spatial("further_left"),
    "higher": _spatial("higher"),
    "left_right_center": _center("left_right_center"),
    "above_below_center": _center("above_below_center"),
    "caption": _describe,
}


# The centre kinds ("Is the red circle left or right of the center?") are opt-in (`kinds=QUESTION_KINDS`):
# the default data, and every number measured on it, is the mix without them.
DEFAULT_KINDS = tuple(k for k in QUESTION_KINDS if k not in CENTER_KINDS)


def check_kinds(kinds: tuple[str, ...], what: str = "question") -> None:
    """A clear error naming the kinds that are not question kinds (`what`: how the caller calls them)."""
    bad = [k for k in kinds if k not in QUESTION_KINDS]
    if bad:
        raise ValueError(f"unknown {what} kinds {bad}; use some of {tuple(QUESTION_KINDS)}")


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


def every_question(scene: Scene, rng: np.random.Generator, kinds: tuple[str, ...] = tuple(QUESTION_KINDS),
                   levels: tuple[int, ...] = (1, 2)) -> list[QA]:
    """All the questions the scene has, in random order: each attribute kind about every object that
    has a name without it, each spatial kind about every pair apart on its axis (in a random order
    of the two), `exist` once each way (a yes and a no), `count` and `caption` once."""
    kinds = tuple(k for k in kinds if LEVELS.get(k, 0) in levels)
    out: list[QA | None] = []
    for kind in kinds:
        if kind in ATTRS:
            out += [_attr_qa(scene, i, kind, rng) for i in range(len(scene.objects))]
        elif kind in CENTER_KINDS:
            out += [_center_qa(scene, kind, i) for i in range(len(scene.objects))]
        elif kind in AXES:
            pairs = {tuple(sorted(pair)) for pair in _apart_pairs(scene, AXES[kind])}
            out += [_spatial_qa(scene, kind, *(pair if rng.random() < 0.5 else pair[::-1])) for pair in sorted(pairs)]
        elif kind == "exist":
            answers: set[str] = set()
            for _ in range(8):  # a yes and a no; a scene with every combination present has no no
                qa = _exist(scene, rng)
                if qa is not None and qa.answer not in answers:
                    answers.add(qa.answer)
                    out.append(qa)
        else:
            out.append(ask(scene, kind, rng))
    found = [qa for qa in out if qa is not None]
    return [found[int(k)] for k in rng.permutation(len(found))]


def vocabulary_text(config: ShapesConfig | None = None) -> str:
    """Every word and punctuation mark the generator can write (to build a tokenizer with no <unk>)."""
    cfg = config or ShapesConfig()
    fixed = [re.sub(r"\{\w+\}", " ", t) for t in (*TEMPLATES.values(), *CAPTION_PROMPTS)]
    return " ".join([*fixed, *NUMBERS, *ANSWER_WORDS, *cfg.shapes, *cfg.colors, *cfg.sizes])
