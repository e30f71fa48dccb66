"""`MaskStore`: read one image's masks in O(1) from a directory of parquet shards.

    store = MaskStore("masks/coco")           # validates every shard's footer, loads the index
    masks = store.get("train2017/0001.jpg")  # -> Masks at the image's size, stored order
    stored = store.read("train2017/0001.jpg")  # -> StoredMasks: the RLE strings, not decoded, no copy
    store.prefetch(keys)                     # one batched read per shard for a batch's keys
    "x.jpg" in store; store.keys(); len(store); store.spec; store.failures

The index (key -> shard, row) is `index.parquet`, written by `merge` (`og masks merge`); when it
is missing or stale (shards added since), it is rebuilt in memory from the shards' key columns.
Parquet row groups are small (8 images), so a read touches one small group of one shard; the
last `CACHE_GROUPS` groups read stay in memory (neighbours in a shard come for free), and
`prefetch` reads the groups of many keys with one `read_row_groups` call per shard. `read`
hands out the RLE strings as numpy views on the parquet buffers; `og.fusion.coverage`
integrates them without decoding a pixel, `StoredMasks.decode(index)` decodes only the masks
asked for.
Writing: `MaskStore.writer(...)` / `build_store(...)` (see og.masks.writer and og.masks.build).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from og.masks.build import BuildSummary, build_store, load_image
from og.masks.index import index_from_table, merge, scan
from og.masks.masks import Masks
from og.masks.rle import StoredMasks
from og.masks.shards import (
    INDEX,
    SHARD_DIR,
    CorruptShardError,
    StoreError,
    list_shards,
    open_shard,
    read_columns,
    read_header,
)
from og.masks.writer import MaskStoreWriter, part_of, resolve_part

__all__ = ["MaskStore", "MaskStoreWriter", "build_store", "merge", "BuildSummary", "StoreError",
           "CorruptShardError", "MissingKeyError", "load_image", "part_of", "resolve_part"]
log = logging.getLogger(__name__)
_READ = ["height", "width", "counts", "scores", "error"]


_BUCKETS = (0, 1, 5, 10, 20, 50, 100, 200)
CACHE_GROUPS = 64  # row groups kept in memory per store (8 images each)


@dataclass(frozen=True)
class _Group:
    """One read row group: the table, and its mask columns as numpy views (no per-read arrow calls)."""

    table: pa.Table
    height: np.ndarray  # (G,)
    width: np.ndarray  # (G,)
    first: np.ndarray  # (G+1,) mask offsets of the rows
    byte_offsets: np.ndarray  # (masks+1,) RLE string offsets into data
    data: np.ndarray  # uint8, every RLE string of the group back to back
    scores: np.ndarray  # (masks,) float32

    @classmethod
    def of(cls, table: pa.Table) -> _Group:
        counts = table.column("counts").combine_chunks()  # one chunk when read: no copy
        values = counts.values  # BinaryArray of every mask of the group
        buffers = values.buffers()
        byte_offsets = np.frombuffer(buffers[1], np.int32, len(values) + values.offset + 1)[values.offset:]
        data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        scores = table.column("scores").combine_chunks()
        score_values = scores.values.to_numpy(zero_copy_only=False)
        score_first = scores.offsets.to_numpy()
        first = counts.offsets.to_numpy()
        if not np.array_equal(first - first[0], score_first - score_first[0]):
            raise ValueError("a row's scores and masks differ in number")
        return cls(table, table.column("height").to_numpy(), table.column("width").to_numpy(), first,
                   byte_offsets.astype(np.int64), data, score_values[score_first[0]:].astype(np.float32))

    def masks(self, row: int) -> StoredMasks:
        lo, hi = int(self.first[row]), int(self.first[row + 1])
        base = int(self.first[0])
        return StoredMasks(self.data, self.byte_offsets[lo:hi + 1], int(self.height[row]), int(self.width[row]),
                           self.scores[lo - base:hi - base].copy())


class MissingKeyError(KeyError):
    """A key that is not in the store (or failed); the message is one plain line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _histogram(per_image: np.ndarray) -> dict[str, int]:
    """Images per bucket of masks-per-image: "0", "1-4", ..., "200+"."""
    edges = list(_BUCKETS) + [np.inf]
    out = {}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        name = f"{lo}" if hi == lo + 1 else (f"{lo}+" if hi == np.inf else f"{lo}-{int(hi) - 1}")
        out[name] = int(((per_image >= lo) & (per_image < hi)).sum())
    return out


