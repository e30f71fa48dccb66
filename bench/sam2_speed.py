"""SAM 2 automatic-mask-generator throughput per runtime setting (issue 13): images/s, and how far
each setting's masks are from the shipped setting's (points_per_batch 6, float32, no compile):
the mean IoU of matched masks (Hungarian matching on mask IoU; an unmatched mask counts as 0)
and the mask-count drift. Photos: the ones scikit-image bundles. Prints a table; not a test.

    .venv/bin/python bench/sam2_speed.py --device cuda --checkpoint sam2.1_hiera_large.pt   # real run
    OMP_NUM_THREADS=1 .venv/bin/python bench/sam2_speed.py --variant 2.1-tiny --points-per-side 8 \
        --image-size 512 --images 2 --settings shipped batch64 bf16                     # CPU figures

Without --checkpoint the weights are random (thresholds 0 and box NMS 1.0, so that masks come
out and the post-processing is timed too; agreement then only shows the plumbing). A setting is
a set of runtime knobs (og.segmenters.amg): they never change the recorded spec id.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from pycocotools import mask as mask_utils
from rich.console import Console
from rich.table import Table
from scipy.optimize import linear_sum_assignment
from skimage import data, transform

from og.masks.masks import Masks
from og.segmenters import build_segmenter
from og.segmenters.amg import RandomWeightsWarning

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "stereo_motorcycle")
SETTINGS = {  # name -> runtime knobs
    "shipped": "points_per_batch=6,bf16=false,compile=none",
    "batch64": "points_per_batch=64,bf16=false,compile=none",
    "batch256": "points_per_batch=256,bf16=false,compile=none",
    "bf16": "points_per_batch=64,bf16=true,compile=none",
    "bf16+compile": "points_per_batch=64,bf16=true,compile=encoder",
    "bf16+compile-all": "points_per_batch=256,bf16=true,compile=all",
}


def photos(side: int, n: int) -> list[np.ndarray]:
    out = []
    for name in PHOTOS[:n]:
        img = getattr(data, name)()
        img = img[0] if isinstance(img, tuple) else img  # stereo_motorcycle is a pair
        img = np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img[..., :3]
        out.append((transform.resize(img, (side, side)) * 255).astype(np.uint8))
    return out


def agreement(a: Masks, ref: Masks) -> float:
    """Mean IoU of matched masks (one-to-one, maximising IoU); unmatched masks count as 0."""
    if len(a) == 0 or len(ref) == 0:
        return float(len(a) == len(ref))
    ious = mask_utils.iou([{"size": list(a.size), "counts": c} for c in a.rle_counts()],
                          [{"size": list(ref.size), "counts": c} for c in ref.rle_counts()],
                          [0] * len(ref))  # (Ma, Mr)
    rows, cols = linear_sum_assignment(-ious)
    return float(ious[rows, cols].sum() / max(len(a), len(ref)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="2.1-large")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=None, help="model input size (random weights only)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--photo-size", type=int, default=512)
    args = ap.parse_args()
    images = photos(args.photo_size, args.images)
    base = [f"points_per_side={args.points_per_side}"]
    if args.image_size:
        base.append(f"image_size={args.image_size}")
    if args.checkpoint is None:
        base += ["pred_iou_thresh=0", "stability_score_thresh=0", "box_nms_thresh=1.0"]
    names = ["shipped", *[s for s in args.settings if s != "shipped"]]
    table = Table(title=f"sam2:{args.variant}, {args.points_per_side}^2 points, {len(images)} photos "
                        f"{args.photo_size}x{args.photo_size}" + ("" if args.checkpoint else " (RANDOM weights)"))
    for col in ("setting", "device", "images/s", "s/image", "masks/image", "mean IoU vs shipped", "count drift"):
        table.add_column(col, justify="right")
    reference: list[Masks] = []
    for name in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            seg = build_segmenter(f"sam2:{args.variant}({','.join(base)},{SETTINGS[name]})", path=args.checkpoint,
                                  device=args.device)
        seg(images[0])  # warm-up (kernels, allocator, compilation)
        start = time.perf_counter()
        masks = [seg(img) for img in images]
        sec = (time.perf_counter() - start) / len(images)
        reference = reference or masks
        iou = np.mean([agreement(m, r) for m, r in zip(masks, reference, strict=True)])
        drift = np.mean([(len(m) - len(r)) / max(len(r), 1) for m, r in zip(masks, reference, strict=True)])
        table.add_row(name, seg.device, f"{1 / sec:.2f}", f"{sec:.2f}", f"{np.mean([len(m) for m in masks]):.1f}",
                      f"{iou:.3f}", f"{drift:+.1%}")
        Console().print(f"{name}: {seg.runtime}", style="dim")
    Console().print(table)


if __name__ == "__main__":
    main()
