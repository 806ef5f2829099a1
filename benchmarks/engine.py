"""Engine benchmark: slmscan's cards against the usual llama-cpp-python way, page by page.

    flock /tmp/slmscan-cpu.lock python benchmarks/engine.py --model smollm2-135m

Writes benchmarks/results/engine-<model>.md (table and acceptance checks), .png (plot) and
.json (every measurement). The corpus is ../shared/corpus beside the checkout, or wherever
SLMSCAN_CORPUS or --corpus points. The logic lives in `slmscan.enginebench` (measuring) and
`slmscan.enginebench_report` (writing), also behind `slmscan bench --engine`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from slmscan import config  # noqa: E402
from slmscan.enginebench import USUAL_MAX_TOKENS, BenchRun, run_engine_bench  # noqa: E402
from slmscan.enginebench_report import write_results  # noqa: E402
from slmscan.errors import SlmscanError  # noqa: E402


def main() -> int:
    """Parse the flags, run the benchmark, print where the table went."""
    corpus = Path(os.environ.get("SLMSCAN_CORPUS") or ROOT.parent / "shared" / "corpus")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=config.default_model(), help="model id or .gguf")
    parser.add_argument("--corpus", type=Path, default=corpus, help="folder of pages")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument(
        "--max-tokens", type=int, default=USUAL_MAX_TOKENS, help="usual way: tokens per call"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: write the table and plot again from OUT/engine-MODEL.json",
    )
    args = parser.parse_args()
    if args.render_only:
        stem = args.out / f"engine-{args.model}"
        print(write_results(BenchRun.from_json(stem.with_suffix(".json")), stem, plot=True))
        return 0
    try:
        table = run_engine_bench(
            args.model,
            args.corpus,
            args.out,
            args.limit,
            args.threads,
            usual_max_tokens=args.max_tokens,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )
    except SlmscanError as e:
        print(f"Error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"Hint: {e.hint}", file=sys.stderr)
        return 1
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
