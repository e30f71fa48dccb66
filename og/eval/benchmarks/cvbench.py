"""CV-Bench (Cambrian-1): 2-D (ADE20K, COCO) and 3-D (Omni3D) vision-centric questions.

Local copy: `test_2d.jsonl` and `test_3d.jsonl` (or one `.jsonl`/`.json`/`.csv`/`.parquet` file)
with idx, type, task, question, choices, answer "(A)", prompt (question and choices pre-formatted),
filename (the image under `img/`), source. Images are looked up under --images, then `<data>`.
Official score: overall = ((accuracy on ADE20K + accuracy on COCO) / 2 + accuracy on Omni3D) / 2.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from og.eval.base import (
    Benchmark,
    BenchmarkFormatError,
    Item,
    correct_flags,
    group_accuracy,
    letter_index,
    mean,
    percent,
    resolve_image,
)
from og.eval.tables import find_table, read_records
from og.registry import BENCHMARKS

COLUMNS = ("idx", "type", "task", "prompt", "choices", "answer", "filename", "source")
SOURCES = ("ADE20K", "COCO", "Omni3D")


def _choices(value: Any, where: str) -> list[str]:
    if isinstance(value, str):  # a CSV cell holding a list
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            value = None
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise BenchmarkFormatError(f"{where}: choices {value!r} must be a list of at least two answers")
    return [str(v) for v in value]


@BENCHMARKS.register("cvbench")
class CVBench(Benchmark):
    """CV-Bench: overall = ((ADE20K + COCO)/2 + Omni3D)/2, with 2-D, 3-D, per-source and per-task accuracy."""

    name = "cvbench"
    images_hint = "CV-Bench's current release ships no img/ folder: rebuild it with the dataset's build_img.py"
    headline = ("overall", "2d", "3d")
    OPTIONS: dict[str, Any] = {}

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        if data_path.is_file():
            files = [data_path]
        else:
            files = [f for f in (find_table(data_path, "test_2d"), find_table(data_path, "test_3d")) if f]
            files = files or [f for f in (find_table(data_path, "test"),) if f]
            if not files:
                raise FileNotFoundError(f"cvbench: no test_2d.jsonl / test_3d.jsonl / test.jsonl in {data_path}")
        root = data_path if data_path.is_dir() else data_path.parent
        roots = [images_dir] if images_dir else [root]
        items = []
        for path in files:
            self.files.append(path)
            for row in read_records(path, COLUMNS):
                where = f"{path} idx {row['idx']}"
                if row["source"] not in SOURCES:
                    raise BenchmarkFormatError(f"{where}: source {row['source']!r} is not one of {', '.join(SOURCES)}")
                choices = _choices(row["choices"], where)
                image = str(row["filename"])
                items.append(Item(
                    id=str(row["idx"]), image=resolve_image(image, roots),
                    question=str(row.get("question") or row["prompt"]).strip(), prompt=str(row["prompt"]).strip(),
                    options=choices, answer=letter_index(row["answer"], len(choices), where), image_key=image,
                    fields={"source": row["source"], "task": row["task"], "type": row["type"]},
                ))
        return items

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        per_source = group_accuracy(items, right, lambda it: it.fields["source"])
        ade, coco, omni = (per_source.get(s) for s in SOURCES)
        two_d = mean([ade, coco])
        three_d = omni
        per_task = group_accuracy(items, right, lambda it: f"{it.fields['type']}/{it.fields['task']}")
        return {
            "overall": mean([two_d, three_d]), "2d": two_d, "3d": three_d,
            **{s: per_source.get(s) for s in SOURCES}, **{f"task/{k}": v for k, v in per_task.items()},
            "accuracy": percent(right.values()),
        }
