"""Category and type of the corpus pages against labels set by hand, per model.

    flock /tmp/slmscan-cpu.lock python benchmarks/classify.py --model smollm2-135m

Runs only the card's `other` section on each page of the corpus (../shared/corpus beside the
checkout, or SLMSCAN_CORPUS) and compares its category and type with
benchmarks/classify_labels.json, which lists what a reader could fairly answer for each page.
Prints a Markdown table: how many pages got an acceptable answer, how many different answers
the model gave (a model that answers the same for every page is not classifying), and each
page's answers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from slmscan import config  # noqa: E402
from slmscan.scanner import Scanner, ScanOptions  # noqa: E402

LABELS = Path(__file__).with_name("classify_labels.json")


def classify(model: str, corpus: Path) -> dict[str, tuple[str, str]]:
    """Each labelled page's (category, type) as the model's card gives them."""
    pages = json.loads(LABELS.read_text(encoding="utf-8"))["pages"]
    answers = {}
    with Scanner(ScanOptions(model=model, sections=("other",), offline=True)) as scanner:
        for page in pages:
            (result,) = scanner.scan([str(corpus / page)])
            card = result.card
            answers[page] = (card.category or "none", card.type or "none") if card else ("-", "-")
            print(page, *answers[page], sep="\t", file=sys.stderr, flush=True)
    return answers


def table(model: str, answers: dict[str, tuple[str, str]]) -> str:
    """The model's answers against the labels, as Markdown; an unacceptable answer in italics."""
    pages = json.loads(LABELS.read_text(encoding="utf-8"))["pages"]
    lines = [f"### {model}", "", "| | acceptable | different answers | most given |"]
    lines.append("|---|---:|---:|---|")
    for i, key in enumerate(("category", "type")):
        right = sum(a[i] in pages[p][key] for p, a in answers.items())
        seen = Counter(a[i] for a in answers.values())
        top, n = seen.most_common(1)[0]
        lines.append(f"| {key} | {right}/{len(answers)} | {len(seen)} | {top} ({n}) |")
    lines += ["", "| page | category | type | labels |", "|---|---|---|---|"]
    for page, answer in answers.items():
        label = pages[page]
        keys = ("category", "type")
        cells = [v if v in label[k] else f"*{v}*" for v, k in zip(answer, keys, strict=True)]
        want = "/".join(label["category"]) + "; " + "/".join(label["type"])
        lines.append(f"| {Path(page).name} | {cells[0]} | {cells[1]} | {want} |")
    return "\n".join(lines)


def main() -> int:
    """Parse the flags, classify the pages, print the table."""
    corpus = Path(os.environ.get("SLMSCAN_CORPUS") or ROOT.parent / "shared" / "corpus")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=config.default_model(), help="model id or .gguf")
    parser.add_argument("--corpus", type=Path, default=corpus, help="folder of the corpus")
    args = parser.parse_args()
    print(table(args.model, classify(args.model, args.corpus)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
