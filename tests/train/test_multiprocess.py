"""Two processes (torchrun, gloo, DeepSpeed ZeRO-2 / ZeRO-3) train like one process with the same
global batch, and the two-process run's weights load into a single-process model; under ZeRO-3 a
rank whose batch has no image does not hang, with every position encoding.

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


ZERO3_WORKER = Path(__file__).with_name("zero3_worker.py")


def test_zero3_text_only_rank_and_every_position_encoding(toy, tokenizer, store, tmp_path):
    """ZeRO-3 on two processes, one of which gets a text-only batch in the last step (without the
    dummy vision pass it would hang), for every position encoding (each table read inside its
    module's forward, where ZeRO-3 gathers it): the losses equal one process's on the same data."""
    import og
    from og.data.llava_dataset import LlavaDataset
    from og.registry import POSITIONS
    from og.train.sampler import ModalityLengthSampler

    captions = [json.loads(line) for line in toy.captions.read_text().splitlines()][:3]
    text_only = [r for r in json.loads(toy.instruct.read_text()) if "image" not in r][:1]
    data = tmp_path / "mixed.json"
    data.write_text(json.dumps(captions + text_only))
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    positions = sorted(POSITIONS.list())
    reference = {}
    for position in positions:  # one process, the same global batch of 2
        torch.manual_seed(0)
        model, processor = og.build(f"clip:tiny+none+masktoken+{position}+mlp2x_gelu+tiny-llama", tokenizer=tokenizer)
        if position == positions[0]:  # the premise: the last step puts the image on one rank, the text on the other
            lengths = LlavaDataset([str(data)], processor, template="plain", image_root=toy.image_root,
                                   mask_store=store).modality_lengths
            last = list(ModalityLengthSampler(lengths, 1, 2, seed=42))[-2:]
            assert sorted(lengths[i] > 0 for i in last) == [False, True]
        reference[position] = run_stage(
            "pretrain", model, processor, [str(data)], tmp_path / "one" / position, image_root=toy.image_root,
            mask_store=store, max_steps=2, per_device_train_batch_size=2, group_by_modality_length=True,
            gradient_accumulation_steps=1, activation_checkpointing=False, disable_tqdm=True, logging_steps=1,
            save_strategy="no", warmup_steps=0, lr_scheduler_type="constant").losses
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           env["MASTER_PORT"], str(ZERO3_WORKER), str(toy.root), str(tmp_path / "tokenizer"), str(data),
           str(tmp_path / "two"), "2", ",".join(positions)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "two" / "losses.json").read_text())
    assert (run["world_size"], run["zero_stage"]) == (2, 3)
    for position in positions:
        assert len(run[position]) == 2, position
        assert run[position] == pytest.approx(reference[position], abs=1e-4), position
