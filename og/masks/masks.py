"""`Masks`: one image's segmentation, bool (M, H, W) at the image's own size, with scores.

Ordering (`Masks.sorted()`, applied by every segmenter): by score descending, then area
descending, then by position (top-most row, then left-most column of the mask's first pixel),
so the same masks always come out in the same order whatever the segmenter's internal order.
RLE is COCO's (pycocotools, column-major), so stores and annotations share one format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils


@dataclass(frozen=True, eq=False)
class Masks:
    """bool masks (M, H, W) and float32 scores (M,) of one image."""

    data: np.ndarray  # (M, H, W) bool
    scores: np.ndarray  # (M,) float32

    def __post_init__(self) -> None:
        data = np.asarray(self.data, dtype=bool)
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise ValueError(f"masks must be (M, H, W); got shape {tuple(np.shape(self.data))}")
        scores = np.ones(len(data), np.float32) if self.scores is None else np.asarray(self.scores, np.float32)
        if scores.shape != (len(data),):
            raise ValueError(f"{len(data)} masks but {scores.shape} scores; give one score per mask")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "scores", scores)

    @classmethod
    def empty(cls, height: int, width: int) -> Masks:
        return cls(np.zeros((0, height, width), bool), np.zeros(0, np.float32))

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the image the masks belong to."""
        return int(self.data.shape[1]), int(self.data.shape[2])

    @property
    def areas(self) -> np.ndarray:
        return self.data.sum(axis=(1, 2), dtype=np.int64)  # (M,); also fine for M = 0

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Masks)
            and self.data.shape == other.data.shape
            and bool(np.array_equal(self.data, other.data))
            and bool(np.allclose(self.scores, other.scores))
        )

    def check_size(self, height: int, width: int, key: str = "") -> None:
        """Raise a clear error when the masks are not at the image's size."""
        if self.size != (height, width):
            where = f" for {key!r}" if key else ""
            raise ValueError(
                f"masks{where} are {self.size[0]}x{self.size[1]} but the image is {height}x{width}; "
                "masks must be stored at the image's original size"
            )

    def order(self) -> np.ndarray:
        """Indices of the canonical order: score desc, area desc, then first pixel (row, col)."""
        m, h, w = self.data.shape
        flat = self.data.reshape(m, h * w)  # explicit size: M = 0 must work too
        first = np.where(flat.any(1), flat.argmax(1), flat.shape[1])  # raster index of first pixel
        return np.lexsort((first % max(w, 1), first // max(w, 1), -self.areas, -self.scores))

    def sorted(self) -> Masks:
        idx = self.order()
        return Masks(self.data[idx], self.scores[idx])

    def as_boxes(self) -> Masks:
        """Each mask replaced by its filled bounding box (an empty mask stays empty), scores kept."""
        rows, cols = self.data.any(2), self.data.any(1)  # (M, H), (M, W)

        def span(hit: np.ndarray) -> np.ndarray:  # (M, L) -> (M, L): inside [first hit, last hit]
            first, last = hit.argmax(1), hit.shape[1] - 1 - hit[:, ::-1].argmax(1)  # (M,) each
            at = np.arange(hit.shape[1])
            return (at >= first[:, None]) & (at <= last[:, None]) & hit.any(1, keepdims=True)

        return Masks(span(rows)[:, :, None] & span(cols)[:, None, :], self.scores)  # (M, H, W)

    def select(self, index: np.ndarray | list[int]) -> Masks:
        return Masks(self.data[np.asarray(index, dtype=np.int64)], self.scores[np.asarray(index, dtype=np.int64)])

    def to_rle(self) -> list[dict]:
        """COCO RLEs (counts as str) of every mask."""
        fortran = np.asfortranarray(self.data.transpose(1, 2, 0).astype(np.uint8))  # (H, W, M)
        rles = mask_utils.encode(fortran) if len(self) else []
        return [{"size": list(r["size"]), "counts": r["counts"].decode("ascii")} for r in rles]

    @classmethod
    def from_rle(cls, rles: list[dict], scores: np.ndarray | None = None, size: tuple[int, int] | None = None) -> Masks:
        """Masks from COCO RLEs (compressed counts as str/bytes, or uncompressed lists)."""
        if not rles:
            if size is None:
                raise ValueError("no RLEs and no size: pass size=(H, W) for an empty mask set")
            return cls.empty(*size)
        h, w = rles[0]["size"]
        objs = [
            r if not isinstance(r["counts"], list) else mask_utils.frPyObjects(r, h, w)
            for r in rles
        ]
        objs = [{"size": list(r["size"]), "counts": r["counts"].encode("ascii")}
                if isinstance(r["counts"], str) else r for r in objs]
        data = mask_utils.decode(objs).transpose(2, 0, 1).astype(bool)  # (M, H, W)
        return cls(data, scores)

    @classmethod
    def from_polygons(cls, polygons: list[list[list[float]]], height: int, width: int,
                      scores: np.ndarray | None = None) -> Masks:
        """One mask per object from COCO polygons ([[x1, y1, x2, y2, ...], ...] per object)."""
        if not polygons:
            return cls.empty(height, width)
        rles = [mask_utils.merge(mask_utils.frPyObjects(p, height, width)) for p in polygons]
        return cls(mask_utils.decode(rles).transpose(2, 0, 1).astype(bool), scores)

    # --- additions for the store and for annotations -------------------------------------------

    def rle_counts(self) -> list[bytes]:
        """Compressed COCO RLE counts (bytes) of every mask, in order; the size is `self.size`."""
        if not len(self):
            return []
        fortran = np.asfortranarray(self.data.transpose(1, 2, 0).astype(np.uint8))  # (H, W, M)
        return [r["counts"] for r in mask_utils.encode(fortran)]

    @classmethod
    def from_counts(cls, counts: list[bytes], size: tuple[int, int], scores: np.ndarray | None = None) -> Masks:
        """Masks from compressed RLE counts (as written by `rle_counts`) at `size` (H, W)."""
        if not len(counts):
            return cls.empty(*size)
        h, w = int(size[0]), int(size[1])
        objs = [{"size": [h, w], "counts": c if isinstance(c, bytes) else c.encode("ascii")} for c in counts]
        # decode gives 0/1 uint8 (H, W, M), Fortran order: view it as bool (M, H, W), no copy
        return cls(mask_utils.decode(objs).transpose(2, 0, 1).view(bool), scores)

    @classmethod
    def from_coco(cls, segmentations: list, height: int, width: int, scores: np.ndarray | None = None) -> Masks:
        """One mask per COCO annotation `segmentation`: polygons ([[x, y, ...], ...]),
        uncompressed RLE ({"counts": [..]}) or compressed RLE ({"counts": str | bytes})."""
        rles = []
        for i, seg in enumerate(segmentations):
            if isinstance(seg, dict):
                if list(seg.get("size", [height, width])) != [height, width]:
                    raise ValueError(f"annotation {i} RLE is {seg['size']} but the image is {[height, width]}")
                rle = mask_utils.frPyObjects(seg, height, width) if isinstance(seg["counts"], list) else (
                    {"size": [height, width], "counts": seg["counts"] if isinstance(seg["counts"], bytes)
                     else seg["counts"].encode("ascii")})
            elif isinstance(seg, list) and seg:
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
            else:
                raise ValueError(f"annotation {i}: segmentation {str(seg)[:60]!r} is neither polygons nor RLE")
            rles.append(rle)
        if not rles:
            return cls.empty(height, width)
        return cls(mask_utils.decode(rles).transpose(2, 0, 1), scores)  # (M, H, W)
