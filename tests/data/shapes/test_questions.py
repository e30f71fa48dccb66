"""shapes text: answers follow from the image (a naive solver), negatives differ, no text-only prior."""

import re
from collections import Counter, defaultdict

import numpy as np
import pytest

from og.data.shapes.dataset import ShapesDataset
from og.data.shapes.probes import PROBE_TYPES, parse_caption, probes
from og.data.shapes.render import COLOR_RGB
from og.data.shapes.scene import ShapesConfig, generate_scene
from og.data.shapes.text import CAPTION_PROMPTS, LEVELS, NUMBERS, QUESTION_KINDS, ask, every_question, questions

CONFIGS = {
    "default": ShapesConfig(),
    "nondistinct": ShapesConfig(distinct=False, min_objects=3, max_objects=5, image_size=80),
    "overlap": ShapesConfig(max_overlap=0.3, background="noise"),
}


def seen_objects(scene):
    """What the image shows: colour read from the pixels, position from the visible pixels;
    shape and size are the scene's labels."""
    out = []
    for obj, mask in zip(scene.objects, scene.object_masks, strict=True):
        rgb = tuple(int(v) for v in scene.image[mask][0])
        color = next(c for c, v in COLOR_RGB.items() if v == rgb)
        ys, xs = np.nonzero(mask)
        out.append({"color": color, "shape": obj.shape, "size": obj.size,
                    "x0": xs.min(), "x1": xs.max(), "y0": ys.min(), "y1": ys.max()})
    return out


def resolve(objs, ref):
    *adjs, noun = ref.split()
    hits = [o for o in objs if (noun == "object" or o["shape"] == noun)
            and all(a in (o["size"], o["color"]) for a in adjs)]
    assert len(hits) == 1, f"{ref!r} names {len(hits)} objects"
    return hits[0]


def solve(scene, question, answer_hint=None):
    """Answer a generated question from the image alone (independent of the generator's code)."""
    objs = seen_objects(scene)
    for attr in ("color", "shape", "size"):
        m = re.fullmatch(rf"What {attr} is the (.+)\?", question)
        if m:
            return resolve(objs, m.group(1))[attr]
    if m := re.fullmatch(r"Is there a (\w+) (\w+)\?", question):
        return "yes" if any(o["color"] == m.group(1) and o["shape"] == m.group(2) for o in objs) else "no"
    if question == "How many objects are there?":
        return NUMBERS[len(objs)]
    if m := re.fullmatch(r"Is the (.+) (left or right of|above or below) the (.+)\?", question):
        horizontal = m.group(2).startswith("left")
        lo, hi, words = ("x0", "x1", ("left", "right")) if horizontal else ("y0", "y1", ("above", "below"))
        a = resolve(objs, m.group(1))
        if m.group(3) == "center":  # the image's centre line: pixels below side / 2 are left (above) of it
            middle = scene.image.shape[1 if horizontal else 0] / 2
            assert a[hi] + 1 <= middle or a[lo] >= middle, f"{question!r}: the object straddles the centre line"
            return words[0] if a[hi] + 1 <= middle else words[1]
        b = resolve(objs, m.group(3))
        assert a[hi] < b[lo] or b[hi] < a[lo], f"{question!r}: the objects are not apart"
        return words[0] if a[hi] < b[lo] else words[1]
    if m := re.fullmatch(r"Which is (further left|higher), the (.+) or the (.+)\?", question):
        a, b = resolve(objs, m.group(2)), resolve(objs, m.group(3))
        lo, hi = ("x0", "x1") if m.group(1) == "further left" else ("y0", "y1")
        assert a[hi] < b[lo] or b[hi] < a[lo]
        return m.group(2) if a[hi] < b[lo] else m.group(3)
    if question in CAPTION_PROMPTS:  # any caption of exactly these objects is right
        truth = sorted((o["size"], o["color"], o["shape"]) for o in objs)
        return answer_hint if parse_caption(answer_hint) == truth else "<wrong caption>"
    raise AssertionError(f"unknown question {question!r}")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_answer_is_what_the_image_shows(name):
    kinds = Counter()
    for seed in range(60):
        scene = generate_scene(np.random.default_rng(seed), CONFIGS[name])
        for qa in questions(scene, np.random.default_rng(1000 + seed), n=len(QUESTION_KINDS)):
            assert solve(scene, qa.question, qa.answer) == qa.answer, qa
            assert qa.level == LEVELS[qa.kind]
            kinds[qa.kind] += 1
    assert set(kinds) == set(QUESTION_KINDS)  # every kind gets asked


