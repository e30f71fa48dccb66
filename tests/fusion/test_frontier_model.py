"""The frontier fusions through a tiny model: an image's logits do not depend on its batch-mates."""

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

WORDS = ["what is in the image ? a red circle left of a blue square yes no"]
PROMPT = "<image>\nwhat is in the image ?"


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(WORDS)


def sample(seed: int, size: tuple[int, int], boxes: list[tuple[int, int, int, int]]):
    rng = np.random.default_rng(seed)
    data = np.zeros((len(boxes), *size), dtype=bool)
    for i, (t, left, b, r) in enumerate(boxes):
        data[i, t:b, left:r] = True
    image = Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return image, Masks(data, np.linspace(0.9, 0.5, len(boxes)).astype(np.float32))


@pytest.mark.parametrize("fusion", ["patchpool(k=3)", "prune(keep=9)", "prune(keep=9,by=norm)",
                                    "prune(keep=9,by=cls)", "roialign(r=2)", "roialign(max_tokens=8,cells=weight)"])
def test_batch_invariance_through_the_model(tokenizer, fusion):
    torch.manual_seed(0)
    spec = preset("tiny-og").replace(fusion=fusion)
    model, processor = build(spec, tokenizer=copy.deepcopy(tokenizer))
    model.eval()
    samples = [sample(1, (40, 56), [(0, 0, 20, 28), (10, 30, 40, 56)]), sample(2, (48, 48), [(0, 0, 48, 24)]),
               sample(3, (32, 64), [(0, 0, 16, 16), (16, 16, 32, 40), (0, 40, 32, 64)])]
    masks = [m for _, m in samples] if spec.uses_masks else None
    text = processor.prompt(PROMPT)
    alone = processor([text], [samples[0][0]], masks=masks[:1] if masks else None, keys=["img/a.png"])
    mixed = processor([text] * 3, [samples[2][0], samples[0][0], samples[1][0]], keys=["c", "img/a.png", "b"],
                      masks=[masks[2], masks[0], masks[1]] if masks else None)
    n = alone["input_ids"].shape[1]
    assert alone["layout"].total <= max(9, spec.fusion.max_tokens or 0) or spec.fusion.name == "roialign"
    with torch.no_grad():
        a = model(**alone).logits[0]
        b = model(**mixed).logits[1, -n:]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_random_prune_without_a_key_seeds_on_the_pixels(tokenizer):
    spec = preset("tiny-og").replace(fusion="prune(keep=5)", segmenter="none")
    _, processor = build(spec, tokenizer=copy.deepcopy(tokenizer))
    one, other = sample(1, (40, 56), []), sample(2, (40, 56), [])
    first = processor.prepare_image(one[0])[1].patch.tolist()
    assert processor.prepare_image(one[0].copy())[1].patch.tolist() == first  # same pixels, same draw
    assert processor.prepare_image(other[0])[1].patch.tolist() != first
    assert processor.prepare_image(one[0], key="k")[1].patch.tolist() == processor.prepare_image(
        other[0], key="k")[1].patch.tolist()  # a given key decides
