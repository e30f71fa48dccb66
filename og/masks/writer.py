"""Writing a MaskStore: `MaskStoreWriter` (add masks from anywhere) and the work split.

Resume: a writer first discards its own unfinished temp shard, moves corrupt shards aside
(`*.corrupt`, their images are done again), and reads the keys of every finished shard; those
are skipped by `build_store` and refused by `add` (it returns False). Shards are written every
`flush_every` images, atomically, so a killed run loses at most that many images of work and
never leaves a duplicate or a partial row.

Work split: image `key` belongs to part `sha1(key) mod parts`, independent of listing order.
With `--shard i/n` and RANK / WORLD_SIZE from torchrun or deepspeed, the part is
`i * world + rank` of `n * world`; each part writes its own shard files, with a lock file so
two processes never write the same part.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from og.masks.masks import Masks
from og.masks.shards import (
    SCHEMA,
    SHARD_DIR,
    SHARD_RE,
    CorruptShardError,
    Header,
    atomic_write_table,
    create_or_check_header,
    list_shards,
    read_columns,
    shard_name,
)

log = logging.getLogger(__name__)


def part_of(key: str, parts: int) -> int:
    """The work part (0..parts-1) an image key belongs to; stable across runs and machines."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") % parts


def env_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun / deepspeed's RANK and WORLD_SIZE (0, 1 when unset)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is not in [0, WORLD_SIZE={world})")
    return rank, world


def resolve_part(shard: tuple[int, int] = (0, 1)) -> tuple[int, int]:
    """Combine `--shard i/n` with the launcher's rank and world size into (part, parts)."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {i}/{n}: need 0 <= i < n (e.g. --shard 0/4 ... --shard 3/4)")
    rank, world = env_rank()
    return i * world + rank, n * world


def _og_version() -> str:
    from og import __version__

    return __version__


class MaskStoreWriter:
    """Append images' masks to a store, as one work part; use as a context manager or `close()`."""

    def __init__(self, out: str | os.PathLike, spec_id: str, part: tuple[int, int] = (0, 1),
                 flush_every: int = 256, rows_per_group: int = 8, weights: str | None = None,
                 image_root: str | None = None) -> None:
        self.root = Path(out)
        self.part, self.parts = part
        if not 0 <= self.part < self.parts:
            raise ValueError(f"part {self.part} of {self.parts} is out of range")
        self.flush_every, self.rows_per_group = max(1, flush_every), rows_per_group
        self.og_version = _og_version()
        self.header = create_or_check_header(self.root, Header(spec_id, weights, self.og_version, image_root))
        self.spec_id = spec_id
        self.prefix = shard_name(self.part, self.parts, 0).rsplit("-", 1)[0]
        self._lock = open(self.root / SHARD_DIR / f".{self.prefix}.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(f"another process is writing part {self.part}/{self.parts} of {self.root}; "
                               "wait for it or kill it") from None
        self.discarded_temp, self.rebuilt = self._recover()
        self.done: set[str] = set()
        own_seq = [-1]
        for path in list_shards(self.root):
            self.done.update(read_columns(path, ["key"]).column("key").to_pylist())
            m = SHARD_RE.match(path.name)
            if m and path.name.startswith(self.prefix + "-"):
                own_seq.append(int(m.group(3)))
        self.seq = max(own_seq) + 1
        self._rows: list[dict] = []
        self.written = self.failed = self.skipped = 0

    def _recover(self) -> tuple[int, list[str]]:
        """Drop this part's unfinished temp shard; move every unreadable shard aside."""
        folder = self.root / SHARD_DIR
        temps = list(folder.glob(f".{self.prefix}-*.parquet.tmp"))
        for tmp in temps:
            tmp.unlink()
        rebuilt = []
        for path in list_shards(self.root):
            try:
                read_columns(path, ["key", "spec"])
            except CorruptShardError as err:
                log.warning("%s; moving it aside, its images will be done again", err)
                os.replace(path, path.with_name(path.name + ".corrupt"))
                rebuilt.append(path.name)
        return len(temps), rebuilt

    def __contains__(self, key: str) -> bool:
        return key in self.done

    def add(self, key: str, masks: Masks, size: tuple[int, int] | None = None) -> bool:
        """Queue one image's masks; False (and counted in `skipped`) when the key is already stored.
        `size` (H, W) of the image, when given, must be the masks' size."""
        if size is not None:
            masks.check_size(int(size[0]), int(size[1]), key)
        return self._append(key, masks, None)

    def add_failure(self, key: str, reason: str) -> bool:
        """Record that `key` could not be done, and why (listed by `MaskStore.failures`)."""
        return self._append(key, None, reason or "unknown error")

    def _append(self, key: str, masks: Masks | None, error: str | None) -> bool:
        if key in self.done:
            self.skipped += 1
            return False
        self.done.add(key)
        h, w = masks.size if masks is not None else (0, 0)
        m = masks if masks is not None else Masks.empty(0, 0)
        self._rows.append({
            "key": key, "height": h, "width": w, "counts": m.rle_counts(),
            "scores": m.scores.astype(np.float32).tolist(), "areas": m.areas.tolist(), "num_masks": len(m),
            "spec": self.spec_id, "og_version": self.og_version, "error": error,
        })
        self.written += error is None
        self.failed += error is not None
        if len(self._rows) >= self.flush_every:
            self.flush()
        return True

    def flush(self) -> Path | None:
        """Write the queued images as one new shard (atomically); None when nothing is queued."""
        if not self._rows:
            return None
        path = self.root / SHARD_DIR / shard_name(self.part, self.parts, self.seq)
        atomic_write_table(path, pa.Table.from_pylist(self._rows, schema=SCHEMA), self.rows_per_group)
        self.seq += 1
        self._rows = []
        return path

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if not self._lock.closed:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()

    def __enter__(self) -> MaskStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
