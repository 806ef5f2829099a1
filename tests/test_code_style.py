"""The house style's tools hold on the code as committed: ruff everywhere, mypy on the package."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing() -> None:
    lint = _run("ruff", "check", "slmscan", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    form = _run("ruff", "format", "--check", "slmscan", "tests", "benchmarks")
    assert form.returncode == 0, form.stdout + form.stderr


@pytest.mark.slow
def test_the_package_type_checks() -> None:
    checked = _run("mypy", "slmscan")
    assert checked.returncode == 0, checked.stdout + checked.stderr
