"""Where an evaluated item's masks come from: a MaskStore (by the image's key) or a segmenter.

Masks are always looked up by the item's image key (the image as the benchmark file names it),
never by position. A store holds masks at the image's original size; when an item is a crop of
its image (ARO's VG sets) the masks are cropped with it. Masks already at the crop's size (a store
built from the crops) are used as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from og.masks.masks import Masks


def crop_masks(masks: Masks, crop: tuple[int, int, int, int] | None, image_size: tuple[int, int],
               key: str) -> Masks:
    """`masks` for the image as the model sees it: cropped to (x, y, w, h) when the item is a crop.

    `image_size` is the (H, W) of the full image before the crop.
    """
    if crop is None:
        masks.check_size(*image_size, key=key)
        return masks
    x, y, w, h = crop
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, image_size[1]), min(y + h, image_size[0])
    if masks.size == (y1 - y0, x1 - x0):
        return masks
    masks.check_size(*image_size, key=key)
    return Masks(masks.data[:, y0:y1, x0:x1], masks.scores)


class MissingMasksError(KeyError):
    """Images a MaskStore has no masks for; the message is one readable line."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MaskSource:
    """Masks per image key: from a MaskStore directory, or from a segmenter run on the image."""

    def __init__(self, store: Any = None, segmenter: Any = None, label: str = "") -> None:
        if (store is None) == (segmenter is None):
            raise ValueError("MaskSource needs exactly one of store or segmenter")
        self.store, self.segmenter = store, segmenter
        self.label = label or ("store" if store is not None else "segmenter")

    @classmethod
    def from_store(cls, path: str | Path) -> MaskSource:
        from og.masks.store import MaskStore

        return cls(store=MaskStore(path), label=f"store:{path}")

    @classmethod
    def from_segmenter(cls, name: str, device: str | None = None) -> MaskSource:
        """A segmenter from its spec id (`slic(n_segments=16)`, `sam2:2.1-large`, ...)."""
        from og.registry import SEGMENTERS
        from og.spec import SegmenterSpec

        spec = SegmenterSpec.parse(name)
        segmenter = SEGMENTERS.get(spec.name).from_spec(spec, device=device)
        return cls(segmenter=segmenter, label=f"segmenter:{spec.id}")

    def missing(self, keys: list[str]) -> list[str]:
        """Keys a store lacks (always none for a segmenter)."""
        return [] if self.store is None else [k for k in keys if k not in self.store]

    def get(self, key: str, image: Image.Image) -> Masks:
        """Masks of the full (uncropped) image named `key`."""
        if self.store is not None:
            return self.store.get(key)
        return self.segmenter(image, key=key)

    def describe(self) -> str:
        return self.label
