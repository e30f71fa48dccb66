"""`shapes`: a seeded synthetic compositional dataset (images, oracle masks, captions, questions).

In memory::

    ds = ShapesDataset(1000, seed=0, split="train")
    item = ds[3]            # ShapesItem: .image (PIL), .masks (Masks), .caption, .qas, .probes
    scene = generate_scene(np.random.default_rng(0))

On disk (`write_shapes(out_dir, n_train, n_test, seed)`)::

    images/train/000000.png ...  images/test/000000.png ...
    stage1.json   LLaVA format, one caption conversation per train image
    stage2.json   LLaVA format, multi-turn short-answer questions per train image
    test.jsonl    {"id", "image", "type", "subtype", "question", "options", "answer"} per probe
    scenes.jsonl  every image's objects (shape, colour, size, centre, half-extent, visible box)
    meta.json     seed, config, counts

Item i of a split is drawn from its own generators, seeded by (seed, split, i), so any item can
be made alone and the splits never share a stream. Test images that equal a train image (by
pixels) are redrawn; `meta.json` counts them. Masks come back keyed by image path (relative
to out_dir), in the segmenter's canonical order (see `og.data.shapes_scene`).
Probe questions carry no "<image>" token: the evaluator puts the image before the question, as
the training conversations do ("<image>\\n" + question).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from og.data.shapes_probes import PROBE_TYPES, Probe, probes
from og.data.shapes_scene import COLORS, SHAPES, SIZES, Scene, ShapeObject, ShapesConfig, generate_scene
from og.data.shapes_text import CAPTION_PROMPTS, QA, QUESTION_KINDS, caption, questions, vocabulary_text
from og.masks.masks import Masks

__all__ = [
    "COLORS", "PROBE_TYPES", "QA", "QUESTION_KINDS", "SHAPES", "SIZES", "Probe", "Scene", "ShapeObject",
    "ShapesConfig", "ShapesDataset", "ShapesFiles", "ShapesItem", "generate_scene", "vocabulary_text",
    "write_shapes",
]

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
    questions of `kinds` at `levels` for every split.
    """

    n: int
    seed: int = 0
    split: str = "train"
    config: ShapesConfig = field(default_factory=ShapesConfig)
    questions_per_image: int = 4
    kinds: tuple[str, ...] = tuple(QUESTION_KINDS)
    levels: tuple[int, ...] = (1, 2)
    probe_types: tuple[str, ...] = PROBE_TYPES
    exclude: frozenset[bytes] = frozenset()

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r}; use one of {tuple(SPLITS)}")
        if self.n < 0:
            raise ValueError(f"n={self.n}; use a count >= 0")
        bad = [k for k in self.kinds if k not in QUESTION_KINDS]
        if bad:
            raise ValueError(f"unknown question kinds {bad}; use some of {tuple(QUESTION_KINDS)}")

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
        qas = questions(scene, text, self.questions_per_image, self.kinds, self.levels)
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


@dataclass
class ShapesFiles:
    """What `write_shapes` wrote: paths, the oracle masks by image key, and counts."""

    out_dir: Path
    stage1: Path
    stage2: Path
    test: Path
    scenes: Path
    meta: Path
    masks: dict[str, Masks]
    counts: dict[str, int]


def _turns(pairs: list[tuple[str, str]]) -> list[dict[str, str]]:
    """LLaVA conversation: the image goes before the first question."""
    out = []
    for k, (q, a) in enumerate(pairs):
        out += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q}, {"from": "gpt", "value": a}]
    return out


def _scene_record(item: ShapesItem) -> dict:
    objs = [dataclasses.asdict(o) | {"box": [int(v) for v in box]}
            for o, box in zip(item.scene.objects, item.scene.boxes, strict=True)]
    return {"image": item.image_path, "objects": objs}


