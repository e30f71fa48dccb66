"""`og probe`: what an encoder's patch features say about objects, before a training run is spent."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def probe(
    data: Path = typer.Argument(..., help="A `shapes` data folder (og quickstart writes runs/quickstart/data)."),
    encoder: str = typer.Option("clip:tiny", help="Encoder spec, e.g. 'clip:l336' or 'siglip:so400m-384'."),
    encoder_path: str = typer.Option(None, "--encoder-path", help="Local weights (else random from the spec)."),
    split: str = typer.Option("train", help="The split whose images are probed (fit on 80 %, scored on 20 %)."),
    images: int = typer.Option(1500, min=5, help="Images probed (their objects are the samples)."),
    seed: int = typer.Option(0, help="Seed of the split and of the probes."),
    shuffle: bool = typer.Option(False, "--shuffle", help="Permute the labels (a control: accuracy at chance)."),
    pool: str = typer.Option("box", help="Each object's feature: 'box' (its box's patches, coverage-weighted) or "
                             "'token' (the one patch token holding its centre: what a single visual token says)."),
    relation: bool = typer.Option(False, "--relation", help="Also the relation probe: can a small transformer find "
                                  "two named objects in the patch tokens and say which is left / above (with and "
                                  "without one-hot positions appended)?"),
    relation_steps: int = typer.Option(3000, min=1, help="Training steps of the relation probe (64 pairs each)."),
    out: Path = typer.Option(None, help="Also write the report as JSON here."),
) -> None:
    """Linear and MLP probes per object: shape, colour, size, left/right and above/below half;
    with --relation, the relation probe (og.eval.relation_probe)."""
    from og.eval.probe import TARGETS, probe_encoder
    from og.registry import ENCODERS
    from og.spec import EncoderSpec

    spec = EncoderSpec.parse(encoder)
    model = ENCODERS.get(spec.name).from_spec(spec, path=encoder_path)
    report = probe_encoder(model, data, split=split, images=images, seed=seed, shuffle=shuffle, pool=pool)
    table = Table(title=f"probe of {encoder}{' @ ' + encoder_path if encoder_path else ''}: {report['objects']} "
                        f"objects of {report['images']} {split} images (80/20 by image), {pool} features",
                  title_justify="left")
    for column in ("target", "MLP", "linear", "majority"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name in TARGETS:
        table.add_row(name, *(f"{report[k][name]:.3f}" for k in ("mlp", "linear", "majority")))
    Console().print(table)
    if relation:
        from og.eval.relation_probe import relation_probes

        runs = relation_probes(model, data, split=split, images=images, steps=relation_steps, seed=seed,
                               shuffle=shuffle)  # the encoder runs once for both
        report["relation"] = {"features": runs[False], "with_position": runs[True]}
        table = Table(title=f"relation probe: {report['relation']['features']['pairs']} pairs apart on an axis, "
                            f"{relation_steps} steps (held-out images' pairs)", title_justify="left")
        left = ("patch tokens", "curve (step: held-out)")
        for column in ("patch tokens", "held-out", "train", "majority", "curve (step: held-out)"):
            table.add_column(column, justify="left" if column in left else "right")
        names = {"features": "features", "with_position": "features + one-hot row, column"}
        for name, rep in report["relation"].items():
            table.add_row(names[name], f"{rep['accuracy']:.3f}", f"{rep['train_accuracy']:.3f}",
                          f"{rep['majority']:.3f}", " ".join(f"{s}: {a:.2f}" for s, a in rep["curve"]))
        Console().print(table)
    if out is not None:
        out.write_text(json.dumps(report, indent=1))


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
