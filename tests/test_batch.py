"""Batch runs (`slmscan scan DIR --out OUT`): resumable after SIGKILL, byte-identical to an
uninterrupted run, a consistent journal, no stray files, outputs regenerated from the journal."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from field_reports import variation
from hub_server import write_tiny_gguf

from slmscan.batch import CARDS_JSONL, INDEX_MD, SIGNALS_CSV, _csv_cell, run_batch, run_identity
from slmscan.card import Card
from slmscan.errors import SourceError
from slmscan.journal import JOURNAL_NAME, Journal
from slmscan.scanner import ScanOptions

FAKE = ScanOptions(model="fake")
CLI = [sys.executable, "-c", "from slmscan.cli import main; main()"]
SHARED = {CARDS_JSONL, INDEX_MD, SIGNALS_CSV, JOURNAL_NAME}


def slmscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def build_folder(folder: Path, corpus: Path, total: int = 200) -> None:
    folder.mkdir()
    pages = sorted((corpus / "html").glob("*.html"))
    assert pages, f"no HTML pages in {corpus / 'html'}"
    for page in pages:
        shutil.copy(page, folder / page.name)
    rng = random.Random(6)
    for i in range(total - len(pages)):
        name, text = variation(rng, i)
        (folder / name).write_text(text)


def folder_files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != JOURNAL_NAME}


def session_processes(sid: int) -> list[int]:
    """Processes still alive in a session (a killed batch must leave no worker behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == sid:  # state, ppid, pgrp, session
            found.append(int(entry.name))
    return found


def run_and_kill(args: list[str], after_done: int, delay: float) -> int:
    """Start a batch, SIGKILL it `delay` s after its `after_done`-th new card; cards it made."""
    process = subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own session: stray processes are easy to find
    )
    assert process.stderr is not None
    made = 0
    try:
        for line in process.stderr:
            if "] done: " in line:
                made += 1
            if made >= after_done:
                time.sleep(delay)
                break
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 5
        while session_processes(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_processes(process.pid) == [], "the worker outlived its batch"
    finally:
        process.stderr.close()
        if process.poll() is None:
            process.kill()
    return made


@pytest.mark.corpus
def test_kill_and_resume_200_documents_gives_the_uninterrupted_result(
    tmp_path: Path, corpus: Path
) -> None:
    docs = tmp_path / "docs"
    build_folder(docs, corpus)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"

    # The uninterrupted run goes on beside the interrupted ones: they share only the input.
    started = time.monotonic()
    uninterrupted = subprocess.Popen(
        [*CLI, "scan", "--model", "fake", str(docs), "--out", str(whole)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    rng = random.Random(20240606)
    args = ["scan", "--model", "fake", str(docs), "--out", str(resumed)]
    made = []
    for _ in range(5):
        made.append(run_and_kill(args, after_done=rng.randint(5, 30), delay=rng.uniform(0, 0.1)))
    assert sum(made) < 200, "every kill must leave work for the next run"
    result = slmscan(*args)
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stderr
    _, whole_err = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, whole_err
    assert "200 carded" in whole_err
    print(f"kill/resume {time.monotonic() - started:.1f} s; cards before each kill: {made}")

    expected = folder_files(whole)
    assert len([n for n in expected if n.endswith(".json")]) == 200
    assert folder_files(resumed).keys() == expected.keys()  # no stray or missing file
    for name, data in expected.items():
        assert folder_files(resumed)[name] == data, f"{name} differs"
    names = {p.name for p in resumed.iterdir()}
    cards = {n for n in names if re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}\.(?:md|json)", n)}
    assert names - cards == SHARED  # nothing else: no temp files, no SQLite rollback journal

    with sqlite3.connect(resumed / JOURNAL_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT location, status, attempts FROM documents").fetchall()
        outputs = {name for (name,) in db.execute("SELECT name FROM outputs")}
    assert len(rows) == 200 and len({location for location, _, _ in rows}) == 200
    assert {status for _, status, _ in rows} == {"done"}
    assert outputs == set(expected)


def write_docs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(exist_ok=True)
    rng = random.Random(count)
    paths = []
    for i in range(count):
        name, text = variation(rng, i)
        paths.append(folder / name)
        paths[-1].write_text(text)
    return paths


def test_rerun_skips_what_is_done_and_redoes_what_changed(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", 4)
    out = tmp_path / "out"
    args = ["scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out)]
    assert slmscan(*args).returncode == 0
    before = folder_files(out)

    again = slmscan(*args)
    assert again.returncode == 0 and "0 carded, 4 already done" in again.stderr
    assert folder_files(out) == before

    old_cards = {p.name for p in out.glob("*.json")}
    docs[1].write_text(docs[1].read_text().replace("field report", "revised field report"))
    changed = slmscan(*args)
    assert "1 carded, 3 already done" in changed.stderr
    new_cards = {p.name for p in out.glob("*.json")}
    assert len(new_cards) == 4 and len(new_cards - old_cards) == 1  # the old card is gone
    assert len((out / CARDS_JSONL).read_text().splitlines()) == 4

    reseeded = slmscan(*args, "--seed", "7")
    assert "4 carded, 0 already done" in reseeded.stderr


def test_the_key_cache_is_part_of_a_run_identity_only_when_not_f16(tmp_path: Path) -> None:
    assert run_identity(ScanOptions(model="smollm2-135m"))["key_cache"] == "q8_0"
    # A model with f16 keys keeps the identity it had before key types were named.
    plain = run_identity(ScanOptions(model=str(write_tiny_gguf(tmp_path / "tiny.gguf"))))
    assert "key_cache" not in plain and set(plain) == {"slmscan", "model_sha256", "prompts",
                                                       "settings"}  # fmt: skip


def test_outputs_agree_with_the_cards(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 5)
    (tmp_path / "docs" / "empty.txt").write_text("")
    out = tmp_path / "out"
    result = slmscan("scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out))
    assert result.returncode == 1
    assert "ETA" in result.stderr and "1 failed" in result.stderr

    lines = (out / CARDS_JSONL).read_text().splitlines()
    cards = [Card.model_validate_json(line) for line in lines]
    assert [c.source.location for c in cards] == sorted(c.source.location for c in cards)
    for card in cards:
        stem = next(p.stem for p in out.glob(f"*-{card.src[:8]}.json"))
        assert Card.model_validate_json((out / f"{stem}.json").read_text()) == card
        assert card.provenance.seconds == 0 and card.provenance.notes[-1].startswith("timings")
        assert f"](<{stem}.md>)" in (out / INDEX_MD).read_text()
    index = (out / INDEX_MD).read_text()
    assert index.count("](<") == 5
    assert "## Failed" in index and "empty.txt: is empty" in index

    csv_lines = (out / SIGNALS_CSV).read_text().splitlines()
    assert csv_lines[0].startswith("src,card,title,name,description")
    assert len(csv_lines) - 1 == sum(len(c.signals) for c in cards)
    assert {line.split(",")[0] for line in csv_lines[1:]} == {c.src for c in cards}

    with sqlite3.connect(out / JOURNAL_NAME) as db:
        timings = [json.loads(t) for (t,) in db.execute("SELECT timings FROM documents")]
    assert sum("wall_seconds" in t for t in timings) == 5  # measured timings live here


def test_spreadsheet_formulas_are_defused() -> None:
    assert _csv_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_cell("plain\ttext\x1b[31m") == "plain text"


def test_temp_files_left_by_a_kill_are_swept(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 2)
    out = tmp_path / "out"
    out.mkdir()
    stray = out / ".cards.jsonl.ab12cd_9.tmp"
    stray.write_text("half a file")
    keep = out / "notes.txt"
    keep.write_text("mine")
    result = slmscan("scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out))
    assert result.returncode == 0
    assert not stray.exists() and keep.read_text() == "mine"


def test_unreadable_document_keeps_its_card(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", 2)
    out = tmp_path / "out"
    args = ["scan", "--model", "fake", *map(str, docs), "--out", str(out)]
    assert slmscan(*args).returncode == 0
    docs[0].unlink()
    result = slmscan(*args)
    assert result.returncode == 1
    assert f"Error: {docs[0]}: no such file" in result.stderr
    assert len(list(out.glob("*.json"))) == 2  # the card it had is kept


def test_full_disk_stops_the_run_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_docs(tmp_path / "docs", 6)
    out = tmp_path / "out"
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(SourceError, match="No space left on device") as info:
        run_batch([str(tmp_path / "docs")], out, FAKE)
    assert "run the same command again" in (info.value.hint or "")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    summary = run_batch([str(tmp_path / "docs")], out, FAKE)
    assert summary.ok and summary.done + summary.skipped == 6 and summary.skipped >= 2
    assert len(list(out.glob("*.json"))) == 6
    assert len((out / CARDS_JSONL).read_text().splitlines()) == 6


def test_a_second_run_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 1)
    out = tmp_path / "out"
    out.mkdir()
    with Journal(out / JOURNAL_NAME):
        result = slmscan("scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out))
    assert result.returncode == 2
    assert f"Error: another slmscan run is writing to {out}" in result.stderr


def test_a_broken_journal_is_a_one_line_error(tmp_path: Path) -> None:
    write_docs(tmp_path / "docs", 1)
    out = tmp_path / "out"
    out.mkdir()
    (out / JOURNAL_NAME).write_bytes(b"this is not a database" * 100)
    result = slmscan("scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"Error: {out / JOURNAL_NAME}: not a usable slmscan journal" in result.stderr


def test_output_folder_inside_the_scanned_folder_is_left_out(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    write_docs(docs, 2)
    args = ["scan", "--model", "fake", str(docs), "--out", str(docs / "cards")]
    assert "2 carded" in slmscan(*args).stderr
    assert "2 document(s): 0 carded, 2 already done" in slmscan(*args).stderr


def test_identical_documents_get_numbered_files(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", 1)
    shutil.copy(docs[0], tmp_path / "docs" / "copy.txt")
    out = tmp_path / "out"
    assert (
        slmscan("scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out)).returncode
        == 0
    )
    names = sorted(p.name for p in out.glob("*.json"))
    assert len(names) == 2 and names[0].endswith("-2.json") != names[1].endswith("-2.json")
    locations = {Card.model_validate_json((out / n).read_text()).source.location for n in names}
    assert locations == {str(docs[0]), str(tmp_path / "docs" / "copy.txt")}


def test_ctrl_c_stops_at_once_and_leaves_the_folder_consistent(tmp_path: Path) -> None:
    docs = write_docs(tmp_path / "docs", 2)
    # The fake model takes many seconds over this one: Ctrl-C arrives while it works.
    (tmp_path / "docs" / "zz-long.txt").write_text("Long\n\n" + docs[0].read_text() * 40_000)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [*CLI, "scan", "--model", "fake", str(tmp_path / "docs"), "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # A shell without job control starts background jobs with SIGINT ignored, and a
        # process that inherits that keeps ignoring it: give the scan the terminal's default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    done = 0
    for line in process.stderr:
        done += "] done: " in line
        if done == 2:
            break
    time.sleep(0.5)
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    process.wait(timeout=30)
    stopped = time.monotonic() - interrupted
    assert stopped < 3, f"stopped after {stopped:.1f} s; its last words: {rest[-2000:]!r}"
    assert process.returncode == 130 and "Traceback" not in rest
    assert session_processes(process.pid) == []
    assert len((out / CARDS_JSONL).read_text().splitlines()) == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_progress_bar_on_a_terminal() -> None:
    from slmscan.batch import Progress
    from slmscan.cli.scan import ProgressBar
    from slmscan.errors import ExtractionError

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    bar = ProgressBar(terminal)
    common = {"total": 4, "skipped": 0, "elapsed": 1.0}
    bar(Progress("a.txt", "started", done=0, failed=0, eta=None, **common))
    bar(Progress("a.txt", "step", done=0, failed=0, eta=None, step="summary", **common))
    bar(Progress("a.txt", "done", done=1, failed=0, eta=95.0, **common))
    error = ExtractionError("b\x1b[2J.txt: is empty")
    bar(Progress("b\x1b[2J.txt", "failed", done=1, failed=1, eta=30.0, error=error, **common))
    bar.close()
    shown = terminal.getvalue()
    assert "[------------------------] 0/4 · 0 done · 0 failed · 0 skipped · ETA ? a.txt" in shown
    assert "a.txt (summary)" in shown
    assert "[######------------------] 1/4 · 1 done · 0 failed · 0 skipped · ETA 1m35s" in shown
    assert "\r\x1b[KError: b .txt: is empty\n" in shown  # the bar gives way to the error line
    assert "\x1b[2J" not in shown and shown.endswith("\r\x1b[K")
