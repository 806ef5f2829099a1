"""Attention keys cached as f16 or q8_0, in real cards: time and quality, alternated per page.

benchmarks/key_cache.py measures the rates; this makes the card of every corpus page with both
key types, one engine each in one process, alternating which goes first (benchmarks/card_pairs.py).
Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/key_cache_cards.py > key-cache-cards.md
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from card_pairs import corpus_articles, make_pairs, pair_report

from slmscan import config
from slmscan.analyse import Analyser, ModelInfo
from slmscan.engine import load_engine
from slmscan.formats import prompt_format
from slmscan.scanner import resolve_model

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("f16", "q8_0")


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
    articles = corpus_articles(args.corpus)
    load_start = os.getloadavg()[0]
    cards, seconds = make_pairs(analysers, articles)
    lines = [
        f"# Keys cached as f16 or q8_0 in {args.model}'s cards",
        "",
        f"`python benchmarks/key_cache_cards.py`: the {len(articles)} corpus pages, each made "
        f"with both key types in one process, alternating which goes first; "
        f"{config.default_threads()} llama.cpp threads, load average {load_start:.2f} at the "
        f"start and {os.getloadavg()[0]:.2f} at the end.",
        "",
        *pair_report(cards, seconds, articles),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
