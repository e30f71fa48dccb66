"""`og export`: a training run (or one of its checkpoints) -> a standalone model directory."""

from __future__ import annotations

from pathlib import Path

import typer


def export(
    run: Path = typer.Argument(..., help="Run directory written by `og train` (or a checkpoint-N in it)."),
    out: Path = typer.Argument(..., help="Directory to write the model to (og.load reads it)."),
    merge_lora: bool = typer.Option(True, "--merge-lora/--no-merge-lora",
                                    help="Fold LoRA into the LLM weights (else: adapters in OUT/adapter)."),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16, float16 (default: the base's)."),
) -> None:
    """Rebuild the run's base model, load its trained weights and save model + processor."""
    from og.train.export import export_run

    path = export_run(run, out, merge_lora=merge_lora, dtype=dtype)
    typer.echo(f"exported {run} -> {path}" + (" (LoRA merged)" if merge_lora else ""))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
