"""The quickstart encoder's cost (issue 14's 15-minute run): seconds per step of the CLIP stand-in's
pretraining (`og.experiments.clip_pretrain`, the quickstart's default config) and the frozen tower's
forward in an LLM step, running only the blocks up to the layer read against the whole tower.
Prints a table; not a test.

    .venv/bin/python bench/encoder_pretrain.py [--threads 2] [--images 512] [--steps 25] [--batch 64]

The data is a fresh `shapes` folder of --images training images (the quickstart's scenes) with its
oracle masks, written to a temporary folder; steps are timed after the first 5.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from og.data.shapes import write_oracle_store, write_shapes
from og.experiments.clip_pretrain import pretrain_encoder
from og.experiments.quickstart import BASE, SCENES, SIZES
from og.registry import ENCODERS


def pretrain_seconds(folder: Path, steps: int, batch: int) -> float:
    """Median seconds per pretraining step after the first 5."""
    data = folder / "data"
    write_oracle_store(data, folder / "masks")
    stamps: list[float] = []
    cfg = dataclasses.replace(SIZES["default"].encoder, steps=steps + 5, batch_size=batch, save_every=10 ** 6)
    pretrain_encoder(data, folder / "encoder", cfg, masks=folder / "masks", on_step=lambda *_: stamps.append(
        time.perf_counter()))
    return statistics.median(b - a for a, b in zip(stamps[4:], stamps[5:], strict=False))


def forward_ms(encoder: torch.nn.Module, batch: int, whole: bool, rounds: int = 20) -> float:
    """Median ms of a no-grad forward on `batch` images: the encoder's, or the whole tower's."""
    x = torch.randn(batch, 3, *encoder.image_size)
    run = (lambda: encoder.model(pixel_values=x, output_hidden_states=True)) if whole else (lambda: encoder(x))
    times = []
    with torch.no_grad():
        for _ in range(rounds + 3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_shapes(folder / "data", args.images, 0, seed=0, config=SCENES, overwrite=True)
        step = pretrain_seconds(folder, args.steps, args.batch)
        encoder = ENCODERS.get(BASE.encoder.name).from_spec(BASE.encoder, path=str(folder / "encoder")).eval()
    print(f"threads {args.threads}, quickstart encoder ({encoder.spec.id}, layer {encoder.spec.layer})")
    print(f"{'what':<52}{'time':>12}")
    print(f"{f'pretraining step, batch {args.batch}':<52}{step:>10.3f} s")
    print(f"{'3,000 steps (the quickstart default)':<52}{3000 * step / 60:>8.1f} min")
    for whole in (False, True):
        what = "whole tower" if whole else "blocks up to the layer read"
        print(f"{f'frozen forward, 16 images, {what}':<52}{forward_ms(encoder, 16, whole):>9.1f} ms")


if __name__ == "__main__":
    main()
