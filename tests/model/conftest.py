"""Shared fixtures of the model tests: a word-level tokenizer, tiny random models, small images."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from og.data.tokenizer import train_tokenizer
from og.masks.masks import Masks
from og.model.factory import build
from og.presets import preset
from og.spec import ModelSpec

WORDS = ["what is in the image ? describe it . a red circle left of a blue square , the green triangle is "
         "above the yellow star . how many shapes are there ? one two three four yes no"]


@pytest.fixture(scope="session")
def tokenizer():
    return train_tokenizer(WORDS)


def spec_for(fusion: str = "masktoken", position: str = "none") -> ModelSpec:
    """tiny CLIP (64 px, 8x8 grid) + fusion + position + mlp2x_gelu + tiny-llama."""
    return preset("tiny-og").replace(fusion=fusion, position=position)


@pytest.fixture()
def make_model(tokenizer):
    def make(fusion: str = "masktoken", position: str = "none", seed: int = 0):
        torch.manual_seed(seed)
        model, processor = build(spec_for(fusion, position), tokenizer=copy.deepcopy(tokenizer))
        return model.eval(), processor

    return make


def image(height: int, width: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def box_masks(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> Masks:
    """One mask per (top, left, bottom, right) box, scores descending."""
    data = np.zeros((len(boxes), height, width), dtype=bool)
    for i, (t, left, b, r) in enumerate(boxes):
        data[i, t:b, left:r] = True
    return Masks(data, np.linspace(0.9, 0.5, len(boxes)).astype(np.float32))


@pytest.fixture()
def samples():
    """Three images of different sizes whose masks give different token counts."""
    return [
        (image(40, 56, 1), box_masks(40, 56, [(0, 0, 20, 28), (10, 30, 40, 56)])),
        (image(48, 48, 2), box_masks(48, 48, [(0, 0, 48, 24)])),
        (image(32, 64, 3), box_masks(32, 64, [(0, 0, 16, 16), (16, 16, 32, 40), (0, 40, 32, 64)])),
    ]
