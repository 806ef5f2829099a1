"""Prefill and decode rates of slmscan's engine with 1 and 2 llama.cpp threads.

One engine per thread count, both loaded at once and measured in turns (the order alternates
each round), so the rates compare within one run on a noisy machine. Each round feeds the
corpus's longest page from position 0 (cut to `--depth` tokens: cards decode a few thousand
tokens deep) and then decodes `--decode` tokens by plain argmax. Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/threads.py \\
        --model smollm2-135m --model gemma3-270m > benchmarks/results/threads.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

from slmscan.analyse import SECTION_RESERVE
from slmscan.engine import load_engine
from slmscan.enginebench import measure_rates
from slmscan.extract import extract_article
from slmscan.scanner import resolve_model
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
THREADS = (1, 2)


def longest_page(corpus: Path) -> str:
    """The longest main text among the corpus pages."""
    texts = [
        extract_article(read_source(str(page), offline=True)).text
        for page in sorted((corpus / "html").glob("*.html"))
    ]
    return max(texts, key=len)


def measure(model: str, text: str, depth: int, decode: int, rounds: int) -> list[str]:
    """Markdown rows: model, threads, prefill and decode tokens/s (median of the rounds)."""
    _, path = resolve_model(model)
    # measure_rates keeps SECTION_RESERVE free, as a card does: the whole prefix fits.
    n_ctx = depth + SECTION_RESERVE + decode
    engines = {n: load_engine(path, n_ctx=n_ctx, threads=n) for n in THREADS}
    tokens = engines[1].text_tokens(text)[:depth]
    rates: dict[int, list[tuple[float, float]]] = {n: [] for n in THREADS}
    for i in range(rounds):
        order = THREADS if i % 2 == 0 else tuple(reversed(THREADS))
        for n in order:
            _, prefill, decoded = measure_rates(engines[n], tokens, decode)
            rates[n].append((prefill, decoded))
    for engine in engines.values():
        engine.close()
    base_prefill = statistics.median(p for p, _ in rates[1])
    base_decode = statistics.median(d for _, d in rates[1])
    rows = []
    for n in THREADS:
        prefill = statistics.median(p for p, _ in rates[n])
        decoded = statistics.median(d for _, d in rates[n])
        rows.append(
            f"| {model} | {n} | {prefill:.0f} | {prefill / base_prefill:.2f}× | "
            f"{decoded:.1f} | {decoded / base_decode:.2f}× |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id or .gguf (repeatable)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--depth", type=int, default=2048, help="prefix tokens before decoding")
    parser.add_argument("--decode", type=int, default=64, help="tokens decoded per round")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    text = longest_page(args.corpus)
    lines = [
        "# llama.cpp threads: prefill and decode rates",
        "",
        f"`python benchmarks/threads.py`, {args.rounds} rounds per thread count, alternating "
        f"order; each round prefills {args.depth} tokens of the corpus's longest page from "
        f"position 0, then decodes {args.decode} tokens by plain argmax. Medians; the ratios "
        f"are against 1 thread in the same run. {os.cpu_count()} cores, {platform.machine()}, "
        f"load average at the start {os.getloadavg()[0]:.2f}.",
        "",
        "| model | threads | prefill tok/s | vs 1 | decode tok/s | vs 1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model in args.model or ["smollm2-135m"]:
        lines += measure(model, text, args.depth, args.decode, args.rounds)
    lines.append(f"\nLoad average at the end {os.getloadavg()[0]:.2f}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
