"""The engine's bounds that are not per card: constrained decoding, memory, start-up time.

For each model, in one run:

- **constrained vs raw decoding**: on each of the first `--pages` corpus pages, the page is
  fed (cut to `--depth` tokens) with an instruction to summarise it; then, from the same
  position, the engine decodes under a card field's constraint (`Engine.generate` with
  `FreeText`: sample first, check only the chosen token) and, after rewinding, the same number
  of decode steps by plain argmax with no constraint. The order alternates from page to page.
  The rate is decode steps ÷ seconds, each step being one llama.cpp evaluation and one choice.
- **peak resident memory** of `slmscan scan` on the corpus's longest page, in a fresh process,
  against the bound: model file + KV cache (keys of the model's type, values f16, at the context
  window `scan` asks for) + 500 MB.

Then `slmscan --help` is timed in fresh processes (median of 7). Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/engine_checks.py \\
        --model smollm2-135m --model gemma3-270m > benchmarks/results/engine-checks.md
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gguf import GGUFReader

from slmscan import config
from slmscan.constraints import FreeText
from slmscan.engine import Engine, load_engine
from slmscan.enginebench import corpus_pages
from slmscan.extract import extract_article
from slmscan.scanner import resolve_model
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
MEMORY_MARGIN = 500 * 2**20  # the bound: model file + KV cache + 500 MB
HELP_LIMIT = 0.3  # seconds
CONSTRAINED_RATIO = 0.9  # constrained ≥ 0.9 × raw decoding rate
_INSTRUCTION = "\n\nSummarise the document above in three sentences.\nSummary:"


def page_texts(corpus: Path) -> list[tuple[str, str]]:
    """(file name, main text) of every corpus page, in the corpus's order."""
    return [
        (page.name, extract_article(read_source(str(page), offline=True)).text)
        for page, _ in corpus_pages(corpus / "html")
    ]


def _prime(engine: Engine, prefix: list[int]) -> None:
    """Rewind to the start of `prefix`'s last token and evaluate it, so logits are fresh."""
    engine.rewind(len(prefix) - 1)
    engine.feed(prefix[-1:], kind="prompt")
    engine.flush()


def _constrained(engine: Engine, prefix: list[int], max_tokens: int) -> tuple[int, float]:
    _prime(engine, prefix)
    steps = engine.counters.decode_steps
    start = time.perf_counter()
    engine.generate(FreeText(max_chars=4000), max_tokens)
    return engine.counters.decode_steps - steps, time.perf_counter() - start


def _raw(engine: Engine, prefix: list[int], steps: int) -> float:
    import numpy as np

    _prime(engine, prefix)
    start = time.perf_counter()
    for _ in range(steps):
        engine._step(int(np.argmax(engine.logits())))
    engine.logits()  # the last step's evaluation, as `generate` evaluates its last token
    return time.perf_counter() - start


def decoding_rates(
    model: str, texts: list[tuple[str, str]], depth: int, max_tokens: int
) -> list[tuple[str, int, float, float]]:
    """Per page: (page, decode steps, constrained tok/s, raw tok/s), same steps both ways."""
    manifest, path = resolve_model(model)
    engine = load_engine(
        path,
        n_ctx=depth + max_tokens + 64,
        threads=config.default_threads(),
        key_cache=manifest.key_cache,
    )
    rows = []
    for i, (name, text) in enumerate(texts):
        instruction = engine.text_tokens(_INSTRUCTION)
        prefix = [*engine.bos(), *engine.text_tokens(text)[:depth], *instruction]
        engine.rewind(0)
        engine.feed(prefix, kind="prompt")
        engine.flush()
        steps, _ = _constrained(engine, prefix, max_tokens)  # untimed: how many steps
        if i % 2 == 0:
            _, constrained = _constrained(engine, prefix, max_tokens)
            raw = _raw(engine, prefix, steps)
        else:
            raw = _raw(engine, prefix, steps)
            _, constrained = _constrained(engine, prefix, max_tokens)
        if steps:
            rows.append((name, steps, steps / constrained, steps / raw))
    engine.close()
    return rows


# Bytes per cached element: q8_0 stores blocks of 32 values as 32 bytes and an f16 scale.
ELEMENT_BYTES = {"f16": 2.0, "q8_0": 34 / 32}


def kv_cache_bytes(path: Path, n_ctx: int, key_cache: str) -> int:
    """The KV cache of every layer at `n_ctx` tokens (sliding-window layers kept whole): keys
    of the manifest's type, values f16."""
    reader = GGUFReader(str(path))

    def value(key: str) -> int | None:
        field = reader.fields.get(f"{arch}.{key}")
        return int(field.contents()) if field is not None else None

    arch = reader.fields["general.architecture"].contents()
    layers = value("block_count") or 0
    heads = value("attention.head_count") or 1
    kv_heads = value("attention.head_count_kv") or heads
    head_k = value("attention.key_length") or (value("embedding_length") or 0) // heads
    head_v = value("attention.value_length") or head_k
    per_token = ELEMENT_BYTES[key_cache] * head_k + ELEMENT_BYTES["f16"] * head_v
    return round(n_ctx * layers * kv_heads * per_token)


