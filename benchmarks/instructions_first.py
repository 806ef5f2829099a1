"""Card time with every section's instructions before the document, kept from card to card.

A card evaluates each section's instruction (task, rules, example) after the document, so a
card pays for about a thousand instruction tokens. The other layout puts every section's rules
and example before the document, where they do not depend on the document and stay evaluated
from one card to the next; after the document each section reads only its one-line task.

Both layouts run on one loaded model, page by page, alternating which goes first. The two
share the engine, so the shared instructions are evaluated again before each of their cards,
outside its time, as a scan of many documents finds them after its first card. Per card: wall
time, prompt tokens evaluated, decode steps and their seconds inside llama.cpp, and the mean
depth of a decode step (every context token is attended to at each step). Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/instructions_first.py \\
        --model smollm2-135m --pages 8 > benchmarks/results/instructions-first.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from slmscan import config
from slmscan.analyse import Analyser
from slmscan.enginebench import _warm_up_article, corpus_pages
from slmscan.extract import extract_article
from slmscan.scanner import Scanner, ScanOptions
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("per section", "shared")


@dataclass
class Run:
    wall: float
    prompt: int
    decoded: int
    steps: int
    step_seconds: float
    depth: float
    complete: bool


def card(analyser: Analyser, article, shared: bool) -> Run:  # type: ignore[no-untyped-def]
    """One card, timed, with the mean position of its decode steps."""
    engine = analyser.engine
    if shared:
        analyser.prompter.start_document([])  # evaluated before the card, as in a scan
    depths: list[int] = []
    step = engine._step

    def counted(token: int) -> None:
        depths.append(engine.position)
        step(token)

    engine._step = counted  # type: ignore[method-assign]
    before = engine.counters.snapshot()
    try:
        start = time.perf_counter()
        made = analyser.analyse(article)
        wall = time.perf_counter() - start
    finally:
        del engine._step
    used = engine.counters.since(before)
    return Run(
        wall,
        used.prompt,
        used.decoded,
        used.decode_steps,
        used.decode_seconds,
        statistics.fmean(depths) if depths else 0.0,
        not made.missing_sections(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model id or .gguf (default: config)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "html")
    parser.add_argument("--pages", type=int, default=8)
    args = parser.parse_args()
    model = args.model or config.default_model()
    with Scanner(ScanOptions(model=model, offline=True)) as scanner:
        loaded = scanner._load()
        assert isinstance(loaded, Analyser)
        analysers = {
            name: Analyser(
                loaded.engine,
                loaded.prompter.fmt,
                loaded.model,
                shared_instructions=name == "shared",
            )
            for name in LAYOUTS
        }
        engine = loaded.engine
        engine.rewind(0)
        start = time.perf_counter()
        shared_tokens = analysers["shared"].prompter.start_document([])
        shared_seconds = time.perf_counter() - start
        load_start = os.getloadavg()[0]
        for analyser in analysers.values():
            analyser.analyse(_warm_up_article())
        runs: dict[str, list[Run]] = {name: [] for name in LAYOUTS}
        rows = []
        for i, (page, _) in enumerate(corpus_pages(args.corpus)[: args.pages]):
            article = extract_article(read_source(str(page), offline=True))
            order = LAYOUTS if i % 2 == 0 else tuple(reversed(LAYOUTS))
            made = {name: card(analysers[name], article, name == "shared") for name in order}
            for name in LAYOUTS:
                r = made[name]
                runs[name].append(r)
                rows.append(
                    f"| {page.name} | {name} | {r.wall:.1f} | {r.prompt} | {r.decoded} | "
                    f"{r.steps} | {r.step_seconds / max(1, r.steps) * 1000:.1f} | "
                    f"{r.depth:.0f} | {'yes' if r.complete else 'no'} |"
                )
            rows.append(
                f"| | shared ÷ per section | {made['shared'].wall / made['per section'].wall:.2f}"
                " | | | | | | |"
            )

    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs[name])

    per_step = {
        name: sum(r.step_seconds for r in runs[name]) / sum(r.steps for r in runs[name]) * 1000
        for name in LAYOUTS
    }
    ratio = statistics.median(
        s.wall / p.wall for s, p in zip(runs["shared"], runs["per section"], strict=True)
    )
    lines = [
        "# Instructions before the document, kept from card to card",
        "",
        f"`python benchmarks/instructions_first.py --model {model} --pages {args.pages}`, "
        f"{config.default_threads()} llama.cpp threads, {os.cpu_count()} cores, "
        f"{platform.machine()}, load average {load_start:.2f} at the start and "
        f"{os.getloadavg()[0]:.2f} at the end. The shared instructions are {shared_tokens} "
        f"tokens, evaluated in {shared_seconds:.2f} s from position 0 (what the first card of "
        "a scan pays once).",
        "",
        "| page | layout | card s | prompt tokens evaluated | decoded | decode steps | "
        "ms per step | mean depth of a step | complete |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        "| layout | card s (median) | prompt tokens (median) | decoded (median) | "
        "ms per decode step (all) | mean depth (median) |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {med(name, 'wall'):.1f} | {med(name, 'prompt'):.0f} | "
            f"{med(name, 'decoded'):.0f} | {per_step[name]:.1f} | {med(name, 'depth'):.0f} |"
            for name in LAYOUTS
        ),
        "",
        f"Shared ÷ per section, card time, median of the pages: {ratio:.2f}.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
