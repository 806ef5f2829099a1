"""Shared fixtures: every test gets its own home, offline Hub, and no stray settings.

The real bundled model is loaded once per session (`smol_scanner`) for tests marked `model`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("SLMSCAN_CORPUS", ROOT.parent / "shared" / "corpus"))


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith("SLMSCAN_") and name not in {"SLMSCAN_CORPUS"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SLMSCAN_HOME", str(home / ".slmscan"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # Bundled models shipped in chunks are assembled once per session, not once per test.
    monkeypatch.setenv("SLMSCAN_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))
    return home


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real web pages; tests that need it skip when it is absent."""
    if not (CORPUS / "manifest.json").is_file():
        pytest.skip(f"the shared corpus is not at {CORPUS} (set SLMSCAN_CORPUS)")
    return CORPUS


@pytest.fixture(scope="session")
def smol_scanner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The default bundled model, loaded once for every test that needs the real thing."""
    from slmscan.scanner import Scanner, ScanOptions

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLMSCAN_HOME", str(tmp_path_factory.mktemp("scanner-home")))
        scanner = Scanner(ScanOptions(model="smollm2-135m", offline=True))
        scanner._load()
    yield scanner
    scanner.close()
