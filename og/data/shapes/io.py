"""Writing a `shapes` dataset to disk (layout in `og.data.shapes`) and its oracle MaskStore."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from og.data.shapes.dataset import ShapesDataset, ShapesItem, image_hash
from og.data.shapes.probes import PROBE_TYPES, Probe
from og.data.shapes.render import shape_mask, visible_masks
from og.data.shapes.scene import ShapesConfig
from og.data.shapes.text import DEFAULT_KINDS, QA, check_kinds, every_question
from og.masks.masks import Masks

_DRILL = 3  # the random stream of the drill records' question order
ORACLE_SPEC = "given:shapes-oracle"  # the segmenter spec id the oracle store is written under


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


@dataclass(frozen=True)
class _Written:
    """What is kept of an item once its image is on disk: its text and its objects."""

    id: str
    image_path: str
    caption_prompt: str
    caption: str
    qas: tuple[QA, ...]
    probes: tuple[Probe, ...]
    redraws: int
    scene: dict
    drill: tuple[QA, ...] = ()


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


def _stage2(items: list[_Written], curriculum: bool) -> list[dict]:
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


FILES = ("stage1.json", "stage2.json", "test.jsonl", "scenes.jsonl", "meta.json")


def _clear(out: Path, identity: dict, overwrite: bool) -> None:
    """Refuse (or, with overwrite, remove) a different dataset already written in `out`."""
    meta = out / "meta.json"
    if not meta.is_file() or json.loads(meta.read_text()).get("identity") == json.loads(json.dumps(identity)):
        return
    if not overwrite:
        raise FileExistsError(f"{out} holds another shapes dataset (other seed, sizes or config); "
                              "pass an empty folder or overwrite=True")
    for split in ("train", "test"):
        shutil.rmtree(out / "images" / split, ignore_errors=True)
    for name in FILES:
        (out / name).unlink(missing_ok=True)


def write_shapes(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, image_size: int | None = None,
                 config: ShapesConfig | None = None, questions_per_image: int | None = 4, curriculum: bool = False,
                 probe_types: tuple[str, ...] = PROBE_TYPES, progress: bool = False, return_masks: bool = True,
                 overwrite: bool = False, kinds: tuple[str, ...] | None = None,
                 drill_kinds: tuple[str, ...] = ()) -> ShapesFiles:
    """Generate and write the train and test splits (layout in the module docstring).

    `image_size` overrides the config's side (64 by default). `questions_per_image=None` writes every
    question each training image has (about 14 an image at 1-3 objects) instead of 4. With
    `curriculum`, each train image gives two stage-2 records, one with its single-object questions
    (level 1) and one with the rest (level 2), and all level-1 records come first (the trainer must
    then not shuffle).
    Deterministic: the same arguments write the same bytes; writing again into the same folder
    with the same arguments rewrites it, other arguments need `overwrite=True` (which first
    removes the old images and files). `return_masks=False` keeps memory flat for big runs
    (`oracle_masks(out_dir)` redraws them later). `kinds` picks the question kinds (None: `DEFAULT_KINDS`,
    every kind but the opt-in centre questions). `drill_kinds` adds, per train image, one more stage-2
    record holding every question of those kinds the image has (`every_question`; e.g. `CENTER_KINDS`:
    where each named object lies), after the others; the records drawn from `kinds` stay the same.
    """
    cfg = config or ShapesConfig()
    if image_size is not None:
        cfg = dataclasses.replace(cfg, image_size=image_size)
    out = Path(out_dir)
    check_kinds(drill_kinds, "drill")
    identity = {"seed": seed, "n_train": n_train, "n_test": n_test, "config": dataclasses.asdict(cfg),
                "questions_per_image": questions_per_image, "curriculum": curriculum, "probe_types": list(probe_types)}
    if kinds is not None and tuple(kinds) != DEFAULT_KINDS:
        identity["kinds"] = list(kinds)  # only when chosen: folders written before the option keep their identity
    if drill_kinds:
        identity["drill_kinds"] = list(drill_kinds)
    _clear(out, identity, overwrite)
    for split in ("train", "test"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    kw = {"seed": seed, "config": cfg, "questions_per_image": questions_per_image,
          "kinds": DEFAULT_KINDS if kinds is None else tuple(kinds)}
    masks: dict[str, Masks] = {}
    hashes: set[bytes] = set()

    def emit(dataset: ShapesDataset, label: str) -> list[_Written]:
        items: Iterator[ShapesItem] = iter(dataset)
        if progress:
            from rich.progress import track
            items = track(items, total=len(dataset), description=f"shapes {label}")
        kept = []
        for it in items:
            Image.fromarray(it.scene.image).save(out / it.image_path, format="PNG")
            if return_masks:
                masks[it.image_path] = it.masks
            if label == "train":
                hashes.add(image_hash(it.scene.image))
            drill = ()
            if label == "train" and drill_kinds:  # a stream of its own: the other records do not change
                drill = tuple(every_question(it.scene, np.random.default_rng([seed, _DRILL, len(kept)]), drill_kinds))
            kept.append(_Written(it.id, it.image_path, it.caption_prompt, it.caption, it.qas, it.probes,
                                 it.redraws, _scene_record(it), drill))
        return kept

    train_items = emit(ShapesDataset(n_train, split="train", **kw), "train")
    test_items = emit(ShapesDataset(n_test, split="test", probe_types=probe_types, exclude=frozenset(hashes), **kw),
                      "test")

    stage1 = [{"id": it.id, "image": it.image_path, "conversations": _turns([(it.caption_prompt, it.caption)])}
              for it in train_items]
    stage2 = _stage2(train_items, curriculum)
    stage2 += [{"id": f"{it.id}-drill", "image": it.image_path, "conversations": _turns([(q.question, q.answer)
                                                                                         for q in it.drill])}
               for it in train_items if it.drill]
    rows = [{"id": f"{it.id}-{p.type}", "image": it.image_path, "type": p.type, "subtype": p.subtype,
             "question": p.question, "options": list(p.options), "answer": p.answer}
            for it in test_items for p in it.probes]
    counts = {"train_images": n_train, "test_images": n_test, "stage1": len(stage1), "stage2": len(stage2),
              "test_redrawn": sum(it.redraws > 0 for it in test_items)}
    counts |= {f"probes_{t}": sum(r["type"] == t for r in rows) for t in probe_types}
    files = ShapesFiles(out, *(out / name for name in FILES), masks, counts)
    files.stage1.write_text(json.dumps(stage1))
    files.stage2.write_text(json.dumps(stage2))
    _dump_jsonl(files.test, rows)
    _dump_jsonl(files.scenes, [it.scene for it in train_items + test_items])
    meta = {"generator": "og.data.shapes", "identity": identity, "counts": counts,
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


def oracle_masks(out_dir: str | Path) -> dict[str, Masks]:
    """The oracle masks of a written dataset, redrawn exactly from `scenes.jsonl` (the same
    geometry as the images), keyed by image path, in the canonical order."""
    out = Path(out_dir)
    size = json.loads((out / "meta.json").read_text())["identity"]["config"]["image_size"]
    masks = {}
    for line in (out / "scenes.jsonl").read_text().splitlines():
        rec = json.loads(line)
        full = np.stack([shape_mask(o["shape"], o["cx"], o["cy"], o["r"], size, size) for o in rec["objects"]])
        vis = visible_masks(full)  # (N, H, W)
        masks[rec["image"]] = Masks(vis, np.ones(len(vis), np.float32)).sorted()
    return masks


def write_oracle_store(out_dir: str | Path, store_dir: str | Path, masks: dict[str, Masks] | None = None,
                       spec_id: str = ORACLE_SPEC) -> dict:
    """Write the oracle masks (given, or redrawn from `out_dir`) into a MaskStore at `store_dir`
    and index it; returns `merge`'s summary (images, failures, duplicates, shards)."""
    from og.masks.store import merge
    from og.masks.writer import MaskStoreWriter

    masks = oracle_masks(out_dir) if masks is None else masks
    with MaskStoreWriter(store_dir, spec_id) as writer:
        for key in sorted(masks):
            writer.add(key, masks[key])
    return merge(store_dir)
