"""Parallel sections on 2 cores: one decode step for N sequences against N steps of one.

A card's sections all continue from the same document prefix, so they could be decoded as
parallel sequences sharing it (`llama_memory_seq_cp` in a unified KV cache): each llama.cpp
evaluation then carries one token per section. This measures whether that wins here, before
the engine is built around it. For each model and N, on the corpus's longest page cut to
`--depth` tokens, fed once into sequence 0 and shared with sequences 1..N-1:

- **one at a time**: `--steps` rounds of N evaluations, one token of one sequence each;
- **batched**: `--steps` evaluations of N tokens, one per sequence (greedy on each).

The two alternate by round. Prints Markdown:

    flock /tmp/slmscan-cpu.lock python benchmarks/parallel.py \\
        --model smollm2-135m --model gemma3-270m > benchmarks/results/parallel.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import llama_cpp
import numpy as np
from threads import longest_page  # the same shared prefix as the threads benchmark

from slmscan import config
from slmscan.scanner import resolve_model

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (1, 2, 4, 8)


class Sequences:
    """A context of up to `width` sequences over one shared prefix (low-level llama.cpp)."""

    def __init__(self, model: llama_cpp.Llama, width: int, n_ctx: int, threads: int) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = width
        params.kv_unified = True  # sequences share the prefix's cells instead of copying them
        params.swa_full = True
        params.n_threads = params.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(model.model, params)
        if not self.ctx:
            raise SystemExit(f"llama.cpp could not make a context of {width} sequences")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(512, 0, width)
        self.n_vocab = model.n_vocab()
        self.width = width

    def decode(self, entries: list[tuple[int, int, int]]) -> None:
        """Evaluate (token, position, sequence) entries in one call; logits for each."""
        b = self.batch
        for i, (token, pos, seq) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, 1
            b.seq_id[i][0] = seq
        b.n_tokens = len(entries)
        if llama_cpp.llama_decode(self.ctx, b) != 0:
            raise SystemExit("llama_decode failed")

    def argmax(self, i: int) -> int:
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,)
        )
        return int(np.argmax(logits))

    def prefill(self, tokens: list[int]) -> None:
        for start in range(0, len(tokens), 512):
            chunk = tokens[start : start + 512]
            self.decode([(t, start + j, 0) for j, t in enumerate(chunk)])
        for seq in range(1, self.width):
            llama_cpp.llama_memory_seq_cp(self.memory, 0, seq, -1, -1)

    def forget_after(self, pos: int) -> None:
        for seq in range(self.width):
            llama_cpp.llama_memory_seq_rm(self.memory, seq, pos, -1)

    def close(self) -> None:
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)


def one_at_a_time(seqs: Sequences, start: int, first: int, steps: int) -> float:
    tokens = [first] * seqs.width
    begin = time.perf_counter()
    for step in range(steps):
        for seq in range(seqs.width):
            seqs.decode([(tokens[seq], start + step, seq)])
            tokens[seq] = seqs.argmax(0)
    return time.perf_counter() - begin


def batched(seqs: Sequences, start: int, first: int, steps: int) -> float:
    tokens = [first] * seqs.width
    begin = time.perf_counter()
    for step in range(steps):
        seqs.decode([(tokens[seq], start + step, seq) for seq in range(seqs.width)])
        tokens = [seqs.argmax(i) for i in range(seqs.width)]
    return time.perf_counter() - begin


def measure(model: str, text: str, depth: int, steps: int, rounds: int) -> list[str]:
    """Markdown rows: model, N, ms per token each way, and the ratio."""
    _, path = resolve_model(model)
    threads = config.default_threads()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, verbose=False)
    tokens = llm.tokenize(text.encode(), add_bos=True)[:depth]
    rows = []
    for width in WIDTHS:
        seqs = Sequences(llm, width, depth + width * (steps + 8), threads)
        seqs.prefill(tokens[:-1])
        times: dict[str, list[float]] = {"one": [], "batched": []}
        for r in range(rounds):
            order = ("one", "batched") if r % 2 == 0 else ("batched", "one")
            for way in order:
                seqs.forget_after(len(tokens) - 1)
                run = one_at_a_time if way == "one" else batched
                seconds = run(seqs, len(tokens) - 1, tokens[-1], steps)
                times[way].append(seconds / (steps * width))
        seqs.close()
        one, both = statistics.median(times["one"]), statistics.median(times["batched"])
        rows.append(
            f"| {model} | {width} | {one * 1000:.1f} | {both * 1000:.1f} | {one / both:.2f}× |"
        )
    llm.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="model id or .gguf (repeatable)")
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--depth", type=int, default=2048, help="shared prefix tokens")
    parser.add_argument("--steps", type=int, default=32, help="decode steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    text = longest_page(args.corpus)
    lines = [
        "# Parallel sections: batched decoding of N sequences over one prefix",
        "",
        f"`python benchmarks/parallel.py`, {args.rounds} rounds per N, alternating order; the "
        f"corpus's longest page cut to {args.depth} tokens is the shared prefix, then "
        f"{args.steps} greedy decode steps per sequence. {os.cpu_count()} cores, "
        f"{platform.machine()}, {config.default_threads()} llama.cpp threads, load average at "
        f"the start {os.getloadavg()[0]:.2f}. Medians of the rounds.",
        "",
        "| model | N sequences | ms per token, one at a time | ms per token, batched "
        "| batched speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in args.model or [config.default_model()]:
        lines += measure(model, text, args.depth, args.steps, args.rounds)
    lines.append(f"\nLoad average at the end {os.getloadavg()[0]:.2f}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
