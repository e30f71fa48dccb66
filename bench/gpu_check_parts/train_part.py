"""Part "train": one training step (forward + backward + AdamW step) at the check's batch, LoRA on
every LLM linear (`og.model.apply_lora`), the finetune stage's trainables (`og.train` stages table:
connector + LoRA), activation checkpointing, the model in the setup's dtype. Reports the median
step time, visual tokens/s, the peak memory of the steps (weights included) and the sequence
lengths; `record` is filled as it goes, so an interrupted part still reports what it did."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from og.model import apply_lora
from og.train.stages import STAGES, apply_stage

from .budget import Part
from .shapes import Setup, peak_gb, reset_peak, sync
from .workload import Workload


def enable_checkpointing(model: Any) -> None:
    """Activation checkpointing of the LLM (non-reentrant: the frozen embeddings need no grad)."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x; the older name otherwise
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def prepare(model: Any, setup: Setup) -> Any:
    """The model as the finetune stage trains it: LoRA r (alpha 2r), connector + LoRA trainable."""
    model = apply_lora(model, r=setup.lora_r, alpha=2 * setup.lora_r, dropout=0.05)
    apply_stage(model, STAGES["finetune"])
    enable_checkpointing(model.get_base_model())
    return model.train()


def run(model: Any, processor: Any, setup: Setup, work: Workload, part: Part, steps: int, warmup: int,
        record: dict[str, Any]) -> Any:
    """Time `steps` steps after `warmup`; returns the prepared (LoRA) model for the next part."""
    device = setup.device
    model = prepare(model, setup)
    batch = work.train_batch(processor, device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    tokens = int(batch["layout"].total) // len(work.images)
    record.update(visual_tokens_per_image=tokens, masks_per_image=work.n_masks,
                  sequence_length=int(batch["input_ids"].shape[1]),
                  text_tokens=[int(n) - tokens for n in batch["attention_mask"].sum(1).tolist()],
                  trainable_params=sum(p.numel() for p in trainable), steps=0, step_ms=[])
    reset_peak(device)
    for i in range(warmup + steps):
        if part.out_of_time():
            break
        sync(device)
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i >= warmup:
            record["step_ms"].append((time.perf_counter() - start) * 1e3)
            record["steps"] = len(record["step_ms"])
            record["step_ms_median"] = statistics.median(record["step_ms"])
            record["visual_tokens_per_s"] = len(work.images) * tokens / (record["step_ms_median"] / 1e3)
        record["loss"] = float(loss.detach())
        record["peak_memory_gb"] = peak_gb(device)
    return model
