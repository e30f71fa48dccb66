"""Token statistics of a training set (`og train --dry-run`): what the budget does to the data.

Encodes a seeded random subset of the samples exactly as training would (image, masks, layout,
chat template) and reports visual tokens per image (mean / p95 / max), what the fusion did to
the masks (percent dropped: empty or over the token budget; patches in no token:
`og.fusion.counts.LayoutCounts`), sequence lengths, and how many samples `max_length` would
truncate or skip, plus the data events met on the way.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from og.data.collator import fit_length
from og.data.llava_dataset import LlavaDataset, UnreadableImage
from og.fusion.counts import LayoutCounts, spread


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
    layouts: dict = field(default_factory=dict)  # LayoutCounts.summary() of the encoded images

    def rows(self) -> list[tuple[str, str]]:
        """(name, value) rows for a table."""
        def fmt(d: dict[str, float]) -> str:
            return " / ".join(f"{d[k]:.1f}" if k == "mean" else f"{d[k]:.0f}" for k in ("mean", "p95", "max"))

        rows = [("samples encoded", str(self.n_samples)), ("with an image", str(self.n_images)),
                ("visual tokens / image (mean / p95 / max)", fmt(self.visual) if self.n_images else "-"),
                ("sequence length (mean / p95 / max)", fmt(self.length)),
                (f"truncated by max_length={self.max_length}", str(self.truncated)),
                (f"skipped (cannot fit in {self.max_length})", str(self.skipped)),
                ("masks dropped by the fusion", str(self.masks_dropped)), *self.layout_rows()]
        return rows + [(f"event: {k}", str(v)) for k, v in sorted(self.events.items())]


    def layout_rows(self) -> list[tuple[str, str]]:
        """The fusion's counters: percent of masks dropped and why, patches in no token."""
        s = self.layouts
        rows = [("masks dropped (% of masks given)", f"{s['masks_dropped_pct']:.1f}% of {s['masks']} "
                 f"({s['masks_empty']} empty, {s['masks_over_budget']} over the budget)")] if s.get("masks") else []
        return rows + ([("patches in no token / image (mean)", f"{s['patches_uncovered_mean']:.1f}")]
                       if s.get("images") else [])


def token_stats(dataset: LlavaDataset, n: int | None = 200, seed: int = 0) -> TokenStats:
    """Encode up to `n` random samples (all when None) and summarize them."""
    indices = list(range(len(dataset)))
    if n is not None and n < len(indices):
        indices = sorted(random.Random(seed).sample(indices, n))
    visual, lengths, events, counts = [], [], Counter(), LayoutCounts()
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
            counts.add(item["layout"])
        fitted, event = fit_length(item, dataset.max_length)
        truncated += event is not None and fitted is not None
        skipped += fitted is None
    return TokenStats(len(lengths), len(visual), spread(visual), spread(lengths), dataset.max_length,
                      truncated, skipped, dropped, dict(events), counts.summary())
