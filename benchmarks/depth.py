"""What one llama.cpp evaluation costs, by the number of tokens in it and how deep it starts.

The engine benchmark predicts a card's time from two rates measured on each page: the page fed
from position 0 in one call, and plain decoding right after it. A card also evaluates tokens
that neither rate describes: section instructions of a hundred or two tokens after the whole
document, and labels of two to sixteen tokens, each with the token chosen before it. This
measures those calls directly. For each depth, the corpus's longest page is evaluated up to it,
then calls of N tokens are timed from there (rewound after each). Medians of the rounds; the
sizes go in a rotated order each round. Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/depth.py \\
        --model smollm2-135m --keys f16 --keys q8_0 > benchmarks/results/depth.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from threads import longest_page

from slmscan import config
from slmscan.engine import Engine, load_engine
from slmscan.scanner import resolve_model

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 2, 4, 8, 16, 64, 256)


def time_call(engine: Engine, tokens: list[int], depth: int, size: int) -> float:
    """Seconds for one call of `size` tokens starting at `depth` (the prefix is evaluated)."""
    engine.rewind(depth)
    engine.feed(tokens[depth : depth + size])
    start = time.perf_counter()
    engine.flush()
    return time.perf_counter() - start


def measure(
    model: str, text: str, depths: list[int], rounds: int, threads: int, keys: str | None
) -> list[str]:
    """Markdown rows: model, keys, depth, then ms per call and tokens/s for each call size."""
    manifest, path = resolve_model(model)
    keys = keys or manifest.key_cache
    engine = load_engine(path, n_ctx=max(depths) + max(SIZES) + 16, threads=threads, key_cache=keys)
    tokens = engine.text_tokens(text)
    rows = []
    for depth in depths:
        engine.rewind(0)
        engine.feed(tokens[:depth])
        engine.flush()
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        for i in range(rounds):
            order = SIZES[i % len(SIZES) :] + SIZES[: i % len(SIZES)]
            for size in order:
                times[size].append(time_call(engine, tokens, depth, size))
        ms = {size: statistics.median(times[size]) * 1000 for size in SIZES}
        cells = [f"{ms[size]:.0f} ({size / ms[size] * 1000:.0f})" for size in SIZES]
        rows.append(f"| {manifest.id} | {keys} | {depth} | " + " | ".join(cells) + " |")
    engine.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id or .gguf (repeatable)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--depth", type=int, action="append", help="start positions (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument(
        "--keys", action="append", choices=["f16", "q8_0"], help="key cache types to compare"
    )
    args = parser.parse_args()
    depths = args.depth or [0, 1024, 2048]
    threads = args.threads or config.default_threads()
    text = longest_page(args.corpus)
    lines = [
        "# One llama.cpp evaluation: cost by call size and depth",
        "",
        f"`python benchmarks/depth.py {' '.join(sys.argv[1:])}`, {args.rounds} rounds, "
        f"{threads} llama.cpp threads, "
        f"{os.cpu_count()} cores, {platform.machine()}, load average at the start "
        f"{os.getloadavg()[0]:.2f}. Each cell: milliseconds per call (tokens per second) for a "
        "call of N tokens starting at the depth given, after the corpus's longest page up to "
        "that depth.",
        "",
        "| model | keys | depth | " + " | ".join(f"N = {size}" for size in SIZES) + " |",
        "|---|---|---:|" + "---:|" * len(SIZES),
    ]
    for model in args.model or [config.default_model()]:
        for keys in args.keys or [None]:  # None: as the model's manifest says
            lines += measure(model, text, depths, args.rounds, threads, keys)
    lines.append(f"\nLoad average at the end {os.getloadavg()[0]:.2f}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
