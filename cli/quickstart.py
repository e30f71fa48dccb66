"""`og quickstart` and `og ablate`: train and compare variants, print the table, write the charts."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _console() -> Console:
    """Made per call: it writes to the sys.stdout of the moment (tests capture it). Output that is
    not a terminal (a log file, a pipe) gets 110 columns so the tables fit."""
    console = Console()
    return console if console.is_terminal else Console(width=110)


def _quiet_libraries() -> None:
    """Keep the console for og's own progress: the Trainer's per-step logs go to the run folders."""
    import warnings

    import transformers

    transformers.logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    for name in ("og", "DeepSpeed", "deepspeed", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def _progress() -> Iterator[tuple[Any, Any]]:
    """A rich progress bar per (variant, seed) run; yields the ablation's (on_step, on_done) hooks."""
    start = time.time()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console()) as bars:
        tasks: dict[tuple[str, int], Any] = {}

        def on_step(variant: Any, seed: int, phase: str, step: int, total: int) -> None:
            key = (variant.label, seed)
            if key not in tasks:
                tasks[key] = bars.add_task("", total=total)
            bars.update(tasks[key], description=f"{variant.label} seed {seed}: {phase}", completed=step,
                        total=max(total, 1))

        def on_done(result: dict[str, Any]) -> None:
            task = tasks.get((result["label"], result["seed"]))
            if task is not None:
                bars.update(task, description=f"{result['label']} seed {result['seed']}: done",
                            completed=bars.tasks[task].total)
            test = result["scores"].get("test", {})
            bars.console.print(f"[green]done[/] {result['label']} seed {result['seed']}: test accuracy "
                               f"{test.get('accuracy', float('nan')):.1f}% ({time.time() - start:.0f} s so far)")

        yield on_step, on_done


def _encoder_bar(on_step: Any) -> Any:
    """The encoder pretraining's progress on the same bars as the variants' runs."""
    stage = type("Stage", (), {"label": "encoder"})()
    return lambda step, total, loss: on_step(stage, 0, f"contrastive pretraining (loss {loss:.2f})", step, total)


LOSS_TERMS = ("phrase_loss", "word_loss", "position_loss")  # the stand-in's added terms, as the line names them


def encoder_line(encoder: dict[str, Any]) -> str:
    """'encoder: contrastive pretraining (objects pooling over boxes, phrase loss 1.0) on 10,000 images, N steps,
    loss a -> b, probe ...'."""
    from og.eval.probe import format_probe

    images = f" on {encoder['images']:,} images" if encoder.get("images") else ""
    pooling = ""
    if encoder.get("pooling"):
        region = {"mask": " over masks", "box": " over boxes"}.get(encoder.get("region", "")) or ""
        region = region if encoder["pooling"] == "objects" else ""
        terms = "".join(f", {name.replace('_', ' ')} {encoder[name]:g}" for name in LOSS_TERMS if encoder.get(name))
        pooling = f" ({encoder['pooling']} pooling{region}{terms})"
    took = f" ({encoder['seconds']:.0f} s on {encoder['threads']} threads)" if encoder.get("threads") else ""
    return (f"encoder: contrastive pretraining{pooling}{images}, {encoder['steps']} steps{took}, loss "
            f"{encoder['loss_first']:.2f} -> "
            f"{encoder['loss_last']:.2f}; probe on {encoder['probe']['objects']} train objects, MLP (linear): "
            f"{format_probe(encoder['probe'])}"
            + (f"; one token (the object's centre patch): {format_probe(encoder['probe']['token'])}"
               if "token" in encoder["probe"] else ""))


def _report(outcome: dict[str, Any]) -> None:
    from og.experiments.ablate_report import table

    for split in ("test", "train"):
        if any(f"{split}/accuracy" in row for row in outcome["summary"]):
            _console().print(table(outcome["summary"], split))
    for name, path in outcome["paths"].items():
        _console().print(f"{name}: {path}")


