"""`random`: random blob masks, an ablation control that knows nothing about the image content.

Mask i of an image is drawn from a generator seeded by (seed, a SHA-256 hash of the image key,
i, attempt): different for every image and every mask, the same on every run. Without a key
the hash is taken over the image's bytes. A blob is a rotated ellipse whose radius is
perturbed by a few random harmonics (SAM-like: compact, irregular); it always holds its
centre pixel. A blob identical to an earlier one of the same image is redrawn (attempt + 1),
so an image never gets two identical masks.
"""

from __future__ import annotations

import hashlib

import numpy as np

from og.masks.masks import Masks
from og.registry import SEGMENTERS
from og.segmenters.base import KnobSegmenter

MAX_ATTEMPTS = 100


def _image_hash(rgb: np.ndarray, key: str) -> tuple[int, int]:
    digest = hashlib.sha256(key.encode("utf-8") if key else rgb.tobytes() + str(rgb.shape).encode()).digest()
    return int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:16], "big")


def draw_blob(rng: np.random.Generator, h: int, w: int, min_size: float, max_size: float) -> np.ndarray:
    """One bool (H, W) blob: centre uniform, radii in [min_size, max_size] x side."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(min_size, max_size, 2) * (h, w)
    theta = rng.uniform(0, np.pi)
    amps, phases = rng.uniform(0, 0.15, 3), rng.uniform(0, 2 * np.pi, 3)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5  # pixel centres
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / max(rx, 0.5)
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / max(ry, 0.5)
    phi = np.arctan2(v, u)
    radius = 1 + sum(a * np.cos((j + 2) * phi + p) for j, (a, p) in enumerate(zip(amps, phases, strict=True)))
    blob = np.hypot(u, v) < radius  # (H, W)
    blob[min(int(cy), h - 1), min(int(cx), w - 1)] = True
    return blob


@SEGMENTERS.register("random")
class RandomSegmenter(KnobSegmenter):
    """Random blobs seeded per image and per mask (ablation control): count, seed, min/max size."""

    knobs = {"count": 8, "seed": 0, "min_size": 0.05, "max_size": 0.35}

    def segment(self, rgb: np.ndarray, key: str = "") -> Masks:
        count, lo, hi = self.opts["count"], self.opts["min_size"], self.opts["max_size"]
        if count < 0 or self.opts["seed"] < 0 or not 0 < lo <= hi:
            raise ValueError(f"random count={count}, seed={self.opts['seed']}, min_size={lo}, max_size={hi}: "
                             "need count >= 0, seed >= 0 and 0 < min_size <= max_size")
        h, w = rgb.shape[:2]
        a, b = _image_hash(rgb, key)
        blobs: list[np.ndarray] = []
        seen: set[bytes] = set()
        for i in range(count):
            for attempt in range(MAX_ATTEMPTS):
                rng = np.random.default_rng([self.opts["seed"], a, b, i, attempt])
                blob = draw_blob(rng, h, w, lo, hi)
                if (packed := np.packbits(blob).tobytes()) not in seen:
                    break
            else:
                raise ValueError(f"random: could not draw {count} distinct blobs on a {h}x{w} image; "
                                 "ask for fewer (count=...)")
            seen.add(packed)
            blobs.append(blob)
        data = np.stack(blobs) if blobs else np.zeros((0, h, w), bool)  # (M, H, W)
        return Masks(data, np.ones(len(blobs), np.float32))
