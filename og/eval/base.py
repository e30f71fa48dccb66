"""The benchmark contract: `Item` (one multiple-choice question on one image) and `Benchmark`.

A benchmark reads its local files in their published format (`read`) and scores predictions with
the benchmark's official rule (`score`). Predictions map item id -> chosen option index, or None
when the model gave no usable answer or the image was missing: None always counts as wrong and is
never dropped from a denominator. Scores are percentages (0-100); a score over an empty group is
None. Each benchmark registers itself in `og.registry.BENCHMARKS`.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

LETTERS = string.ascii_uppercase
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


class BenchmarkFormatError(ValueError):
    """A benchmark file that is not in the expected format; the message names file, columns, found."""


@dataclass
class Item:
    """One question: an image, a question stem, its options and the index of the right one.

    `prompt` is the benchmark's own generative prompt when it publishes one (options inside);
    otherwise the prompt is built from `question` and lettered `options`. `context` is the prompt
    of likelihood mode (default: `question`), whose continuations are the option texts.
    `image_key` is the image as named in the benchmark file (the key of its masks in a MaskStore);
    `crop` (x, y, w, h) is applied to the image (and its masks) before the model sees it.
    `fields` carries what scoring groups by: pair, relation, attribute, source, order, partition, type.
    """

    id: str
    image: str | None
    question: str
    options: list[str]
    answer: int
    prompt: str | None = None
    context: str | None = None
    image_key: str = ""
    crop: tuple[int, int, int, int] | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"item {self.id!r}: answer index {self.answer} outside its {len(self.options)} options")
        if len(self.options) > len(LETTERS):
            raise ValueError(f"item {self.id!r}: {len(self.options)} options; at most {len(LETTERS)} supported")

    def generate_prompt(self) -> str:
        """The question with lettered options and the instruction to answer with the letter."""
        text = self.prompt or "\n".join(
            [self.question, *(f"{LETTERS[i]}. {opt}" for i, opt in enumerate(self.options))]
        )
        return text if ANSWER_INSTRUCTION in text else f"{text}\n{ANSWER_INSTRUCTION}"

    def likelihood_context(self) -> str:
        return self.context or self.question


class Benchmark:
    """Base class: `read` local files into items, `score` predictions the official way.

    Subclasses set `name`, `headline` (the score keys shown in tables and charts, first = main),
    `OPTIONS` (option name -> default), optionally `images_hint`, and implement `_read` and `score`. After `read`,
    `files` lists the data files read (hashed into the results) and `notes` what was applied
    (seed, corrections) so the results can report it.
    """

    name: ClassVar[str] = ""
    headline: ClassVar[tuple[str, ...]] = ("accuracy",)
    OPTIONS: ClassVar[dict[str, Any]] = {}
    images_hint: ClassVar[str] = ""  # where this benchmark's images come from, said when many are missing

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.notes: dict[str, Any] = {}

    def read(self, data_path: str | Path, images_dir: str | Path | None = None, **opts: Any) -> list[Item]:
        """Items from the benchmark's local files; unknown options and missing paths are errors."""
        unknown = sorted(set(opts) - set(self.OPTIONS))
        if unknown:
            valid = ", ".join(self.OPTIONS) or "(none)"
            raise ValueError(f"benchmark {self.name!r} has no option {unknown[0]!r}; valid: {valid}")
        data_path = Path(data_path)
        if not data_path.exists():
            raise FileNotFoundError(f"{self.name}: data path {data_path} does not exist")
        self.files, self.notes = [], {}
        items = self._read(data_path, Path(images_dir) if images_dir else None, {**self.OPTIONS, **opts})
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise BenchmarkFormatError(f"{self.name}: item id {dup!r} appears twice in {data_path}")
        return items

    def _read(self, data_path: Path, images_dir: Path | None, opts: dict[str, Any]) -> list[Item]:
        raise NotImplementedError

    def score(self, items: list[Item], predictions: dict[str, int | None]) -> dict[str, Any]:
        raise NotImplementedError


# ---- helpers shared by the benchmark modules ----


def percent(flags: Iterable[bool]) -> float | None:
    """Accuracy in percent of a sequence of right/wrong flags; None when empty."""
    flags = list(flags)
    return 100.0 * sum(flags) / len(flags) if flags else None


def correct_flags(items: list[Item], predictions: dict[str, int | None]) -> dict[str, bool]:
    """item id -> right or wrong (no prediction = wrong)."""
    return {it.id: predictions.get(it.id) == it.answer for it in items}


def group_accuracy(items: list[Item], right: dict[str, bool], key: Callable[[Item], Any]) -> dict[Any, float]:
    """Accuracy per group, groups in sorted order."""
    groups: dict[Any, list[bool]] = defaultdict(list)
    for it in items:
        groups[key(it)].append(right[it.id])
    return {g: percent(groups[g]) for g in sorted(groups)}


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values; None if any is None (a part is missing) or there are none."""
    values = list(values)
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def letter_index(text: Any, n_options: int, where: str) -> int:
    """Index of an answer written as a letter: "A", "(b)", "B.", "(A)"; an error naming `where` otherwise."""
    match = re.fullmatch(r"\s*\(?\s*([A-Za-z])\s*\)?\s*[.:]?\s*", str(text))
    index = LETTERS.index(match.group(1).upper()) if match else -1
    if not 0 <= index < n_options:
        raise BenchmarkFormatError(f"{where}: answer {text!r} is not a letter among the {n_options} options")
    return index


def resolve_image(name: str, roots: list[Path]) -> str:
    """The first root under which `name` exists; otherwise its path under the first root.

    Missing images are not an error here: the runner counts, lists and scores them as wrong.
    """
    path = Path(name)
    if path.is_absolute():
        return str(path)
    for root in roots:
        if (root / path).is_file():
            return str(root / path)
    return str(roots[0] / path)


def named_files(bench: str, data_path: Path, wanted: str, known: tuple[str, ...], file_name: Callable[[str], str],
                option: str) -> dict[str, Path]:
    """The files of a benchmark split into named parts (ConMe partitions, SugarCrepe files):
    the one file given, or `wanted` (comma-separated names from `known`) inside a folder."""
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"{bench}: unknown {option.rstrip('s')} {unknown[0]!r}; use some of {', '.join(known)}")
    files = {n: data_path / file_name(n) for n in names}
    absent = [str(f) for f in files.values() if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"{bench}: {', '.join(absent)} not found; pass {option}=... to read fewer")
    return files
