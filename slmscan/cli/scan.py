"""`slmscan scan` and `slmscan schema`."""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from . import run

if TYPE_CHECKING:
    from ..batch import BatchSummary, Progress
    from ..scanner import ScanOptions


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
        typer.Option(
            help="Batch into this folder: <slug>-<src8>.md and .json per document, cards.jsonl, "
            "index.md, signals.csv. A re-run skips what is done."
        ),
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
    allow_private: Annotated[
        bool,
        typer.Option(
            "--allow-private",
            help="Let URLs reach private, loopback and link-local addresses (refused by default).",
        ),
    ] = False,
) -> None:
    """Make a card for each document."""
    from ..render import clean_line, render_markdown
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
    if out is not None:
        _batch(sources, out, options, allow_private=allow_private, show_ungrounded=show_ungrounded)
        return
    if allow_private:
        from .. import config

        config.allow_private_networks()
    scanner = run(lambda: Scanner(options))
    done = failed = 0
    started = time.monotonic()
    steps = StepLine(sys.stderr)
    try:
        results = scanner.scan(sources, progress=steps)
        while True:
            result = run(lambda: next(results, None))
            steps.close()
            if result is None:
                break
            if result.card is None:
                failed += 1
                assert result.error is not None
                # File names can carry terminal escapes; the error line must not.
                typer.echo(f"Error: {clean_line(result.error.message)}", err=True)
                continue
            done += 1
            card = result.card
            if output_format is Format.json:
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


def _batch(
    sources: list[str],
    out: Path,
    options: ScanOptions,
    *,
    allow_private: bool,
    show_ungrounded: bool,
) -> None:
    """`--out`: a resumable batch run, its progress on stderr, exit 1 if a document failed."""
    from ..batch import run_batch

    bar = ProgressBar(sys.stderr)
    try:
        summary = run(
            lambda: run_batch(
                sources,
                out,
                options,
                allow_private=allow_private,
                show_ungrounded=show_ungrounded,
                progress=bar,
            )
        )
    finally:
        bar.close()
    typer.echo(summary_line(summary), err=True)
    if summary.failed:
        raise typer.Exit(1)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class StepLine:
    """On a terminal, one redrawn stderr line: the document, its current step, seconds so far."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._started: dict[str, float] = {}
        self._drawn = False

    def __call__(self, location: str, step: str) -> None:
        if not self.tty:
            return
        from ..render import clean_line

        began = self._started.setdefault(location, time.monotonic())
        seconds = time.monotonic() - began
        line = f"{clean_line(location)[-50:]}: {clean_line(step)} ({seconds:.0f} s)"
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Clear the line before a card or an error is printed."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


class ProgressBar:
    """A batch's progress on stderr: one redrawn line on a terminal, a line per document else."""

    WIDTH = 24

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._drawn = False

    def __call__(self, progress: Progress) -> None:
        from ..render import clean_line

        if progress.outcome == "failed" and progress.error is not None:
            self._clear()
            self.stream.write(f"Error: {clean_line(progress.error.message)}\n")
        counts = (
            f"{progress.finished}/{progress.total} · {progress.done} done · "
            f"{progress.failed} failed · {progress.skipped} skipped · ETA "
            + (_duration(progress.eta) if progress.eta is not None else "?")
        )
        name = clean_line(progress.location)
        if self.tty:
            filled = self.WIDTH * progress.finished // max(progress.total, 1)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self._clear()
            step = f" ({clean_line(progress.step)})" if progress.step else ""
            self.stream.write(f"[{bar}] {counts} {name[-40:]}{step}")
            self._drawn = True
        elif progress.outcome not in {"started", "step"}:
            self.stream.write(f"[{counts}] {progress.outcome}: {name}\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False

    def close(self) -> None:
        """Leave the terminal's line clean for what follows."""
        self._clear()
        self.stream.flush()


def summary_line(summary: BatchSummary) -> str:
    """The batch's last line: what it did, how long it took, where the cards are."""
    return (
        f"{summary.total} document(s): {summary.done} carded, {summary.skipped} already done, "
        f"{summary.failed} failed, {_duration(summary.seconds)}; see {summary.out}/index.md"
    )


def schema() -> None:
    """Print the card's JSON Schema."""
    from ..card import card_json_schema

    typer.echo(json.dumps(card_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add these commands to the app."""
    app.command()(scan)
    app.command()(schema)
