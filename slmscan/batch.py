"""Many documents into one output folder: resumable, crash-proof, and always consistent.

    summary = run_batch(["reports/"], Path("cards"), ScanOptions(model="smollm2-135m"))

For each document the batch reads the bytes (here: the only network access), keys them (content,
model sha256, prompts' version, settings), and skips the document when the journal holds a card
under that key. Otherwise a worker process extracts and analyses it (`worker.py`); the outcome
goes into the journal in one transaction, then the card's `.json` and `.md` are written
atomically. At the end of every run, also one stopped by an error, the folder is regenerated
from the journal: every card file, `cards.jsonl`, `index.md` and `signals.csv`, in location
order, and stale files (a changed document's old card) removed. A kill at any moment loses at
most the document in progress, and the next run leaves the folder as an uninterrupted run would.

Card files carry no timings: their `seconds` read 0 (a provenance note says so) and the measured
ones stay in the journal. Timings differ from run to run; without them a card is a function of
the document, the model, the prompts and the settings, byte for byte, however often the run was
interrupted.

A document read or fetched in error keeps the card it had (the failure may be the network's); a
document that changed and then fails loses its old card (it no longer describes the document).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, TextIO

from . import __version__, config
from .card import Card
from .document import RawDocument
from .errors import SlmscanError, SourceError
from .journal import JOURNAL_NAME, Entry, Journal
from .render import clean_line, render_json, render_markdown
from .scanner import ScanOptions
from .worker import InferenceWorker, Limits

CARDS_JSONL = "cards.jsonl"
INDEX_MD = "index.md"
SIGNALS_CSV = "signals.csv"
TIMING_NOTE = f"timings omitted (0) in batch card files; the measured ones are in {JOURNAL_NAME}"
_TOP_SIGNALS = 3


@functools.cache
def _file_mode() -> int:
    """The mode any new file of the user's gets (0644 under the usual umask)."""
    mask = os.umask(0o022)  # reading the umask means setting it; put straight back
    os.umask(mask)
    return 0o666 & ~mask


# Temporary names of _atomic_file (and outputs.write_atomic): ".<name>.<8 random chars>.tmp".
_TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

Outcome = Literal["started", "step", "done", "failed", "skipped"]


@dataclass(frozen=True)
class Progress:
    """Where a batch stands: reported before and after each document."""

    location: str
    outcome: Outcome
    total: int
    done: int
    failed: int
    skipped: int
    elapsed: float
    eta: float | None  # seconds, once a document has been made
    error: SlmscanError | None = None
    step: str | None = None  # with "step": what the model is making now (a section)

    @property
    def finished(self) -> int:
        """Documents dealt with so far, whatever their outcome."""
        return self.done + self.failed + self.skipped


@dataclass
class BatchSummary:
    """What a batch run did."""

    out: Path
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (location, error message)

    @property
    def ok(self) -> bool:
        return self.failed == 0


def run_batch(
    sources: list[str],
    out: Path,
    options: ScanOptions,
    *,
    allow_private: bool = False,
    show_ungrounded: bool = False,
    limits: Limits | None = None,
    progress: Callable[[Progress], None] | None = None,
    stdin: BinaryIO | None = None,
) -> BatchSummary:
    """Cards for every document into `out`, resuming what an earlier run there left.

    Failed documents are counted in the summary, never raised; errors that stop every document
    (a model that cannot load, an unwritable folder) are raised once the folder is consistent.
    """
    from .scanner import Scanner

    Scanner(options)  # checks the sections and applies --offline, before anything is touched
    identity = run_identity(options)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SourceError(f"{out}: cannot create the output folder ({e.strerror or e})") from e
    locations = _documents(sources, out)
    summary = BatchSummary(out=out, total=len(locations))
    started = time.monotonic()
    with Journal(out / JOURNAL_NAME) as journal:
        sweep_temp_files(out)
        offline = options.offline or config.is_offline()
        run = _Run(journal, out, identity, summary, started, progress, show_ungrounded, offline)
        try:
            with InferenceWorker(options, limits) as worker:
                for location in locations:
                    run.one(location, worker, allow_private=allow_private, stdin=stdin)
        except BaseException:
            # Stopped early (Ctrl-C, a run-wide error): still leave the folder consistent.
            with contextlib.suppress(Exception):
                regenerate_outputs(journal, out, show_ungrounded=show_ungrounded)
            raise
        regenerate_outputs(journal, out, show_ungrounded=show_ungrounded)
    summary.seconds = time.monotonic() - started
    return summary


