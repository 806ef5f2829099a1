"""Lanes in real cards: sections decoded at once (SLMSCAN_LANES) against one after the other.

benchmarks/parallel.py measured one decode step of N sequences against N steps of one. This
makes whole cards both ways with the engine's lanes, alternating the order per page, and
splits the time inside llama.cpp by call size. Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/lanes.py --lanes 4 > lanes.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from slmscan import config
from slmscan.extract import extract_article
from slmscan.scanner import Scanner, ScanOptions
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("wired.com.burn.html", "salon.com.emissions.html", "theatlantic.com.disasters.html")
SIZES = (("1 token", 1, 1), ("2-16 tokens", 2, 16), ("17+ tokens", 17, 10**9))


def card(model: str, lanes: int, page: Path) -> dict[str, Any]:
    """One card of `page` with `lanes` lanes: wall time, tokens, llama.cpp calls by size."""
    os.environ["SLMSCAN_LANES"] = str(lanes)
    with Scanner(ScanOptions(model=model, offline=True)) as scanner:
        engine = scanner._load().engine  # type: ignore[union-attr]
        article = extract_article(read_source(str(page), offline=True))
        calls: list[tuple[int, float]] = []
        original = engine._decode

        def timed(entries: Any) -> float:
            seconds = original(entries)
            calls.append((len(entries), seconds))
            return seconds

        engine._decode = timed
        start = time.perf_counter()
        made = scanner.analyse(article)
        wall = time.perf_counter() - start
    p = made.provenance
    sizes = {
        label: (
            sum(1 for n, _ in calls if low <= n <= high),
            sum(s for n, s in calls if low <= n <= high),
        )
        for label, low, high in SIZES
    }
    return {
        "wall": wall,
        "tokens": p.prompt_tokens + p.fed_tokens + p.decoded_tokens,
        "decoded": p.decoded_tokens,
        "sizes": sizes,
        "complete": not made.missing_sections(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id (repeatable)")
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "html")
    args = parser.parse_args()
    lines = [
        "| model | page | lanes | card s | tokens evaluated | decoded | complete | "
        + " | ".join(f"{label}: calls, s" for label, _, _ in SIZES)
        + " |",
        "|---|---|---:|---:|---:|---:|---|" + "---:|" * len(SIZES),
    ]
    for model in args.model or [config.default_model()]:
        for index, page in enumerate(PAGES):
            order = (1, args.lanes) if index % 2 == 0 else (args.lanes, 1)
            for lanes in sorted(order, key=order.index):
                r = card(model, lanes, args.corpus / page)
                cells = " | ".join(f"{c}, {s:.1f}" for c, s in r["sizes"].values())
                lines.append(
                    f"| {model} | {page} | {lanes} | {r['wall']:.1f} | {r['tokens']} | "
                    f"{r['decoded']} | {'yes' if r['complete'] else 'no'} | {cells} |"
                )
                print(lines[-1], flush=True, file=sys.stderr)
    print(f"Load average at the end {os.getloadavg()[0]:.2f}.\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
