"""`og predict`: answer a question about one image with a saved og model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def store_key(image: Path, store: Any, image_root: Path | None = None) -> str:
    """IMAGE's key in `store`: its path relative to `image_root` (else the root the store recorded),
    else the longest tail of its path that the store holds; when none is there, the root-relative
    key (else the file name), which the store's missing-key error then names."""
    root = image_root or (Path(store.image_root) if getattr(store, "image_root", None) else None)
    path = image.resolve()
    relative = []
    if root is not None and path.is_relative_to(root.resolve()):
        relative = [path.relative_to(root.resolve()).as_posix()]
    tails = ["/".join(path.parts[i:]) for i in range(1, len(path.parts))]  # longest first, the file name last
    return next((k for k in relative + tails if k in store), (relative or [image.name])[0])


def predict(
    image: Path = typer.Argument(..., help="Image file."),
    question: str = typer.Argument(..., help="The question ('<image>' is put in front unless it is in it)."),
    model: Path = typer.Option(..., "--model", help="Model directory (og save / og export / og convert)."),
    segmenter: str = typer.Option(None, "--segmenter", help="Segment on the fly with this segmenter spec, "
                                  "e.g. 'sam2:2.1-large' or 'slic(n_segments=16)' (default: the model's own)."),
    segmenter_path: str = typer.Option(None, "--segmenter-path", help="Checkpoint file of the segmenter."),
    masks: Path = typer.Option(None, "--masks", help="Read the masks from this MaskStore instead."),
    key: str = typer.Option(None, "--key", help="The image's key in the store (default: its path relative to "
                            "--image-root or the store's image root, else the longest tail of its path in the store)."),
    image_root: Path = typer.Option(None, "--image-root", help="Folder the store's keys are relative to "
                                    "(default: the one the store recorded when it was built)."),
    on_missing_masks: str = typer.Option("error", "--on-missing-masks",
                                         help="Image not in the store: error, whole (one full mask) or skip."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Longest answer, in tokens."),
    show_tokens: Path = typer.Option(None, "--show-tokens", help="Write a PNG of the visual tokens the LLM sees."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cpu)."),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16, float16 (default: the checkpoint's)."),
) -> None:
    """Print the model's greedy answer to QUESTION about IMAGE."""
    from PIL import Image

    from og.model.factory import load
    from og.model.show import draw_layout, unnormalise
    from og.model.sources import LazySegmenter
    from og.spec import SegmenterSpec

    if segmenter and masks:
        raise typer.BadParameter("give either --segmenter or --masks, not both")
    if image_root and not masks:
        raise typer.BadParameter("--image-root locates IMAGE in a mask store: give it with --masks")
    if not image.is_file():
        raise FileNotFoundError(f"image {str(image)!r} does not exist")
    og_model, processor = load(model, dtype=dtype, device=device, mask_store=masks, segmenter_path=segmenter_path,
                               on_missing_masks=on_missing_masks)
    if segmenter:
        processor.mask_source = LazySegmenter(SegmenterSpec.parse(segmenter), segmenter_path, device)
    picture = Image.open(image).convert("RGB")
    if key is None and masks is not None:
        key = store_key(image, processor.mask_source, image_root)
    found = processor.masks_for(picture, key or image.name) if processor.uses_masks else None
    text = question if processor.image_token in question else f"{processor.image_token}\n{question}"
    batch = processor([processor.prompt(text)], [picture], masks=[found])
    out = og_model.generate(**batch.to(og_model.device), max_new_tokens=max_new_tokens, do_sample=False)
    typer.echo(processor.decode(out[0, batch["input_ids"].shape[1]:]).strip())
    if show_tokens:
        pixels, layout = processor.prepare_image(picture, found)
        tr = processor.transform
        draw_layout(unnormalise(pixels, tr.mean, tr.std), layout).save(show_tokens)
        typer.echo(f"wrote {show_tokens} ({len(layout)} visual tokens)", err=True)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
