"""Section rules and examples read once per engine, or after every document: cards compared.

Each section's instruction is its task, its rules and an example. Read after the document, the
rules and the example cost prompt tokens in every card, though they are the same for every
document. With `reuse_guides` they are read once, with no document before them, and their cells
are copied in after each document (`Engine.prepare_blocks`); the task is still read after the
document and the rules. This makes the card of every corpus page both ways, one engine each in
one process, alternating which goes first. Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/guide_cells.py > guide-cells.md
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=config.default_model())
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "html")
    parser.add_argument("--pages", type=int, default=0, help="the first N pages only (0: all)")
    args = parser.parse_args()
    manifest, path = resolve_model(args.model)
    n_ctx = min(manifest.context_trained, config.max_context())
    info = ModelInfo(manifest.id, path.name, manifest.sha256 or "", manifest.family)
    analysers = {
        way: Analyser(
            load_engine(
                path, n_ctx=n_ctx, threads=config.default_threads(), key_cache=manifest.key_cache
            ),
            prompt_format(manifest.family),
            info,
            reuse_guides=reuse,
        )
        for way, reuse in (("read per card", False), ("read once", True))
    }
    articles = corpus_articles(args.corpus)
    if args.pages:
        articles = dict(list(articles.items())[: args.pages])
    load_start = os.getloadavg()[0]
    cards, seconds = make_pairs(analysers, articles)
    print(
        "\n".join(
            [
                f"# Section rules and examples in {args.model}'s cards: read per card or once",
                "",
                f"`python benchmarks/guide_cells.py --model {args.model}`: {len(articles)} corpus "
                "pages, each card made both ways in one process, alternating which goes first; "
                f"{config.default_threads()} llama.cpp threads, load average {load_start:.2f} at "
                f"the start and {os.getloadavg()[0]:.2f} at the end.",
                "",
                *pair_report(cards, seconds, articles),
            ]
        )
    )


if __name__ == "__main__":
    main()
