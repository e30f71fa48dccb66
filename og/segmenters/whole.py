"""`whole`: one mask covering the whole image (an ablation control)."""

from __future__ import annotations

import numpy as np

from og.masks.masks import Masks
from og.registry import SEGMENTERS
from og.segmenters.base import KnobSegmenter


@SEGMENTERS.register("whole")
class WholeSegmenter(KnobSegmenter):
    """One full-image mask (ablation control)."""

    knobs = {}

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        return Masks(np.ones((1, *rgb.shape[:2]), bool), np.ones(1, np.float32))
