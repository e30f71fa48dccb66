"""Part "zero": the finetune stage through `og.train.run_stage` (og train's code path: LlavaDataset,
collator, OGTrainer, the shipped DeepSpeed configs) three times from the same weights: plain
(no DeepSpeed), ZeRO-2 and ZeRO-3, in one process (world size 1). The losses of the same steps
must be equal: the first one (same weights, same batch) within `tolerance`, later ones reported.
Every run gets the same model and data; LoRA dropout is 0 so that the runs are deterministic.

One process needs MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE / LOCAL_RANK; `one_process_group`
sets what is missing for the whole part (one process group: DeepSpeed keeps a handle on it, so it
is not destroyed between runs), and `reset_run_state` clears the DeepSpeed config and accelerate's
state after each run (as tests/train does)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from og.train import LoraSettings, run_stage

from .budget import Part
from .shapes import Setup, free_memory, peak_gb, reset_peak
from .workload import Workload

RUNS = (("plain", None), ("zero2", "zero2"), ("zero3", "zero3"))
FAST = {"gradient_accumulation_steps": 1, "logging_steps": 1, "save_strategy": "no", "warmup_steps": 0,
        "lr_scheduler_type": "constant", "disable_tqdm": True, "dataloader_num_workers": 0, "seed": 0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def one_process_group() -> Iterator[None]:
    before = dict(os.environ)
    for key, value in dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1",
                           LOCAL_RANK="0").items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        reset_run_state()
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key in set(os.environ) - set(before):  # what we and the libraries set (LOCAL_WORLD_SIZE, ...)
            del os.environ[key]


def reset_run_state() -> None:
    """Forget the last run's DeepSpeed config and accelerate state (the process group stays)."""
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    AcceleratorState._reset_state(reset_partial_state=True)


def tolerance(setup: Setup) -> float:
    """Relative tolerance on the first loss: float32 runs agree to rounding; bf16 ones to bf16's."""
    return 2e-3 if setup.bf16 else 1e-5


def run(setup: Setup, work: Workload, part: Part, steps: int, tmp: Path, record: dict[str, Any]) -> None:
    data, image_root, store = work.write_llava(tmp / "data")
    record.update(steps=steps, batch=len(work.images), tolerance=tolerance(setup), runs={})
    lora = LoraSettings(r=setup.lora_r, alpha=2 * setup.lora_r, dropout=0.0)
    try:
        with one_process_group():
            for name, config in RUNS:
                if part.out_of_time():
                    break
                one_run(name, config, setup, tmp, (data, image_root, store), lora, steps, record)
    finally:
        compare(record)


def one_run(name: str, config: str | None, setup: Setup, tmp: Path, files: tuple, lora: LoraSettings, steps: int,
            record: dict[str, Any]) -> None:
    """One run_stage of the finetune stage (`config`: a shipped DeepSpeed config or None)."""
    data, image_root, store = files
    model, processor = setup.build("masktoken")
    reset_peak(setup.device)
    start = time.perf_counter()
    try:
        result = run_stage("finetune", model, processor, [str(data)], tmp / name, image_root=image_root,
                           mask_store=store, deepspeed=config, lora=lora, base={"dir": "random (gpu_check)"},
                           max_steps=steps, per_device_train_batch_size=record["batch"], bf16=setup.bf16,
                           activation_checkpointing=True, **FAST)
    finally:
        reset_run_state()
    record["runs"][name] = {"losses": result.losses, "zero_stage": result.zero_stage,
                            "seconds": time.perf_counter() - start, "peak_memory_gb": peak_gb(setup.device)}
    del model, processor, result
    free_memory()


def compare(record: dict[str, Any]) -> None:
    """`first_loss_equal[name]`: the run's first loss within the tolerance of the plain run's."""
    runs, tol = record["runs"], record["tolerance"]
    if "plain" not in runs:
        return
    plain = runs["plain"]["losses"]
    record["first_loss_equal"] = {}
    for name, run in runs.items():
        if name == "plain" or not run["losses"] or not plain:
            continue
        rel = abs(run["losses"][0] - plain[0]) / max(abs(plain[0]), 1e-12)
        run["first_loss_rel_diff"] = rel
        run["max_loss_rel_diff"] = max(abs(a - b) / max(abs(b), 1e-12)
                                       for a, b in zip(run["losses"], plain, strict=False))
        record["first_loss_equal"][name] = rel <= tol
