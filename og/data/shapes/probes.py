"""Held-out probes of the `shapes` test split, each scored by the likelihood of its options.

A probe is a prompt, a list of option texts and the index of the right one. Types:
- `attribute`: a single-attribute question ("What color is the triangle?"); options are every
  value of that attribute (the sanity check that a model learned anything).
- `binding` (ARO VG-Attribution / ConMe replace-att): the caption vs the same caption with the
  colours of two of its objects swapped (same words, other bindings).
- `relation` (VG-Relation): "Is the red circle left or right of the blue square?" with the
  swapped relation as the wrong option.
- `replace` (ConMe replace-obj): the caption vs the caption with one shape replaced by a shape
  that is not in the image.
- `order` (ARO COCO-Order): the caption among four word-order perturbations of it, ARO's four:
  nouns and adjectives shuffled, the other words shuffled, trigrams shuffled, words within
  trigrams shuffled. One change from ARO: nouns and adjectives move only among positions of their
  own kind (shape, colour, size), so that negative stays a well-formed caption of another scene
  and a grammar prior alone cannot pick the right option (it can in ARO). A perturbation that
  still describes the same objects is rejected.
Options are placed in a random order: the right one is equally likely at every position.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from og.data.shapes.scene import Scene
from og.data.shapes.text import PROBE_CAPTION_PROMPT, ask, caption, join_items

PROBE_TYPES = ("attribute", "binding", "relation", "replace", "order")
_CAPTION_ITEM = re.compile(r"a (\w+) (\w+) (\w+)")


@dataclass(frozen=True)
class Probe:
    """One test item: `options[answer]` is right; `subtype` refines the type (e.g. 'color')."""

    type: str
    subtype: str
    question: str
    options: tuple[str, ...]
    answer: int


def _place(rng: np.random.Generator, right: str, wrong: list[str]) -> tuple[tuple[str, ...], int]:
    """Options in random order and the index of the right one."""
    opts = [right, *wrong]
    perm = rng.permutation(len(opts))
    return tuple(opts[int(i)] for i in perm), int(np.flatnonzero(perm == 0)[0])


def parse_caption(text: str) -> list[tuple[str, str, str]] | None:
    """Sorted (size, colour, shape) triples of a well-formed caption, or None if it is not one."""
    body = text[:-1] if text.endswith(".") else None
    if body is None:
        return None
    items = body.split(", ")
    if len(items) > 1:
        last = items[-1].split(" and ")
        items = items[:-1] + last if len(last) == 2 else None
    else:
        items = body.split(" and ")
    if items is None or any(_CAPTION_ITEM.fullmatch(t) is None for t in items):
        return None
    return sorted(tuple(_CAPTION_ITEM.fullmatch(t).groups()) for t in items)  # type: ignore[union-attr]


def scene_triples(scene: Scene) -> list[tuple[str, str, str]]:
    return sorted((o.size, o.color, o.shape) for o in scene.objects)


def _attribute(scene: Scene, rng: np.random.Generator) -> Probe | None:
    attr = ("color", "shape", "size")[int(rng.integers(3))]
    qa = ask(scene, attr, rng)
    if qa is None:
        return None
    values = {"color": scene.config.colors, "shape": scene.config.shapes, "size": scene.config.sizes}[attr]
    options, answer = _place(rng, qa.answer, [v for v in values if v != qa.answer])
    return Probe("attribute", attr, qa.question, options, answer)


def _triples(scene: Scene, order: np.ndarray, change: Callable[[int], dict[str, str]]) -> list[tuple[str, str, str]]:
    """(size, colour, shape) of the objects in `order`, with attributes overridden by change(i)."""
    out = []
    for i in order:
        attrs = scene.objects[int(i)].attrs() | change(int(i))
        out.append((attrs["size"], attrs["color"], attrs["shape"]))
    return out


def _binding(scene: Scene, rng: np.random.Generator) -> Probe | None:
    objs, order = scene.objects, rng.permutation(len(scene.objects))
    pairs = [(a, b) for a in range(len(objs)) for b in range(a + 1, len(objs))
             if objs[a].color != objs[b].color and objs[a].shape != objs[b].shape]
    if not pairs:
        return None
    a, b = pairs[int(rng.integers(len(pairs)))]
    swap = {a: {"color": objs[b].color}, b: {"color": objs[a].color}}
    wrong = join_items(_triples(scene, order, lambda i: swap.get(i, {})))
    options, answer = _place(rng, caption(scene, order), [wrong])
    return Probe("binding", "color", PROBE_CAPTION_PROMPT, options, answer)


def _relation(scene: Scene, rng: np.random.Generator) -> Probe | None:
    kinds = ("left_right", "above_below") if rng.random() < 0.5 else ("above_below", "left_right")
    for kind in kinds:
        qa = ask(scene, kind, rng)
        if qa is not None:
            other = {"left": "right", "right": "left", "above": "below", "below": "above"}[qa.answer]
            options, answer = _place(rng, qa.answer, [other])
            return Probe("relation", kind, qa.question, options, answer)
    return None


def _replace(scene: Scene, rng: np.random.Generator) -> Probe | None:
    objs, order = scene.objects, rng.permutation(len(scene.objects))
    absent = [s for s in scene.config.shapes if s not in {o.shape for o in objs}]
    if not absent:
        return None
    target, new = int(rng.integers(len(objs))), absent[int(rng.integers(len(absent)))]
    wrong = join_items(_triples(scene, order, lambda i: {"shape": new} if i == target else {}))
    options, answer = _place(rng, caption(scene, order), [wrong])
    return Probe("replace", "shape", PROBE_CAPTION_PROMPT, options, answer)


def _shuffle_where(tokens: list[str], pick: np.ndarray, rng: np.random.Generator) -> list[str]:
    idx = np.flatnonzero(pick)
    out = list(tokens)
    for dst, src in zip(idx, rng.permutation(idx), strict=True):
        out[int(dst)] = tokens[int(src)]
    return out


def _trigrams(tokens: list[str]) -> list[list[str]]:
    return [tokens[i:i + 3] for i in range(0, len(tokens), 3)]


def _content(tokens: list[str], scene: Scene) -> np.ndarray:
    words = set(scene.config.shapes) | set(scene.config.colors) | set(scene.config.sizes)
    return np.array([t in words for t in tokens])


def _shuffle_by_kind(tokens: list[str], scene: Scene, rng: np.random.Generator) -> list[str]:
    """Shapes among shape positions, colours among colour positions, sizes among size positions."""
    for vocab in (scene.config.shapes, scene.config.colors, scene.config.sizes):
        tokens = _shuffle_where(tokens, np.array([t in vocab for t in tokens]), rng)
    return tokens


PERTURBATIONS: dict[str, Callable[[list[str], Scene, np.random.Generator], list[str]]] = {
    "shuffle_nouns_and_adj": _shuffle_by_kind,
    "shuffle_allbut_nouns_and_adj": lambda t, s, rng: _shuffle_where(t, ~_content(t, s), rng),
    "shuffle_within_trigrams": lambda t, s, rng: [w for g in _trigrams(t) for w in
                                                  (g[int(i)] for i in rng.permutation(len(g)))],
    "shuffle_trigrams": lambda t, s, rng: [w for i in rng.permutation(len(_trigrams(t))) for w in _trigrams(t)[int(i)]],
}


def _detokenize(tokens: list[str]) -> str:
    return re.sub(r" ([,.?])", r"\1", " ".join(tokens)) + "."


def _order(scene: Scene, rng: np.random.Generator, tries: int = 50) -> Probe | None:
    right = caption(scene, rng.permutation(len(scene.objects)))
    tokens = re.findall(r"\w+|[^\w\s]", right[:-1])
    truth, wrong = scene_triples(scene), []
    for perturb in PERTURBATIONS.values():
        for _ in range(tries):
            text = _detokenize(perturb(tokens, scene, rng))
            if text != right and text not in wrong and parse_caption(text) != truth:
                wrong.append(text)
                break
        else:
            return None
    options, answer = _place(rng, right, wrong)
    return Probe("order", "caption", PROBE_CAPTION_PROMPT, options, answer)


PROBES: dict[str, Callable[[Scene, np.random.Generator], Probe | None]] = {
    "attribute": _attribute, "binding": _binding, "relation": _relation, "replace": _replace, "order": _order,
}


def probes(scene: Scene, rng: np.random.Generator, types: tuple[str, ...] = PROBE_TYPES) -> list[Probe]:
    """One probe of each type the scene allows (a type it cannot pose is left out)."""
    bad = [t for t in types if t not in PROBES]
    if bad:
        raise ValueError(f"unknown probe types {bad}; use some of {PROBE_TYPES}")
    return [p for p in (PROBES[t](scene, rng) for t in types) if p is not None]
