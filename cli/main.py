"""The `og` typer app: discovers the command modules of `cli/`, turns errors into one line."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import cli

app = typer.Typer(
    name="og",
    help="OG-LLaVA toolkit: object-guided visual tokens for LLaVA-style models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from og import __version__

        typer.echo(f"og {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
) -> None:
    """OG-LLaVA toolkit."""
    _state["debug"] = debug


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda i: i.name):
        if info.name in ("main",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"cli.{info.name}")
        if hasattr(module, "register"):
            module.register(app)


_register_commands()


def main() -> None:
    """Console entry point: errors become one red line unless --debug."""
    try:
        app(standalone_mode=False)
    except SystemExit:
        raise
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - the one place errors become a line
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if _state["debug"] or "--debug" in sys.argv:
            raise
        typer.secho(f"error: {type(err).__name__}: {err}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
