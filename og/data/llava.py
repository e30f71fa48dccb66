"""LLaVA-format conversations: read JSON / JSONL files, check them, mix several with weights.

A record is ``{"id": ..., "image": "rel/path.jpg" (optional), "conversations": [{"from":
"human", "value": "<image>\\nWhat is ..."}, {"from": "gpt", "value": "..."}, ...]}``.
Roles ``human``/``user`` become ``user``, ``gpt``/``assistant`` become ``assistant``, a leading
``system`` turn is kept. Rules (each broken rule is an error naming the file and line / record):

- turns alternate user, assistant, ... and end with an assistant turn;
- an image record has exactly one ``<image>`` marker; when it has none, ``<image>\\n`` is put
  in front of the first user turn (LLaVA's own convention); a record without an image has none;
- a malformed JSON line (JSONL) or file (JSON) names the file and the line.

Mixing: ``FILE[:WEIGHT]`` takes ``round(WEIGHT * n)`` records of a file of ``n``: whole copies
for the integer part and a seeded random subset for the rest (0.5 = a random half, 2 = twice).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

IMAGE_MARKER = "<image>"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class DataFormatError(ValueError):
    """A record or file that does not follow the LLaVA format; the message names where."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """One training sample: an optional image (relative path) and its role-tagged turns."""

    id: str
    image: str | None
    turns: tuple[tuple[str, str], ...]  # ((role, text), ...), roles: system / user / assistant
    source: str = ""  # "file:line" it came from

    @property
    def has_image(self) -> bool:
        return self.image is not None

    def approx_length(self) -> int:
        """Words of all turns: a cheap length for length-grouped sampling (no tokenizing)."""
        return sum(len(text.split()) for _, text in self.turns)


@dataclass(frozen=True)
class DataSource:
    """A file to read and its mixing weight; `image_root` overrides the dataset's root."""

    path: str
    weight: float = 1.0
    image_root: str | None = None

    @classmethod
    def parse(cls, text: str) -> DataSource:
        """`FILE` or `FILE:WEIGHT` (the suffix after the last ':' when it is a number)."""
        head, sep, tail = text.rpartition(":")
        if sep and head:
            try:
                return cls(head, float(tail))
            except ValueError:
                pass
        return cls(text)

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise DataFormatError(f"data weight {self.weight} for {self.path}: use a number >= 0")


def parse_record(raw: object, where: str) -> Conversation:
    """Check one LLaVA record and turn it into a `Conversation`; errors name `where`."""
    if not isinstance(raw, dict):
        raise DataFormatError(f"{where}: a record must be a JSON object, got {type(raw).__name__}")
    convs = raw.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise DataFormatError(f"{where}: record {raw.get('id')!r} has no 'conversations' list")
    rid = str(raw.get("id", where))
    image = raw.get("image")
    if image is not None and not isinstance(image, str):
        raise DataFormatError(f"{where}: record {rid!r} 'image' must be one path string, got {image!r}")
    turns: list[tuple[str, str]] = []
    for i, turn in enumerate(convs):
        if not isinstance(turn, dict) or "value" not in turn:
            raise DataFormatError(f"{where}: record {rid!r} turn {i} needs 'from' and 'value'")
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise DataFormatError(
                f"{where}: record {rid!r} turn {i} has role {turn.get('from')!r}; use one of {sorted(ROLES)}"
            )
        turns.append((role, str(turn["value"])))
    body = turns[1:] if turns[0][0] == "system" else turns
    expected = ["user", "assistant"] * (len(body) // 2 + 1)
    if not body or [r for r, _ in body] != expected[: len(body)] or body[-1][0] != "assistant":
        raise DataFormatError(
            f"{where}: record {rid!r} turns must alternate human, gpt, ... and end with gpt; "
            f"got {[r for r, _ in turns]}"
        )
    n_markers = sum(text.count(IMAGE_MARKER) for _, text in turns)
    if image is None and n_markers:
        raise DataFormatError(f"{where}: record {rid!r} has an {IMAGE_MARKER} marker but no 'image'")
    if image is not None and n_markers > 1:
        raise DataFormatError(f"{where}: record {rid!r} has {n_markers} {IMAGE_MARKER} markers; one image takes one")
    if image is not None and n_markers == 0:
        first = len(turns) - len(body)  # index of the first user turn
        turns[first] = ("user", f"{IMAGE_MARKER}\n{body[0][1]}")
    return Conversation(rid, image, tuple(turns), where)


def read_llava(path: str | Path) -> list[Conversation]:
    """Every record of a LLaVA JSON (a list) or JSONL (one object a line) file, checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    if path.suffix == ".jsonl":
        out = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFormatError(f"{path}:{lineno}: malformed JSON line ({err.msg})") from None
                out.append(parse_record(raw, f"{path}:{lineno}"))
        return out
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: a .json data file must hold a list of records (use .jsonl for lines)")
    return [parse_record(raw, f"{path}:record {i}") for i, raw in enumerate(data)]


def mix(sources: list[DataSource | str], seed: int = 0) -> list[tuple[Conversation, str | None]]:
    """Records of every source, each taken round(weight * n) times; pairs (record, image root)."""
    rng = random.Random(seed)
    out: list[tuple[Conversation, str | None]] = []
    for src in sources:
        src = DataSource.parse(src) if isinstance(src, str) else src
        records = read_llava(src.path)
        whole, frac = divmod(src.weight, 1.0)
        picked = records * int(whole) + rng.sample(records, round(frac * len(records)))
        out.extend((r, src.image_root) for r in picked)
    return out
