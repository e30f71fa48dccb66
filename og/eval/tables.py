"""Reading benchmark files (CSV, JSON, JSONL, Parquet) into records, checking their columns.

Every reader names the file, the columns it expects and the columns it found when the format
is wrong, so a user pointing at the wrong file sees at once what is off.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from og.eval.base import BenchmarkFormatError

TABLE_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise BenchmarkFormatError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict):  # {id: record} (SugarCrepe) -> records with their key as "id"
        if not all(isinstance(v, dict) for v in data.values()):
            raise BenchmarkFormatError(f"{path}: expected a list of records or {{id: record}}; found a dict of values")
        return [{"id": str(k), **v} for k, v in data.items()]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkFormatError(f"{path}: expected a list of records (JSON objects); found {type(data).__name__}")
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchmarkFormatError(f"{path}:{n}: not a JSON line ({err})") from None
        if not isinstance(row, dict):
            raise BenchmarkFormatError(f"{path}:{n}: expected a JSON object per line; found {type(row).__name__}")
        rows.append(row)
    return rows


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return [dict(r) for r in csv.DictReader(f)]


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


READERS = {".csv": _read_csv, ".json": _read_json, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def read_records(path: Path, required: tuple[str, ...], aliases: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Records of a table file with at least the `required` columns (checked on every record).

    `aliases` renames columns first (e.g. the misspelt `lndex` of some MMVP copies -> `Index`).
    """
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise BenchmarkFormatError(f"{path}: unsupported file type {path.suffix!r}; use one of {', '.join(READERS)}")
    rows = reader(path)
    if aliases:
        rows = [{aliases.get(k, k): v for k, v in r.items()} for r in rows]
    if not rows:
        raise BenchmarkFormatError(f"{path}: no records; expected columns {', '.join(required)}")
    for n, row in enumerate(rows):
        _check_columns(path if n == 0 else f"{path} (record {n})", list(row), required)
    return rows


def _check_columns(where: Any, found: list[Any], required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in found]
    if missing:
        raise BenchmarkFormatError(f"{where}: expected columns {', '.join(required)}; found "
                                   f"{', '.join(map(str, found)) or '(none)'} (missing {', '.join(missing)})")


def iter_records(path: Path, required: tuple[str, ...], aliases: dict[str, str] | None = None,
                 batch_size: int = 64) -> Iterator[dict[str, Any]]:
    """`read_records`, but a Parquet file is streamed in batches of rows (tables with embedded images)."""
    if path.suffix.lower() != ".parquet":
        yield from read_records(path, required, aliases)
        return
    import pyarrow.parquet as pq

    aliases = aliases or {}
    table = pq.ParquetFile(path)
    _check_columns(path, [aliases.get(n, n) for n in table.schema_arrow.names], required)
    if table.metadata.num_rows == 0:
        raise BenchmarkFormatError(f"{path}: no records; expected columns {', '.join(required)}")
    for batch in table.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            yield {aliases.get(k, k): v for k, v in row.items()}


def find_table(directory: Path, stem: str) -> Path | None:
    """`directory/stem.<csv|json|jsonl|parquet>`, the first that exists."""
    for suffix in TABLE_SUFFIXES:
        if (directory / f"{stem}{suffix}").is_file():
            return directory / f"{stem}{suffix}"
    return None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