@dataclass
class _Run:
    """One batch run's state: the journal, the counters, and how to report them."""

    journal: Journal
    out: Path
    identity: dict[str, Any]
    summary: BatchSummary
    started: float
    progress: Callable[[Progress], None] | None
    show_ungrounded: bool
    offline: bool
    made: int = 0  # documents the worker dealt with (not skipped), for the ETA
    making_seconds: float = 0.0

    def one(
        self,
        location: str,
        worker: InferenceWorker,
        *,
        allow_private: bool,
        stdin: BinaryIO | None,
    ) -> None:
        from .sources import read_source

        self._report(location, "started")
        try:
            raw = read_source(
                location, offline=self.offline, stdin=stdin, allow_private=allow_private
            )
        except SourceError as e:
            previous = self.journal.entry(location)
            if previous is None or not previous.done:  # a card it has stays: see the docstring
                self.journal.record(
                    location, key="", content_sha256="", status="failed", error=e.message
                )
            self._failed(location, e)
            return
        content_sha256, key = document_key(raw, self.identity)
        if self.journal.is_done(location, key):
            self.summary.skipped += 1
            self._report(location, "skipped")
            return
        began = time.monotonic()
        outcome = worker.analyse(raw, lambda step: self._report(location, "step", step=step))
        seconds = time.monotonic() - began
        self.made += 1
        self.making_seconds += seconds
        if outcome.card is None:
            assert outcome.error is not None
            self.journal.record(
                location,
                key=key,
                content_sha256=content_sha256,
                status="failed",
                error=outcome.error.message,
                attempts=outcome.attempts,
            )
            self._failed(location, outcome.error)
            return
        card, timings = split_timings(outcome.card)
        timings["wall_seconds"] = round(seconds, 3)
        base = card_base_stem(card)
        stem = self.journal.file_stem(location, base)
        self.journal.record(
            location,
            key=key,
            content_sha256=content_sha256,
            status="done",
            card=card.model_dump_json(),
            stem=base,
            attempts=outcome.attempts,
            timings=timings,
            outputs=[f"{stem}.json", f"{stem}.md"],
        )
        # After the journal: a kill between the two leaves files the end of a run rewrites.
        _write_card(self.out, stem, card, show_ungrounded=self.show_ungrounded)
        self.summary.done += 1
        self._report(location, "done")

    def _failed(self, location: str, error: SlmscanError) -> None:
        self.summary.failed += 1
        self.summary.failures.append((location, error.message))
        self._report(location, "failed", error)

    def _report(
        self,
        location: str,
        outcome: Outcome,
        error: SlmscanError | None = None,
        *,
        step: str | None = None,
    ) -> None:
        if self.progress is None:
            return
        s = self.summary
        remaining = s.total - (s.done + s.failed + s.skipped)
        eta = remaining * self.making_seconds / self.made if self.made else None
        self.progress(
            Progress(
                location=location,
                outcome=outcome,
                total=s.total,
                done=s.done,
                failed=s.failed,
                skipped=s.skipped,
                elapsed=time.monotonic() - self.started,
                eta=eta,
                error=error,
                step=step,
            )
        )


# ----------------------------------------------------------------------------------- keys


