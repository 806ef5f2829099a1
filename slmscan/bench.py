"""Many models × many documents: what `slmscan bench` measures.

    result = run_bench(BenchOptions(models=("smollm2-135m", "gemma3-270m"), corpus=folder))

The documents are read and extracted once, here; then each model runs in a fresh worker
process (`python -m slmscan.bench`), so that its peak memory is its own, a native crash in
llama.cpp takes down one worker and not the run, and one model's allocations cannot slow the
next. The worker scans every document (`repeat` passes over the folder) and streams one JSON
line per card back. A worker that dies mid-run is restarted after the document it died on,
which is recorded as failed. A model that cannot load, or whose cards all fail, comes out as
failed with its reason; the other models' results are unaffected.

Speed figures come from the engine's own counters around each card: prefill is prompt and
scaffolding tokens over the seconds spent evaluating them, decode is decoded tokens over the
seconds spent evaluating them one at a time (model time only: choosing among candidates is
not in it, but is in seconds per card). Seconds per card is wall time around `analyse`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import __version__
from .analyse import SECTION_PROMPTS, SECTIONS
from .card import Card
from .document import Article
from .errors import SlmscanError, UsageError
from .prompts import load_template
from .quality import TABLES, CardQuality, RunQuality, run_quality

_STDERR_TAIL = 4000  # bytes of a dead worker's stderr kept to find its reason


@dataclass(frozen=True)
class BenchOptions:
    """What to benchmark: models (ids, aliases or .gguf paths) over a folder of documents."""

    models: tuple[str, ...]
    corpus: Path
    repeat: int = 1
    sections: tuple[str, ...] = SECTIONS
    seed: int = 0
    threads: int | None = None


@dataclass(frozen=True)
class Document:
    """One document of the folder, extracted once for every model."""

    key: str  # path relative to the folder: unique and stable
    location: str
    article: Article | None = None
    error: str | None = None  # why it could not be read or extracted

    @property
    def ok(self) -> bool:
        return self.article is not None

    @property
    def text(self) -> str:
        """The extracted text every model is given ("" when extraction failed)."""
        return self.article.text if self.article else ""


@dataclass
class CardRun:
    """One model's attempt at one document in one pass."""

    key: str
    repeat: int
    seconds: float = 0.0
    card: Card | None = None
    error: str | None = None
    prefill_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_tokens: int = 0
    decode_seconds: float = 0.0


@dataclass
class ModelResult:
    """Everything measured for one model."""

    model: str
    runs: list[CardRun] = field(default_factory=list)
    load_error: str | None = None
    load_seconds: float | None = None
    peak_rss_mb: float | None = None
    base_rss_mb: float | None = None  # the worker's memory before the model was loaded
    crashes: list[str] = field(default_factory=list)
    quality: RunQuality | None = None
    card_quality: dict[str, CardQuality] = field(default_factory=dict)

    @property
    def cards(self) -> dict[str, Card]:
        """The first pass's cards, by document key (the cards quality is measured on)."""
        return {r.key: r.card for r in self.runs if r.repeat == 0 and r.card is not None}

    @property
    def failed(self) -> bool:
        """A model that could not load, or made no card at all."""
        return not any(r.card for r in self.runs)

    @property
    def reason(self) -> str | None:
        """Why the model failed (or None)."""
        if not self.failed:
            return None
        if self.load_error:
            return self.load_error
        errors = [r.error for r in self.runs if r.error]
        return errors[0] if errors else "no documents to scan"

    @property
    def failures(self) -> int:
        """Card runs that ended without a card."""
        return sum(r.card is None for r in self.runs)

    @property
    def splits(self) -> int:
        """First-pass cards of documents too long for the context, analysed in parts."""
        return sum(card.provenance.parts > 1 for card in self.cards.values())

    def seconds(self) -> list[float]:
        """Seconds per card of every card made, all passes."""
        return [r.seconds for r in self.runs if r.card is not None]

    def seconds_summary(self) -> dict[str, float | None]:
        """Median, quartiles, min and max of seconds per card."""
        values = sorted(self.seconds())
        if not values:
            return dict.fromkeys(("median", "q1", "q3", "min", "max"))
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        return {
            "median": statistics.median(values),
            "q1": q1,
            "q3": q3,
            "min": values[0],
            "max": values[-1],
        }

    def prefill_tps(self) -> float | None:
        """Prompt and scaffolding tokens per second of evaluation, over every card."""
        seconds = sum(r.prefill_seconds for r in self.runs)
        return sum(r.prefill_tokens for r in self.runs) / seconds if seconds else None

    def decode_tps(self) -> float | None:
        """Decoded tokens per second of single-token evaluation, over every card."""
        seconds = sum(r.decode_seconds for r in self.runs)
        return sum(r.decode_tokens for r in self.runs) / seconds if seconds else None

    def agreement(self) -> float | None:
        """With several passes: the share of documents whose cards came out identical."""
        passes = {r.repeat for r in self.runs}
        if len(passes) < 2 or self.failed:
            return None
        by_key: dict[str, list[CardRun]] = {}
        for run in self.runs:
            by_key.setdefault(run.key, []).append(run)
        same = 0
        for runs in by_key.values():
            contents = [_content(r.card) if r.card else None for r in runs]
            same += (
                len(runs) == len(passes)
                and None not in contents
                and contents.count(contents[0]) == len(contents)
            )
        return same / len(by_key) if by_key else None


