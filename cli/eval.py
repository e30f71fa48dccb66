"""`og eval`: run benchmarks on a saved model; `og eval compare`: chart and example grid of results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console()


def _coerce(value: str, default: Any) -> Any:
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"option value {value!r} must be true or false")
        return value.lower() in ("true", "1", "yes")
    if isinstance(default, int):
        return int(value)
    return value


def _bench_options(name: str, raw: list[str], fix_known_errors: bool) -> dict[str, Any]:
    """`--option bench.key=value` (or `key=value` for every benchmark that has the key)."""
    from og.registry import BENCHMARKS

    valid = BENCHMARKS.get(name).OPTIONS
    opts: dict[str, Any] = {"fix_known_errors": True} if fix_known_errors and "fix_known_errors" in valid else {}
    for text in raw:
        key, eq, value = text.partition("=")
        if not eq:
            raise ValueError(f"--option {text!r} must look like [bench.]key=value")
        bench, _, key = key.rpartition(".")
        if bench and bench != name or not bench and key not in valid:
            continue
        if key not in valid:
            raise ValueError(f"benchmark {name!r} has no option {key!r}; valid: {', '.join(valid) or '(none)'}")
        opts[key] = _coerce(value, valid[key])
    return opts


def _data_paths(benches: list[str], paths: list[Path], what: str) -> list[Path | None]:
    """One path per benchmark: given in order, or one root holding a folder per benchmark."""
    if not paths:
        return [None] * len(benches)
    if len(paths) == len(benches):
        return list(paths)
    if len(paths) == 1:
        return [paths[0] / b for b in benches]
    raise ValueError(f"{len(paths)} {what} paths for {len(benches)} benchmarks; give one per benchmark, "
                     "or one folder holding a sub-folder per benchmark")


def run_eval(
    ctx: typer.Context,
    model: Path = typer.Option(None, "--model", help="Directory of a saved og model."),
    bench: str = typer.Option(None, "--bench", help="Benchmark name(s), comma separated: mmvp,conme,aro,..."),
    data: list[Path] = typer.Option([], "--data", help="Benchmark data, once per benchmark (or one root folder)."),
    images: list[Path] = typer.Option([], "--images", help="Images folder, once per benchmark (or one for all)."),
    masks: Path = typer.Option(None, "--masks", help="MaskStore with the images' masks."),
    segmenter: str = typer.Option(None, "--segmenter", help="Segment on the fly with this segmenter spec."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    mode: str = typer.Option("generate", "--mode", help="generate (greedy + parser) or likelihood."),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N items of each benchmark."),
    fix_known_errors: bool = typer.Option(False, "--fix-known-errors", help="MMVP: fix the known swapped labels."),
    option: list[str] = typer.Option([], "--option", "-o", help="\\[bench.]key=value, e.g. aro.seed=1."),
    max_new_tokens: int = typer.Option(16, "--max-new-tokens", min=1),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: the model's)."),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16, float16."),
    out: Path = typer.Option(None, "--out", help="Folder for results.json."),
) -> None:
    """Evaluate a saved model on benchmarks read from local files; write results.json and print a table."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [flag for flag, value in (("--model", model), ("--bench", bench), ("--data", data), ("--out", out))
               if not value]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)}; see `og eval --help`")
    from og.eval.og_answerer import OGAnswerer
    from og.eval.report import results_table, run_warnings, write_results
    from og.eval.suite import BenchRun, mask_source_for, run_suite

    names = [b.strip() for b in bench.split(",") if b.strip()]
    runs = [BenchRun(n, d, i, _bench_options(n, option, fix_known_errors))
            for n, d, i in zip(names, _data_paths(names, data, "--data"), _data_paths(names, images, "--images"),
                               strict=True)]
    answerer = OGAnswerer.load(model, device=device, dtype=dtype)
    source = mask_source_for(answerer, store=masks, segmenter=segmenter, device=device)
    record = run_suite(answerer, runs, mode=mode, batch_size=batch_size, masks=source, limit=limit,
                       max_new_tokens=max_new_tokens, progress=True)
    path = write_results(record, out)
    for warning in run_warnings(record):  # first: a run scored mostly on missing images must not pass unseen
        console.print(f"[bold red]{warning}[/bold red]", soft_wrap=True)
    console.print(results_table(record))
    for name, run in record["benchmarks"].items():
        if run["notes"]:
            console.print(f"{name}: {run['notes']}")
        if run["missing_images"]:
            first = ", ".join(run["missing_image_ids"][:5])
            console.print(f"[yellow]{name}: {run['missing_images']} of {run['n_items']} images missing, "
                          f"scored as wrong (first: {first})[/yellow]")
    console.print(f"results: {path}")


def _mask_lookup(records: list[dict[str, Any]]) -> Any:
    """Overlay masks for the grid from the first results that used masks (a store or a segmenter)."""
    from og.eval.mask_source import MaskSource, crop_masks

    label = next((r["masks"] for r in records if r.get("masks")), None)
    if label is None:
        return None
    kind, _, where = label.partition(":")
    source = MaskSource.from_store(where) if kind == "store" else MaskSource.from_segmenter(where)
    warned = []

    def lookup(pred: dict[str, Any], image: Any, full: tuple[int, int]) -> Any:
        try:
            crop = tuple(pred["crop"]) if pred.get("crop") else None
            return crop_masks(source.get(pred["image_key"], image), crop, full, pred["image_key"]).data
        except (KeyError, ValueError) as err:  # documented fallback: draw the image without masks
            if not warned:
                console.print(f"[yellow]masks not drawn for some items: {err}[/yellow]")
                warned.append(err)
            return None

    return lookup


def compare(
    results: list[Path] = typer.Argument(..., help="results.json files (or their folders) of `og eval`."),
    out: Path = typer.Option(..., "--out", help="PNG bar chart of the headline scores."),
    examples: Path = typer.Option(None, "--examples", help="PNG grid of the items the models answer differently."),
    labels: str = typer.Option(None, "--labels", help="Comma-separated names of the results (default: folders)."),
    n_examples: int = typer.Option(8, "--n-examples", min=1),
    no_masks: bool = typer.Option(False, "--no-masks", help="Do not draw the masks in the example grid."),
) -> None:
    """Compare results files: a grouped bar chart, and optionally the items where the models disagree."""
    from og.eval.compare import compare_chart, examples_grid
    from og.eval.report import read_results

    records = [read_results(p) for p in results]
    names = [s.strip() for s in labels.split(",")] if labels else [
        (p if p.is_dir() else p.parent).name or str(p) for p in results]
    if len(names) != len(records):
        raise ValueError(f"{len(names)} labels for {len(records)} results files; give one per file")
    if len(set(names)) != len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    console.print(f"chart: {compare_chart(records, names, out)}")
    if examples is not None:
        lookup = None if no_masks else _mask_lookup(records)
        console.print(f"examples: {examples_grid(records, names, examples, n_examples, lookup)}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Evaluate on benchmarks; compare results.", no_args_is_help=False)
    group.callback(invoke_without_command=True)(run_eval)
    group.command("compare")(compare)
    app.add_typer(group, name="eval")
