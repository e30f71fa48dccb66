"""One rank of the ZeRO-3 test of text-only ranks and position encodings (test_multiprocess.py).

    torchrun --nproc_per_node 2 zero3_worker.py TOY_DIR TOKENIZER_DIR DATA_FILE OUT_DIR STEPS POS1,POS2,...

For each position encoding: builds the seeded tiny masktoken model with it and trains stage 1
under ZeRO-3 on DATA_FILE, per-device batch 1, grouped by modality (so in the last step one
rank holds the image sample and the other the text-only one). Rank 0 writes
OUT_DIR/losses.json: {position: losses, "world_size": n, "zero_stage": k}.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch
from accelerate.state import AcceleratorState
from transformers import AutoTokenizer
from transformers.integrations.deepspeed import unset_hf_deepspeed_config

import og
from og.masks.store import MaskStore
from og.train import run_stage

SPEC = "clip:tiny+none+masktoken+{}+mlp2x_gelu+tiny-llama"


def main(toy: str, tokenizer: str, data: str, out: str, steps: str, positions: str) -> None:
    for name in ("transformers", "accelerate", "deepspeed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    record: dict = {}
    for position in positions.split(","):
        torch.manual_seed(0)
        model, processor = og.build(SPEC.format(position), tokenizer=AutoTokenizer.from_pretrained(tokenizer))
        result = run_stage("pretrain", model, processor, [data], Path(out, position), image_root=toy,
                           mask_store=MaskStore(Path(toy, "masks")), deepspeed="zero3", max_steps=int(steps),
                           group_by_modality_length=True, per_device_train_batch_size=1,
                           gradient_accumulation_steps=1, activation_checkpointing=False, disable_tqdm=True,
                           logging_steps=1, save_strategy="no", warmup_steps=0, lr_scheduler_type="constant",
                           dataloader_num_workers=0)
        record.update({position: result.losses, "world_size": result.world_size, "zero_stage": result.zero_stage})
        unset_hf_deepspeed_config()  # the next model is built outside ZeRO-3's zero.Init
        AcceleratorState._reset_state()
    if int(os.environ.get("RANK", "0")) == 0:
        Path(out, "losses.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:])
