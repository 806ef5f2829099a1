"""Attention keys cached as f16 or q8_0: prefill and decode rates deep in a card's context.

Every decode step reads the whole key and value cache; at a card's depth (the document, then
an instruction and an answer) that is a large share of what a small model reads per token.
Keys cached as q8_0 halve the key part (values stay f16: llama.cpp quantises them only with
flash attention, measured slower here). For each model, both contexts are loaded in one
process and measured in alternating order: `--depth` tokens of the corpus's longest page
evaluated from position 0, then `--steps` greedy decode steps after them. Medians of the
rounds. Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/key_cache.py \\
        --model smollm2-135m --model gemma3-270m > benchmarks/results/key-cache.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from pathlib import Path

from threads import longest_page

from slmscan import config
from slmscan.analyse import SECTION_RESERVE
from slmscan.engine import load_engine
from slmscan.enginebench import measure_rates
from slmscan.scanner import resolve_model

ROOT = Path(__file__).resolve().parents[1]
TYPES = ("f16", "q8_0")


def measure(model: str, text: str, depth: int, steps: int, rounds: int) -> list[str]:
    """Markdown rows: model, key type, prefill and decode tok/s, and the ratio to f16."""
    _, path = resolve_model(model)
    threads = config.default_threads()
    # measure_rates keeps SECTION_RESERVE free, as a card does: the whole prefix fits.
    n_ctx = depth + SECTION_RESERVE + steps
    engines = {
        kind: load_engine(path, n_ctx=n_ctx, threads=threads, key_cache=kind) for kind in TYPES
    }
    tokens = engines["f16"].text_tokens(text)[: depth - len(engines["f16"].bos())]
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in TYPES}
    for r in range(rounds):
        for kind in TYPES if r % 2 == 0 else reversed(TYPES):
            _, prefill, decode = measure_rates(engines[kind], tokens, steps)
            results[kind].append((prefill, decode))
    for engine in engines.values():
        engine.close()
    medians = {
        kind: (statistics.median(p for p, _ in v), statistics.median(d for _, d in v))
        for kind, v in results.items()
    }
    base_prefill, base_decode = medians["f16"]
    return [
        f"| {model} | {kind} | {p:.0f} | {d:.1f} | {p / base_prefill:.2f}× | "
        f"{d / base_decode:.2f}× |"
        for kind, (p, d) in medians.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id or .gguf (repeatable)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--depth", type=int, default=2048, help="tokens before decoding")
    parser.add_argument("--steps", type=int, default=48, help="decode steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    text = longest_page(args.corpus)
    lines = [
        "# Attention keys cached as f16 or q8_0",
        "",
        f"`python benchmarks/key_cache.py`, {args.rounds} rounds, alternating order; the "
        f"corpus's longest page cut to {args.depth} tokens, then {args.steps} greedy decode "
        f"steps. {os.cpu_count()} cores, {platform.machine()}, {config.default_threads()} "
        f"llama.cpp threads, load average at the start {os.getloadavg()[0]:.2f}. Medians of "
        "the rounds; ratios against f16 keys.",
        "",
        "| model | keys | prefill tok/s | decode tok/s | prefill ratio | decode ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model in args.model or [config.default_model()]:
        lines += measure(model, text, args.depth, args.steps, args.rounds)
    lines.append(f"\nLoad average at the end {os.getloadavg()[0]:.2f}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
