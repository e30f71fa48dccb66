"""`og relation`: relation learning curves of the quickstart's variants (og.experiments.relation_curve)."""

from __future__ import annotations

import statistics
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def relation(
    out: Path = typer.Argument(Path("runs/quickstart"), help="The folder `og quickstart --out` wrote (data, "
                               "tokenizer, encoder, masks)."),
    layer: int = typer.Option(None, help="Encoder layer the model reads (default: the spec's, -2)."),
    steps: int = typer.Option(3000, min=1, help="Training steps (pairs seen = steps x batch)."),
    batch: int = typer.Option(64, min=1),
    lr: float = typer.Option(1e-3),
    seeds: int = typer.Option(1, min=1, help="Seeds per variant (model init and batches; the split is fixed)."),
    images: int = typer.Option(2000, min=5, help="Train images whose object pairs are asked about."),
    eval_every: int = typer.Option(500, min=1, help="Score the held-out pairs every this many steps."),
    all_variants: bool = typer.Option(False, "--all", help="Every quickstart --all variant, not only patches and "
                                      "masktoken+oracle."),
    only: list[str] = typer.Option([], help="Run only the variant with this label (repeatable; e.g. one process "
                                   "per variant)."),
    kind: str = typer.Option("relation", help="The questions: relation, center ('Is the red circle left or right "
                             "of the center?'), or an attribute (shape, color, size: 'What shape is the red "
                             "object?')."),
) -> None:
    """Train each variant on relation questions alone (answer-only loss, the encoder frozen) and print
    its held-out learning curve: can the model learn relations from these visual tokens, and how fast?
    `--kind shape` asks the same of an object's shape."""
    from og.experiments.quickstart import variants
    from og.experiments.relation_curve import KINDS, run_relation_curves

    console = Console()

    def report(label: str, seed: int, point: dict) -> None:
        console.print(f"{label} seed {seed}: step {point['step']} loss {point['loss']:.3f} "
                      f"held-out {point['held_out']:.3f} ({point['seconds']:.0f} s)")

    if kind not in KINDS:
        raise typer.BadParameter(f"--kind {kind!r}; use one of {', '.join(KINDS)}")
    chosen = [v for v in variants(all_variants) if not only or v.label in only]
    if not chosen:
        raise typer.BadParameter(f"--only {only} names no variant; choose from "
                                 f"{[v.label for v in variants(all_variants)]}")
    results = run_relation_curves(out, chosen, seeds=seeds, layer=layer, steps=steps, batch=batch,
                                  lr=lr, images=images, eval_every=eval_every, on_eval=report, kind=kind)
    first = results[0]
    table = Table(title=f"{kind} learning curve: {first['pairs']} questions of {first['images']} train images "
                        f"({first['held_out_pairs']} held out), batch {batch}, layer "
                        f"{'spec default' if layer is None else layer}; held-out accuracy, mean over {seeds} seed(s)",
                  title_justify="left")
    steps_seen = [p["step"] for p in first["curve"]]
    for column in ("variant", *map(str, steps_seen), "final mean ± sd", "train"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for label in dict.fromkeys(r["label"] for r in results):
        runs = [r for r in results if r["label"] == label]
        curve = [statistics.mean(r["curve"][i]["held_out"] for r in runs) for i in range(len(steps_seen))]
        final = [r["accuracy"] * 100 for r in runs]
        sd = statistics.stdev(final) if len(final) > 1 else 0.0
        table.add_row(label, *(f"{c * 100:.1f}" for c in curve), f"{statistics.mean(final):.1f} ± {sd:.1f}",
                      f"{statistics.mean(r['train_accuracy'] for r in runs) * 100:.1f}")
    console.print(table)
    for label in dict.fromkeys(r["label"] for r in results):  # per answer pair (axis), mean over seeds
        runs = [r for r in results if r["label"] == label and r.get("by_options")]
        if runs:
            parts = [f"{name} {statistics.mean(r['by_options'][name]['accuracy'] for r in runs) * 100:.1f}"
                     for name in runs[0]["by_options"]]
            console.print(f"{label}, held-out by answer pair at the end: {', '.join(parts)}")
    console.print(f"majority answer: {first['majority'] * 100:.1f} %; results in {out / 'relation'}")


def register(app: typer.Typer) -> None:
    app.command("relation")(relation)
