"""The frozen encoder's feature cache: the same features as the encoder, each image encoded once,
the same training as without it, and refusals (a trained encoder, a non-deterministic one)."""

from __future__ import annotations

import json
import re

import pytest
import torch

from og.train import run_stage
from og.train.feature_cache import EncoderFeatureCache


class Counting:
    """Wraps a model's `encode_images`, counting the images it encodes; `noise` adds randomness."""

    def __init__(self, model, noise: float = 0.0) -> None:
        self.model, self.noise, self.images = model, noise, 0

    def encode_images(self, pixels):
        self.images += pixels.shape[0]
        features, extras = self.model.encode_images(pixels)
        return features + self.noise * torch.randn_like(features), extras


def test_the_cache_serves_the_encoders_features_and_encodes_each_image_once(tiny):
    model, _ = tiny("clip:tiny+none+prune(by=cls)+none+mlp2x_gelu+tiny-llama")  # with the CLS-attention extra
    model.eval()
    pixels = torch.randn(3, 3, *model.encoder.image_size)  # (3, 3, H, W)
    counting, cache = Counting(model), EncoderFeatureCache()
    batch = torch.stack([pixels[0], pixels[1], pixels[0]])  # one image twice in a batch
    features, extras = cache(counting, batch, ["a", "b", "a"])
    with torch.no_grad():
        want, want_extras = model.encode_images(batch)
    torch.testing.assert_close(features, want, rtol=1e-5, atol=1e-6)
    assert set(extras) == {"cls_attention"}
    torch.testing.assert_close(extras["cls_attention"], want_extras["cls_attention"], rtol=1e-5, atol=1e-6)
    assert counting.images == 2 * 2  # a and b, each twice: the first pass is checked against a second
    features, _ = cache(counting, torch.stack([pixels[1], pixels[2]]), ["b", "c"])
    assert counting.images == 4 + 1 and (cache.misses, cache.hits, len(cache)) == (3, 2, 3)
    with torch.no_grad():
        torch.testing.assert_close(features[1], model.encode_images(pixels[2:])[0][0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="2 image keys for 1 images"):
        cache(counting, pixels[:1], ["a", "b"])


def test_an_encoder_with_randomness_is_refused(tiny):
    model, _ = tiny()
    pixels = torch.randn(2, 3, *model.encoder.image_size)
    with pytest.raises(ValueError, match="other features for the same images on a second pass"):
        EncoderFeatureCache()(Counting(model, noise=0.1), pixels, ["a", "b"])


def test_training_with_the_cache_equals_training_without(tiny, fast, toy, store, tmp_path, caplog):
    runs = {}
    for cached in (False, True):
        model, processor = tiny()
        with caplog.at_level("INFO", logger="og.train.run"):
            runs[cached] = run_stage("finetune", model, processor, [str(toy.instruct)], tmp_path / str(cached),
                                     image_root=toy.image_root, mask_store=store, train_llm=True, max_steps=6,
                                     per_device_train_batch_size=4, learning_rate=1e-3, cache_samples=True,
                                     cache_encoder_features=cached, **fast)
    assert runs[True].losses == pytest.approx(runs[False].losses, rel=1e-4)
    assert runs[True].losses[-1] < runs[True].losses[0]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("encoder cache"))
    encoded, served = map(int, re.match(r"encoder cache: (\d+) images encoded once, (\d+) times served", line).groups())
    images = {c["image"] for c in json.loads(toy.instruct.read_text()) if c.get("image")}
    assert encoded == len(images) and served > 0  # 6 steps of 4 go round the data more than once


def test_the_cache_refuses_a_stage_that_trains_the_encoder(tiny, fast, toy, store, tmp_path):
    model, processor = tiny()
    with pytest.raises(ValueError, match="cache_encoder_features needs a frozen encoder, but stage 'pretrain'"):
        run_stage("pretrain", model, processor, [str(toy.captions)], tmp_path / "s1", image_root=toy.image_root,
                  mask_store=store, train_encoder=True, max_steps=1, cache_encoder_features=True, **fast)