def _content(card: Card) -> str:
    """A card's content without its provenance (timings always differ)."""
    return card.model_dump_json(exclude={"provenance"})


@dataclass
class BenchResult:
    """A whole benchmark: the documents, and each model's result, in the order asked."""

    options: BenchOptions
    documents: list[Document]
    models: list[ModelResult]
    machine: dict[str, Any]
    started: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every model made every card."""
        return all(not m.failed and not m.failures for m in self.models) and all(
            d.ok for d in self.documents
        )


@dataclass(frozen=True)
class Progress:
    """One step of the run, for a progress bar: a card made or failed, or a model skipped."""

    model: str
    steps: int  # how many model × document × pass steps this event completes
    key: str | None = None
    error: str | None = None


ProgressCallback = Callable[[Progress], None]


def load_documents(corpus: Path) -> list[Document]:
    """Every supported file below the folder, read and extracted (failures recorded)."""
    from .extract import extract_article
    from .sources import expand_sources, read_source

    if not corpus.is_dir():
        raise UsageError(f"{corpus}: not a folder", hint="--corpus names a folder of documents")
    documents = []
    for location in expand_sources([str(corpus)]):
        key = Path(location).relative_to(corpus).as_posix()
        try:
            article = extract_article(read_source(location, offline=True))
        except SlmscanError as e:
            documents.append(Document(key, location, error=e.message))
            continue
        documents.append(Document(key, location, article))
    if not documents:
        raise UsageError(
            f"{corpus}: no documents found", hint="supported: html, txt, md, pdf, docx"
        )
    return documents


def table_examples() -> dict[str, str]:
    """Each table's built-in prompt example, which its rows should not copy."""
    return {table: load_template(SECTION_PROMPTS[table]).example_text for table in TABLES}


