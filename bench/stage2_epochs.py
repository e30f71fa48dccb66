"""Multi-epoch stage 2 on small data (issue 14's 15-minute quickstart): seconds per run with and
without the frozen encoder's feature cache (`cache_encoder_features`) and grouping by length over
each optimizer update (`group_by_modality_length` with accumulation), per fusion. Prints a table;
not a test.

    OMP_NUM_THREADS=1 .venv/bin/python bench/stage2_epochs.py [--images 400] [--epochs 4] [--batch 16] [--accum 4]

The data is a fresh `shapes` folder (the quickstart's scenes, questions and centre drill) with its
oracle masks in a temporary folder; the model is the quickstart's spec: its encoder tower (the CLIP
stand-in's config, 5 pretraining steps: speed does not depend on the weights) and a random tiny Llama,
the whole LLM and the connector trained at a constant lr, as the quickstart's stage 2. Every setting
starts from the same weights; runs are interleaved over --rounds and the fastest is kept (the machine
is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import og
from og.data.shapes import read_texts, write_oracle_store, write_shapes
from og.data.tokenizer import train_tokenizer
from og.experiments.clip_pretrain import pretrain_encoder
from og.experiments.quickstart import BASE, SCENES, SIZES
from og.masks.store import MaskStore
from og.train.run import run_stage

SETTINGS = {"plain": (False, False), "cache": (True, False), "cache + grouped": (True, True)}


def seconds(spec, tokenizer, folder: Path, store, args, cache: bool, grouped: bool) -> float:
    """Wall seconds of run_stage from a model built with seed 0."""
    torch.manual_seed(0)
    model, processor = og.build(spec, tokenizer=tokenizer, mask_store=store,
                                encoder_path=str(folder.parent / "encoder"))
    start = time.perf_counter()
    run_stage("finetune", model, processor, [str(folder / "stage2.json")], folder / "run", train_llm=True,
              image_root=folder, mask_store=store, num_train_epochs=args.epochs, learning_rate=1e-3,
              per_device_train_batch_size=args.batch, gradient_accumulation_steps=args.accum,
              lr_scheduler_type="constant", max_grad_norm=0.0, save_strategy="no", report_to=[],
              disable_tqdm=True, logging_steps=10, dataloader_num_workers=0, activation_checkpointing=False,
              cache_samples=True, cache_encoder_features=cache, group_by_modality_length=grouped)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--accum", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    size = SIZES["default"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "data"
        files = write_shapes(folder, args.images, 0, seed=0, config=SCENES, drill_kinds=size.drill_kinds)
        write_oracle_store(folder, Path(tmp) / "oracle", masks=files.masks)
        store = MaskStore(Path(tmp) / "oracle")
        tower = dataclasses.replace(size.encoder, steps=5, save_every=10 ** 6,  # fewer images than a batch: one batch
                                    batch_size=min(size.encoder.batch_size, args.images))
        pretrain_encoder(folder, Path(tmp) / "encoder", tower, masks=Path(tmp) / "oracle")
        tokenizer = train_tokenizer(read_texts(folder))
        specs = {"patches": BASE.replace(fusion="patches", segmenter="none"), "masktoken": BASE}
        times: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for fusion, spec in specs.items():
                for name, (cache, grouped) in SETTINGS.items():
                    wall = seconds(spec, tokenizer, folder, store if fusion != "patches" else None, args,
                                   cache, grouped)
                    times[fusion, name] = min(times.get((fusion, name), wall), wall)
    table = Table(title=f"stage 2, {args.images} images + drill, {args.epochs:g} epochs, updates of "
                        f"{args.batch} x {args.accum}, {torch.get_num_threads()} thread(s)", title_justify="left")
    for col in ("fusion", *(f"{name} (s)" for name in SETTINGS), "speed-up"):
        table.add_column(col)
    for fusion in specs:
        row = [times[fusion, name] for name in SETTINGS]
        table.add_row(fusion, *(f"{t:.1f}" for t in row), f"{row[0] / row[-1]:.2f}x")
    Console().print(table)
    Console().print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
