"""COCO compressed RLE -> foreground runs, for all masks of an image at once, in numpy.

A stored mask is pycocotools' compressed string: run lengths of 0s and 1s (starting with 0s)
over the column-major raster, each written as 5-bit groups (`chr(48 + group)`, bit 0x20 =
"more groups follow", bit 0x10 of the last group = negative), and from the 4th count on as the
difference to the count two places earlier. `decode_runs` undoes that for every mask of an
image in one vectorised pass (no Python loop over masks or counts; one over the 5-bit groups of
the longest count, at most 7) and returns the 1-runs as
half-open intervals [start, end) of the flat column-major index `x * H + y`;
`runs_of_many` decodes a batch of images' masks in one such pass.

`StoredMasks` is one image's masks as the store keeps them (a view on the parquet buffers, no
copy): `decode(index)` gives `Masks` (only the masks asked for), `runs()` the 1-runs that
`og.fusion.coverage` integrates without ever building a pixel mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from og.masks.masks import Masks


@dataclass(frozen=True)
class Runs:
    """The 1-runs of M masks: run r of mask `mask[r]` covers flat indices [start[r], end[r])."""

    mask: np.ndarray  # (R,) int64, non-decreasing
    start: np.ndarray  # (R,) int64
    end: np.ndarray  # (R,) int64
    n_masks: int


def decode_runs(data: np.ndarray, offsets: np.ndarray) -> Runs:
    """1-runs of M compressed RLE strings: `data` uint8 holds them back to back, string i is
    data[offsets[i]:offsets[i + 1]] (offsets (M + 1,), as a pyarrow binary column stores them)."""
    offsets = np.asarray(offsets, np.int64)
    m = len(offsets) - 1
    data = np.asarray(data, np.uint8)[offsets[0]:offsets[-1]] if m > 0 else np.zeros(0, np.uint8)
    if len(data) == 0:
        return Runs(*(np.zeros(0, np.int64) for _ in range(3)), max(m, 0))
    last = (offsets[1:] - offsets[0] - 1)[offsets[1:] > offsets[:-1]]  # (M',) each string's last byte
    if (data.min() < 48) | (data.max() > 111) | (data[last] >= 80).any():
        raise ValueError("a stored mask is not a COCO compressed RLE string (a byte outside 48..111 or a cut "
                         "count); rebuild the store with `og masks build`")
    ends = np.flatnonzero(data < 80)  # (C,) the last group of each count (bit 0x20 of byte - 48 clear)
    begin = np.empty_like(ends)
    begin[0], begin[1:] = 0, ends[:-1] + 1  # (C,) its first group
    bits = ((data - 48) & 0x1F).astype(np.int64)  # (B,) 5 bits of value per group
    raw = bits[begin]  # (C,)
    longer = np.flatnonzero(ends != begin)  # counts of more than one group (at most 7)
    j = 1
    while len(longer):
        raw[longer] |= bits[begin[longer] + j] << (5 * j)
        j += 1
        longer = longer[ends[longer] >= begin[longer] + j]
    negative = np.flatnonzero((data[ends] - 48) & 0x10)  # counts whose last group has the sign bit
    raw[negative] -= np.int64(1) << (5 * (ends[negative] - begin[negative] + 1))
    first = np.searchsorted(ends, offsets - offsets[0])  # (M+1,) first count of each mask, then C
    c = len(ends)
    mask_of = np.repeat(np.arange(m), np.diff(first))  # (C,)
    head = first[:-1]  # (M,)
    odd = (np.arange(c) & 1).astype(bool) ^ (head & 1).astype(bool)[mask_of]  # (C,) odd inside its mask: a 1-run
    # from the 4th count on a count is the difference to the one two places earlier: one running
    # sum per parity (both at once), minus its value where the mask's chain of that parity starts
    nonempty = head[head < first[1:]]
    pad = np.zeros(c + (c & 1), np.int64)
    pad[:c] = raw
    pad[nonempty] = 0  # the 1st count is no difference and starts no chain
    chain = pad[:c]
    acc = np.cumsum(pad.reshape(-1, 2), axis=0).reshape(-1)[:c]  # (C,) running sum of each parity
    base = (acc - chain)[np.minimum(np.stack([head, head + 1], 1), c - 1)].reshape(-1)  # (2M,) chains' starts
    counts = acc - base[2 * mask_of + odd]  # (C,)
    counts[nonempty] = raw[nonempty]
    if (counts < 0).any():
        raise ValueError("a stored mask's RLE decodes to a negative run length; the store is corrupt")
    total = np.zeros(c + 1, np.int64)
    np.cumsum(counts, out=total[1:])  # (C+1,)
    keep = np.flatnonzero(odd & (counts > 0))  # (R,) the 1-runs
    mask = mask_of[keep]  # (R,)
    end = total[keep + 1] - total[head][mask]  # (R,) within the mask
    return Runs(mask, end - counts[keep], end, m)


def runs_of_many(stored: list[StoredMasks]) -> list[Runs]:
    """The runs of several images' masks from one `decode_runs` pass over their strings side by
    side (numpy's per-call cost paid once per batch instead of once per image)."""
    if not stored:
        return []
    pieces = [s.data[s.offsets[0]:s.offsets[-1]] for s in stored]
    data = np.concatenate(pieces)
    shift = np.cumsum([0] + [len(p) for p in pieces[:-1]])  # (I,) where each image's strings start
    offsets = np.concatenate([[0]] + [s.offsets[1:] - s.offsets[0] + b for s, b in zip(stored, shift, strict=True)])
    runs = decode_runs(data, offsets)
    first = np.cumsum([0] + [len(s) for s in stored])  # (I+1,) each image's first mask
    cut = np.searchsorted(runs.mask, first)  # (I+1,) each image's first run
    return [Runs(runs.mask[a:b] - first[i], runs.start[a:b], runs.end[a:b], len(stored[i]))
            for i, (a, b) in enumerate(zip(cut[:-1], cut[1:], strict=True))]


def runs_to_dense(runs: Runs, size: tuple[int, int], index: np.ndarray | None = None) -> np.ndarray:
    """bool (K, H, W) of the masks in `index` (all by default), from their runs."""
    h, w = size
    index = np.arange(runs.n_masks) if index is None else np.asarray(index, np.int64)
    out = np.zeros((len(index), w * h + 1), np.int8)  # column-major, one spare slot
    where = np.full(runs.n_masks, -1, np.int64)
    where[index] = np.arange(len(index))
    sel = where[runs.mask] >= 0
    rows = where[runs.mask[sel]]
    np.add.at(out, (rows, runs.start[sel]), 1)
    np.add.at(out, (rows, runs.end[sel]), -1)
    flat = np.cumsum(out[:, :-1], axis=1, dtype=np.int8).astype(bool)  # (K, W*H)
    return flat.reshape(len(index), w, h).transpose(0, 2, 1)  # (K, H, W) view, column-major


@dataclass(frozen=True, eq=False)
class StoredMasks:
    """One image's masks as stored: compressed RLE strings back to back, not decoded."""

    data: np.ndarray  # uint8, the strings back to back
    offsets: np.ndarray  # (M + 1,) int64
    height: int
    width: int
    scores: np.ndarray  # (M,) float32

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def check_size(self, height: int, width: int, key: str = "") -> None:
        """Raise a clear error when the masks are not at the image's size (as `Masks.check_size`)."""
        Masks.empty(self.height, self.width).check_size(height, width, key)

    def runs(self) -> Runs:
        return decode_runs(self.data, self.offsets)

    def counts(self, index: np.ndarray | list[int] | None = None) -> list[bytes]:
        index = range(len(self)) if index is None else index
        return [self.data[self.offsets[i]:self.offsets[i + 1]].tobytes() for i in index]

    def decode(self, index: np.ndarray | list[int] | None = None) -> Masks:
        """`Masks` of the masks in `index` (all by default), decoded by pycocotools."""
        index = np.arange(len(self)) if index is None else np.asarray(index, np.int64)
        return Masks.from_counts(self.counts(index), self.size, self.scores[index])