def peak_memory(model: str, page: Path) -> tuple[int, int, int, int, str]:
    """(peak RSS, model file, KV cache, n_ctx) in bytes for `slmscan scan` of one page, and
    the key type its KV cache was sized with."""
    manifest, path = resolve_model(model)
    n_ctx = min(manifest.context_trained, config.max_context())
    # A fresh process measures its one child: RUSAGE_CHILDREN is the largest waited-for child.
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    command = [_slmscan(), "scan", str(page), "--model", model, "--format", "json"]
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True
    )
    code, peak_kib = (int(x) for x in out.stdout.split())
    if code:
        raise SystemExit(f"slmscan scan {page.name} --model {model} failed (exit {code})")
    kv = kv_cache_bytes(path, n_ctx, manifest.key_cache)
    return peak_kib * 1024, path.stat().st_size, kv, n_ctx, manifest.key_cache


def _slmscan() -> str:
    found = shutil.which("slmscan", path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit("no slmscan command beside this Python: run `make install` first")
    return found


def help_seconds(runs: int = 7) -> float:
    """Median wall time of `slmscan --help` in a fresh process."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([_slmscan(), "--help"], stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _mb(n: float) -> str:
    return f"{n / 2**20:.0f}"


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id or .gguf (repeatable)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--pages", type=int, default=8, help="pages for the decoding rates")
    parser.add_argument("--depth", type=int, default=2048, help="document tokens fed per page")
    parser.add_argument("--max-tokens", type=int, default=128, help="decoded per page at most")
    args = parser.parse_args()
    models = args.model or [config.default_model()]
    texts = page_texts(args.corpus)
    longest = max(range(len(texts)), key=lambda i: len(texts[i][1]))
    longest_page = args.corpus / "html" / texts[longest][0]
    load = os.getloadavg()[0]
    lines = [
        "# Engine checks: constrained decoding, memory, start-up",
        "",
        f"`python benchmarks/engine_checks.py`, {os.cpu_count()} cores, {platform.machine()}, "
        f"{config.default_threads()} llama.cpp threads, load average at the start {load:.2f}.",
        "",
        "## Constrained decoding rate against raw decoding",
        "",
        f"First {args.pages} corpus pages, each fed from position 0 (at most {args.depth} "
        "tokens) with an instruction to summarise it. From the same position the engine "
        f"decodes one card field (`Engine.generate`, `FreeText` constraint, at most "
        f"{args.max_tokens} tokens: it stops at the end of the line) and, rewound, the same "
        "number of steps by plain argmax with no constraint; the order alternates by page. "
        "Rate = decode steps ÷ seconds (one llama.cpp evaluation and one token choice each); "
        "the result is judged on all steps together, which weighs pages by their steps.",
        "",
        "| model | pages | steps | constrained tok/s | raw tok/s | ratio (median of pages) "
        "| ratio (all steps) | target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for model in models:
        rows = decoding_rates(model, texts[: args.pages], args.depth, args.max_tokens)
        steps = sum(r[1] for r in rows)
        constrained = steps / sum(r[1] / r[2] for r in rows)
        raw = steps / sum(r[1] / r[3] for r in rows)
        ratio = statistics.median(r[2] / r[3] for r in rows)
        lines.append(
            f"| {model} | {len(rows)} | {steps} | {constrained:.1f} | {raw:.1f} | "
            f"{ratio:.3f} | {constrained / raw:.3f} | ≥ {CONSTRAINED_RATIO} | "
            f"{_verdict(constrained / raw >= CONSTRAINED_RATIO)} |"
        )
    lines += [
        "",
        "## Peak resident memory of a scan",
        "",
        f"`slmscan scan {longest_page.name} --format json` (the corpus's longest page) in a "
        "fresh process; peak RSS from `getrusage`. KV cache: keys of the model's type (its "
        "manifest's `key_cache`) and f16 values of every layer at the context window `scan` "
        "asks for, from the GGUF header.",
        "",
        "| model | n_ctx | keys | model file MB | KV cache MB | bound MB | peak RSS MB | result |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for model in models:
        peak, size, kv, n_ctx, keys = peak_memory(model, longest_page)
        bound = size + kv + MEMORY_MARGIN
        lines.append(
            f"| {model} | {n_ctx} | {keys} | {_mb(size)} | {_mb(kv)} | {_mb(bound)} | "
            f"{_mb(peak)} | {_verdict(peak <= bound)} |"
        )
    help_time = help_seconds()
    lines += [
        "",
        "## Start-up",
        "",
        f"`slmscan --help`, median of 7 fresh processes: {help_time:.3f} s "
        f"(target < {HELP_LIMIT} s): {_verdict(help_time < HELP_LIMIT)}.",
        "",
        f"Load average at the end {os.getloadavg()[0]:.2f}. Peak RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
