"""Training collator: right padding, the batch's images and their packed fusion layouts.

Dataset items (`og.data.llava_dataset.LlavaDataset`) are dicts with `input_ids` (L,) and
`labels` (L,) long tensors, `pixel_values` (3, H, W) or None, `layout` (a `TokenLayout`) or
None, `image_key` (the image's path, or None), `min_length` and `events`; the batch carries the
images' keys as `image_keys` when every image has one. Long samples (`fit_length`): a sample longer than
`max_length` is cut at `max_length`, which only ever removes the end of its last turn; a
sample whose image tokens or last answer start at or after `max_length` cannot be cut that
way and is skipped, with a count. The skips and every event the dataset recorded (missing
masks, substituted images) travel in the batch as `og_events` for the Trainer to count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from og.fusion.layout import PackedLayout

IGNORE_INDEX = -100
Event = tuple[str, str]  # (kind, detail), e.g. ("masks_missing", "coco/1.jpg")


def fit_length(item: dict[str, Any], max_length: int | None) -> tuple[dict[str, Any] | None, Event | None]:
    """(item cut to `max_length`, event) — the item is None when it cannot fit.

    `item["min_length"]` is the shortest prefix that keeps every image token, every earlier
    turn and the first token of the last answer; only tokens past it may be cut.
    """
    n = int(item["input_ids"].numel())
    if max_length is None or n <= max_length:
        return item, None
    what = str(item.get("id", "?"))
    if max_length < int(item["min_length"]):
        return None, ("skipped_too_long", f"{what} ({n} tokens, needs >= {item['min_length']})")
    cut = dict(item, input_ids=item["input_ids"][:max_length], labels=item["labels"][:max_length])
    return cut, ("truncated", f"{what} ({n} -> {max_length} tokens)")


@dataclass
class TrainCollator:
    """Pads on the right; stacks the images; packs their layouts (image order = sample order)."""

    pad_token_id: int
    max_length: int | None = None
    ignore_index: int = IGNORE_INDEX

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        events: list[Event] = []
        kept = []
        for item in items:
            events.extend(item.get("events", ()))
            fitted, event = fit_length(item, self.max_length)
            if event is not None:
                events.append(event)
            if fitted is not None:
                kept.append(fitted)
        if not kept:
            raise ValueError(
                f"every sample of this batch is longer than max_length={self.max_length} before its last "
                f"answer starts ({[e[1] for e in events if e[0] == 'skipped_too_long']}); raise max_length "
                "or lower the fusion's max_tokens"
            )
        longest = max(int(it["input_ids"].numel()) for it in kept)
        b = len(kept)
        input_ids = torch.full((b, longest), self.pad_token_id, dtype=torch.long)  # (B, L)
        labels = torch.full((b, longest), self.ignore_index, dtype=torch.long)  # (B, L)
        attention_mask = torch.zeros((b, longest), dtype=torch.long)  # (B, L)
        for i, it in enumerate(kept):
            n = int(it["input_ids"].numel())
            input_ids[i, :n] = it["input_ids"]
            labels[i, :n] = it["labels"]
            attention_mask[i, :n] = 1
        with_image = [it for it in kept if it.get("pixel_values") is not None]
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if with_image:
            batch["pixel_values"] = torch.stack([it["pixel_values"] for it in with_image])  # (N, 3, H, W)
            batch["layout"] = PackedLayout.pack([it["layout"] for it in with_image])
            keys = [it.get("image_key") for it in with_image]
            if all(keys):  # for a frozen encoder's feature cache (the Trainer takes them out)
                batch["image_keys"] = keys
        batch["og_events"] = events
        return batch
