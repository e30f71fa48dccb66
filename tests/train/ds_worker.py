"""One rank of the multi-process training test (started by torchrun from test_multiprocess.py).

    torchrun --nproc_per_node 2 ds_worker.py TOY_DIR TOKENIZER_DIR OUT_DIR zero2|zero3|none STEPS

Builds the seeded tiny model every rank shares, trains stage 1 on the toy captions with
per-device batch 2 and writes the logged losses, world size and ZeRO stage to OUT_DIR/losses.json (rank 0).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer

import og
from og.masks.store import MaskStore
from og.train import leave_process_group, run_stage

SPEC = "clip:tiny+none+masktoken+none+mlp2x_gelu+tiny-llama"


def main(toy: str, tokenizer: str, out: str, deepspeed: str, steps: str) -> None:
    for name in ("transformers", "accelerate", "deepspeed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(0)
    model, processor = og.build(SPEC, tokenizer=AutoTokenizer.from_pretrained(tokenizer))
    result = run_stage("pretrain", model, processor, [str(Path(toy, "captions.jsonl"))], out,
                       image_root=toy, mask_store=MaskStore(Path(toy, "masks")),
                       deepspeed=None if deepspeed == "none" else deepspeed, max_steps=int(steps),
                       per_device_train_batch_size=2, gradient_accumulation_steps=1, activation_checkpointing=False,
                       disable_tqdm=True, logging_steps=1, save_strategy="no", warmup_steps=0,
                       lr_scheduler_type="constant", dataloader_num_workers=0)
    if int(os.environ.get("RANK", "0")) == 0:
        Path(out, "losses.json").write_text(json.dumps({"losses": result.losses, "world_size": result.world_size,
                                                        "zero_stage": result.zero_stage}))
    leave_process_group()  # as `og train` does: a group left to exit tears down (SIGABRT) now and then


if __name__ == "__main__":
    main(*sys.argv[1:])
