"""Would drafting from the context (prompt lookup) speed up decoding? Measured, then simulated.

Greedy decoding could guess the next few tokens by finding the last tokens decoded earlier in
the context (the document, the instruction, the fields before) and copying what followed
there; one llama.cpp call then checks all guesses, and the output stays the same. It pays only
if checking k tokens costs much less than k decode steps. This measures both sides here:

- **fields**: real SmolLM2 cards of every `--every`-th corpus page, recording each decoded
  field with the context it was decoded after (what a draft could be copied from);
- **call cost**: llama.cpp calls of 1-17 tokens with logits at every position (what checking
  needs) after a `--depth`-token prefix, relative to one decode step, medians of `--rounds`;
- **simulation**: for drafts of up to K tokens, copied after the longest earlier match of at
  least m tokens of the context's end, the calls a field then needs (the accepted guesses plus
  the model's own next token per call) and their cost at the measured rates, against decoding
  one token per call.

    flock /tmp/slmscan-cpu.lock python benchmarks/lookup_drafts.py > lookup-drafts.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from slmscan import config
from slmscan.engine import Engine
from slmscan.extract import extract_article
from slmscan.scanner import Scanner, ScanOptions, resolve_model
from slmscan.sources import read_source

ROOT = Path(__file__).resolve().parents[1]
CALL_SIZES = (1, 2, 3, 5, 9, 17)
Field = tuple[list[int], list[int]]  # (context before the field, the field's tokens)


def record_fields(model: str, pages: list[Path]) -> list[Field]:
    """Every field the model decodes in the cards of `pages`, with its context."""
    fields: list[Field] = []
    original = Engine.generate

    def generate(self: Engine, *args: Any, **kwargs: Any) -> str:
        start = self.position
        text = original(self, *args, **kwargs)
        self.flush()
        ids = [int(t) for t in self._llm.input_ids[: self._llm.n_tokens]]
        fields.append((ids[:start], ids[start : self.position]))
        return text

    Engine.generate = generate  # type: ignore[method-assign]
    try:
        with Scanner(ScanOptions(model=model, offline=True)) as scanner:
            for page in pages:
                scanner.analyse(extract_article(read_source(str(page), offline=True)))
    finally:
        Engine.generate = original  # type: ignore[method-assign]
    return fields


def call_costs(model: str, depth: int, rounds: int) -> dict[int, float]:
    """Seconds of a call of n tokens (logits at each) after `depth` tokens, per decode step."""
    _, path = resolve_model(model)
    threads = config.default_threads()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, verbose=False)
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = depth + 64
    params.n_batch = params.n_ubatch = 512
    params.n_threads = params.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    memory = llama_cpp.llama_get_memory(ctx)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    tokens = [int(t) for t in np.random.default_rng(0).integers(100, 20000, depth)]

    def decode(chunk: list[int], start: int, every: bool) -> float:
        for i, token in enumerate(chunk):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
            batch.seq_id[i][0], batch.logits[i] = 0, every or i == len(chunk) - 1
        batch.n_tokens = len(chunk)
        begin = time.perf_counter()
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")
        return time.perf_counter() - begin

    for start in range(0, depth, 512):
        decode(tokens[start : start + 512], start, False)
    seconds: dict[int, list[float]] = {n: [] for n in CALL_SIZES}
    for _ in range(rounds):
        for n in CALL_SIZES:
            llama_cpp.llama_memory_seq_rm(memory, 0, depth, -1)
            seconds[n].append(decode(tokens[:n], depth, True))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)
    llm.close()
    step = statistics.median(seconds[1])
    return {n: statistics.median(s) / step for n, s in seconds.items()}


def _match(context: list[int], longest: int = 12) -> tuple[int, int]:
    """The longest earlier occurrence of the context's last tokens: (length, index after it)."""
    best = (0, -1)
    last = context[-1]
    for i in range(len(context) - 2, -1, -1):
        if context[i] != last:
            continue
        length = 1
        while length < longest and i - length >= 0 and context[i - length] == context[-1 - length]:
            length += 1
        if length > best[0]:
            best = (length, i + 1)
        if length == longest:
            break
    return best


def simulate(fields: list[Field], costs: dict[int, float], m: int, k: int) -> tuple[float, float]:
    """(cost relative to plain decoding, mean guesses accepted per drafted call)."""
    sizes = sorted(costs)

    def cost(n: int) -> float:
        return float(np.interp(n, sizes, [costs[s] for s in sizes]))

    total, decoded, accepted = 0.0, 0, []
    for before, field in fields:
        context, i = list(before), 0
        decoded += len(field)
        while i < len(field):
            length, after = _match(context)
            draft = context[after : after + k] if length >= m else []
            good = 0
            while good < len(draft) and i + good < len(field) and draft[good] == field[i + good]:
                good += 1
            total += cost(1 + len(draft))
            if draft:
                accepted.append(good)
            take = min(good + 1, len(field) - i)
            context += field[i : i + take]
            i += take
    return total / decoded, statistics.mean(accepted) if accepted else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=config.default_model())
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus" / "html")
    parser.add_argument("--every", type=int, default=4, help="take every n-th corpus page")
    parser.add_argument("--depth", type=int, default=2500, help="tokens before the timed calls")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    pages = sorted(args.corpus.glob("*.html"))[:: args.every]
    fields = record_fields(args.model, pages)
    costs = call_costs(args.model, args.depth, args.rounds)
    lines = [
        f"# Drafting from the context: {args.model}",
        "",
        f"`python benchmarks/lookup_drafts.py`: {len(fields)} decoded fields "
        f"({sum(len(f) for _, f in fields)} tokens) of the cards of {len(pages)} corpus pages; "
        f"call costs after a {args.depth}-token prefix, medians of {args.rounds} rounds; "
        f"{os.cpu_count()} cores, {config.default_threads()} llama.cpp threads, load average "
        f"{os.getloadavg()[0]:.2f}.",
        "",
        "| tokens in one call | " + " | ".join(str(n) for n in CALL_SIZES) + " |",
        "|---|" + "---:|" * len(CALL_SIZES),
        "| cost in decode steps | " + " | ".join(f"{costs[n]:.2f}" for n in CALL_SIZES) + " |",
        "",
        "| drafts after a match of at least | up to K guesses | decoding cost vs one token "
        "per call | guesses accepted per drafted call |",
        "|---:|---:|---:|---:|",
    ]
    for m in (1, 2, 3, 4, 6):
        for k in (2, 4, 8):
            relative, accepted = simulate(fields, costs, m, k)
            lines.append(f"| {m} | {k} | {relative:.2f}× | {accepted:.2f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
