"""`grid`: k x k fixed windows covering the image (an ablation control: masks that know
nothing about objects). Window edges are `round(i * H / k)`, so windows tile the image exactly."""

from __future__ import annotations

import numpy as np

from og.masks.masks import Masks
from og.registry import SEGMENTERS
from og.segmenters.base import KnobSegmenter


@SEGMENTERS.register("grid")
class GridSegmenter(KnobSegmenter):
    """k x k fixed rectangular windows (ablation control): option k."""

    knobs = {"k": 4}

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        k = self.opts["k"]
        h, w = rgb.shape[:2]
        if k < 1 or k > min(h, w):
            raise ValueError(f"grid k={k} needs 1 <= k <= the image's shorter side; the image is {h}x{w}")
        ys, xs = np.linspace(0, h, k + 1).round().astype(int), np.linspace(0, w, k + 1).round().astype(int)
        data = np.zeros((k * k, h, w), bool)  # (k*k, H, W)
        for i in range(k):
            for j in range(k):
                data[i * k + j, ys[i] : ys[i + 1], xs[j] : xs[j + 1]] = True
        return Masks(data, np.ones(k * k, np.float32))
