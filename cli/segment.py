"""`og segment IMAGE --segmenter NAME --out overlay.png`: segment one image, draw its masks.

    og segment photo.jpg --segmenter sam2 --variant 2.1-large --checkpoint sam2.1_hiera_large.pt \
        --option points_per_batch=64 --out overlay.png
    og segment photo.jpg --segmenter "slic(n_segments=50)" --out overlay.png
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import typer
from rich.console import Console

SEGMENTER_HELP = "Segmenter name or spec id: sam2, sam, slic, grid, random, whole, given, 'slic(n_segments=50)'."
OPTION_HELP = "A segmenter knob as key=value (repeatable), e.g. points_per_batch=64."


def segmenter_from_args(segmenter: str, variant: str | None = None, checkpoint: Path | None = None,
                        options: list[str] | None = None, device: str | None = None):  # noqa: ANN201
    """Build a segmenter from CLI arguments: a name or spec id, then --variant / --option on top."""
    from og.segmenters import build_segmenter
    from og.spec import SegmenterSpec, SpecError, parse_value

    spec = SegmenterSpec.parse(segmenter)
    opts = dict(spec.options)
    for item in options or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"--option {item!r} must look like key=value (e.g. points_per_side=16)")
        opts[key.strip()] = parse_value(value.strip())
    spec = SegmenterSpec(spec.name, variant if variant is not None else spec.variant, tuple(opts.items()))
    if checkpoint is not None and not checkpoint.is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist; give a local weights file")
    from og.segmenters.amg import RandomWeightsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        seg = build_segmenter(spec, path=str(checkpoint) if checkpoint else None, device=device)
    for w in caught:  # the random-weights notice as one yellow line; anything else as usual
        if issubclass(w.category, RandomWeightsWarning):
            Console(stderr=True, soft_wrap=True).print(f"[yellow]warning: {w.message}[/yellow]")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return seg


def segment(
    image: Path = typer.Argument(..., help="Image file to segment."),
    segmenter: str = typer.Option("sam2", "--segmenter", "-s", help=SEGMENTER_HELP),
    variant: str | None = typer.Option(None, "--variant", help="Model variant, e.g. 2.1-large, vit_h."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Local weights (sam2 / sam)."),
    option: list[str] | None = typer.Option(None, "--option", "-o", help=OPTION_HELP),
    device: str | None = typer.Option(None, "--device", help="cuda, cuda:1, cpu (default: cuda if available)."),
    key: str | None = typer.Option(None, "--key", help="Image key (for `given` / `random`; default: file name)."),
    out: Path = typer.Option(..., "--out", help="Where to write the overlay PNG."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Write each mask's number on it."),
) -> None:
    """Segment one image and write it with each mask in its own colour plus outlines."""
    from og.masks.build import load_image
    from og.viz import overlay_masks

    if not image.is_file():
        raise FileNotFoundError(f"image {image} does not exist")
    seg = segmenter_from_args(segmenter, variant, checkpoint, option, device)
    img = load_image(image)
    start = time.perf_counter()
    masks = seg(img, key=key if key is not None else image.name)
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    overlay_masks(img, masks, labels=[str(i + 1) for i in range(len(masks))] if labels else None).save(out)
    Console(soft_wrap=True).print(f"{len(masks)} masks ({seg.spec.id}, {seconds:.2f} s) -> {out}")


def register(app: typer.Typer) -> None:
    app.command("segment")(segment)
