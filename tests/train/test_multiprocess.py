"""Two processes (torchrun, gloo, DeepSpeed ZeRO-2 / ZeRO-3) train like one process with the same
global batch, and the two-process run's weights load into a single-process model.

Marked `slow` (two fresh interpreters import torch, transformers and DeepSpeed: about 15 s each
here); they run by default, `pytest -m "not slow"` leaves them out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from og.train import run_stage
from og.train.checkpoint import TRAINABLES, load_trainables

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("ds_worker.py")
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, toy, tokenizer, store):
    """One process, global batch 4 as 2 x 2 accumulation: losses and trained weights."""
    import og

    out = tmp_path_factory.mktemp("one")
    torch.manual_seed(0)
    model, processor = og.build("clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama", tokenizer=tokenizer)
    result = run_stage("pretrain", model, processor, [str(toy.captions)], out, image_root=toy.image_root,
                       mask_store=store, max_steps=STEPS, per_device_train_batch_size=2,
                       gradient_accumulation_steps=2, activation_checkpointing=False, disable_tqdm=True,
                       logging_steps=1, save_strategy="no", warmup_steps=0, lr_scheduler_type="constant")
    tokenizer.save_pretrained(out / "tokenizer")
    return out, result.losses


@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_two_processes_match_one(zero, reference, toy, tiny, tmp_path):
    ref_dir, ref_losses = reference
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           env["MASTER_PORT"], str(WORKER), str(toy.root), str(ref_dir / "tokenizer"), str(tmp_path), zero, str(STEPS)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "losses.json").read_text())
    assert (run["world_size"], run["zero_stage"]) == (2, int(zero[-1]))
    assert run["losses"] == pytest.approx(ref_losses, abs=1e-4)
    two, one = load_file(str(tmp_path / TRAINABLES)), load_file(str(ref_dir / TRAINABLES))
    assert set(two) == set(one)
    for key in one:
        torch.testing.assert_close(two[key].float(), one[key], rtol=0, atol=1e-4)
    model, _ = tiny()  # the two-process run's checkpoint in a single-process model
    assert sorted(load_trainables(model, tmp_path)) == sorted(one)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[k], two[k]) for k in two)