def run_bench(
    options: BenchOptions,
    progress: ProgressCallback | None = None,
    documents: list[Document] | None = None,
) -> BenchResult:
    """Scan every document with every model, each in its own worker process, and measure.

    `documents` are those of `load_documents(options.corpus)`, when the caller has them already.
    """
    if not options.models:
        raise UsageError("no models to benchmark", hint="--models smollm2-135m,gemma3-270m")
    if options.repeat < 1:
        raise UsageError("--repeat must be at least 1")
    unknown = [s for s in options.sections if s not in SECTIONS]
    if unknown or not options.sections:
        raise UsageError(
            f"unknown section {unknown[0]!r}" if unknown else "no sections chosen",
            hint=f"sections are: {', '.join(SECTIONS)}",
        )
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    clock = time.perf_counter()
    documents = documents if documents is not None else load_documents(options.corpus)
    texts = {d.key: d.text for d in documents if d.ok}
    notify = progress or (lambda _: None)
    results = []
    with tempfile.TemporaryDirectory(prefix="slmscan-bench-") as work:
        articles = Path(work) / "articles.json"
        articles.write_text(json.dumps(_articles(documents)), encoding="utf-8")
        for model in options.models:
            skipped = len(documents) - len(texts)
            if skipped:
                notify(Progress(model, skipped * options.repeat, error="not extracted"))
            result = run_model(model, articles, list(texts), options, Path(work), notify)
            result.quality, result.card_quality = run_quality(result.cards, texts, table_examples())
            results.append(result)
    return BenchResult(
        options=options,
        documents=documents,
        models=results,
        machine=machine_info(),
        started=started,
        seconds=round(time.perf_counter() - clock, 1),
    )


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        import llama_cpp

        llama_version = str(llama_cpp.__version__)
    except ImportError:
        llama_version = "not installed"
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "slmscan": __version__,
        "llama_cpp_python": llama_version,
    }


def _articles(documents: list[Document]) -> list[dict[str, Any]]:
    """The extracted articles, for the workers (every model sees the same text)."""
    return [
        {
            "key": doc.key,
            "text": doc.article.text,
            "src": doc.article.src,
            "source": doc.article.source.model_dump(mode="json"),
        }
        for doc in documents
        if doc.article is not None
    ]


# --- one model, in worker processes ---------------------------------------------------------


def run_model(
    model: str,
    articles: Path,
    keys: Sequence[str],
    options: BenchOptions,
    work: Path,
    progress: ProgressCallback,
) -> ModelResult:
    """Run one model over the documents in worker processes; restart after a crash."""
    result = ModelResult(model)
    tasks = [(repeat, key) for repeat in range(options.repeat) for key in keys]
    while tasks:
        done = _run_worker(model, articles, tasks, options, work, result, progress)
        tasks = tasks[done:]
        if result.load_error:
            for repeat, key in tasks:
                result.runs.append(CardRun(key, repeat, error=result.load_error))
            progress(Progress(model, len(tasks), error=result.load_error))
            break
        if tasks:  # the worker died on the first task it did not report
            repeat, key = tasks.pop(0)
            reason = result.crashes[-1] if result.crashes else "worker ended early"
            result.runs.append(CardRun(key, repeat, error=reason))
            progress(Progress(model, 1, key=key, error=reason))
    return result


def _run_worker(
    model: str,
    articles: Path,
    tasks: list[tuple[int, str]],
    options: BenchOptions,
    work: Path,
    result: ModelResult,
    progress: ProgressCallback,
) -> int:
    """One worker over `tasks`; returns how many it reported before it ended."""
    job = {
        "model": model,
        "articles": str(articles),
        "tasks": tasks,
        "sections": list(options.sections),
        "seed": options.seed,
        "threads": options.threads,
    }
    job_file = work / "job.json"
    job_file.write_text(json.dumps(job), encoding="utf-8")
    reported = 0
    with tempfile.TemporaryFile(dir=work) as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slmscan.bench", str(job_file)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        for event in _events(proc.stdout):
            kind = event.get("event")
            if kind == "loaded":
                if result.load_seconds is None:
                    result.load_seconds = event["seconds"]
                    result.base_rss_mb = event["rss_mb"]
            elif kind == "load_failed":
                result.load_error = event["reason"]
            elif kind == "card":
                run = _card_run(event)
                result.runs.append(run)
                reported += 1
                progress(Progress(model, 1, key=run.key, error=run.error))
        # wait4, not wait: it also returns the worker's own peak memory, even after a crash.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss / (1024 if sys.platform != "darwin" else 1024 * 1024)
        result.peak_rss_mb = max(result.peak_rss_mb or 0.0, round(peak, 1))
        if proc.returncode != 0 and not result.load_error:
            stderr.seek(0)
            tail = stderr.read()[-_STDERR_TAIL:].decode("utf-8", "replace")
            result.crashes.append(_crash_reason(proc.returncode, tail))
            if reported == 0 and result.load_seconds is None:
                result.load_error = result.crashes[-1]
    return reported