def run_identity(options: ScanOptions) -> dict[str, Any]:
    """Everything besides the document that shapes its card: the model, prompts, settings."""
    from .analyse import SECTION_PROMPTS, SECTIONS, TITLE_PROMPT
    from .fake import FAKE_MODEL_ID
    from .prompts import load_template

    sections = tuple(s for s in SECTIONS if s in options.sections)
    names = sorted({SECTION_PROMPTS[s] for s in sections} | {TITLE_PROMPT})
    prompts = {name: load_template(name, options.prompts).version for name in names}
    settings = config.ScanSettings(
        seed=options.seed,
        sections=sections,
        threads=options.threads or config.default_threads(),
    )
    engine: dict[str, str] = {}
    if options.model == FAKE_MODEL_ID:
        model = FAKE_MODEL_ID
    else:
        from .download import expected_sha256, file_sha256
        from .scanner import resolve_model

        manifest, path = resolve_model(options.model or config.default_model())
        # The pinned sha256 when there is one: the worker verifies the file against it.
        model = expected_sha256(manifest) or file_sha256(path)
        if manifest.key_cache != "f16":  # named only when not the default, so that the
            engine["key_cache"] = manifest.key_cache  # journals of f16 models stay valid
    return {
        "slmscan": __version__,
        "model_sha256": model,
        **engine,
        "prompts": prompts,
        "settings": asdict(settings),
    }


def document_key(raw: RawDocument, identity: dict[str, Any]) -> tuple[str, str]:
    """The sha256 of the document's bytes, and its journal key (that and the run's identity)."""
    content = hashlib.sha256(raw.data).hexdigest()
    # The name decides the format (a.txt and a.html read differently); the rest is on the card.
    document = {
        "content_sha256": content,
        "kind": raw.kind,
        "name": raw.name,
        "url": raw.url,
        "content_type": raw.content_type,
    }
    text = json.dumps({"document": document, **identity}, sort_keys=True)
    return content, hashlib.sha256(text.encode()).hexdigest()


def _documents(sources: list[str], out: Path) -> list[str]:
    """The documents named, each once, leaving out the output folder's own files."""
    from .sources import expand_sources, is_url

    root = out.resolve()
    seen: set[str] = set()
    documents = []
    for location in expand_sources(sources):
        if location in seen:
            continue
        seen.add(location)
        if (
            location != "-"
            and not is_url(location)
            and Path(location).resolve().is_relative_to(root)
        ):
            continue  # `slmscan scan . --out cards` must not read its own cards back
        documents.append(location)
    return documents


# ---------------------------------------------------------------------------------- cards


def split_timings(card: Card) -> tuple[Card, dict[str, Any]]:
    """The card with its timings set to 0 (and a note saying so), and the timings it had."""
    provenance = card.provenance
    timings: dict[str, Any] = {
        "seconds": provenance.seconds,
        "sections": [{"section": s.section, "seconds": s.seconds} for s in provenance.sections],
    }
    notes = (
        provenance.notes if TIMING_NOTE in provenance.notes else [*provenance.notes, TIMING_NOTE]
    )
    timeless = provenance.model_copy(
        update={
            "seconds": 0.0,
            "sections": [s.model_copy(update={"seconds": 0.0}) for s in provenance.sections],
            "notes": notes,
        }
    )
    return card.model_copy(update={"provenance": timeless}), timings


def card_base_stem(card: Card) -> str:
    """The file stem of a card before numbering: `<slug>-<src8>`."""
    from .outputs import card_stem

    return card_stem(card)


def _write_card(out: Path, stem: str, card: Card, *, show_ungrounded: bool) -> None:
    _write_if_changed(out, f"{stem}.json", render_json(card))
    _write_if_changed(out, f"{stem}.md", render_markdown(card, show_ungrounded=show_ungrounded))


def _write_if_changed(out: Path, name: str, text: str) -> None:
    """Write atomically unless the file already holds exactly this text."""
    from .outputs import confined

    path = confined(out, name)
    data = text.encode()
    with contextlib.suppress(OSError):
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    with _atomic_file(out, name) as f:
        f.write(text)


def _write_error(path: Path, error: OSError) -> SourceError:
    return SourceError(
        f"{path}: cannot write ({error.strerror or error})",
        hint="free some space and run the same command again: every finished card is kept",
    )


# -------------------------------------------------------------------------------- outputs


