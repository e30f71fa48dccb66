"""The on-disk format of a MaskStore: a header file, parquet shards, atomic writes, validation.

```
STORE/
  store.json                      {"format": "og-maskstore", "format_version", "spec", "weights",
                                   "og_version", "image_root"}
  shards/p0003of0008-00012.parquet one file per flush of one work part; never rewritten
  shards/.p0003of0008-00013.parquet.tmp   a flush in progress (discarded on resume)
  index.parquet                   key -> (shard, row), written by `merge` (rebuilt in memory if stale)
```
A shard row is one image: key, height, width, counts (compressed COCO RLE per mask), scores,
areas, num_masks, spec, og_version, error (null, or why the image failed: then no masks).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = "og-maskstore"
FORMAT_VERSION = 1
HEADER = "store.json"
INDEX = "index.parquet"
SHARD_DIR = "shards"
SHARD_RE = re.compile(r"^p(\d{4,})of(\d{4,})-(\d{5,})\.parquet$")

SCHEMA = pa.schema([
    ("key", pa.string()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("counts", pa.list_(pa.binary())),
    ("scores", pa.list_(pa.float32())),
    ("areas", pa.list_(pa.int64())),
    ("num_masks", pa.int32()),
    ("spec", pa.string()),
    ("og_version", pa.string()),
    ("error", pa.string()),
])


class StoreError(ValueError):
    """A store that cannot be used as asked (another spec, corrupt shard, missing header)."""


class CorruptShardError(StoreError):
    """A shard file that cannot be read; `.path` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"corrupt or truncated shard {path} ({reason}); rerun `og masks build` on this "
                         "store to rebuild it (its images are segmented again)")
        self.path = path


def shard_name(part: int, parts: int, seq: int) -> str:
    return f"p{part:04d}of{parts:04d}-{seq:05d}.parquet"


def list_shards(root: Path) -> list[Path]:
    """Finished shard files, sorted by name."""
    folder = root / SHARD_DIR
    return sorted(p for p in folder.iterdir() if SHARD_RE.match(p.name)) if folder.is_dir() else []


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_table(path: Path, table: pa.Table, rows_per_group: int = 8) -> None:
    """Write a parquet file to `.NAME.tmp`, fsync, then rename: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, row_group_size=max(1, rows_per_group), compression="zstd",
                   write_page_checksum=True)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def open_shard(path: Path) -> pq.ParquetFile:
    """The parquet file with its footer read; a truncated/corrupt file raises CorruptShardError."""
    try:
        pf = pq.ParquetFile(path, memory_map=True, page_checksum_verification=True)
        if pf.schema_arrow.names != SCHEMA.names:
            raise ValueError(f"columns {pf.schema_arrow.names} are not a mask shard's")
        return pf
    except (OSError, ValueError, pa.ArrowException) as err:
        raise CorruptShardError(path, f"{type(err).__name__}: {err}") from None


def read_columns(path: Path, columns: list[str]) -> pa.Table:
    """Whole columns of one shard (validating it); errors name the shard."""
    pf = open_shard(path)
    try:
        return pf.read(columns=columns)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise CorruptShardError(path, f"{type(err).__name__}: {err}") from None


@dataclass(frozen=True)
class Header:
    spec: str
    weights: str | None
    og_version: str
    image_root: str | None = None  # where the images were read from (informative, for `og masks show`)

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, "spec": self.spec,
                           "weights": self.weights, "og_version": self.og_version,
                           "image_root": self.image_root}, indent=1).encode()


def read_header(root: Path) -> Header:
    path = root / HEADER
    if not path.is_file():
        what = "does not exist" if not root.exists() else f"has no {HEADER}"
        raise StoreError(f"mask store {root} {what}; build one with `og masks build ... --out {root}`")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != FORMAT or data.get("format_version", 0) > FORMAT_VERSION:
        raise StoreError(f"{path} is not an og mask store of format version <= {FORMAT_VERSION}: {data}")
    return Header(data["spec"], data.get("weights"), data.get("og_version", "?"), data.get("image_root"))


def create_or_check_header(root: Path, header: Header) -> Header:
    """Create the header atomically (first writer wins, via link), else check it matches."""
    root.mkdir(parents=True, exist_ok=True)
    (root / SHARD_DIR).mkdir(exist_ok=True)
    path = root / HEADER
    if not path.exists():
        tmp = root / f".{HEADER}.{os.getpid()}.tmp"
        tmp.write_bytes(header.to_json())
        try:
            os.link(tmp, path)  # fails if another writer created it meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    found = read_header(root)
    if found.spec != header.spec:
        raise StoreError(f"mask store {root} holds masks of segmenter {found.spec!r}, not {header.spec!r}; "
                         "refusing to mix: use another --out or the same segmenter spec")
    if header.weights is not None and found.weights is not None and found.weights != header.weights:
        raise StoreError(f"mask store {root} was written with weights {found.weights!r}, not "
                         f"{header.weights!r}; refusing to mix: use another --out or the same checkpoint")
    return found
