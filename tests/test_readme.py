"""The README is the quick start: it must stay true to the code."""

import re
from pathlib import Path

from slmscan.config import ENVIRONMENT

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_environment_variable_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.MULTILINE))
    assert set(ENVIRONMENT) <= documented


def test_every_slmscan_variable_read_by_the_code_is_declared() -> None:
    package = Path(__file__).resolve().parents[1] / "slmscan"
    used = {
        name
        for path in package.rglob("*.py")
        for name in re.findall(r"\"(SLMSCAN_[A-Z_]+)\"", path.read_text(encoding="utf-8"))
    }
    assert used <= set(ENVIRONMENT)


def test_quick_start_is_two_commands() -> None:
    assert "make demo" in README and "make test" in README
    assert (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text().count("make test")
