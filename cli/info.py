"""`og info`: every registry, its entries and one line each; and the presets."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def info(pattern: str = typer.Argument("*", help="Glob over entry names, e.g. '*clip*'.")) -> None:
    """List every registry with its entries, and the named presets."""
    from og.registry import ALL_REGISTRIES
    from og.spec import PRESETS

    console = Console()
    for kind, registry in ALL_REGISTRIES.items():
        table = Table(title=f"{kind} ({len(registry)})", title_justify="left", show_header=False)
        table.add_column("name", style="bold cyan")
        table.add_column("description")
        docs = registry.describe()
        for name in registry.list(pattern):
            table.add_row(name, docs[name])
        console.print(table)
    table = Table(title="presets", title_justify="left", show_header=False)
    table.add_column("name", style="bold cyan")
    table.add_column("spec id")
    for name, spec in PRESETS.items():
        table.add_row(name, spec.id)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
