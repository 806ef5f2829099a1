"""The command line: errors are one line with a hint, never a traceback; the model stays unloaded
when no document has text to analyse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slmscan.card import Card


def slmscan(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):
    """Run the real console entry point in a child process."""
    return subprocess.run(
        [sys.executable, "-c", "from slmscan.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        timeout=600,
        env=env,
    )


def test_version_and_schema() -> None:
    result = slmscan("--version")
    assert result.returncode == 0 and result.stdout.decode().startswith("slmscan ")
    schema = json.loads(slmscan("schema").stdout)
    assert schema["title"] == "Card"
    assert {"keywords", "signals", "provenance"} <= set(schema["properties"])
    assert json.dumps(Card.model_json_schema(), sort_keys=True) == json.dumps(
        schema, sort_keys=True
    )


def _one_line_error(result: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert lines, err
    for needle in needles:
        assert needle in err, err
    return lines[0]


@pytest.mark.parametrize(
    ("name", "data", "cause"),
    [
        ("empty.txt", b"", "empty"),
        ("binary.html", bytes(range(256)) * 40, "binary"),
        ("fake.pdf", b"this is not a pdf at all, just text\n" * 10, "not a PDF"),
        ("nav.html", b"<html><body><nav><a href='/'>Home</a></nav></body></html>", "no main text"),
    ],
)
def test_bad_input_gets_one_line_error_and_exit_1(
    tmp_path: Path, name: str, data: bytes, cause: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    result = slmscan("scan", str(path))
    assert result.returncode == 1
    line = _one_line_error(result, name)
    assert cause.lower() in line.lower()
    assert result.stdout == b""


def test_missing_path_and_offline_url(tmp_path: Path) -> None:
    result = slmscan("scan", "--offline", str(tmp_path / "nope.html"), "https://example.org/a")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "nope.html" in err and "example.org" in err and "offline" in err
    assert "Traceback" not in err
    assert "0 card(s), 2 failed" in err


def test_unknown_model_and_section_are_usage_errors(tmp_path: Path) -> None:
    doc = tmp_path / "a.txt"
    doc.write_text("A short document about something that matters to somebody today.\n" * 3)
    result = slmscan("scan", "--sections", "keywords,colours", str(doc))
    assert result.returncode == 2
    assert "colours" in _one_line_error(result)
    result = slmscan("scan", "--model", "no-such-model", str(doc))
    assert result.returncode == 1
    assert "no-such-model" in _one_line_error(result, "Hint: slmscan models list")


def test_step_line_on_a_terminal_only() -> None:
    import io

    from slmscan.cli.scan import StepLine

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        line = StepLine(stream)
        line("notes\x1b[2J.md", "summary")
        line.close()
    shown = terminal.getvalue()
    assert shown.startswith("\r\x1b[Knotes .md: summary (0 s)") and shown.endswith("\r\x1b[K")
    assert pipe.getvalue() == ""  # logs and pipes get the cards and the final line only
