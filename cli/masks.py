"""`og masks build | info | show | merge`: compute masks offline into a MaskStore and look at it.

    og masks build --images photos/ --segmenter slic --out masks/photos
    og masks build --data llava_v1_5_mix665k.json --image-root data/ --segmenter sam2 \
        --checkpoint sam2.1_hiera_large.pt --points-per-batch 64 --bf16 --compile encoder --out masks/mix665k \
        --shard 0/8
    torchrun --nproc_per_node 8 -m cli.main masks build ...   # each rank takes its own part
    og masks merge masks/mix665k ; og masks info masks/mix665k
    og masks show masks/mix665k coco/train2017/000000000009.jpg --out overlay.png
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from cli.segment import OPTION_HELP, SEGMENTER_HELP, segmenter_from_args

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
console = Console(soft_wrap=True)


def images_in(folder: Path) -> list[str]:
    """Image files under `folder`, as sorted posix paths relative to it."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder} is not a directory")
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def images_of_llava(data: Path) -> tuple[list[str], int]:
    """Unique image paths of a LLaVA-format json (list of {"image": ...}), and the text-only count."""
    if not data.is_file():
        raise FileNotFoundError(f"--data {data} does not exist")
    records = json.loads(data.read_text())
    if not isinstance(records, list):
        raise ValueError(f"--data {data}: a LLaVA json is a list of records; got {type(records).__name__}")
    keys, text_only = [], 0
    for rec in records:
        image = rec.get("image") if isinstance(rec, dict) else None
        if not image:
            text_only += 1
            continue
        keys += [image] if isinstance(image, str) else list(image)
    return list(dict.fromkeys(Path(k).as_posix() for k in keys)), text_only


def _items(keys: list[str], root: Path) -> Iterator[tuple[str, object]]:
    from og.masks.build import load_image

    for key in keys:
        yield key, (lambda path=root / key: load_image(path))


def _parse_shard(text: str) -> tuple[int, int]:
    i, sep, n = text.partition("/")
    if not sep or not i.isdigit() or not n.isdigit():
        raise typer.BadParameter(f"--shard {text!r}: use i/n, e.g. 0/4")
    return int(i), int(n)


