"""`slmscan models ...`: list, pull, add, path, verify and remove models."""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage the models slmscan can use.", no_args_is_help=True)
