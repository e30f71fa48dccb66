"""DeepSpeed ZeRO-2 in one CPU process (gloo) gives the plain Trainer's losses and weights.

Needs MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE / LOCAL_RANK (set here). The first run
compiles DeepSpeed's small shared-memory op into TORCH_EXTENSIONS_DIR (cached afterwards).
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from safetensors.torch import load_file

from og.train import run_stage
from og.train.checkpoint import TRAINABLES
from og.train.run import deepspeed_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def one_process_group(monkeypatch):
    before = dict(os.environ)
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                           LOCAL_RANK="0").items():
        monkeypatch.setenv(key, value)
    yield
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    AcceleratorState._reset_state(reset_partial_state=True)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for key in set(os.environ) - set(before):  # what the libraries set (LOCAL_WORLD_SIZE, ...)
        del os.environ[key]


def test_shipped_configs_resolve_by_name_and_path(tmp_path):
    for name in ("zero2", "zero3", "zero3_offload"):
        config = json.loads(open(deepspeed_config(name)).read())
        assert config["optimizer"]["params"]["torch_adam"] is True
        assert config["train_micro_batch_size_per_gpu"] == "auto"
        assert config["zero_optimization"]["stage"] == (2 if name == "zero2" else 3)
    own = tmp_path / "mine.json"
    own.write_text("{}")
    assert deepspeed_config(str(own)) == str(own)
    with pytest.raises(FileNotFoundError, match="zero4.*zero2, zero3, zero3_offload"):
        deepspeed_config("zero4")


def test_zero2_one_process_matches_the_plain_trainer(tiny, fast, toy, store, tmp_path, one_process_group):
    runs = {}
    for name, ds in (("plain", None), ("zero2", "zero2")):
        model, processor = tiny()
        result = run_stage("pretrain", model, processor, [str(toy.captions)], tmp_path / name, deepspeed=ds,
                           image_root=toy.image_root, mask_store=store, max_steps=3, per_device_train_batch_size=4,
                           **fast)
        runs[name] = result.losses
        assert result.zero_stage == (2 if ds else None)
    assert len(runs["zero2"]) == 3
    assert runs["zero2"][0] == pytest.approx(runs["plain"][0], abs=1e-6)  # same model, same first batch
    assert runs["zero2"] == pytest.approx(runs["plain"], abs=1e-5)  # and the same updates after it
    plain, zero2 = (load_file(str(tmp_path / n / TRAINABLES)) for n in ("plain", "zero2"))
    assert set(plain) == set(zero2)
    for key in plain:
        torch.testing.assert_close(zero2[key], plain[key], rtol=0, atol=1e-5)
