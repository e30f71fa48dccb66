"""Mask sources for the processor: a MaskStore opened from a path, or the spec's segmenter built
on first use (so loading a model never loads SAM2 unless masks are actually computed)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from og.masks.masks import Masks
from og.registry import SEGMENTERS
from og.segmenters.base import Segmenter
from og.spec import SegmenterSpec

log = logging.getLogger(__name__)


def open_store(store: Any, expected: SegmenterSpec | None = None) -> Any:
    """A MaskStore from a path (or the store itself); warns when it was written by another segmenter."""
    if isinstance(store, (str, Path)):
        from og.masks.store import MaskStore

        store = MaskStore(store)
    written_by = getattr(store, "spec", None)
    if expected is not None and expected.name != "none" and written_by:
        from og.segmenters import canonical_id

        want = canonical_id(expected)  # stores record canonical ids ("sam2" -> "sam2:2.1-large")
        if canonical_id(str(written_by)) != want:
            log.warning("mask store was written by segmenter %r but the model was trained with %r", written_by, want)
    return store


class LazySegmenter(Segmenter):
    """The spec's segmenter, built from the SEGMENTERS registry at the first image."""

    def __init__(self, spec: SegmenterSpec, path: str | None = None, device: Any = None) -> None:
        self.spec = spec
        self.path = path
        self.device = None if device is None else str(device)
        self._segmenter: Segmenter | None = None

    @property
    def segmenter(self) -> Segmenter:
        if self._segmenter is None:
            self._segmenter = SEGMENTERS.get(self.spec.name).from_spec(self.spec, path=self.path, device=self.device)
        return self._segmenter

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        return self.segmenter.segment(rgb, key=key)

    def __call__(self, image: Any, key: str = "") -> Masks:
        return self.segmenter(image, key=key)

    def __repr__(self) -> str:
        state = "built" if self._segmenter is not None else "not built yet"
        return f"LazySegmenter({self.spec.id!r}, path={self.path!r}, {state})"
