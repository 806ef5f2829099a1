"""The worker process: a native crash fails one document after two tries, a runaway document is
killed at its deadline, and the parent goes on (fake model: no llama.cpp needed)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from slmscan.batch import split_timings
from slmscan.document import RawDocument
from slmscan.errors import ExtractionError, GenerationError, ModelNotFoundError
from slmscan.fake import ABORT_MARKER
from slmscan.scanner import ScanOptions
from slmscan.worker import MAX_ATTEMPTS, InferenceWorker, Limits

FAKE = ScanOptions(model="fake")
TEXT = (
    "Heat pumps at home\n\n"
    "Heat pumps move warmth from the outside air into homes. They use far less electricity "
    "than resistive heaters. Installers report long waiting lists across the country.\n"
)


def raw(text: str, name: str = "doc.txt") -> RawDocument:
    return RawDocument(location=name, kind="file", data=text.encode(), name=name)


def slmscan(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from slmscan.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; only its parent's wait would remove it.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_crashing_document_fails_after_two_tries_and_the_batch_goes_on(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"doc{i}.txt").write_text(TEXT.replace("Heat pumps at home", f"Report {i}"))
    (docs / "doc2-crash.txt").write_text(f"Crash here\n\n{TEXT} {ABORT_MARKER} ends the worker.\n")
    out = tmp_path / "out"

    result = slmscan("scan", "--model", "fake", str(docs), "--out", str(out))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [
        f"Error: {docs / 'doc2-crash.txt'}: the model crashed on it twice (killed by SIGABRT); "
        "skipped"
    ]
    assert "5 carded" in result.stderr and "1 failed" in result.stderr
    cards = sorted(p.name for p in out.glob("*.json"))
    assert len(cards) == 5 and all(name.startswith("report-") for name in cards)
    assert len((out / "cards.jsonl").read_text().splitlines()) == 5
    with sqlite3.connect(out / "journal.sqlite") as db:
        rows = db.execute("SELECT location, status, attempts FROM documents").fetchall()
    assert (str(docs / "doc2-crash.txt"), "failed", MAX_ATTEMPTS) in rows
    assert sum(1 for _, status, attempts in rows if status == "done" and attempts == 1) == 5
    assert "## Failed" in (out / "index.md").read_text()


def test_worker_is_replaced_after_a_crash() -> None:
    with InferenceWorker(FAKE) as worker:
        first = worker.analyse(raw(TEXT))
        pid = worker.pid
        assert first.card is not None and first.attempts == 1 and pid is not None
        crashed = worker.analyse(raw(f"{TEXT} {ABORT_MARKER}", "crash.txt"))
        assert crashed.card is None and crashed.attempts == MAX_ATTEMPTS
        assert isinstance(crashed.error, GenerationError)
        assert crashed.error.message.startswith("crash.txt: the model crashed on it twice")
        assert not alive(pid)
        again = worker.analyse(raw(TEXT))
        # The same card, up to the time it took (the fresh worker's first call may be slower).
        assert again.card is not None
        assert split_timings(again.card)[0] == split_timings(first.card)[0]
        assert worker.pid not in (None, pid)


def test_generation_past_its_deadline_is_killed_and_failed() -> None:
    # The fake model takes ~2 s over a megabyte of text; the limit is a tenth of that.
    big = "Long report\n\n" + TEXT * 3000
    with InferenceWorker(FAKE, Limits(generate_seconds=0.2)) as worker:
        started = time.monotonic()
        outcome = worker.analyse(raw(big, "big.txt"))
        assert time.monotonic() - started < 5
        assert outcome.card is None and outcome.attempts == 1
        assert isinstance(outcome.error, GenerationError)
        assert outcome.error.message == (
            "big.txt: making the card took longer than 0.2 s (the limit); skipped"
        )
        assert worker.pid is None  # killed, not reused
        assert worker.analyse(raw(TEXT)).card is not None


def test_extraction_past_its_deadline_is_killed_and_failed() -> None:
    paragraph = "<p>" + "Heat pumps move warmth from outside air into homes. " * 4 + "</p>\n"
    page = f"<html><head><title>Big</title></head><body>{paragraph * 20000}</body></html>"
    with InferenceWorker(FAKE, Limits(extract_seconds=0.3)) as worker:
        outcome = worker.analyse(raw(page, "big.html"))
        assert isinstance(outcome.error, ExtractionError)
        assert outcome.error.message == (
            "big.html: extracting the text took longer than 0.3 s (the limit); skipped"
        )


def test_a_model_that_cannot_load_stops_the_run() -> None:
    with InferenceWorker(ScanOptions(model="no-such-model")) as worker:
        with pytest.raises(ModelNotFoundError, match="no-such-model"):
            worker.analyse(raw(TEXT))
        assert worker.pid is None


def test_a_document_error_is_a_failed_outcome_not_an_exception() -> None:
    with InferenceWorker(FAKE) as worker:
        outcome = worker.analyse(raw("", "empty.txt"))
        assert isinstance(outcome.error, ExtractionError)
        assert outcome.error.message == "empty.txt: is empty"
        assert worker.analyse(raw(TEXT)).card is not None  # same worker, still serving


def test_worker_dies_with_its_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from slmscan.document import RawDocument
                from slmscan.scanner import ScanOptions
                from slmscan.worker import InferenceWorker
                worker = InferenceWorker(ScanOptions(model="fake"))
                worker.analyse(RawDocument("a.txt", "file", {TEXT.encode()!r}, "a.txt"))
                print(worker.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    assert alive(worker_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker_pid)
