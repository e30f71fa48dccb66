"""Training-step benchmark (issue 6 "Speed"): masktoken against patches at the same visual-token
count, and data loading (decode + geometry + masks + layout) samples/s per worker. Prints
tables; not a test.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_step.py [--steps 20] [--batch 8] [--stage finetune]

Model: the tiny random OG-LLaVA of the tests (CLIP tiny, grid h x w, tiny Llama), the same
weights for both fusions (only the fusion differs; `patches` has no begin-of-mask token).
Visual tokens: every image gets masks that are the pixel rows of the first h-1 patch rows, so
`masktoken` makes 1 (mean) + (h-1) x (1 begin-of-mask + w patches) = h*w tokens for a square
grid, exactly `patches`' count (checked). A step is forward + backward + AdamW step on the
stage's trainables (finetune: connector + LoRA r 8 on every LLM linear). Steps of the two
fusions are interleaved and the median is reported (the machine is shared).
Data loading: decode + geometry + masks + layout on toy images (PNG, --image-size) with k x k window
masks each (36 by default, about SAM's count) from a MaskStore, one process = one DataLoader
worker: `LlavaDataset.__getitems__` per batch of --batch, what a worker calls (the batch's store
reads, mask decoding and layouts in one pass), and `__getitem__` one sample at a time beside it
(the two fusions' passes interleaved, best of --rounds); then a DataLoader with --workers
workers (steady state, after the first batch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

import og
from og.data.collator import TrainCollator
from og.data.llava_dataset import LlavaDataset
from og.data.tokenizer import train_tokenizer
from og.masks.masks import Masks
from og.masks.store import MaskStore
from og.train.run import add_lora
from og.train.stages import STAGES, LoraSettings, apply_stage
from og.train.toy import write_toy_llava

SPEC = "clip:tiny+none+{fusion}+none+mlp2x_gelu+tiny-llama"


def row_masks(image_size: tuple[int, int], grid: tuple[int, int]) -> Masks:
    """h-1 masks: the pixel rows under patch rows 0..h-2 (each covers w patches exactly)."""
    (height, width), (h, _) = image_size, grid
    data = np.zeros((h - 1, height, width), bool)
    for r in range(h - 1):
        data[r, r * height // h: (r + 1) * height // h] = True
    return Masks(data, np.ones(h - 1, np.float32))


def build(fusion: str, tokenizer, stage: str, lora_r: int):
    torch.manual_seed(0)
    model, processor = og.build(SPEC.format(fusion=fusion), tokenizer=tokenizer)
    stage_def = STAGES[stage]
    if stage_def.lora is not None:
        stage_def = stage_def.with_flags(lora=LoraSettings(r=lora_r, alpha=2 * lora_r, dropout=0.0))
        model = add_lora(model, stage_def.lora)
    apply_stage(model, stage_def)
    return model.train(), processor


def make_batch(processor, batch: int, image_size: tuple[int, int], grid: tuple[int, int]):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (*image_size, 3), dtype=np.uint8)) for _ in range(batch)]
    masks = [row_masks(image_size, grid)] * batch
    text = processor.apply_chat_template([("user", "<image>\nwhat is in the image ?"),
                                          ("assistant", "a red box left of a blue box .")])
    out = processor([text] * batch, images, masks=masks, padding_side="right")
    out["labels"] = out["input_ids"].masked_fill(out["input_ids"] == processor.image_token_id, -100)
    out.pop("image_sizes", None)
    return dict(out)


def step_times(fusions: list[str], tokenizer, args) -> dict[str, dict]:
    runs = {}
    for fusion in fusions:
        model, processor = build(fusion, tokenizer, args.stage, args.lora_r)
        enc = model.encoder if hasattr(model, "encoder") else model.base_model.model.encoder
        batch = make_batch(processor, args.batch, tuple(enc.image_size), tuple(enc.grid))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        runs[fusion] = {"model": model, "batch": batch, "opt": opt, "times": [],
                        "tokens": batch["layout"].total // args.batch, "length": batch["input_ids"].shape[1]}
    for i in range(args.steps + args.warmup):
        for run in runs.values():
            start = time.perf_counter()
            loss = run["model"](**run["batch"]).loss
            loss.backward()
            run["opt"].step()
            run["opt"].zero_grad(set_to_none=True)
            if i >= args.warmup:
                run["times"].append(time.perf_counter() - start)
    return runs


def grid_store(toy, k: int, out: Path) -> MaskStore:
    """A store of k x k window masks per image (the `grid` segmenter): about as many masks as SAM gives."""
    from og.registry import SEGMENTERS
    from og.spec import SegmenterSpec

    segmenter = SEGMENTERS.get("grid").from_spec(SegmenterSpec.parse(f"grid(k={k})"))
    with MaskStore.writer(out, segmenter.spec.id) as writer:
        for path in sorted((toy.image_root / "images").glob("*.png")):
            writer.add(f"images/{path.name}", segmenter(Image.open(path)))
    return MaskStore(out)


def loading_rates(tokenizer, args, out: Path) -> list[tuple]:
    """Samples/s of `LlavaDataset.__getitem__` in this process (one worker), the fusions' passes
    interleaved and the best of `--rounds` kept (the machine is shared), then through a DataLoader."""
    toy = write_toy_llava(out, n_images=args.images, size=(args.image_size, args.image_size * 4 // 3), seed=0)
    store = grid_store(toy, args.grid_k, out / "grid_masks")
    datasets = {}
    for fusion in ("patches", "masktoken"):
        _, processor = og.build(SPEC.format(fusion=fusion), tokenizer=tokenizer)
        datasets[fusion] = LlavaDataset([str(toy.captions)], processor, template="plain", image_root=toy.image_root,
                                        mask_store=store if processor.uses_masks else None)
        datasets[fusion][0]
    per_worker: dict[str, float] = {}
    one_by_one: dict[str, float] = {}
    for _ in range(args.rounds):
        for fusion, ds in datasets.items():
            start = time.perf_counter()
            for i in range(0, len(ds), args.batch):  # what a DataLoader worker calls per batch
                ds.__getitems__(list(range(i, min(i + args.batch, len(ds)))))
            per_worker[fusion] = max(per_worker.get(fusion, 0.0), len(ds) / (time.perf_counter() - start))
            start = time.perf_counter()
            for i in range(len(ds)):
                ds[i]
            one_by_one[fusion] = max(one_by_one.get(fusion, 0.0), len(ds) / (time.perf_counter() - start))
    rows = []
    for fusion, ds in datasets.items():
        loader = iter(DataLoader(ds, batch_size=args.batch, num_workers=args.workers,
                                 collate_fn=TrainCollator(ds.processor.tokenizer.pad_token_id)))
        next(loader)  # workers started; time the steady state
        start = time.perf_counter()
        n = sum(b["input_ids"].shape[0] for b in loader)
        rows.append((fusion, per_worker[fusion], one_by_one[fusion], n / (time.perf_counter() - start)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--stage", default="finetune", choices=["pretrain", "finetune"])
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--images", type=int, default=96, help="toy images for the data-loading rate")
    parser.add_argument("--grid-k", type=int, default=6, help="k x k window masks per image in the store")
    parser.add_argument("--image-size", type=int, default=336, help="toy image height (width is 4/3 of it)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes per fusion (best kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        toy = write_toy_llava(Path(tmp) / "vocab", n_images=4)
        tokenizer = train_tokenizer([*toy.texts(), "what is in the image ?"])
        runs = step_times(["patches", "masktoken"], tokenizer, args)
        loading = loading_rates(tokenizer, args, Path(tmp) / "load")
    console = Console()
    if runs["patches"]["tokens"] != runs["masktoken"]["tokens"]:
        raise SystemExit(f"visual tokens differ: {runs['patches']['tokens']} vs {runs['masktoken']['tokens']}")
    base = statistics.median(runs["patches"]["times"])
    table = Table(title=f"training step, stage {args.stage}, batch {args.batch}, {args.steps} steps (median)",
                  title_justify="left")
    for col in ("fusion", "visual tokens / image", "sequence length", "ms / step", "vs patches"):
        table.add_column(col)
    for fusion, run in runs.items():
        med = statistics.median(run["times"])
        table.add_row(fusion, str(run["tokens"]), str(run["length"]), f"{med * 1e3:.1f}", f"{med / base:.3f}x")
    console.print(table)
    table = Table(title=f"data loading ({args.images} PNG images {args.image_size}x{args.image_size * 4 // 3}, "
                        f"{args.grid_k ** 2} masks each from a MaskStore)", title_justify="left")
    for col in ("fusion", f"samples/s per worker (batches of {args.batch})", "vs patches",
                "one sample at a time", "vs patches", f"samples/s, DataLoader {args.workers} workers",
                "samples/s the step needs"):
        table.add_column(col)
    base_rate, base_one = loading[0][1], loading[0][2]
    for fusion, per_worker, one, loader_rate in loading:
        need = args.batch / statistics.median(runs[fusion]["times"])
        table.add_row(fusion, f"{per_worker:.0f}", f"{per_worker / base_rate:.2f}x", f"{one:.0f}",
                      f"{one / base_one:.2f}x", f"{loader_rate:.0f}", f"{need:.0f}")
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (goals: masktoken loading >= 0.8x "
                  "patches, model step <= 1.10x)")


if __name__ == "__main__":
    main()