def build(
    images: Path | None = typer.Option(None, "--images", help="A folder of images (searched recursively)."),
    data: Path | None = typer.Option(None, "--data", help="A LLaVA-format json whose records name images."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder the --data image paths are under."),
    segmenter: str = typer.Option(..., "--segmenter", "-s", help=SEGMENTER_HELP),
    variant: str | None = typer.Option(None, "--variant", help="Model variant, e.g. 2.1-large."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Local weights (sam2 / sam)."),
    option: list[str] | None = typer.Option(None, "--option", "-o", help=OPTION_HELP),
    device: str | None = typer.Option(None, "--device", help="cuda, cuda:1, cpu (default: cuda if available)."),
    out: Path = typer.Option(..., "--out", help="The mask store directory (created, or resumed)."),
    shard: str = typer.Option("0/1", "--shard", help="Work part i/n (SLURM arrays); combines with RANK/WORLD_SIZE."),
    batch: int = typer.Option(4, "--batch", help="Images loaded ahead in background threads."),
    flush_every: int = typer.Option(256, "--flush-every", help="Images per shard file (work lost on a kill)."),
    points_per_batch: int | None = typer.Option(None, "--points-per-batch",
                                                help="sam2 / sam: prompts per mask-decoder batch (default: 64 on "
                                                     "CUDA, the published 6 elsewhere)."),
    bf16: bool | None = typer.Option(None, "--bf16/--no-bf16", help="sam2 / sam: bfloat16 autocast (default: on "
                                                                    "for sam2 on CUDA)."),
    compile_: str | None = typer.Option(None, "--compile", help="sam2 / sam: torch.compile none | encoder | all "
                                                                "(default: encoder for sam2 on CUDA with triton)."),
) -> None:
    """Segment every image into a mask store; resumes where a previous run stopped."""
    from og.masks.build import build_store
    from og.masks.store import merge

    if (images is None) == (data is None):
        raise typer.BadParameter("give exactly one of --images DIR or --data llava.json (with --image-root)")
    if data is not None:
        if image_root is None:
            raise typer.BadParameter("--data needs --image-root DIR (the folder its image paths are under)")
        keys, text_only = images_of_llava(data)
        root = image_root
        console.print(f"{len(keys)} images in {data} ({text_only} text-only records have none)")
    else:
        root, keys = images, images_in(images)
        console.print(f"{len(keys)} images under {images}")
    runtime = {"points_per_batch": points_per_batch, "bf16": bf16, "compile": compile_}
    extra = [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in runtime.items() if v is not None]
    seg = segmenter_from_args(segmenter, variant, checkpoint, [*(option or []), *extra], device)
    settings = getattr(seg, "runtime", None)
    shown = f", runtime: {', '.join(f'{k}={v}' for k, v in settings.items())}" if settings else ""
    console.print(f"segmenter {seg.spec.id} (weights: {seg.weights or 'none'}{shown})")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:.2f} img/s"), TextColumn("{task.fields[mpi]:.1f} masks/img"),
               TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("segmenting", total=None, rate=0.0, mpi=0.0, failed=0)

        def on_start(summary) -> None:  # noqa: ANN001
            progress.update(task, total=summary.todo,
                            description=f"part {summary.part[0]}/{summary.part[1]} ({summary.skipped} done before)")

        def on_image(key: str, n_masks: int, summary) -> None:  # noqa: ANN001
            mpi = summary.masks / summary.written if summary.written else 0.0
            progress.update(task, advance=1, rate=summary.images_per_second, mpi=mpi, failed=summary.failed)

        summary = build_store(out, _items(keys, root), seg, shard=_parse_shard(shard), flush_every=flush_every,
                              prefetch=batch, progress=on_image, on_start=on_start, image_root=root.resolve())
    for name in summary.rebuilt:
        console.print(f"[yellow]shard {name} was corrupt: moved aside, its images were done again[/yellow]")
    console.print(f"part {summary.part[0]}/{summary.part[1]}: {summary.written} written, {summary.skipped} already "
                  f"there, {summary.failed} failed, {summary.masks} masks, {summary.images_per_second:.2f} img/s")
    for key, reason in summary.failures[:5]:
        console.print(f"[red]failed[/red] {key}: {reason}")
    if summary.failed:
        console.print(f"{summary.failed} failures are listed by `og masks info {out}`")
    if summary.part[1] == 1:
        merge(out)
        console.print(f"index written: {out}")
    else:
        console.print(f"when every part has finished: og masks merge {out}")


def info(store: Path = typer.Argument(..., help="Mask store directory."),
         failures: int = typer.Option(10, "--failures", help="How many failures to list.")) -> None:
    """Images, masks, masks-per-image distribution and bytes of a mask store."""
    from og.masks.store import MaskStore

    ms = MaskStore(store)
    s = ms.stats()
    table = Table(title=str(store), show_header=False, title_justify="left")
    mpi = s["masks_per_image"]
    bpm = s["rle_bytes"] / s["masks"] if s["masks"] else 0.0
    rows = [("segmenter", s["spec"]), ("weights", str(s["weights"])), ("og version", s["og_version"]),
            ("images", str(s["images"])), ("failures", str(s["failures"])), ("masks", str(s["masks"])),
            ("masks / image", f"min {mpi['min']}  median {mpi['median']:g}  mean {mpi['mean']:.1f}  max {mpi['max']}"),
            ("distribution", "  ".join(f"{k}: {v}" for k, v in s["histogram"].items())),
            ("bytes on disk", f"{s['bytes_on_disk']:,}"), ("RLE bytes / mask", f"{bpm:.0f}"),
            ("shards", str(s["shards"])), ("duplicates", str(s["duplicates"])), ("image root", str(ms.image_root))]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    for key, reason in ms.failures[:failures]:
        console.print(f"[red]failed[/red] {key}: {reason}")


def show(store: Path = typer.Argument(..., help="Mask store directory."),
         key: str = typer.Argument(..., help="Image key (its path relative to the image root)."),
         out: Path = typer.Option(..., "--out", help="Where to write the overlay PNG."),
         image_root: Path | None = typer.Option(None, "--image-root", help="Image folder (default: the store's)."),
         labels: bool = typer.Option(True, "--labels/--no-labels", help="Write each mask's number on it.")) -> None:
    """Draw one image's stored masks on it (on grey when the image cannot be found)."""
    import numpy as np
    from PIL import Image

    from og.masks.build import load_image
    from og.masks.store import MaskStore
    from og.viz import overlay_masks

    ms = MaskStore(store)
    masks = ms.get(key)
    root = image_root or (Path(ms.image_root) if ms.image_root else None)
    if root is not None and (root / key).is_file():
        img = load_image(root / key)
    else:
        console.print(f"[yellow]image {key} not found under {root}; drawing on grey (give --image-root)[/yellow]")
        img = Image.fromarray(np.full((*masks.size, 3), 128, np.uint8))
    out.parent.mkdir(parents=True, exist_ok=True)
    overlay_masks(img, masks, labels=[str(i + 1) for i in range(len(masks))] if labels else None).save(out)
    console.print(f"{len(masks)} masks -> {out}")


def merge_cmd(store: Path = typer.Argument(..., help="Mask store directory.")) -> None:
    """Join every part's shards into one index (checks one segmenter spec throughout)."""
    from og.masks.store import merge

    s = merge(store)
    console.print(f"{s['images']} images, {s['failures']} failures, {s['duplicates']} duplicates dropped, "
                  f"{s['shards']} shards -> {store / 'index.parquet'}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Offline masks: build, inspect, merge a mask store.", no_args_is_help=True)
    group.command("build")(build)
    group.command("info")(info)
    group.command("show")(show)
    group.command("merge")(merge_cmd)
    app.add_typer(group, name="masks")