def _named_fully(objs, i):
    """Object i is named by colour + shape, or by size + colour + shape (the spatial questions' names)."""
    return any(sum(all(o[k] == objs[i][k] for k in keys) for o in objs) == 1
               for keys in (("color", "shape"), ("size", "color", "shape")))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_question_asks_about_every_object_and_pair(name):
    for seed in range(40):
        scene = generate_scene(np.random.default_rng(seed), CONFIGS[name])
        objs = seen_objects(scene)
        qas = every_question(scene, np.random.default_rng(seed))
        asked = defaultdict(list)
        for qa in qas:
            assert solve(scene, qa.question, qa.answer) == qa.answer, qa
            asked[qa.kind].append(qa)
        for attr in ("color", "shape", "size"):  # each object at most once, and every nameable one
            about = [id(resolve(objs, re.fullmatch(rf"What {attr} is the (.+)\?", q.question).group(1)))
                     for q in asked[attr]]
            assert len(set(about)) == len(about)
            nameable = [i for i in range(len(objs)) if any(
                sum(all(o[k] == objs[i][k] for k in keys) for o in objs) == 1
                for keys in ([("size",), ("shape",), ("size", "shape")] if attr == "color" else
                             [("size",), ("color",), ("size", "color")] if attr == "shape" else
                             [("color",), ("shape",), ("color", "shape")]))]
            assert len(about) == len(nameable), (attr, len(about), nameable)
        for kind, (lo, hi) in {"left_right": ("x0", "x1"), "further_left": ("x0", "x1"),
                               "above_below": ("y0", "y1"), "higher": ("y0", "y1")}.items():
            apart = {(a, b) for a in range(len(objs)) for b in range(a + 1, len(objs))
                     if _named_fully(objs, a) and _named_fully(objs, b)
                     and (objs[a][hi] < objs[b][lo] or objs[b][hi] < objs[a][lo])}
            assert len(asked[kind]) == len(apart), (kind, len(asked[kind]), apart)
        centre_lines = {"left_right_center": ("x0", "x1", 1), "above_below_center": ("y0", "y1", 0)}
        for kind, (lo, hi, side) in centre_lines.items():
            middle = scene.image.shape[side] / 2
            aside = [i for i in range(len(objs)) if _named_fully(objs, i)
                     and (objs[i][hi] + 1 <= middle or objs[i][lo] >= middle)]
            assert len(asked[kind]) == len(aside), (kind, len(asked[kind]), aside)
        assert len({q.answer for q in asked["exist"]}) == len(asked["exist"]) >= 1
        assert [len(asked[k]) for k in ("count", "caption")] == [1, 1]
    assert every_question(scene, np.random.default_rng(0), levels=(1,)) and all(
        q.level == 1 for q in every_question(scene, np.random.default_rng(0), levels=(1,)))
    assert every_question(scene, np.random.default_rng(5)) == every_question(scene, np.random.default_rng(5))


def test_levels_and_unknown_kinds():
    scene = generate_scene(np.random.default_rng(0))
    rng = np.random.default_rng(0)
    assert {q.level for q in questions(scene, rng, 10, levels=(1,))} == {1}
    assert {q.level for q in questions(scene, rng, 10, levels=(2,))} == {2}
    assert len(questions(scene, rng, 2)) == 2
    with pytest.raises(ValueError, match="unknown question kind 'colour'"):
        ask(scene, "colour", rng)
    with pytest.raises(ValueError, match="unknown probe types"):
        probes(scene, rng, ("attribute", "counting"))


def test_short_answers_are_balanced():
    answers = defaultdict(Counter)
    for seed in range(400):
        scene = generate_scene(np.random.default_rng(seed))
        for kind in ("exist", "left_right", "above_below", "left_right_center", "above_below_center"):
            qa = ask(scene, kind, np.random.default_rng(seed))
            if qa:
                answers[kind][qa.answer] += 1
    for kind, counts in answers.items():
        share = min(counts.values()) / sum(counts.values())
        assert len(counts) == 2 and share > 0.4, (kind, counts)


@pytest.fixture(scope="module")
def test_items():
    return list(ShapesDataset(400, seed=3, split="test"))


def words(text):
    return sorted(re.findall(r"\w+|[^\w\s]", text))


