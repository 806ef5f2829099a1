"""Quality figures of saved cards (from `slmscan bench --out DIR`), one Markdown row per run.

    python benchmarks/card_figures.py --corpus ../shared/corpus/html \\
        "baseline=bench-a/cards/smollm2-135m" "change=bench-b/cards/smollm2-135m"

Each LABEL=FOLDER holds one model's cards (<slug>.json). Example copies are counted against the
built-in prompts' examples, so runs made with other prompts are judged by the same words.
Prompt words is a rougher check of the same kind: rows using a word (three letters or more, not
a stop word) of their prompt's task or rules that their page never uses; it also counts fair
words such as "change" in a signal, so only its differences between runs mean much. The last
columns judge the themes, which the quality figures leave out: how many are longer than the
prompt's three words, and how many use a word of the themes prompt their page never uses.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from slmscan.analyse import SECTION_PROMPTS
from slmscan.bench import load_documents, table_examples
from slmscan.bench_report import QUALITY_COLUMNS, pct
from slmscan.card import Card
from slmscan.keyphrases import STOP_WORDS
from slmscan.outputs import slugify
from slmscan.prompts import load_template
from slmscan.quality import TABLES, run_quality

_WORDS = re.compile(r"[a-z]+")


def _rule_words(section: str) -> set[str]:
    """Words (three letters or more, not stop words) of a section's task and rules."""
    text = load_template(SECTION_PROMPTS[section]).instructions_text.lower()
    return {w for w in _WORDS.findall(text) if len(w) >= 3} - STOP_WORDS


def prompt_word_rows(cards: dict[str, Card], documents: dict[str, str]) -> int:
    """Rows using a word of their prompt's task or rules that their document never uses."""
    rules = {table: _rule_words(table) for table in TABLES}
    hits = 0
    for key, card in cards.items():
        words = set(_WORDS.findall(documents[key].lower()))
        for table in TABLES:
            for row in getattr(card, table):
                cells = " ".join(v for v in row.model_dump().values() if isinstance(v, str))
                hits += bool((rules[table] - words) & set(_WORDS.findall(cells.lower())))
    return hits


def theme_figures(cards: dict[str, Card], documents: dict[str, str]) -> tuple[int, int, int]:
    """Themes, themes of more than three words (the prompt asks for one to three), and themes
    using a word of the themes prompt's task or rules that their document never uses."""
    rules = _rule_words("themes")
    themes = long = prompt = 0
    for key, card in cards.items():
        words = set(_WORDS.findall(documents[key].lower()))
        for theme in card.themes:
            themes += 1
            long += len(theme.split()) > 3
            prompt += bool((rules - words) & set(_WORDS.findall(theme.lower())))
    return themes, long, prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus/html"))
    parser.add_argument("runs", nargs="+", metavar="LABEL=FOLDER")
    args = parser.parse_args()
    documents = {d.key: d.text for d in load_documents(args.corpus) if d.ok}
    examples = table_examples()
    print(
        "| run | cards | rows | "
        + " | ".join(label for _, label in QUALITY_COLUMNS)
        + " | quality index | prompt words"
        + " | themes | themes over 3 words | prompt words in themes |"
    )
    print("|:--|--:|--:|" + "--:|" * (len(QUALITY_COLUMNS) + 5))
    for run in args.runs:
        label, folder = run.split("=", 1)
        files = {key: Path(folder) / f"{slugify(key)}.json" for key in documents}
        cards = {k: Card.model_validate_json(f.read_text()) for k, f in files.items() if f.exists()}
        figures, per_card = run_quality(cards, documents, examples)
        rows = sum(f.rows for f in per_card.values())
        cells = [pct(getattr(figures, name)) for name, _ in QUALITY_COLUMNS]
        prompt_words = prompt_word_rows(cards, documents)
        themes, long, prompt = theme_figures(cards, documents)
        print(
            f"| {label} | {len(cards)} | {rows} | {' | '.join(cells)} | {pct(figures.index())} "
            f"| {pct(prompt_words / rows if rows else None)} ({prompt_words}) | {themes} "
            f"| {pct(long / themes if themes else None)} ({long}) "
            f"| {pct(prompt / themes if themes else None)} ({prompt}) |"
        )


if __name__ == "__main__":
    main()
