"""Token statistics of a training set (`og train --dry-run`): what the budget does to the data.

Encodes a seeded random subset of the samples exactly as training would (image, masks, layout,
chat template) and reports visual tokens per image (mean / p95 / max), sequence lengths, and how
many samples `max_length` would truncate or skip, plus the data events met on the way.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from og.data.collator import fit_length
from og.data.llava_dataset import LlavaDataset, UnreadableImage


@dataclass
class TokenStats:
    """Statistics over `n_samples` encoded samples (`n_images` of them with an image)."""

    n_samples: int
    n_images: int
    visual: dict[str, float]  # mean / p95 / max visual tokens per image
    length: dict[str, float]  # mean / p95 / max sequence length (tokens, before truncation)
    max_length: int | None
    truncated: int
    skipped: int
    masks_dropped: int  # masks the fusion dropped (empty or over the token budget), summed
    events: dict[str, int] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str]]:
        """(name, value) rows for a table."""
        def fmt(d: dict[str, float]) -> str:
            return " / ".join(f"{d[k]:.1f}" if k == "mean" else f"{d[k]:.0f}" for k in ("mean", "p95", "max"))

        rows = [("samples encoded", str(self.n_samples)), ("with an image", str(self.n_images)),
                ("visual tokens / image (mean / p95 / max)", fmt(self.visual) if self.n_images else "-"),
                ("sequence length (mean / p95 / max)", fmt(self.length)),
                (f"truncated by max_length={self.max_length}", str(self.truncated)),
                (f"skipped (cannot fit in {self.max_length})", str(self.skipped)),
                ("masks dropped by the fusion", str(self.masks_dropped))]
        return rows + [(f"event: {k}", str(v)) for k, v in sorted(self.events.items())]


def _summary(values: list[int]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p95": 0.0, "max": 0.0}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "p95": float(np.percentile(arr, 95)), "max": float(arr.max())}


def token_stats(dataset: LlavaDataset, n: int | None = 200, seed: int = 0) -> TokenStats:
    """Encode up to `n` random samples (all when None) and summarize them."""
    indices = list(range(len(dataset)))
    if n is not None and n < len(indices):
        indices = sorted(random.Random(seed).sample(indices, n))
    visual, lengths, events = [], [], Counter()
    truncated = skipped = dropped = 0
    for i in indices:
        try:
            item = dataset.encode(i)
        except UnreadableImage:
            events["image_unreadable"] += 1
            continue
        events.update(kind for kind, _ in item["events"])
        lengths.append(int(item["input_ids"].numel()))
        if item["layout"] is not None:
            visual.append(len(item["layout"]))
            dropped += int(item["layout"].n_dropped)
        fitted, event = fit_length(item, dataset.max_length)
        truncated += event is not None and fitted is not None
        skipped += fitted is None
    return TokenStats(len(lengths), len(visual), _summary(visual), _summary(lengths), dataset.max_length,
                      truncated, skipped, dropped, dict(events))
