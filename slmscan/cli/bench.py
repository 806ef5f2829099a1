"""`slmscan bench`: every model over every document of a folder, measured and compared."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from . import fail, run


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def bench(
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            "-m",
            help="Comma-separated model ids, aliases or .gguf paths (--engine: default model).",
            show_default=False,
        ),
    ] = None,
    corpus: Annotated[
        Path, typer.Option(help="Folder of documents (searched recursively).")
    ] = Path("."),
    repeat: Annotated[
        int, typer.Option(min=1, help="Passes over the folder; 2+ measures run-to-run agreement.")
    ] = 1,
    out: Annotated[
        Path, typer.Option(help="Folder for leaderboard.md, results.csv/.json, chart.png, cards.")
    ] = Path("slmscan-bench"),
    sections: Annotated[
        str | None,
        typer.Option(help="Comma-separated sections to make (default: all).", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed recorded with every card.")] = 0,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads for llama.cpp.", show_default=False)
    ] = None,
    no_cards: Annotated[
        bool, typer.Option("--no-cards", help="Do not keep the cards under OUT/cards/.")
    ] = False,
    engine: Annotated[
        bool,
        typer.Option(
            "--engine",
            help="Instead: the engine benchmark, slmscan against one schema-constrained chat "
            "call per section, writing OUT/engine-MODEL.md, .json and .png.",
        ),
    ] = False,
) -> None:
    """Compare models on your own documents: quality, speed, memory, cards side by side."""
    if engine:
        _engine(_split(models), corpus, out, threads)
        return
    if not _split(models):
        from ..errors import UsageError

        raise fail(UsageError("no models to compare", hint="slmscan bench --models A,B"))
    from ..analyse import SECTIONS
    from ..bench import BenchOptions, Progress, load_documents, run_bench
    from ..bench_report import render_leaderboard, write_report

    options = BenchOptions(
        models=_split(models),
        corpus=corpus,
        repeat=repeat,
        sections=_split(sections) or SECTIONS,
        seed=seed,
        threads=threads,
    )
    documents = run(lambda: load_documents(corpus))  # fail fast on a bad folder
    total = len(options.models) * len(documents) * repeat
    with typer.progressbar(length=total, label="bench", file=sys.stderr) as bar:

        def advance(step: Progress) -> None:
            bar.label = step.model[-30:]
            bar.update(step.steps)

        result = run(lambda: run_bench(options, progress=advance, documents=documents))
    run(lambda: write_report(result, out, cards=not no_cards))
    sys.stdout.write(render_leaderboard(result).split("\n## How to read it")[0] + "\n")
    files = "leaderboard.md, results.csv, results.json, chart.png, side-by-side.html"
    typer.echo(f"wrote {files} to {out}", err=True)
    if not result.ok:
        raise typer.Exit(1)


def _engine(models: tuple[str, ...], corpus: Path, out: Path, threads: int | None) -> None:
    from .. import config
    from ..enginebench import run_engine_bench

    for model in models or (config.default_model(),):
        table = run(
            partial(
                run_engine_bench,
                model,
                corpus,
                out,
                threads=threads,
                progress=lambda message: typer.echo(message, err=True),
            )
        )
        typer.echo(f"wrote {table}", err=True)


def register(app: typer.Typer) -> None:
    """Add `bench` to the app."""
    app.command()(bench)
