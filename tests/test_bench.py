"""`slmscan bench`: plumbing with the fake model; the real model only in the marked test."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmscan.bench import BenchOptions, run_bench
from slmscan.bench_report import render_cards_table
from slmscan.fake import ABORT_MARKER

DOCS = {
    "council.md": "# Riverton budget\n\nRiverton Council approved a new budget on Monday. "
    "The budget moves money from road repairs to the public library. Residents said the "
    "library had been closed on weekends for two years. The mayor called the vote a fair "
    "compromise after a long debate about roads and books.",
    "volcano.txt": "Geologists on Iceland recorded a swarm of small earthquakes near the "
    "volcano. Magma is rising under the peninsula, and lava could reach the surface within "
    "days. The fishing town nearby was evacuated as a precaution by the civil protection "
    "agency. Scientists expect more tremors this week.",
    "sub/baking.txt": "Sourdough bread needs a starter of flour and water fed every day. "
    "Bakers fold the dough several times and let it rise overnight in a cool room. A hot oven "
    "and steam give the loaf its crisp crust and open crumb. Patience matters more than "
    "expensive tools, bakers say.",
}


def make_corpus(folder: Path, docs: dict[str, str] = DOCS) -> Path:
    """A small folder of made-up documents."""
    for name, text in docs.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def slmscan(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point, in a child process (as a user runs it)."""
    return subprocess.run(
        [sys.executable, "-c", "from slmscan.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One `slmscan bench` run with the fake model and a broken model file, for every test."""
    root = tmp_path_factory.mktemp("bench")
    corpus = make_corpus(root / "corpus")
    broken = root / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 60)  # a GGUF signature and nothing usable after it
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLMSCAN_HOME", str(root / "home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        result = slmscan("bench", "--models", f"fake,{broken}", "--corpus", str(corpus),
                         "--out", str(root / "out"), "--repeat", "2")  # fmt: skip
    yield root / "out", result.stdout + result.stderr
    assert result.returncode == 1, result.stderr  # a failed model makes the run fail


def test_broken_model_reported_failed_and_fake_results_complete(
    bench_out: tuple[Path, str],
) -> None:
    out, output = bench_out
    assert "Traceback" not in output
    data = json.loads((out / "results.json").read_text())
    fake, broken = data["models"]
    assert broken["status"] == "failed" and "GGUF" in broken["reason"]
    assert broken["failures"] == broken["card_runs"] == 6
    assert fake["status"] == "ok" and fake["cards"] == 3 and fake["failures"] == 0
    assert fake["schema_complete"] == 1.0 and fake["evidence_verified"] == 1.0
    assert fake["agreement"] == 1.0  # two passes, identical cards
    assert fake["peak_rss_mb"] > 10 and fake["load_seconds"] is not None
    assert set(fake["card_quality"]) == set(DOCS)
    board = (out / "leaderboard.md").read_text()
    assert "| fake | 3/3 |" in board and "FAILED" in board and broken["reason"] in board
    header, *rows = (out / "results.csv").read_text().splitlines()
    assert header.startswith("model,status,reason") and len(rows) == 2
    assert len(list((out / "cards" / "fake").glob("*.json"))) == 3
    quality = (out / "quality.md").read_text()
    assert all(f"| {name} | yes |" in quality for name in DOCS)


def test_cards_side_by_side_in_markdown(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", {"volcano.txt": DOCS["volcano.txt"]})
    card = run_bench(BenchOptions(models=("fake",), corpus=corpus)).models[0].cards["volcano.txt"]
    ungrounded = card.model_copy(update={"title": "A | B <b>", "issues": [
        card.issues[0].model_copy(update={"grounded": False})]})  # fmt: skip
    table = render_cards_table({"one": card, "two": ungrounded})
    lines = table.splitlines()
    assert lines[0] == "| section | one | two |" and len(lines) == 2 + 11
    assert "A \\| B &lt;b&gt;" in table  # pipes and markup in a card cannot break the table
    assert "(UNGROUNDED)" in next(line for line in lines if line.startswith("| issues"))


def test_chart_is_a_real_png(bench_out: tuple[Path, str]) -> None:
    out, _ = bench_out
    data = (out / "chart.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width >= 400 and height >= 300
    import matplotlib.image

    pixels = matplotlib.image.imread(out / "chart.png")
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.01  # not a blank image


def test_side_by_side_page_renders_in_chromium(bench_out: tuple[Path, str], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    out, _ = bench_out
    page = out / "side-by-side.html"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "slmscan bench: cards side by side" in dom
    for name in DOCS:
        assert f'data-document="{name}"' in dom
    assert dom.count('data-model="fake"') == len(DOCS)
    assert dom.count("broken.gguf</h3>") == len(DOCS)
    cards = [json.loads(p.read_text()) for p in (out / "cards" / "fake").glob("*.json")]
    for card in cards:
        assert card["title"] in dom and card["keywords"][0] in dom


def test_identical_inputs_and_seeds_give_identical_quality(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    options = BenchOptions(models=("fake",), corpus=corpus, seed=7)
    first, second = run_bench(options), run_bench(options)
    assert first.models[0].quality == second.models[0].quality
    assert first.models[0].card_quality == second.models[0].card_quality
    assert first.models[0].quality is not None and first.models[0].quality.cards == 3


def test_a_crash_fails_one_document_and_the_rest_still_run(tmp_path: Path) -> None:
    docs = {**DOCS, "b-crash.txt": f"This document makes the fake model abort. {ABORT_MARKER}"}
    corpus = make_corpus(tmp_path / "corpus", docs)
    seen: list[str | None] = []
    result = run_bench(
        BenchOptions(models=("fake",), corpus=corpus), progress=lambda p: seen.append(p.key)
    )
    fake = result.models[0]
    assert not fake.failed and fake.failures == 1 and len(fake.cards) == 3
    crashed = next(r for r in fake.runs if r.key == "b-crash.txt")
    assert crashed.error is not None and "SIGABRT" in crashed.error
    assert sorted(k for k in seen if k) == sorted(docs)  # progress saw every document


def test_unknown_model_and_bad_folder_are_usage_errors(tmp_path: Path) -> None:
    result = slmscan("bench", "--models", "fake", "--corpus", str(tmp_path / "missing"))
    assert result.returncode == 2 and "Error:" in result.stderr
    assert "Traceback" not in result.stderr
    corpus = make_corpus(tmp_path / "corpus")
    result = slmscan("bench", "--models", "no-such-model,fake", "--corpus", str(corpus),
                     "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 1
    assert "no-such-model" in (tmp_path / "out" / "leaderboard.md").read_text()
    result = slmscan("bench", "--corpus", str(corpus))
    assert result.returncode == 2 and "Error: no models to compare" in result.stderr
    result = slmscan("bench", "--engine", "--corpus", str(tmp_path / "missing"))
    assert result.returncode == 2 and "no such corpus folder" in result.stderr


@pytest.mark.model
def test_real_model_cards_agree_across_passes(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", {"volcano.txt": DOCS["volcano.txt"]})
    result = run_bench(BenchOptions(models=("smollm2-135m",), corpus=corpus, repeat=2))
    model = result.models[0]
    assert not model.failed, model.reason
    assert model.agreement() == 1.0
    assert (model.prefill_tps() or 0) > 0 and (model.decode_tps() or 0) > 0
    assert model.load_seconds is not None and model.peak_rss_mb is not None
