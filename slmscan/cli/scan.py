"""`slmscan scan` and `slmscan schema`."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from . import run


class Format(StrEnum):
    md = "md"
    json = "json"


def scan(
    sources: Annotated[
        list[str], typer.Argument(help="Files, folders, http(s) URLs, or - for stdin.")
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model id, alias or .gguf path.", show_default=False),
    ] = None,
    sections: Annotated[
        str | None,
        typer.Option(help="Comma-separated sections to make (default: all).", show_default=False),
    ] = None,
    output_format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = (
        Format.md
    ),
    out: Annotated[
        Path | None,
        typer.Option(help="Write <slug>-<src8>.md and .json per document into this folder."),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Refuse every network access (URLs, downloads).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed recorded with the card.")] = 0,
    prompts: Annotated[
        Path | None, typer.Option(help="Folder of prompt templates overriding the built-ins.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for llama.cpp.", show_default=False)
    ] = None,
    show_ungrounded: Annotated[
        bool, typer.Option(help="Show rows whose evidence was not found, marked.")
    ] = False,
) -> None:
    """Make a card for each document."""
    from ..outputs import card_stem, confined, write_atomic
    from ..render import render_json, render_markdown
    from ..scanner import Scanner, ScanOptions

    chosen = tuple(s.strip() for s in sections.split(",") if s.strip()) if sections else None
    options = ScanOptions(
        model=model,
        offline=offline,
        seed=seed,
        prompts=prompts,
        threads=threads,
        **({"sections": chosen} if chosen is not None else {}),
    )
    scanner = run(lambda: Scanner(options))
    done = failed = 0
    started = time.monotonic()
    try:
        results = scanner.scan(sources)
        while True:
            result = run(lambda: next(results, None))
            if result is None:
                break
            if result.card is None:
                failed += 1
                assert result.error is not None
                typer.echo(f"Error: {result.error.message}", err=True)
                continue
            done += 1
            card = result.card
            if out is not None:
                stem = card_stem(card)
                write_atomic(confined(out, stem + ".json"), render_json(card))
                write_atomic(
                    confined(out, stem + ".md"),
                    render_markdown(card, show_ungrounded=show_ungrounded),
                )
                typer.echo(
                    f"wrote {out / stem}.md/.json ({card.provenance.seconds:.1f} s)", err=True
                )
            elif output_format is Format.json:
                sys.stdout.write(
                    json.dumps(card.model_dump(mode="json"), ensure_ascii=False) + "\n"
                )
            else:
                if done > 1:
                    sys.stdout.write("\n---\n\n")
                sys.stdout.write(render_markdown(card, show_ungrounded=show_ungrounded))
            sys.stdout.flush()
    finally:
        scanner.close()
    elapsed = time.monotonic() - started
    if done + failed > 1 or failed:
        typer.echo(f"{done} card(s), {failed} failed, {elapsed:.1f} s", err=True)
    if failed:
        raise typer.Exit(1)


def schema() -> None:
    """Print the card's JSON Schema."""
    from ..card import card_json_schema

    typer.echo(json.dumps(card_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add these commands to the app."""
    app.command()(scan)
    app.command()(schema)