class MaskStore:
    """Read-only view of a mask store directory."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path)
        header = read_header(self.root)
        self.spec: str = header.spec  # the SegmenterSpec id that wrote every mask here
        self.weights: str | None = header.weights
        self.og_version = header.og_version
        self.image_root: str | None = header.image_root
        self.shards = [p.name for p in list_shards(self.root)]
        self._files: dict[str, pq.ParquetFile] = {}
        self._pid = os.getpid()
        self._group_starts: dict[str, list[int]] = {}
        self._groups: OrderedDict[tuple[str, int], _Group] = OrderedDict()  # LRU of read row groups
        for name in self.shards:  # footer check of every shard: truncation is caught here
            self._file(name)
        self._index, self._errors, self.duplicates = self._load_index()

    # --- index -----------------------------------------------------------------------------------

    def _shard_sizes(self) -> dict[str, int]:
        return {n: (self.root / SHARD_DIR / n).stat().st_size for n in self.shards}

    def _load_index(self) -> tuple[dict[str, tuple[int, int]], dict[str, str], int]:
        path = self.root / INDEX
        if path.is_file():
            table = pq.read_table(path)
            meta = json.loads((table.schema.metadata or {}).get(b"og_shards", b"{}"))
            if meta == self._shard_sizes():
                return index_from_table(table, self.shards)
            log.warning("index of %s is stale (shards changed since); rebuilding it in memory — "
                        "run `og masks merge %s` to save it", self.root, self.root)
        return index_from_table(scan(self.root, self.shards), self.shards)

    # --- reading ---------------------------------------------------------------------------------

    def _file(self, name: str) -> pq.ParquetFile:
        if os.getpid() != self._pid:  # a forked data-loader worker: reopen, do not share handles
            self._files, self._pid, self._groups = {}, os.getpid(), OrderedDict()
        pf = self._files.get(name)
        if pf is None:
            pf = self._files[name] = open_shard(self.root / SHARD_DIR / name)
            sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
            self._group_starts[name] = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        return pf

    def _locate(self, key: str) -> tuple[str, int, int]:
        """(shard name, row group, row inside the group) of `key` (MissingKeyError when absent)."""
        if key not in self._index:
            if key in self._errors:
                raise MissingKeyError(f"image {key!r} failed when the store was built: {self._errors[key]}")
            raise MissingKeyError(f"image {key!r} is not in mask store {self.root} ({len(self)} images); "
                           "keys are image paths relative to the image root")
        shard_i, row = self._index[key]
        name = self.shards[shard_i]
        self._file(name)
        starts = self._group_starts[name]
        group = bisect.bisect_right(starts, row) - 1
        return name, group, row - starts[group]

    def _read_groups(self, name: str, groups: list[int]) -> None:
        """Read row groups of one shard in one call into the cache."""
        starts = self._group_starts[name]
        try:
            table = self._file(name).read_row_groups(groups, columns=_READ)
            at, read = 0, []
            for group in groups:
                size = starts[group + 1] - starts[group]
                read.append(((name, group), _Group.of(table.slice(at, size))))
                at += size
        except (OSError, ValueError, pa.ArrowException) as err:
            raise CorruptShardError(self.root / SHARD_DIR / name, f"{type(err).__name__}: {err}") from None
        for where, group_data in read:
            self._groups[where] = group_data
            self._groups.move_to_end(where)
        while len(self._groups) > max(CACHE_GROUPS, len(groups)):
            self._groups.popitem(last=False)

    def _group(self, name: str, group: int) -> _Group:
        cached = self._groups.get((name, group))
        if cached is None:
            self._read_groups(name, [group])
            cached = self._groups[(name, group)]
        else:
            self._groups.move_to_end((name, group))
        return cached

    def prefetch(self, keys: Iterable[str]) -> None:
        """Read the row groups holding `keys` (those not cached), one batched read per shard;
        unknown keys are left for `get` / `read` to report."""
        need: dict[str, set[int]] = {}
        for key in keys:
            if key in self._index:
                name, group, _ = self._locate(key)
                if (name, group) not in self._groups:
                    need.setdefault(name, set()).add(group)
        for name, groups in need.items():
            self._read_groups(name, sorted(groups))

    def _row(self, key: str) -> dict[str, Any]:
        name, group, row = self._locate(key)
        return self._group(name, group).table.slice(row, 1).to_pylist()[0]

    def read(self, key: str) -> StoredMasks:
        """The masks of image `key` as stored (RLE strings as views, not decoded; KeyError when missing)."""
        name, group, row = self._locate(key)
        return self._group(name, group).masks(row)

    def get(self, key: str, index: np.ndarray | list[int] | None = None) -> Masks:
        """The masks of image `key` (only those in `index` when given; KeyError naming the key when
        it is missing or failed)."""
        return self.read(key).decode(index)

    def get_rle(self, key: str) -> dict[str, Any]:
        """The stored record without decoding: height, width, counts (bytes per mask), scores."""
        return self._row(key)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def keys(self) -> list[str]:
        """Keys of the images with masks (failures excluded), sorted."""
        return sorted(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(key, reason) of every image that could not be segmented."""
        return sorted(self._errors.items())

    def stats(self) -> dict[str, Any]:
        """Images, masks, masks-per-image distribution, bytes on disk and in RLE counts."""
        counts = [read_columns(self.root / SHARD_DIR / n, ["key", "num_masks", "counts", "error"])
                  for n in self.shards]
        per_image, rle_bytes = [], 0
        for table in counts:
            ok = [e is None for e in table.column("error").to_pylist()]
            per_image += [n for n, good in zip(table.column("num_masks").to_pylist(), ok, strict=True) if good]
            rle_bytes += int(pc.sum(pc.binary_length(pc.list_flatten(table.column("counts")))).as_py() or 0)
        arr = np.asarray(per_image or [0])
        return {
            "images": len(self), "failures": len(self._errors), "masks": int(arr.sum()),
            "masks_per_image": {"min": int(arr.min()), "median": float(np.median(arr)),
                                "mean": float(arr.mean()), "max": int(arr.max())},
            "histogram": _histogram(arr),
            "bytes_on_disk": sum(self._shard_sizes().values()), "rle_bytes": rle_bytes,
            "shards": len(self.shards), "duplicates": self.duplicates, "spec": self.spec,
            "weights": self.weights, "og_version": self.og_version,
        }

    @classmethod
    def writer(cls, path: str | os.PathLike, spec_id: str, **kwargs: Any) -> MaskStoreWriter:
        """A `MaskStoreWriter` for this path (see og.masks.writer)."""
        return MaskStoreWriter(path, spec_id, **kwargs)

    def __repr__(self) -> str:
        return f"MaskStore({str(self.root)!r}, spec={self.spec!r}, {len(self)} images)"
