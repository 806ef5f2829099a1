"""Attention keys cached as f16 or q8_0, in real cards: time and quality, alternated per page.

benchmarks/key_cache.py measures the rates; this makes the card of every corpus page with both
key types, one engine each in one process, alternating which goes first, and compares the card
times page by page and the cards' quality figures (slmscan.quality, as `slmscan bench` reports
them). Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/key_cache_cards.py > key-cache-cards.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from slmscan import config
from slmscan.analyse import Analyser, ModelInfo
from slmscan.card import Card
from slmscan.engine import load_engine
from slmscan.extract import extract_article
from slmscan.formats import prompt_format
from slmscan.quality import run_quality
from slmscan.scanner import resolve_model
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("f16", "q8_0")


def _quartiles(values: list[float]) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.1f} ({q1:.1f}–{q3:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=config.default_model())
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "html")
    args = parser.parse_args()
    manifest, path = resolve_model(args.model)
    n_ctx = min(manifest.context_trained, config.max_context())
    info = ModelInfo(manifest.id, path.name, manifest.sha256 or "", manifest.family)
    analysers = {
        kind: Analyser(
            load_engine(path, n_ctx=n_ctx, threads=config.default_threads(), key_cache=kind),
            prompt_format(manifest.family),
            info,
        )
        for kind in TYPES
    }
    pages = sorted(args.corpus.glob("*.html"))
    texts = {p.name: extract_article(read_source(str(p), offline=True)) for p in pages}
    load_start = os.getloadavg()[0]
    cards: dict[str, dict[str, Card]] = {kind: {} for kind in TYPES}
    seconds: dict[str, dict[str, float]] = {kind: {} for kind in TYPES}
    for index, page in enumerate(pages):
        for kind in TYPES if index % 2 == 0 else reversed(TYPES):
            start = time.perf_counter()
            cards[kind][page.name] = analysers[kind].analyse(texts[page.name])
            seconds[kind][page.name] = time.perf_counter() - start
    documents = {name: article.text for name, article in texts.items()}
    ratios = [seconds["f16"][p.name] / seconds["q8_0"][p.name] for p in pages]
    lines = [
        f"# Keys cached as f16 or q8_0 in {args.model}'s cards",
        "",
        f"`python benchmarks/key_cache_cards.py`: the {len(pages)} corpus pages, each made with "
        f"both key types in one process, alternating which goes first; "
        f"{config.default_threads()} llama.cpp threads, load average {load_start:.2f} at the "
        f"start and {os.getloadavg()[0]:.2f} at the end.",
        "",
        "| keys | s/card median (q1–q3) | total s | complete | keywords in page | quotes "
        "verified | summary names found | duplicate rows | identifiable | quality index |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in TYPES:
        run, _ = run_quality(cards[kind], documents)
        rates = [
            run.schema_complete,
            run.keyword_grounding,
            run.evidence_verified,
            run.entity_grounding,
            run.duplicate_rows,
            run.identifiability,
            run.index(),
        ]
        cells = " | ".join("–" if r is None else f"{r:.1%}" for r in rates)
        values = list(seconds[kind].values())
        lines.append(f"| {kind} | {_quartiles(values)} | {sum(values):.0f} | {cells} |")
    same = sum(
        cards["f16"][p.name].model_dump(exclude={"provenance"})
        == cards["q8_0"][p.name].model_dump(exclude={"provenance"})
        for p in pages
    )
    lines += [
        "",
        f"Per page, f16 time ÷ q8_0 time: median {statistics.median(ratios):.2f}× "
        f"(q1–q3 {_quartiles(ratios).split(' ', 1)[1]}), q8_0 faster on "
        f"{sum(r > 1 for r in ratios)} of {len(pages)} pages; cards identical apart from "
        f"provenance: {same} of {len(pages)}.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
