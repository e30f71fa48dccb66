"""`shapes`: the synthetic compositional benchmark of the quickstart (og.data's generator).

Its test split is `test.jsonl` in the data folder, one JSON object per line: {"id", "image" (path
relative to the data folder), "type" (attribute / binding / relation / replace / order), an
optional "subtype", "question", "options" [...], "answer" (index of the right option)}. Score:
accuracy overall, per type and per type/subtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from og.eval.base import Benchmark, BenchmarkFormatError, Item, correct_flags, group_accuracy, percent, resolve_image
from og.eval.tables import read_records
from og.registry import BENCHMARKS

TYPES = ("attribute", "binding", "relation", "replace", "order")
COLUMNS = ("id", "image", "type", "question", "options", "answer")


@BENCHMARKS.register("shapes")
class Shapes(Benchmark):
    """Synthetic shapes (quickstart): accuracy per question type and overall."""

    name = "shapes"
    headline = ("accuracy", *TYPES)
    OPTIONS = {"split": "test"}

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        path = data_path / f"{opts['split']}.jsonl" if data_path.is_dir() else data_path
        if not path.is_file():
            raise FileNotFoundError(f"shapes: {path} not found; generate the data first (og quickstart)")
        self.files = [path]
        roots = [images_dir] if images_dir else [path.parent]
        items = []
        for n, row in enumerate(read_records(path, COLUMNS), 1):
            where = f"{path}:{n}"
            if row["type"] not in TYPES:
                raise BenchmarkFormatError(f"{where}: type {row['type']!r} is not one of {', '.join(TYPES)}")
            options = row["options"]
            if not isinstance(options, list) or len(options) < 2:
                raise BenchmarkFormatError(f"{where}: options {options!r} must be a list of at least two strings")
            answer = row["answer"]
            if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
                raise BenchmarkFormatError(f"{where}: answer {answer!r} must index one of the {len(options)} options")
            image = str(row["image"])
            items.append(Item(
                id=str(row["id"]), image=resolve_image(image, roots), question=str(row["question"]),
                options=[str(o) for o in options], answer=answer, image_key=image,
                fields={"type": row["type"], "subtype": row.get("subtype")},
            ))
        return items

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        per_type = group_accuracy(items, right, lambda it: it.fields["type"])
        with_sub = [it for it in items if it.fields.get("subtype")]
        per_sub = group_accuracy(with_sub, right, lambda it: f"{it.fields['type']}/{it.fields['subtype']}")
        return {"accuracy": percent(right.values()), **{t: per_type.get(t) for t in TYPES},
                **{f"subtype/{k}": v for k, v in per_sub.items()}}
