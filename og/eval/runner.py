"""Pose a benchmark's items to an answerer in batches and score them; build the results record.

Items whose image is missing are not posed: they are counted, listed and scored as wrong (their
prediction is None), never dropped from a denominator. The others are batched in order of prompt
length (less padding); every result is keyed by item id, and masks are looked up per item by its
image key, so neither depends on an item's position. Inference is deterministic, and the answers
do not depend on the batch size (the model pads on the left and masks the padding).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from og.eval.answer import Answerer, answer_batch, check_mode, query_for
from og.eval.base import Benchmark, Item
from og.eval.mask_source import MaskSource, MissingMasksError, crop_masks
from og.eval.report import missing_images_warning
from og.eval.tables import sha256_file


def load_image(item: Item) -> tuple[Image.Image, tuple[int, int]]:
    """The item's image as the model sees it (RGB, cropped when the item says so) and the full (H, W)."""
    with Image.open(item.image) as img:
        image = img.convert("RGB")
    full = (image.height, image.width)
    if item.crop is not None:
        x, y, w, h = item.crop
        image = image.crop((max(x, 0), max(y, 0), min(x + w, image.width), min(y + h, image.height)))
    return image, full


def missing_images(items: list[Item]) -> list[str]:
    return [it.id for it in items if not it.image or not Path(it.image).is_file()]


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    disable=not enabled, transient=False)


def run_items(items: list[Item], answerer: Answerer, mode: str = "generate", batch_size: int = 8,
              masks: MaskSource | None = None, max_new_tokens: int = 16, progress: bool = False,
              description: str = "eval") -> dict[str, dict[str, Any]]:
    """item id -> answer record; items with a missing image get {"prediction": None, "missing_image": True}."""
    check_mode(mode)
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size}; use 1 or more")
    if answerer.needs_masks and masks is None:
        raise ValueError("the model uses masks; pass a MaskStore (--masks) or a segmenter (--segmenter)")
    lost = set(missing_images(items))
    records: dict[str, dict[str, Any]] = {i: {"prediction": None, "missing_image": True} for i in lost}
    todo = [it for it in items if it.id not in lost]
    if masks is not None and answerer.needs_masks:
        absent = masks.missing(sorted({it.image_key for it in todo}))
        if absent:
            raise MissingMasksError(f"{len(absent)} images have no masks in {masks.describe()} (first: {absent[0]!r}); "
                           "build them with `og masks build` or pass --segmenter")
    todo.sort(key=lambda it: len(query_for(it, mode, None, None).prompt))  # stable: ties keep file order
    with _progress(progress) as bar:
        task = bar.add_task(description, total=len(items))
        bar.advance(task, len(lost))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            queries = []
            for it in batch:
                image, full = load_image(it)
                item_masks = None
                if masks is not None and answerer.needs_masks:
                    item_masks = crop_masks(masks.get(it.image_key, image), it.crop, full, it.image_key)
                queries.append(query_for(it, mode, image, item_masks))
            records.update(answer_batch(answerer, mode, batch, queries, max_new_tokens=max_new_tokens))
            bar.advance(task, len(batch))
    return records


def evaluate(benchmark: Benchmark, items: list[Item], answerer: Answerer, mode: str = "generate",
             batch_size: int = 8, masks: MaskSource | None = None, max_new_tokens: int = 16,
             progress: bool = False) -> dict[str, Any]:
    """Run and score one benchmark; the record `write_results` stores (scores, predictions, provenance)."""
    records = run_items(items, answerer, mode, batch_size, masks, max_new_tokens, progress, benchmark.name)
    predictions = {it.id: records[it.id]["prediction"] for it in items}
    lost = [it.id for it in items if records[it.id].get("missing_image")]
    unanswered = [it.id for it in items if predictions[it.id] is None and not records[it.id].get("missing_image")]
    return {
        "benchmark": benchmark.name,
        "scores": benchmark.score(items, predictions),
        "headline": list(benchmark.headline),
        "n_items": len(items),
        "missing_images": len(lost),
        "missing_image_ids": lost,
        "missing_images_warning": missing_images_warning(benchmark.name, len(lost), len(items), benchmark.images_hint),
        "unanswered": len(unanswered),
        "notes": benchmark.notes,
        "data_files": {str(p): sha256_file(p) for p in benchmark.files},
        "predictions": [_prediction(it, records[it.id]) for it in items],
    }


def _prediction(item: Item, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.id, "prediction": record["prediction"], "answer": item.answer,
        "correct": record["prediction"] == item.answer, "image": item.image, "image_key": item.image_key,
        "crop": list(item.crop) if item.crop else None, "question": item.question, "options": item.options,
        **{k: v for k, v in record.items() if k != "prediction"}, "fields": item.fields,
    }


def results_record(runs: list[dict[str, Any]], answerer: Answerer, mode: str, batch_size: int,
                   masks: MaskSource | None, **extra: Any) -> dict[str, Any]:
    """The whole results file: the model, the mode, the mask source and one entry per benchmark."""
    return {
        "model": answerer.describe(), "mode": mode, "batch_size": batch_size,
        "likelihood": "summed log-likelihood of the option text" if mode == "likelihood" else None,
        "masks": masks.describe() if masks is not None and answerer.needs_masks else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "warnings": [run["missing_images_warning"] for run in runs if run.get("missing_images_warning")],
        **extra, "benchmarks": {run["benchmark"]: run for run in runs},
    }