def _events(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    for line in stream:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # not ours: the worker's protocol lines are always whole JSON objects
        if isinstance(event, dict):
            yield event


def _card_run(event: dict[str, Any]) -> CardRun:
    card = Card.model_validate(event["card"]) if event.get("card") else None
    return CardRun(
        key=event["key"],
        repeat=event["repeat"],
        seconds=event.get("seconds", 0.0),
        card=card,
        error=event.get("error"),
        prefill_tokens=event.get("prefill_tokens", 0),
        prefill_seconds=event.get("prefill_seconds", 0.0),
        decode_tokens=event.get("decode_tokens", 0),
        decode_seconds=event.get("decode_seconds", 0.0),
    )


def _crash_reason(returncode: int, stderr_tail: str) -> str:
    """One line on why a worker died: its signal or exit code, and its last error line."""
    import signal

    if returncode < 0:
        try:
            what = f"worker killed by {signal.Signals(-returncode).name}"
        except ValueError:
            what = f"worker killed by signal {-returncode}"
    else:
        what = f"worker exited with code {returncode}"
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    return f"{what}: {lines[-1][:200]}" if lines else what


# --- the worker -------------------------------------------------------------------------------


def _rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 if sys.platform != "darwin" else 1024 * 1024), 1)


def _worker(job_file: str) -> int:
    """Scan the job's tasks with one model, one JSON line per card on the original stdout."""
    # Native libraries may print to stdout; the protocol gets its own copy of the descriptor
    # and everything else written to stdout goes to stderr.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    from .card import Source
    from .fake import FAKE_MODEL_ID
    from .scanner import Scanner, ScanOptions, resolve_model

    def emit(**event: object) -> None:
        out.write(json.dumps(event, ensure_ascii=False) + "\n")

    job = json.loads(Path(job_file).read_text(encoding="utf-8"))
    articles = {
        a["key"]: Article(a["text"], Source.model_validate(a["source"]), a["src"])
        for a in json.loads(Path(job["articles"]).read_text(encoding="utf-8"))
    }
    options = ScanOptions(
        model=job["model"],
        sections=tuple(job["sections"]),
        offline=True,
        seed=job["seed"],
        threads=job["threads"],
    )
    base = _rss_mb()
    try:
        scanner = Scanner(options)
        if job["model"] != FAKE_MODEL_ID:
            resolve_model(job["model"])  # a first-use assembly of the file is not load time
        started = time.perf_counter()
        # Scanner loads on first use; its private loader is called here so the load is timed
        # on its own, not inside the first card.
        analyser = scanner._load()
        emit(event="loaded", seconds=round(time.perf_counter() - started, 3), rss_mb=base)
    except SlmscanError as e:
        emit(event="load_failed", reason=e.message)
        return 0
    engine = getattr(analyser, "engine", None)
    for repeat, key in job["tasks"]:
        before = engine.counters.snapshot() if engine else None
        started = time.perf_counter()
        try:
            card = scanner.analyse(articles[key])
        except SlmscanError as e:
            seconds = time.perf_counter() - started
            emit(event="card", key=key, repeat=repeat, error=e.message, seconds=round(seconds, 3))
            continue
        seconds = time.perf_counter() - started
        used = engine.counters.since(before) if engine and before else None
        emit(
            event="card",
            key=key,
            repeat=repeat,
            seconds=round(seconds, 3),
            card=card.model_dump(mode="json"),
            prefill_tokens=used.prompt + used.fed + used.decoded_batched if used else 0,
            prefill_seconds=used.prompt_seconds if used else 0.0,
            decode_tokens=used.decode_steps if used else 0,
            decode_seconds=used.decode_seconds if used else 0.0,
        )
    scanner.close()
    emit(event="done", rss_mb=_rss_mb())
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
