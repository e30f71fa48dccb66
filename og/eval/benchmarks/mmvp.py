"""MMVP: 300 questions on 150 CLIP-blind image pairs; the official score is pair accuracy.

Local copy: `Questions.csv` (Index, Question, Options "(a) X (b) Y", Correct Answer "(a)") and the
images `MMVP Images/<Index>.jpg`. Questions 2k-1 and 2k share a question on the two images of pair
k; a pair counts only when both are right. Per-question accuracy is reported too.

`fix_known_errors` swaps the ground truth of the two known mislabelled pairs (Index 99/100 and
279/280, tsb0601/MMVP#30), as lmms-eval's corrected copy does; it is applied only where the file
still has the original labels, and the results note what was changed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from og.eval.base import Benchmark, BenchmarkFormatError, Item, correct_flags, letter_index, percent, resolve_image
from og.eval.tables import read_records
from og.registry import BENCHMARKS

COLUMNS = ("Index", "Question", "Options", "Correct Answer")
# Index -> (label in the published file, corrected label)
KNOWN_ERRORS = {99: ("(a)", "(b)"), 100: ("(b)", "(a)"), 279: ("(a)", "(b)"), 280: ("(b)", "(a)")}


def parse_options(text: str, where: str) -> list[str]:
    """'(a) Open (b) Closed' -> ['Open', 'Closed']."""
    parts = re.split(r"\(([a-zA-Z])\)", str(text))
    letters, texts = parts[1::2], [p.strip() for p in parts[2::2]]
    expected = [chr(ord("a") + i) for i in range(len(letters))]
    if len(letters) < 2 or [x.lower() for x in letters] != expected or not all(texts):
        raise BenchmarkFormatError(f"{where}: options {text!r} are not like '(a) first (b) second'")
    return texts


def _label(answer: str) -> str:
    return f"({str(answer).strip().strip('().').lower()})"


@BENCHMARKS.register("mmvp")
class MMVP(Benchmark):
    """MMVP (CLIP-blind pairs): pair accuracy and per-question accuracy."""

    name = "mmvp"
    headline = ("pair_accuracy", "question_accuracy")
    OPTIONS = {"fix_known_errors": False}

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        csv_path = data_path / "Questions.csv" if data_path.is_dir() else data_path
        if not csv_path.is_file():
            raise FileNotFoundError(f"mmvp: {csv_path} not found; point --data at MMVP's Questions.csv or its folder")
        root = csv_path.parent
        rows = read_records(csv_path, COLUMNS, aliases={"lndex": "Index"})
        self.files = [csv_path]
        answers = {}
        for n, row in enumerate(rows):
            try:
                answers[int(row["Index"])] = _label(row["Correct Answer"])
            except ValueError:
                raise BenchmarkFormatError(f"{csv_path} row {n + 1}: Index {row['Index']!r} is not a number") from None
        if opts["fix_known_errors"]:
            answers = self._fix(answers)
        roots = [images_dir] if images_dir else [root / "MMVP Images", root]
        items = []
        for row in rows:
            index = int(row["Index"])
            where = f"{csv_path} Index {index}"
            options = parse_options(row["Options"], where)
            image = f"{index}.jpg"
            items.append(Item(
                id=str(index), image=resolve_image(image, roots), question=str(row["Question"]).strip(),
                options=options, answer=letter_index(answers[index], len(options), where),
                image_key=image, fields={"pair": (index - 1) // 2},
            ))
        return items

    def _fix(self, answers: dict[int, str]) -> dict[int, str]:
        fixed, already = [], []
        for index, (published, corrected) in KNOWN_ERRORS.items():
            if answers.get(index) == published:
                answers[index] = corrected
                fixed.append(index)
            elif answers.get(index) == corrected:
                already.append(index)
        self.notes["fix_known_errors"] = {"corrected": fixed, "already_correct": already}
        return answers

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        right = correct_flags(items, predictions)
        pairs: dict[int, list[bool]] = {}
        for it in items:
            pairs.setdefault(it.fields["pair"], []).append(right[it.id])
        complete = [all(flags) for flags in pairs.values() if len(flags) == 2]
        return {
            "pair_accuracy": percent(complete),
            "question_accuracy": percent(right.values()),
            "pairs": len(complete),
            "incomplete_pairs": sum(len(flags) != 2 for flags in pairs.values()),
        }