def test_probes_are_well_formed_and_their_negatives_are_really_wrong(test_items):
    per_type = Counter()
    for item in test_items:
        scene, truth = item.scene, sorted((o.size, o.color, o.shape) for o in item.scene.objects)
        assert sorted(p.type for p in item.probes) == sorted(PROBE_TYPES)  # every type, once
        for p in item.probes:
            per_type[p.type] += 1
            right, wrong = p.options[p.answer], [o for k, o in enumerate(p.options) if k != p.answer]
            assert 0 <= p.answer < len(p.options) and len(set(p.options)) == len(p.options) >= 2
            if p.type in ("attribute", "relation"):
                assert solve(scene, p.question) == right
                assert all(solve(scene, p.question) != w for w in wrong)
            if p.type == "attribute":
                values = {"color": scene.config.colors, "shape": scene.config.shapes, "size": scene.config.sizes}
                assert sorted(p.options) == sorted(values[p.subtype])
            elif p.type == "relation":
                assert sorted(p.options) in (["left", "right"], ["above", "below"])
            else:
                assert p.question == "Describe the image."
                assert parse_caption(right) == truth
                assert all(parse_caption(w) != truth for w in wrong)
            if p.type == "binding":  # same words, the colours of two objects swapped
                (w,) = wrong
                assert words(w) == words(right) and parse_caption(w) is not None
                changed = [(a, b) for a, b in zip(right.split(), w.split(), strict=True) if a != b]
                assert len(changed) == 2 and changed[0] == changed[1][::-1]
                assert {a for a, _ in changed} <= set(COLOR_RGB)
            if p.type == "replace":  # one shape replaced by a shape the image does not have
                (w,) = wrong
                changed = [(a, b) for a, b in zip(right.split(), w.split(), strict=True) if a != b]
                assert len(changed) == 1
                new = changed[0][1].rstrip(".,")
                assert new in scene.config.shapes and new not in {o.shape for o in scene.objects}
            if p.type == "order":  # permutations of the caption's words; only one reads right
                assert len(p.options) == 5
                assert all(words(o) == words(right) for o in p.options)
                assert sum(parse_caption(o) == truth for o in p.options) == 1
    assert all(per_type[t] == len(test_items) for t in PROBE_TYPES)


def test_the_right_option_is_balanced_over_positions_and_not_given_by_length(test_items):
    by_type = defaultdict(list)
    for item in test_items:
        for p in item.probes:
            by_type[(p.type, len(p.options))].append(p)
    for (kind, k), items in by_type.items():
        if len(items) < 60:
            continue
        pos = Counter(p.answer for p in items)
        assert all(abs(pos[i] / len(items) - 1 / k) < 0.09 for i in range(k)), (kind, k, pos)
        shortest = [min(range(k), key=lambda i, p=p: (len(p.options[i]), i)) for p in items]
        longest = [max(range(k), key=lambda i, p=p: (len(p.options[i]), -i)) for p in items]
        for guess in (shortest, longest):
            acc = np.mean([g == p.answer for g, p in zip(guess, items, strict=True)])
            assert acc < 1 / k + 0.12, (kind, k, acc)


def test_no_text_only_prior_answers_the_probes(test_items):
    """A prior fitted on other images (question -> most frequent right option) and a grammar
    prior (pick a well-formed caption) stay near chance on every type."""
    fit = defaultdict(Counter)
    for item in ShapesDataset(600, seed=4, split="val"):
        for p in item.probes:
            fit[(p.question, tuple(sorted(p.options)))][p.options[p.answer]] += 1
    acc, grammar, chance = defaultdict(list), defaultdict(list), defaultdict(list)
    for item in test_items:
        for p in item.probes:
            seen = fit.get((p.question, tuple(sorted(p.options))))
            guess = seen.most_common(1)[0][0] if seen else p.options[0]
            acc[p.type].append(guess == p.options[p.answer])
            chance[p.type].append(1 / len(p.options))
            formed = [i for i, o in enumerate(p.options) if parse_caption(o) is not None] or [0]
            grammar[p.type].append(formed[0] == p.answer)
    for t in PROBE_TYPES:
        assert np.mean(acc[t]) < np.mean(chance[t]) + 0.1, (t, np.mean(acc[t]), np.mean(chance[t]))
        if t in ("binding", "replace", "order"):
            assert np.mean(grammar[t]) < 0.65, (t, np.mean(grammar[t]))


def test_train_items_have_no_probes_and_items_are_reproducible():
    train = ShapesDataset(5, seed=0, split="train")
    assert all(not it.probes for it in train)
    a, b = ShapesDataset(5, seed=0, split="test")[4], ShapesDataset(9, seed=0, split="test")[4]
    assert a.id == "test-000004" and a.image_path == "images/test/000004.png"
    assert np.array_equal(a.scene.image, b.scene.image) and a.probes == b.probes and a.qas == b.qas
    assert a.caption == b.caption and a.masks == b.masks
    assert ShapesDataset(5, split="test")[-1].id == "test-000004"
    with pytest.raises(IndexError, match="index 5 out of range for 5 test items"):
        ShapesDataset(5, split="test")[5]
    with pytest.raises(ValueError, match="split='dev'"):
        ShapesDataset(5, split="dev")
