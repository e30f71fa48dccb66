"""ConMe: hard compositional questions on COCO val2017, in three partitions; accuracy per partition.

Local copy: `replace-att.csv`, `replace-obj.csv`, `replace-rel.csv` (columns image, question with
the two options inside, answer letter, base_question, correct_option, incorrect_option,
question_format), or their `_HUMAN_FILTER` versions with `human_filter=True`. Images are COCO
val2017 files named in `image` (a bare id becomes `000000xxxxxx.jpg`), looked up under --images,
then `<data>/images`, then `<data>`. Score: accuracy per partition and their mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from og.eval.base import (
    Benchmark,
    Item,
    correct_flags,
    group_accuracy,
    letter_index,
    mean,
    named_files,
    percent,
    resolve_image,
)
from og.eval.tables import read_records
from og.registry import BENCHMARKS

PARTITIONS = ("replace-att", "replace-obj", "replace-rel")
COLUMNS = ("image", "question", "answer", "base_question", "correct_option", "incorrect_option")


def coco_filename(value: Any) -> str:
    """'397133' / 397133 / '397133.0' -> '000000397133.jpg'; file names are kept as they are."""
    text = str(value).strip()
    number = text[:-2] if text.endswith(".0") else text
    return f"{int(number):012d}.jpg" if number.isdigit() else text


@BENCHMARKS.register("conme")
class ConMe(Benchmark):
    """ConMe (replace-att / replace-obj / replace-rel): accuracy per partition and their mean."""

    name = "conme"
    headline = ("mean", *PARTITIONS)
    OPTIONS = {"partitions": ",".join(PARTITIONS), "human_filter": False}

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        suffix = "_HUMAN_FILTER" if opts["human_filter"] else ""
        if data_path.is_file():
            files = {data_path.stem.replace("_HUMAN_FILTER", ""): data_path}
        else:
            files = named_files("conme", data_path, str(opts["partitions"]), PARTITIONS,
                                lambda p: f"{p}{suffix}.csv", "partitions")
        root = data_path if data_path.is_dir() else data_path.parent
        roots = [images_dir] if images_dir else [root / "images", root]
        items = []
        for partition, path in files.items():
            self.files.append(path)
            for n, row in enumerate(read_records(path, COLUMNS)):
                answer = letter_index(row["answer"], 2, f"{path} row {n + 1}")
                right, wrong = str(row["correct_option"]).strip(), str(row["incorrect_option"]).strip()
                image = coco_filename(row["image"])
                items.append(Item(
                    id=f"{partition}/{n}", image=resolve_image(image, roots),
                    question=str(row["base_question"]).strip(), prompt=str(row["question"]).strip(),
                    options=[right, wrong] if answer == 0 else [wrong, right], answer=answer,
                    image_key=image, fields={"partition": partition},
                ))
        return items

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        per = group_accuracy(items, right, lambda it: it.fields["partition"])
        return {"mean": mean(per.values()), **per, "accuracy": percent(right.values())}
