"""`slic`: scikit-image SLIC superpixels as masks (no weights); every score is 1, so the
canonical order is by area (largest first), then position."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import slic

from og.masks.masks import Masks
from og.registry import SEGMENTERS
from og.segmenters.base import KnobSegmenter


@SEGMENTERS.register("slic")
class SlicSegmenter(KnobSegmenter):
    """SLIC superpixels (scikit-image): options n_segments, compactness, sigma."""

    knobs = {"n_segments": 100, "compactness": 10.0, "sigma": 0.0}

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        if self.opts["n_segments"] < 1:
            raise ValueError(f"slic n_segments={self.opts['n_segments']}; use a positive count")
        labels = slic(rgb, n_segments=self.opts["n_segments"], compactness=self.opts["compactness"],
                      sigma=self.opts["sigma"], start_label=0, channel_axis=-1)  # (H, W) int
        ids = np.unique(labels)
        return Masks(labels[None] == ids[:, None, None], np.ones(len(ids), np.float32))  # (M, H, W)
