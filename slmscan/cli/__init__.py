"""The `slmscan` command: a thin typer layer over the library. Parse, call, print, exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from .. import __version__, config
from ..errors import SlmscanError, UsageError

app = typer.Typer(
    name="slmscan",
    help="Turn documents into structured cards with a small language model on your own CPU.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rendering it with rich costs more than the 0.3 s --help may take.
    rich_markup_mode=None,
)

T = TypeVar("T")


def fail(error: SlmscanError) -> typer.Exit:
    """Print a user-facing error (one line, then a hint) and return the exit to raise."""
    typer.echo(f"Error: {error.message}", err=True)
    if error.hint:
        typer.echo(f"Hint: {error.hint}", err=True)
    return typer.Exit(2 if isinstance(error, UsageError) else 1)


def run(action: Callable[[], T]) -> T:
    """Call into the library, turning slmscan's own errors into a message and an exit code."""
    try:
        return action()
    except SlmscanError as e:
        if config.debug_enabled():
            raise
        raise fail(e) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slmscan {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Turn documents into structured cards with a small language model on your own CPU."""


def _register() -> None:
    from . import bench as bench_cmd
    from . import models as models_cmd
    from . import scan as scan_cmd

    scan_cmd.register(app)
    bench_cmd.register(app)
    app.add_typer(models_cmd.app, name="models")


def main() -> None:
    """Console-script entry point."""
    _register()
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        sys.exit(130)
