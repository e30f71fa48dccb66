"""ConMe: hard compositional questions on COCO val2017, in three partitions.

Local copy: `replace-att.csv`, `replace-obj.csv`, `replace-rel.csv` (columns image, question with
the two options inside, answer letter, base_question, correct_option, incorrect_option,
question_format), or their `_HUMAN_FILTER` versions with `human_filter=True`.

Images: the CSVs name them `images/<COCO val2017 file>` (a bare id becomes `000000xxxxxx.jpg`).
An image is looked up by its COCO file name under --images (a COCO val2017 folder, or a folder
holding `images/`), else under `<data>/images` and `<data>`. Its mask key is the COCO file name
(`000000397133.jpg`), the key SugarCrepe uses too, so one val2017 mask store serves both.

The letter in `answer` is checked against the options written in `question`: when the question
puts `correct_option` under another letter, reading stops with an error naming the row; rows whose
question lists no lettered options matching the option columns are counted in the notes.

Score: `accuracy`, the size-weighted accuracy over the partitions read (every item counts once:
the number OG-LLaVA publishes), the accuracy per partition, and their unweighted `mean`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from og.eval.base import (
    LETTERS,
    Benchmark,
    BenchmarkFormatError,
    Item,
    correct_flags,
    group_accuracy,
    letter_index,
    mean,
    named_files,
    percent,
    resolve_image,
)
from og.eval.parse import normalize
from og.eval.tables import read_records
from og.registry import BENCHMARKS

PARTITIONS = ("replace-att", "replace-obj", "replace-rel")
COLUMNS = ("image", "question", "answer", "base_question", "correct_option", "incorrect_option")


def coco_filename(value: Any) -> str:
    """'397133' / 397133 / '397133.0' -> '000000397133.jpg'; 'images/000000397133.jpg' -> its file name."""
    text = str(value).strip()
    number = text[:-2] if text.endswith(".0") else text
    return f"{int(number):012d}.jpg" if number.isdigit() else Path(text).name


def _marker(letter: str) -> re.Pattern[str]:
    """An option letter as questions write it: 'A)', '(A)', 'A.', 'A:' after a space or at the start."""
    return re.compile(rf"(?<![^\s(\[])\(?{letter}[).:]\s*|\({letter.lower()}\)\s*")


def lettered_options(text: str) -> list[str]:
    """The options a question lists after the letters A, B, ... in order ('Q? A) x B) y' -> ['x', 'y'])."""
    starts, ends, pos = [], [], 0
    for letter in LETTERS:
        match = _marker(letter).search(text, pos)
        if match is None:
            break
        starts.append(match.start())
        ends.append(match.end())
        pos = match.end()
    if len(ends) < 2:
        return []
    bounds = [*starts[1:], len(text)]
    options = [text[a:b] for a, b in zip(ends, bounds, strict=True)]
    options[-1] = options[-1].split("\n")[0]  # the last option ends with its line
    return [o.strip() for o in options]


def check_answer(row: dict[str, Any], answer: int, where: str) -> bool:
    """True when the question's lettered options confirm the answer letter; False when they list no
    option matching `correct_option`; an error when they put it under another letter."""
    listed = [normalize(o) for o in lettered_options(str(row["question"]))]
    right = normalize(str(row["correct_option"]))
    if right not in listed:
        return False
    if listed.index(right) != answer:
        raise BenchmarkFormatError(
            f"{where}: answer {row['answer']!r} but the question lists the correct option "
            f"{str(row['correct_option']).strip()!r} as {LETTERS[listed.index(right)]}; fix that row")
    return True


@BENCHMARKS.register("conme")
class ConMe(Benchmark):
    """ConMe (replace-att / replace-obj / replace-rel): size-weighted accuracy, per partition, mean."""

    name = "conme"
    headline = ("accuracy", *PARTITIONS)
    OPTIONS = {"partitions": ",".join(PARTITIONS), "human_filter": False}

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        suffix = "_HUMAN_FILTER" if opts["human_filter"] else ""
        if data_path.is_file():
            files = {data_path.stem.replace("_HUMAN_FILTER", ""): data_path}
        else:
            files = named_files("conme", data_path, str(opts["partitions"]), PARTITIONS,
                                lambda p: f"{p}{suffix}.csv", "partitions")
        root = data_path if data_path.is_dir() else data_path.parent
        roots = [images_dir, images_dir / "images"] if images_dir else [root / "images", root]
        items, unverified = [], []
        for partition, path in files.items():
            self.files.append(path)
            for n, row in enumerate(read_records(path, COLUMNS)):
                where = f"{path} row {n + 1}"
                answer = letter_index(row["answer"], 2, where)
                if not check_answer(row, answer, where):
                    unverified.append(f"{partition}/{n}")
                right, wrong = str(row["correct_option"]).strip(), str(row["incorrect_option"]).strip()
                image = coco_filename(row["image"])
                items.append(Item(
                    id=f"{partition}/{n}", image=resolve_image(image, roots),
                    question=str(row["base_question"]).strip(), prompt=str(row["question"]).strip(),
                    options=[right, wrong] if answer == 0 else [wrong, right], answer=answer,
                    image_key=image, fields={"partition": partition},
                ))
        self.notes = {"answers_checked": len(items) - len(unverified), "answers_unverified": len(unverified),
                      "unverified_first": unverified[:5]}
        return items

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        per = group_accuracy(items, right, lambda it: it.fields["partition"])
        return {"accuracy": percent(right.values()), **per, "mean": mean(per.values())}