def _stage2(items: list[ShapesItem], curriculum: bool) -> list[dict]:
    if not curriculum:
        return [{"id": it.id, "image": it.image_path, "conversations": _turns([(q.question, q.answer) for q in it.qas])}
                for it in items if it.qas]
    out = []
    for level in (1, 2):
        for it in items:
            pairs = [(q.question, q.answer) for q in it.qas if q.level == level]
            if pairs:
                out.append({"id": f"{it.id}-l{level}", "image": it.image_path, "level": level,
                            "conversations": _turns(pairs)})
    return out


def _dump_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_shapes(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, image_size: int | None = None,
                 config: ShapesConfig | None = None, questions_per_image: int = 4, curriculum: bool = False,
                 probe_types: tuple[str, ...] = PROBE_TYPES, progress: bool = False) -> ShapesFiles:
    """Generate and write the train and test splits (layout in the module docstring).

    `image_size` overrides the config's side (64 by default). With `curriculum`, each train image
    gives two stage-2 records, one with its single-object questions (level 1) and one with the
    rest (level 2), and all level-1 records come first (the trainer must then not shuffle).
    Deterministic: the same arguments write the same bytes.
    """
    cfg = config or ShapesConfig()
    if image_size is not None:
        cfg = dataclasses.replace(cfg, image_size=image_size)
    out = Path(out_dir)
    for split in ("train", "test"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    kw = {"seed": seed, "config": cfg, "questions_per_image": questions_per_image}
    train = ShapesDataset(n_train, split="train", **kw)
    masks: dict[str, Masks] = {}
    seen: set[bytes] = set()

    def emit(items: Iterator[ShapesItem], n: int, label: str) -> list[ShapesItem]:
        if progress:
            from rich.progress import track
            items = track(items, total=n, description=f"shapes {label}")
        kept = []
        for it in items:
            Image.fromarray(it.scene.image).save(out / it.image_path, format="PNG")
            masks[it.image_path] = it.masks
            kept.append(it)
        return kept

    train_items = emit(iter(train), n_train, "train")
    seen.update(image_hash(it.scene.image) for it in train_items)
    test = ShapesDataset(n_test, split="test", probe_types=probe_types, exclude=frozenset(seen), **kw)
    test_items = emit(iter(test), n_test, "test")

    stage1 = [{"id": it.id, "image": it.image_path, "conversations": _turns([(it.caption_prompt, it.caption)])}
              for it in train_items]
    stage2 = _stage2(train_items, curriculum)
    rows = [{"id": f"{it.id}-{p.type}", "image": it.image_path, "type": p.type, "subtype": p.subtype,
             "question": p.question, "options": list(p.options), "answer": p.answer}
            for it in test_items for p in it.probes]
    counts = {"train_images": n_train, "test_images": n_test, "stage1": len(stage1), "stage2": len(stage2),
              "test_redrawn": sum(it.redraws > 0 for it in test_items)}
    counts |= {f"probes_{t}": sum(r["type"] == t for r in rows) for t in probe_types}
    files = ShapesFiles(out, out / "stage1.json", out / "stage2.json", out / "test.jsonl", out / "scenes.jsonl",
                        out / "meta.json", masks, counts)
    files.stage1.write_text(json.dumps(stage1))
    files.stage2.write_text(json.dumps(stage2))
    _dump_jsonl(files.test, rows)
    _dump_jsonl(files.scenes, [_scene_record(it) for it in train_items + test_items])
    meta = {"generator": "og.data.shapes", "seed": seed, "config": dataclasses.asdict(cfg), "curriculum": curriculum,
            "questions_per_image": questions_per_image, "probe_types": list(probe_types), "counts": counts,
            "mask_order": "Masks.sorted(): equal scores, so area descending, ties by top-most then left-most pixel"}
    files.meta.write_text(json.dumps(meta, indent=1))
    return files


def read_texts(out_dir: str | Path) -> list[str]:
    """Every text in a written dataset (conversation turns, probe questions and options)."""
    out = Path(out_dir)
    texts = [t["value"] for name in ("stage1.json", "stage2.json")
             for rec in json.loads((out / name).read_text()) for t in rec["conversations"]]
    for line in (out / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        texts += [row["question"], *row["options"]]
    return texts
