"""What the fusion did to the images of a run: masks dropped (empty, over the budget), patches
left unseen and visual tokens per image, summed over layouts.

Training (`og.train.run_stage`: a log line and `og_train.json`), evaluation (`results.json`'s
`layouts`) and `og train --dry-run` all report `LayoutCounts.summary()`:
``{"images", "masks", "masks_empty", "masks_over_budget", "masks_dropped_pct",
"patches_uncovered_mean", "fallbacks", "tokens": {"mean", "p95", "max"}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from og.fusion.layout import PackedLayout, TokenLayout

SUMS = ("masks", "empty", "over_budget", "uncovered", "fallbacks")


def spread(values: list[int]) -> dict[str, float]:
    """mean / p95 / max of a list of counts (zeros when empty)."""
    if not values:
        return {"mean": 0.0, "p95": 0.0, "max": 0.0}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "p95": float(np.percentile(arr, 95)), "max": float(arr.max())}


@dataclass
class LayoutCounts:
    """Per-image fusion counters, summed over every layout added (host ints only: no device sync)."""

    masks: int = 0
    empty: int = 0
    over_budget: int = 0
    uncovered: int = 0
    fallbacks: int = 0
    tokens: list[int] = field(default_factory=list)  # visual tokens of each image

    def add(self, layout: PackedLayout | TokenLayout | None, images: list[int] | None = None) -> None:
        """Count a batch's packed layout (or one image's layout); `images` picks some of the batch's images."""
        if layout is None:
            return
        if isinstance(layout, TokenLayout):
            rows = [(layout.n_masks_in, layout.n_empty, layout.n_over_budget, layout.n_uncovered,
                     int(layout.fallback), len(layout))]
        else:
            c = layout.counts  # host ints: counting a batch on the device needs no sync
            rows = list(zip(c["n_masks_in"], c["n_empty"], c["n_over_budget"], c["n_uncovered"], layout.fallbacks,
                            c["n_tokens"], strict=True))
        for i in range(len(rows)) if images is None else images:
            *sums, t = rows[i]
            for name, v in zip(SUMS, sums, strict=True):
                setattr(self, name, getattr(self, name) + int(v))
            self.tokens.append(int(t))

    def merge(self, others: list[LayoutCounts]) -> LayoutCounts:
        """One count over several (e.g. every rank's)."""
        out = LayoutCounts()
        for o in [self, *others]:
            for name in SUMS:
                setattr(out, name, getattr(out, name) + getattr(o, name))
            out.tokens += o.tokens
        return out

    def take(self) -> dict[str, Any]:
        """The summary so far, and start counting afresh (e.g. per benchmark)."""
        out = self.summary()
        self.__init__()
        return out

    @property
    def images(self) -> int:
        return len(self.tokens)

    def summary(self) -> dict[str, Any]:
        dropped = self.empty + self.over_budget
        return {"images": self.images, "masks": self.masks, "masks_empty": self.empty,
                "masks_over_budget": self.over_budget,
                "masks_dropped_pct": round(100.0 * dropped / self.masks, 2) if self.masks else 0.0,
                "patches_uncovered_mean": round(self.uncovered / self.images, 2) if self.images else 0.0,
                "fallbacks": self.fallbacks, "tokens": {k: round(v, 2) for k, v in spread(self.tokens).items()}}

    def line(self) -> str:
        """One readable line of the summary."""
        s = self.summary()
        t = s["tokens"]
        return (f"fusion layouts over {s['images']} images: {s['masks_dropped_pct']:.1f}% of {s['masks']} masks "
                f"dropped "
                f"({s['masks_empty']} empty, {s['masks_over_budget']} over the budget), "
                f"{s['patches_uncovered_mean']:.1f} patches/image in no token, {s['fallbacks']} no-mask fallbacks; "
                f"visual tokens/image mean {t['mean']:.1f} / p95 {t['p95']:.0f} / max {t['max']:.0f}")
