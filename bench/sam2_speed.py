"""SAM 2 automatic-mask-generator throughput (issue 3 "Speed"): images/s for several
points_per_batch values on the chosen device. Prints a table; not a test.

    .venv/bin/python bench/sam2_speed.py --device cuda --checkpoint sam2.1_hiera_large.pt   # real run
    OMP_NUM_THREADS=1 .venv/bin/python bench/sam2_speed.py --variant 2.1-tiny --points-per-side 4 \
        --image-size 256 --batches 4 16 --images 2                                     # CPU smoke run

Without --checkpoint the weights are random (thresholds 0 and box NMS 1.0, so that masks come
out and the post-processing is timed too). points_per_batch does not change the masks, only
how many prompts go through the decoder at once: the published 6 starves a GPU.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from rich.console import Console
from rich.table import Table
from skimage import data, transform

from og.segmenters import build_segmenter
from og.segmenters.amg import RandomWeightsWarning


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="2.1-large")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=None, help="model input size (random weights only)")
    ap.add_argument("--batches", type=int, nargs="+", default=[6, 64, 256])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--photo-size", type=int, default=512)
    args = ap.parse_args()
    s = args.photo_size
    images = [(transform.resize(getattr(data, n)()[..., :3], (s, s)) * 255).astype(np.uint8)
              for n in ("astronaut", "chelsea", "coffee", "rocket")]
    table = Table(title=f"sam2:{args.variant}, {args.points_per_side}^2 points, {s}x{s} photos")
    for col in ("points_per_batch", "device", "images/s", "s/image", "masks/image"):
        table.add_column(col, justify="right")
    for ppb in args.batches:
        opts = [f"points_per_side={args.points_per_side}", f"points_per_batch={ppb}"]
        if args.image_size:
            opts.append(f"image_size={args.image_size}")
        if args.checkpoint is None:
            opts += ["pred_iou_thresh=0", "stability_score_thresh=0", "box_nms_thresh=1.0"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            seg = build_segmenter(f"sam2:{args.variant}({','.join(opts)})", path=args.checkpoint, device=args.device)
        seg(images[0])  # warm-up (kernels, allocator)
        start, masks = time.perf_counter(), 0
        for i in range(args.images):
            masks += len(seg(images[i % len(images)]))
        sec = (time.perf_counter() - start) / args.images
        table.add_row(str(ppb), seg.device, f"{1 / sec:.2f}", f"{sec:.2f}", f"{masks / args.images:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