def sweep_temp_files(out: Path) -> list[Path]:
    """Remove temporary files a killed run left in the folder; the paths removed."""
    removed = []
    for path in out.iterdir():
        if _TEMP_FILE.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def regenerate_outputs(journal: Journal, out: Path, *, show_ungrounded: bool = False) -> None:
    """Every card file, cards.jsonl, index.md and signals.csv, from the journal; stale files gone.

    Streamed document by document, so a large folder needs no more memory than a small one.
    """
    from .outputs import confined

    written: set[str] = {CARDS_JSONL, INDEX_MD, SIGNALS_CSV}
    # Names are recorded before their files are written: a kill part-way leaves none unknown.
    journal.add_outputs(written)
    recorded = journal.outputs()
    stems: dict[str, int] = {}
    failures: list[Entry] = []
    with (
        _atomic_file(out, CARDS_JSONL) as jsonl,
        _atomic_file(out, SIGNALS_CSV) as signals_file,
        _atomic_file(out, INDEX_MD) as index,
    ):
        signals = _signals_writer(signals_file)
        rows = io.StringIO()
        count = 0
        for entry in journal.entries():
            if not entry.done or entry.card is None or entry.stem is None:
                failures.append(entry)
                continue
            card = Card.model_validate_json(entry.card)
            seen = stems.get(entry.stem, 0)
            stems[entry.stem] = seen + 1
            stem = entry.stem if not seen else f"{entry.stem}-{seen + 1}"
            names = {f"{stem}.json", f"{stem}.md"}
            written |= names
            if not names <= recorded:  # only for a duplicate numbered differently than before
                journal.add_outputs(names)
                recorded |= names
            _write_card(out, stem, card, show_ungrounded=show_ungrounded)
            jsonl.write(json.dumps(card.model_dump(mode="json"), ensure_ascii=False) + "\n")
            _signal_rows(signals, card, stem)
            rows.write(_index_row(card, stem))
            count += 1
        index.write(_index(count, rows.getvalue(), failures))
    for name in sorted(recorded - written):
        # Only names the batch itself wrote, and only inside the folder.
        with contextlib.suppress(OSError, SlmscanError):
            confined(out, name).unlink(missing_ok=True)
    journal.set_outputs(written)


@contextlib.contextmanager
def _atomic_file(out: Path, name: str) -> Iterator[TextIO]:
    """A text file written in place of `out/name` at once: temp file, fsync, rename."""
    from .outputs import confined

    path = confined(out, name)
    fd, temp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())  # mkstemp's 0600 would make every card private to its maker
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except OSError as e:
        Path(temp).unlink(missing_ok=True)
        raise _write_error(path, e) from e
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


_SIGNAL_COLUMNS = (
    "src", "card", "title", "name", "description", "change", "ten_year", "driving_force",
    "relevancy", "grounded", "evidence",
)  # fmt: skip


def _signals_writer(file: TextIO) -> Any:
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(_SIGNAL_COLUMNS)
    return writer


def _signal_rows(writer: Any, card: Card, stem: str) -> None:
    for s in card.signals:
        quote = s.evidence.quote if s.evidence else ""
        grounded = "yes" if s.grounded else "no"
        cells = [card.src, f"{stem}.md", card.title, s.name, s.description, s.change, s.ten_year,
                 s.driving_force, str(s.relevancy), grounded, quote]  # fmt: skip
        writer.writerow([_csv_cell(c) for c in cells])


def _csv_cell(text: str) -> str:
    """One line of text, defused for spreadsheets: a leading = + - @ would start a formula."""
    text = clean_line(text)
    return f"'{text}" if text[:1] in {"=", "+", "-", "@"} else text


def _index(count: int, rows: str, failures: list[Entry]) -> str:
    out = [
        "# Cards",
        "",
        f"{count} card(s), {len(failures)} failed document(s).",
        "",
        "| card | source | top signals |",
        "|:--|:--|:--|",
        rows.rstrip("\n"),
    ]
    if failures:
        out += ["", "## Failed", ""]
        out += [f"* {_md(f.location)}: {_md(f.error or 'failed')}" for f in failures]
    return "\n".join(out).rstrip() + "\n"


def _index_row(card: Card, stem: str) -> str:
    source = card.source.url or card.source.location
    grounded = [s for s in card.signals if s.grounded][:_TOP_SIGNALS]
    signals = "; ".join(f"{_md(s.name)} ({s.relevancy})" for s in grounded)
    return f"| [{_md(card.title)}](<{stem}.md>) | {_md(source)} | {signals} |\n"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md(text: str) -> str:
    """Plain text safe in a Markdown table cell or link label: one line, specials escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", clean_line(text))
