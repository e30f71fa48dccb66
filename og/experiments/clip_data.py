"""The CLIP stand-in's training data (`og.experiments.clip_pretrain`): the images with their stage-1
captions, each mask's patch weights for region pooling, and NegCLIP-style hard negative captions.

Text only is perturbed and no generator label is read: the captions are the data's own stage-1 answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from og.data.shapes.scene import COLORS, SHAPES
from og.experiments.clip_towers import WORD
from og.fusion.coverage import PatchCoverage
from og.masks.geometry import ImageTransform


def hard_negatives(caption: str, k: int, rng: np.random.Generator) -> list[str]:
    """k perturbations of a caption's words: a shape (or colour) word swapped between two objects,
    or replaced by one the caption does not use. Text only: nothing about the image is read."""
    words = WORD.findall(caption)
    out: list[str] = []
    for i in range(k):
        vocab = (SHAPES, COLORS)[i % 2]
        where = [j for j, w in enumerate(words) if w in vocab]
        new = list(words)
        if len(where) >= 2 and rng.random() < 0.5:
            a, b = rng.choice(where, size=2, replace=False)
            new[a], new[b] = new[b], new[a]
        elif where:
            j = int(rng.choice(where))
            unused = [w for w in vocab if w not in words]
            new[j] = str(rng.choice(unused)) if unused else new[j]
        out.append(" ".join(new))
    return out


def captions(data_dir: Path) -> list[tuple[str, str]]:
    """(image key, caption) of every stage-1 record: the last assistant turn."""
    rows = json.loads((data_dir / "stage1.json").read_text())
    return [(r["image"], [t["value"] for t in r["conversations"] if t["from"] == "gpt"][-1]) for r in rows]


def training_set(data_dir: Path, encoder: nn.Module, masks: Any, region: str = "mask",
                 exclude: frozenset[bytes] = frozenset()) -> tuple[torch.Tensor, list[str], torch.Tensor | None, int]:
    """Pixels (N, 3, H, W) float16, captions, each image's mask weights (N, O, P) for `objects`
    pooling (None without `masks`; rows sum to 1, zero rows pad; `region` "mask" pools its pixels, "box" its
    bounding box), and how many images `exclude` (image hashes) left out."""
    from og.data.shapes.dataset import image_hash
    from og.masks.store import MaskStore

    store = MaskStore(masks) if isinstance(masks, (str, Path)) else masks
    transform = ImageTransform.for_encoder(encoder)
    coverage = PatchCoverage(transform, encoder.grid)  # the processor's rule, straight from the stored runs
    pixels, texts, weights, excluded = [], [], [], 0
    for key, caption in captions(data_dir):
        image = Image.open(data_dir / key).convert("RGB")
        if exclude and image_hash(np.asarray(image)) in exclude:
            excluded += 1
            continue
        pixels.append(transform.transform(image)[0].half())  # (3, H, W)
        if store is not None:
            if key not in store:
                raise KeyError(f"{key} has no masks in {masks}; build masks for every image of {data_dir}")
            regions = store.read(key) if region == "mask" else store.get(key).as_boxes()
            cover = coverage.for_downsampler(regions, "area").flatten(1)  # (M, P)
            weights.append(cover / cover.sum(1, keepdim=True).clamp_min(1e-8))
        texts.append(caption)
    if not texts:
        raise ValueError(f"no image of {data_dir} is left to pretrain on ({excluded} excluded)")
    padded = None
    if weights:
        padded = torch.zeros(len(weights), max(len(w) for w in weights), weights[0].shape[1])  # (N, O, P)
        for i, w in enumerate(weights):
            padded[i, : len(w)] = w
    return torch.stack(pixels), texts, padded, excluded
