"""MaskStore benchmark (issues 3 and 13 "Speed"): bytes per mask against one uncompressed .npy per
mask (the published layout), and per image: read + decode (pycocotools), the reference coverage
path (read + decode + resample to the encoder's pixels + `area`), and the direct path (read the
RLE strings without decoding + coverage from their runs through the composed map,
`og.fusion.coverage`), with the share of (mask, patch) memberships on which the two agree.

    OMP_NUM_THREADS=1 .venv/bin/python bench/store.py [--images 64] [--masks 40] [--size 336] [--encoder-size 336]

Masks: SLIC superpixels of random crops of the photos scikit-image bundles (about `--masks`
segments each, every image different) and SAM-style random blobs (the `random` segmenter, `--masks` per
image). Goals: >= 20x smaller than .npy; read + coverage <= 2 ms per image, one core.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data, transform

from og.fusion import member
from og.fusion.coverage import PatchCoverage
from og.masks.geometry import ImageTransform
from og.masks.masks import Masks
from og.masks.store import MaskStore, MaskStoreWriter
from og.segmenters import build_segmenter

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins")


def photos(size: int) -> list[np.ndarray]:
    out = []
    for name in PHOTOS:
        img = getattr(data, name)()
        img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
        out.append((transform.resize(img, (size, size)) * 255).astype(np.uint8))
    return out


def slic_masks(size: int, n_masks: int, n_images: int) -> list[Masks]:
    """About n_masks SLIC segments per image, each image a different random crop of a photo
    (SLIC returns fewer segments than asked: ask more until there are enough)."""
    rng = np.random.default_rng(0)
    out, bases = [], photos(2 * size)
    for i in range(n_images):
        base = bases[i % len(bases)]
        y, x = rng.integers(0, size, 2)
        img = base[y : y + size, x : x + size]
        ask = n_masks
        for _ in range(8):
            m = build_segmenter(f"slic(n_segments={ask})")(img)
            if len(m) >= n_masks:
                break
            ask = int(ask * 1.3) + 1
        out.append(m.select(np.arange(min(n_masks, len(m)))))
    return out


def blob_masks(size: int, n_masks: int, n_images: int) -> list[Masks]:
    seg = build_segmenter(f"random(count={n_masks})")
    blank = np.zeros((size, size, 3), np.uint8)
    return [seg(blank, key=f"img{i}") for i in range(n_images)]


def npy_bytes(mask: np.ndarray) -> int:
    buf = io.BytesIO()
    np.save(buf, mask)
    return buf.getbuffer().nbytes


def best_ms(fn, keys: list[str], rounds: int = 3) -> float:
    """ms per call, best of `rounds` passes over `keys` after a warm-up (a shared machine is noisy)."""
    for key in keys[:10]:
        fn(key)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for key in keys:
            fn(key)
        times.append((time.perf_counter() - start) / len(keys) * 1e3)
    return min(times)


def measure(kind: str, masks: list[Masks], n_images: int, grid: tuple[int, int], encoder_size: int,
            reps: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        with MaskStoreWriter(root, f"bench-{kind}", flush_every=256) as writer:
            for i in range(n_images):
                writer.add(f"img{i:05d}.jpg", masks[i])
        from og.masks.store import merge

        merge(root)
        store = MaskStore(root)
        stats = store.stats()
        n = stats["masks"]
        disk = stats["bytes_on_disk"] / n
        rle = stats["rle_bytes"] / n
        npy = float(np.mean([npy_bytes(m) for ms in masks for m in ms.data]))
        keys = [str(k) for k in np.random.default_rng(0).choice(store.keys(), size=reps)]
        cov = PatchCoverage(ImageTransform(encoder_size, (0.5,) * 3, (0.5,) * 3), grid)
        read_ms = best_ms(lambda key: store.get(key), keys)
        ref_ms = best_ms(lambda key: cov.resampled(store.get(key)), keys)  # (M, h, w)
        direct_ms = best_ms(lambda key: cov(store.read(key)), keys)  # (M, h, w)
        agree = [(member(cov(store.read(k)), 0.5) == member(cov.resampled(store.get(k)), 0.5)).float().mean()
                 for k in store.keys()[:16]]
        per_image = n / len(store)
        return [kind, f"{per_image:.1f}", f"{npy:,.0f}", f"{rle:,.0f}", f"{disk:,.0f}", f"{npy / disk:,.0f}x",
                f"{read_ms:.2f}", f"{ref_ms:.2f}", f"{direct_ms:.2f}", f"{float(np.mean(agree)) * 100:.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--masks", type=int, default=40)
    ap.add_argument("--size", type=int, default=336)
    ap.add_argument("--grid", type=int, default=24, help="patch grid side")
    ap.add_argument("--encoder-size", type=int, default=336, help="the encoder's image side")
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()
    grid = (args.grid,) * 2
    rows = [measure("slic", slic_masks(args.size, args.masks, args.images), args.images, grid, args.encoder_size,
                    args.reps),
            measure("sam-style blobs", blob_masks(args.size, args.masks, args.images), args.images, grid,
                    args.encoder_size, args.reps)]
    table = Table(title=f"MaskStore, {args.size}x{args.size} masks, encoder {args.encoder_size} px / {args.grid}x"
                        f"{args.grid} patches, {args.images} images (goals: >= 20x, read + coverage <= 2 ms)",
                  caption=f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs while measuring")
    for col in ("masks", "masks/img", ".npy B/mask", "RLE B/mask", "on disk B/mask", "smaller",
                "read+decode ms/img", "reference: +resample+area ms/img", "read+coverage ms/img",
                "membership agrees %"):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
