"""Part "sam2": SAM2.1 automatic mask generation on three scikit-image photos (astronaut, chelsea,
coffee, at their own sizes), built exactly as `og masks build` builds it (`cli.segment.
segmenter_from_args`: its defaults on the device, bf16 autocast on CUDA), then with
points_per_batch=64 (the README's CUDA setting; not with --tiny). Without a checkpoint the weights are random: no
mask passes the published thresholds, so one more row sets them to 0 to time the post-processing
too (its mask counts mean nothing). Images/s after one warm-up image; masks per image."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .budget import Part
from .shapes import Setup, sync

PHOTOS = ("astronaut", "chelsea", "coffee")
TINY_OPTIONS = ("image_size=128", "points_per_side=4")  # random weights only: a small model quickly


def photos(tiny: bool) -> list[np.ndarray]:
    from skimage import data, transform

    images = [getattr(data, name)()[..., :3] for name in PHOTOS]
    if tiny:  # a quarter of the side: seconds on a CPU
        images = [(transform.resize(im, (im.shape[0] // 4, im.shape[1] // 4)) * 255).astype(np.uint8)
                  for im in images]
    return images


def settings(checkpoint: str | None, tiny: bool) -> list[tuple[str, list[str]]]:
    base = list(TINY_OPTIONS) if tiny else []
    rows = [("og masks build", base)] + ([] if tiny else [("points_per_batch=64", [*base, "points_per_batch=64"])])
    if checkpoint is None:
        rows.append(("thresholds 0 (random weights)", [*rows[-1][1], "pred_iou_thresh=0", "stability_score_thresh=0"]))
    return rows


def run(setup: Setup, part: Part, checkpoint: str | None, record: dict[str, Any]) -> None:
    from cli.segment import segmenter_from_args
    from og.segmenters.amg import RandomWeightsWarning

    variant = "2.1-tiny" if setup.tiny else "2.1-large"
    images = photos(setup.tiny)
    record.update(variant=variant, weights=checkpoint or "random", settings={},
                  photos=[f"{n} {im.shape[1]}x{im.shape[0]}" for n, im in zip(PHOTOS, images, strict=True)])
    for label, options in settings(checkpoint, setup.tiny):
        if part.out_of_time():
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            seg = segmenter_from_args("sam2", variant, Path(checkpoint) if checkpoint else None, options,
                                      str(setup.device))
        row: dict[str, Any] = {"spec": seg.spec.id, "options": options, "images": 0}
        record["settings"][label] = row
        seg(images[0])  # warm-up: kernels, allocator (and compilation, where the segmenter compiles)
        start, masks = time.perf_counter(), 0
        for image in images:
            if part.out_of_time():
                break
            masks += len(seg(image))
            sync(setup.device)
            row["images"] += 1
            seconds = time.perf_counter() - start
            row.update(images_per_s=row["images"] / seconds, masks_per_image=masks / row["images"])
        del seg
