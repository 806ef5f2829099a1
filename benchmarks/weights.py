"""Shipped weights against a conversion: evaluation speed by batch size, and fidelity.

llama.cpp has batched kernels on x86 for Q8_0, and repacks Q4_0 for AVX2, but does neither for
Q4_1, the bundled SmolLM2's type: would slmscan gain by converting the file once (`--to q8_0`
or `--to q4_0`; llama_model_quantize, a second) and loading that? For each model this measures
both files in one process, alternating which goes first each round:

- **tok/s by batch size**: after a 1000-token prefix of the corpus's longest page, batches of
  1 (a decode step), 4 (a label), 16, 64 and 256 tokens (instructions, documents);
- **fidelity**: on the first 512 tokens of 8 corpus pages, how often both files predict the
  same next token (argmax), and how far the shipped file's top logit moves in the copy; the
  same for the shipped file evaluated in batches of 8 instead of 512 (llama.cpp's kernels
  change with the batch size, so this is the floor of what "the same model" means here).

    flock /tmp/slmscan-cpu.lock python benchmarks/weights.py \\
        --model smollm2-135m --model gemma3-270m > benchmarks/results/weights.md
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import statistics
import time
from pathlib import Path

import llama_cpp
import numpy as np
from threads import longest_page

from slmscan import config
from slmscan.extract import extract_article
from slmscan.gguf_check import check_gguf
from slmscan.scanner import resolve_model
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 4, 16, 64, 256)
PREFIX = 1000


TYPES = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0}


def convert(source: Path, target: Path, kind: str) -> None:
    """Write `target` as `source` converted to `kind` (a key of TYPES)."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[kind]
    params.allow_requantize = True
    params.nthread = config.default_threads()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), ctypes.byref(params)
    ):
        raise SystemExit(f"{source}: llama.cpp could not convert it to {kind.upper()}")
    partial.replace(target)


def _load(
    path: Path, n_ctx: int, *, logits_all: bool = False, n_batch: int = 512
) -> llama_cpp.Llama:
    threads = config.default_threads()
    return llama_cpp.Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=logits_all,
        verbose=False,
    )


def rates(files: dict[str, Path], text: str, rounds: int) -> dict[tuple[str, int], float]:
    """Median tokens per second of each file at each batch size."""
    llms = {name: _load(path, 2048) for name, path in files.items()}
    tokens = next(iter(llms.values())).tokenize(text.encode(), add_bos=True)
    tokens = tokens[: PREFIX + max(BATCHES)]
    for llm in llms.values():
        llm.eval(tokens[:PREFIX])
    seconds: dict[tuple[str, int], list[float]] = {}
    for r in range(rounds):
        order = list(llms) if r % 2 == 0 else list(reversed(llms))
        for size in BATCHES:
            repeats = max(1, 64 // size)
            for name in order:
                llm = llms[name]
                start = time.perf_counter()
                for _ in range(repeats):
                    llm.n_tokens = PREFIX  # the batch is evaluated again at the same positions
                    llm.eval(tokens[PREFIX : PREFIX + size])
                seconds.setdefault((name, size), []).append(
                    (time.perf_counter() - start) / (repeats * size)
                )
    for llm in llms.values():
        llm.close()
    return {key: 1 / statistics.median(values) for key, values in seconds.items()}


def _predict(path: Path, pages: list[str], n_batch: int) -> list[np.ndarray]:
    """Next-token logits at every position of each page's first 512 tokens."""
    llm = _load(path, 512, logits_all=True, n_batch=n_batch)
    out = []
    for text in pages:
        tokens = llm.tokenize(text.encode(), add_bos=True)[:512]
        llm.reset()
        llm.eval(tokens)
        out.append(np.array(llm.scores[: len(tokens)]))
    llm.close()
    return out


def agreement(first: list[np.ndarray], second: list[np.ndarray]) -> tuple[int, int, float, float]:
    """Positions where both predict the same next token, positions, and the median and 99th
    percentile of how far `second` moves `first`'s top logit."""
    pairs = list(zip(first, second, strict=True))
    same = sum(int((a.argmax(1) == b.argmax(1)).sum()) for a, b in pairs)
    total = sum(len(a) for a, _ in pairs)
    moved = np.concatenate([np.abs(np.take_along_axis(a - b, a.argmax(1)[:, None], 1))
                            for a, b in pairs])  # fmt: skip
    return same, total, float(np.median(moved)), float(np.percentile(moved, 99))


def _agreement_row(model: str, what: str, figures: tuple[int, int, float, float]) -> str:
    same, total, median, p99 = figures
    return f"| {model} | {what} | {same}/{total} ({same / total:.1%}) | {median:.2f} | {p99:.2f} |"


def measure(model: str, corpus: Path, rounds: int, kind: str) -> tuple[list[str], list[str]]:
    """Markdown rows: tok/s of each file by batch size; agreement of their predictions."""
    _, path = resolve_model(model)
    converted = config.cache_dir() / f"{path.stem}.{kind}-measured.gguf"
    if not converted.is_file():
        convert(path, converted, kind)
    speed = rates({"shipped": path, "converted": converted}, longest_page(corpus), rounds)
    name = f"{model} ({check_gguf(path).quantisation})"
    rates_rows = []
    for size in BATCHES:
        old, new = speed[("shipped", size)], speed[("converted", size)]
        rates_rows.append(f"| {name} | {size} | {old:.0f} | {new:.0f} | {new / old:.2f}× |")
    pages = sorted((corpus / "html").glob("*.html"))[:8]
    texts = [extract_article(read_source(str(page), offline=True)).text for page in pages]
    reference = _predict(path, texts, 512)
    agreement_rows = [
        _agreement_row(
            name, "shipped, in batches of 8", agreement(reference, _predict(path, texts, 8))
        ),
        _agreement_row(
            name, f"{kind.upper()} copy", agreement(reference, _predict(converted, texts, 512))
        ),
    ]
    return rates_rows, agreement_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id or .gguf (repeatable)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--to", choices=sorted(TYPES), default="q8_0", help="type of the copy")
    args = parser.parse_args()
    kind = args.to.upper()
    rates_rows: list[str] = []
    agreement_rows: list[str] = []
    for model in args.model or [config.default_model()]:
        speed, agree = measure(model, args.corpus, args.rounds, args.to)
        rates_rows += speed
        agreement_rows += agree
    lines = [
        f"# Shipped weights against their {kind} conversion",
        "",
        f"`python benchmarks/weights.py`, {args.rounds} rounds, alternating which file goes "
        f"first; {os.cpu_count()} cores, {platform.machine()}, {config.default_threads()} "
        f"llama.cpp threads. The {kind} copy is written once to $SLMSCAN_CACHE.",
        "",
        f"Evaluation speed: batches evaluated after a {PREFIX}-token prefix of the corpus's "
        "longest page, medians of the rounds.",
        "",
        f"| model | batch (tokens) | shipped tok/s | {kind} tok/s | {kind} ÷ shipped |",
        "|---|---:|---:|---:|---:|",
        *rates_rows,
        "",
        "Predictions against the shipped file evaluated in batches of 512, at every position of "
        "the first 512 tokens of 8 corpus pages: how often the next token is the same, and how "
        "far the shipped file's top logit moves.",
        "",
        "| model | evaluated as | same next token | top logit moved, median | 99th percentile |",
        "|---|---|---:|---:|---:|",
        *agreement_rows,
        "",
        f"Load average at the end {os.getloadavg()[0]:.2f}.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