def _frontier(out: Path, fast: bool, seeds: int, jobs: int, threads: int, encoder_threads: int) -> None:
    """`og quickstart --frontier`: the sweep on the quickstart's data; its table, frontier.json and chart."""
    from og.experiments.frontier import SWEEP, run_frontier
    from og.experiments.frontier_report import frontier_table, goal_line

    _console().print(f"[bold]og quickstart --frontier[/] -> {out / 'frontier'}  {len(SWEEP)} sweep entries; "
                     f"seeds: {seeds}{' (fast: pipeline check, numbers mean nothing)' if fast else ''}")
    with _progress() as (on_step, on_done):
        outcome = run_frontier(out, fast=fast, seeds=seeds, sweep=SWEEP, on_step=on_step, on_done=on_done,
                               notify=lambda line: _console().print(f"[yellow]{line}"),
                               on_encoder_step=_encoder_bar(on_step), jobs=jobs, threads=threads,
                               encoder_threads=encoder_threads)
    _console().print(encoder_line(outcome["encoder"]))
    _console().print(frontier_table(outcome["rows"]))
    _console().print(goal_line(outcome["goal"]))
    for name, path in outcome["paths"].items():
        _console().print(f"{name}: {path}")


def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), help="Output folder (data, masks, runs, charts)."),
    fast: bool = typer.Option(False, "--fast", help="A tiny run (about a minute): checks the pipeline only."),
    seeds: int = typer.Option(1, min=1, help="Seeds per variant (mean and spread in the table)."),
    all_variants: bool = typer.Option(False, "--all", help="Also masktoken+slic, maskpool, masktoken+raster1d, "
                                      "and masktoken with each position encoding (sincos2d, learned2d, grouped_rope)."),
    frontier: bool = typer.Option(False, "--frontier", help="The token-efficiency frontier instead: every fusion "
                                  "over budgets on the same data (out/frontier: frontier.json, frontier.png)."),
    jobs: int = typer.Option(0, min=0, help="Runs side by side, one process each: the same numbers as one "
                             "after another. 0: one per core (per OMP_NUM_THREADS cores when that is set)."),
) -> None:
    """The paper's experiment in miniature on synthetic shapes: patches vs object-guided tokens."""
    from og.experiments.quickstart import run_quickstart, variants

    _quiet_libraries()
    import torch

    if "OMP_NUM_THREADS" not in os.environ:  # the tiny models run ~3x faster on one thread than on two
        torch.set_num_threads(1)
    threads = torch.get_num_threads()  # each parallel run's
    jobs = jobs or max(1, usable_cores() // threads)
    encoder_threads = threads if "OMP_NUM_THREADS" in os.environ else usable_cores()  # one process: every core
    if frontier:
        return _frontier(out, fast, seeds, jobs, threads, encoder_threads)
    names = ", ".join(v.label for v in variants(all_variants))
    _console().print(f"[bold]og quickstart[/] -> {out}  variants: {names}; seeds: {seeds}"
                  f"{' (fast: pipeline check, numbers mean nothing)' if fast else ''}")
    _console().print("The tiny vision encoder is pretrained contrastively on the training images and captions "
                     "(it stands in for CLIP), then frozen. The tiny LLM starts random: a text-only warm-up on the "
                     "training conversations stands in for a pretrained LLM, stage 1 trains it with the connector "
                     "on captions, stage 2 trains them on questions and a drill of left/right/above/below-the-centre "
                     "questions.")
    with _progress() as (on_step, on_done):
        outcome = run_quickstart(out, fast=fast, seeds=seeds, all_variants=all_variants, on_step=on_step,
                                 on_done=on_done, on_encoder_step=_encoder_bar(on_step), jobs=jobs, threads=threads,
                                 encoder_threads=encoder_threads)
    _console().print(encoder_line(outcome["encoder"]))
    _report(outcome)


def ablate(
    preset: str = typer.Option("tiny-og", help="Base spec: a preset name or a spec id."),
    vary: list[str] = typer.Option([], help="part=value1,value2 (repeatable): fusion, segmenter, position, ..."),
    data: Path | None = typer.Option(None, help="A folder laid out like the quickstart's data (stage1.json, "
                                     "stage2.json, test.jsonl, images): the defaults of the next four options."),
    stage1: list[Path] = typer.Option([], help="Stage-1 (caption) data in LLaVA format."),
    stage2: list[Path] = typer.Option([], help="Stage-2 (instruction) data in LLaVA format."),
    image_root: Path | None = typer.Option(None, help="Folder the data's image paths are relative to."),
    bench_data: Path | None = typer.Option(None, help="Folder of the `shapes`-format test split (test.jsonl)."),
    masks: list[str] = typer.Option([], help="NAME=STORE: a mask store a --vary segmenter=NAME reads."),
    tokenizer: Path | None = typer.Option(None, help="Tokenizer folder (default: the LLM's own)."),
    llm_path: str | None = typer.Option(None, help="Local LLM weights (hf)."),
    encoder_path: str | None = typer.Option(None, help="Local vision-encoder weights."),
    seeds: int = typer.Option(1, min=1),
    epochs1: float = typer.Option(1.0, help="Stage-1 epochs."),
    epochs2: float = typer.Option(1.0, help="Stage-2 epochs."),
    batch_size: int = typer.Option(16),
    lr1: float = typer.Option(1e-3, help="Stage-1 learning rate."),
    lr2: float = typer.Option(1e-4, help="Stage-2 learning rate."),
    lr_scheduler2: str = typer.Option("cosine", help="Stage-2 learning-rate schedule (transformers' "
                                      "lr_scheduler_type: cosine, constant, linear, ...)."),
    max_grad_norm2: float = typer.Option(1.0, min=0.0, help="Stage-2 gradient clipping (0: none)."),
    accumulation2: int = typer.Option(1, min=1, help="Stage-2 gradient accumulation (batch-size x this a step)."),
    group_by_length2: bool = typer.Option(False, help="Stage 2: split each update into micro-batches of like "
                                          "lengths (less padding, the same update)."),
    train_llm_stage1: bool = typer.Option(False, help="Train the whole LLM in stage 1 (random tiny LLMs)."),
    train_llm_stage2: bool = typer.Option(False, help="Train the whole LLM in stage 2 instead of LoRA."),
    out: Path = typer.Option(Path("runs/ablate"), help="Output folder."),
    jobs: int = typer.Option(1, min=1, help="Runs side by side, one process each."),
) -> None:
    """Train and evaluate every combination of the varied parts; table, results.json and charts."""
    from og.eval.suite import BenchRun
    from og.experiments.ablate import AblationData, Schedule, grid, parse_vary, run_ablation
    from og.experiments.ablate_report import accuracy_chart, summarize, write_json
    from og.spec import ModelSpec

    _quiet_libraries()
    import torch

    if data is not None:
        stage1, stage2 = stage1 or [data / "stage1.json"], stage2 or [data / "stage2.json"]
        image_root, bench_data = image_root or data, bench_data or data
    missing = [flag for flag, value in (("--stage1", stage1), ("--stage2", stage2), ("--image-root", image_root),
                                        ("--bench-data", bench_data)) if not value]
    if missing:
        raise typer.BadParameter(f"give --data DIR or {', '.join(missing)}")
    stores = {}
    for item in masks:
        name, eq, path = item.partition("=")
        if not eq:
            raise typer.BadParameter(f"--masks {item!r}: write NAME=STORE_DIR")
        stores[name] = Path(path)
    base = ModelSpec.parse(preset)
    chosen = grid(base, parse_vary(vary), stores)
    inputs = AblationData(stage1=[str(p) for p in stage1], stage2=[str(p) for p in stage2], image_root=image_root,
                          benches={"test": BenchRun("shapes", bench_data)}, stores=stores,
                          tokenizer=str(tokenizer) if tokenizer else None, llm_path=llm_path,
                          encoder_path=encoder_path)
    schedule = Schedule(stage1_epochs=epochs1, stage2_epochs=epochs2, batch_size=batch_size, stage1_lr=lr1,
                        stage2_lr=lr2, train_llm_stage1=train_llm_stage1, train_llm_stage2=train_llm_stage2,
                        stage2_lr_scheduler=lr_scheduler2, stage2_max_grad_norm=max_grad_norm2,
                        stage2_accumulation=accumulation2, stage2_group_by_length=group_by_length2)
    _console().print(f"[bold]og ablate[/]: {len(chosen)} variants x {seeds} seeds -> {out}")
    with _progress() as (on_step, on_done):
        results = run_ablation(chosen, inputs, schedule, list(range(seeds)), out, on_step=on_step, on_done=on_done,
                               jobs=jobs, threads=torch.get_num_threads())
    summary = summarize(results)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": write_json(out / "results.json", summary, results, {"base": base.id, "vary": vary}),
             "accuracy": accuracy_chart(summary, out / "accuracy.png")}
    _report({"summary": summary, "paths": paths})


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
    app.command("ablate")(ablate)
