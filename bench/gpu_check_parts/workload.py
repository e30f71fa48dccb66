"""The batch every part measures: B images at the encoder's size, n masks per image, and texts of
LLaVA-mix-665k's lengths (100-300 words, one token each with the check's word-level tokenizer).

Masks are made so that `masktoken` gives exactly as many visual tokens as `patches` (h*w): n
disjoint masks cover h*w - 1 - n patches in raster order, so 1 (global mean) + n (begin-of-mask)
+ the covered patches = h*w. Where the image side is a multiple of the grid (CLIP-L/14-336: 14 px
cells, the tiny CLIP: 8 px), every mask is a union of whole patch cells: coverage 1 on its
patches, 0 elsewhere. Everything is seeded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from og.masks.masks import Masks
from og.masks.store import MaskStore

TEXT_WORDS = (100, 300)  # text tokens of a LLaVA-mix-665k sample, about
IGNORE_INDEX = -100


def equal_token_masks(image_size: tuple[int, int], grid: tuple[int, int], n_masks: int) -> Masks:
    """n disjoint masks over h*w - 1 - n patches (raster order, near-equal runs); n is capped at
    (h*w - 1) // 2 so every mask keeps at least one patch."""
    (height, width), (h, w) = image_size, grid
    n = max(1, min(n_masks, (h * w - 1) // 2))
    covered = h * w - 1 - n
    owner = np.full(h * w, -1)
    owner[:covered] = np.arange(covered) * n // covered  # (h*w,) mask of each patch, -1 = none
    rows = np.arange(height) * h // height  # (H,) patch row of each pixel row
    cols = np.arange(width) * w // width  # (W,) patch column of each pixel column
    pixel_owner = owner.reshape(h, w)[rows][:, cols]  # (H, W)
    data = pixel_owner[None] == np.arange(n)[:, None, None]  # (n, H, W)
    return Masks(data, np.linspace(1.0, 0.5, n, dtype=np.float32))


@dataclass
class Workload:
    """Images, masks and conversations of one batch (the same for every fusion and run)."""

    images: list[Image.Image]
    masks: list[Masks]
    turns: list[list[tuple[str, str]]]  # per sample: (role, text) turns, `<image>` in the first

    @classmethod
    def make(cls, batch: int, image_size: tuple[int, int], grid: tuple[int, int], n_masks: int,
             vocabulary: list[str], seed: int = 0) -> Workload:
        rng = np.random.default_rng(seed)
        images = [Image.fromarray(rng.integers(0, 256, (*image_size, 3), dtype=np.uint8)) for _ in range(batch)]
        masks = [equal_token_masks(image_size, grid, n_masks)] * batch
        turns = []
        for _ in range(batch):
            n = int(rng.integers(TEXT_WORDS[0], TEXT_WORDS[1] + 1))
            text = [str(w) for w in rng.choice(vocabulary, size=n)]
            question = n // 3
            turns.append([("user", "<image>\n" + " ".join(text[:question])), ("assistant", " ".join(text[question:]))])
        return cls(images, masks, turns)

    @property
    def n_masks(self) -> int:
        return len(self.masks[0])

    def train_batch(self, processor: Any, device: torch.device) -> dict[str, Any]:
        """A right-padded training batch with labels (padding ignored), on `device`."""
        texts = [processor.apply_chat_template(t) for t in self.turns]
        batch = processor(texts, self.images, masks=self.masks, padding_side="right")
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
        batch.pop("image_sizes", None)
        return {k: v.to(device) for k, v in batch.items()}

    def prompt_batch(self, processor: Any, device: torch.device) -> dict[str, Any]:
        """A left-padded generation batch: each sample's question with the generation prompt."""
        texts = [processor.apply_chat_template(t[:1], add_generation_prompt=True) for t in self.turns]
        batch = processor(texts, self.images, masks=self.masks, padding_side="left")
        batch.pop("image_sizes", None)
        return {k: v.to(device) for k, v in batch.items()}

    def write_llava(self, root: Path) -> tuple[Path, Path, MaskStore]:
        """The batch as LLaVA-format data for `og.train.run_stage`: (json, image root, mask store)."""
        root.mkdir(parents=True, exist_ok=True)
        records = []
        with MaskStore.writer(root / "masks", "given") as writer:
            for i, (image, masks, turns) in enumerate(zip(self.images, self.masks, self.turns, strict=True)):
                key = f"{i:04d}.png"
                image.save(root / key)
                writer.add(key, masks, size=(image.height, image.width))
                records.append({"id": str(i), "image": key, "conversations": [
                    {"from": "human" if role == "user" else "gpt", "value": text} for role, text in turns]})
        path = root / "data.json"
        path.write_text(json.dumps(records))
        return path, root, MaskStore(root / "masks")
