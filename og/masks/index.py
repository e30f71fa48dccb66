"""The store's index: key -> (shard, row), built from the shards' key columns; `merge` checks
every part's shards (one segmenter spec throughout), counts duplicates and saves the index.

A key seen twice (two runs that overlapped, a copied shard) keeps its first successful row in
shard-name order; a success supersedes an earlier failure. Both are counted as duplicates.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from og.masks.shards import INDEX, SHARD_DIR, StoreError, atomic_write_bytes, list_shards, read_columns, read_header


def scan(root: Path, shards: list[str]) -> pa.Table:
    """key, shard (file name), row, error, spec of every row of every shard, in shard order."""
    parts = []
    for name in shards:
        t = read_columns(root / SHARD_DIR / name, ["key", "error", "spec"])
        parts.append(pa.table({"key": t.column("key"), "shard": pa.array([name] * len(t), pa.string()),
                               "row": pa.array(np.arange(len(t), dtype=np.int32)), "error": t.column("error"),
                               "spec": t.column("spec")}))
    if not parts:
        return pa.table({"key": pa.array([], pa.string()), "shard": pa.array([], pa.string()),
                         "row": pa.array([], pa.int32()), "error": pa.array([], pa.string()),
                         "spec": pa.array([], pa.string())})
    return pa.concat_tables(parts)


def index_from_table(table: pa.Table, shards: list[str]) -> tuple[dict, dict, int]:
    """key -> (shard position, row) and key -> error; a key seen twice keeps its first success."""
    pos = {n: i for i, n in enumerate(shards)}
    index: dict[str, tuple[int, int]] = {}
    errors: dict[str, str] = {}
    dup = 0
    cols = [table.column(c).to_pylist() for c in ("key", "shard", "row", "error")]
    for key, shard, row, error in zip(*cols, strict=True):
        if key in index or (key in errors and error is not None):
            dup += 1
        elif error is not None:
            errors[key] = error
        else:
            dup += key in errors
            errors.pop(key, None)
            index[key] = (pos[shard], int(row))
    return index, errors, dup


def merge(path: str | os.PathLike) -> dict[str, Any]:
    """Join every part's shards: check one spec throughout, count duplicates, write the index."""
    root = Path(path)
    header = read_header(root)
    shards = [p.name for p in list_shards(root)]
    table = scan(root, shards)
    specs = set(table.column("spec").to_pylist())
    if specs - {header.spec}:
        bad = [s for s in shards if set(read_columns(root / SHARD_DIR / s, ["spec"]).column("spec").to_pylist())
               - {header.spec}]
        raise StoreError(f"shards {bad} of {root} hold masks of {sorted(specs - {header.spec})}, not the "
                         f"store's {header.spec!r}; refusing to mix: move them to their own store")
    index, errors, dup = index_from_table(table, shards)
    keep = table.select(["key", "shard", "row", "error"])
    sizes = {n: (root / SHARD_DIR / n).stat().st_size for n in shards}
    keep = keep.replace_schema_metadata({b"og_shards": json.dumps(sizes).encode()})
    sink = io.BytesIO()
    pq.write_table(keep, sink, compression="zstd")
    atomic_write_bytes(root / INDEX, sink.getvalue())
    return {"images": len(index), "failures": len(errors), "duplicates": dup, "shards": len(shards)}
