"""Main-text extraction on the shared corpus: slmscan against trafilatura's defaults.

Each page lists snippets its main text must contain and boilerplate it must not; a page scores
one point per snippet that comes out right. Prints a Markdown table:

    python benchmarks/extraction.py > benchmarks/results/extraction.md

The corpus is ../shared/corpus beside the checkout, or wherever SLMSCAN_CORPUS points.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from slmscan.extract import extract_article  # noqa: E402
from slmscan.sources import read_source  # noqa: E402


def satisfied(text: str, page: dict[str, list[str]]) -> int:
    """How many of the page's snippets the text gets right."""
    present = sum(snippet in text for snippet in page["must_contain"])
    absent = sum(snippet not in text for snippet in page["must_not_contain"])
    return present + absent


def main() -> int:
    """Score every corpus page both ways and print the table."""
    import trafilatura

    corpus = Path(os.environ.get("SLMSCAN_CORPUS") or ROOT.parent / "shared" / "corpus")
    if not (corpus / "manifest.json").is_file():
        print(f"no corpus at {corpus} (set SLMSCAN_CORPUS)", file=sys.stderr)
        return 1
    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))

    rows: list[tuple[str, int, int, int]] = []
    seconds = {"ours": 0.0, "default": 0.0}
    for page in manifest["documents"]:
        raw = read_source(str(corpus / page["file"]), offline=True)
        start = time.perf_counter()
        ours_text = extract_article(raw).text
        seconds["ours"] += time.perf_counter() - start
        start = time.perf_counter()
        default_text = trafilatura.extract(raw.data) or ""
        seconds["default"] += time.perf_counter() - start
        snippets = len(page["must_contain"]) + len(page["must_not_contain"])
        name = Path(page["file"]).name
        rows.append((name, snippets, satisfied(ours_text, page), satisfied(default_text, page)))

    total = [sum(row[1] for row in rows), sum(row[2] for row in rows), sum(row[3] for row in rows)]
    print("# Main-text extraction: slmscan vs trafilatura defaults\n")
    print(f"{len(rows)} pages of the trafilatura evaluation set; a point per expected snippet")
    print("found (`must_contain`) or boilerplate snippet left out (`must_not_contain`).")
    print(f"trafilatura {trafilatura.__version__}; defaults = `trafilatura.extract(html)`.\n")
    print("| page | snippets | slmscan | trafilatura default |")
    print("|---|---:|---:|---:|")
    for name, snippets, ours, default in rows:
        mark = " **+**" if ours > default else (" **−**" if ours < default else "")
        print(f"| {name} | {snippets} | {ours}{mark} | {default} |")
    print(f"| **total** | **{total[0]}** | **{total[1]}** | **{total[2]}** |")
    print(
        f"\nTime for all pages: slmscan {seconds['ours']:.2f} s (two trafilatura passes and "
        f"metadata per page), default {seconds['default']:.2f} s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
