"""Shared fixtures of the training tests: a toy LLaVA dataset with a mask store, a word-level
tokenizer trained on it, and a seeded tiny OG-LLaVA model (random CLIP + tiny Llama)."""

from __future__ import annotations

import logging

import pytest
import torch

TINY_SPEC = "clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama"
_FAST = {"activation_checkpointing": False, "disable_tqdm": True, "logging_steps": 1, "save_strategy": "no",
        "gradient_accumulation_steps": 1, "warmup_steps": 0, "lr_scheduler_type": "constant"}


@pytest.fixture()
def fast():
    """TrainingArguments overrides for quick CPU runs (constant lr, no checkpoints, log every step)."""
    return dict(_FAST)


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    from og.train.toy import write_toy_llava

    return write_toy_llava(tmp_path_factory.mktemp("toy"), n_images=8, seed=0)


@pytest.fixture(scope="session")
def tokenizer(toy):
    from og.data.tokenizer import train_tokenizer

    return train_tokenizer(toy.texts())


@pytest.fixture(scope="session")
def store(toy):
    from og.masks.store import MaskStore

    return MaskStore(toy.store)


@pytest.fixture()
def tiny(tokenizer):
    """build(spec=TINY_SPEC, seed=0) -> (model, processor), the same weights for the same seed."""
    import og

    def build(spec: str = TINY_SPEC, seed: int = 0):
        torch.manual_seed(seed)
        return og.build(spec, tokenizer=tokenizer)

    return build


@pytest.fixture(autouse=True)
def _quiet():
    for name in ("transformers", "accelerate", "deepspeed"):
        logging.getLogger(name).setLevel(logging.ERROR)
