"""Two ways of making cards, compared on the corpus pages: time and quality, alternated per page.

Shared by the scripts that try one change of the engine or the prompt in real cards: each page's
card is made both ways in one process, alternating which goes first, and the report gives the
card times page by page and the cards' quality figures (slmscan.quality, as `slmscan bench`
reports them).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from slmscan.analyse import Analyser
from slmscan.card import Card
from slmscan.document import Article
from slmscan.extract import extract_article
from slmscan.quality import run_quality
from slmscan.sources import read_source


def corpus_articles(corpus: Path) -> dict[str, Article]:
    """The main text of every corpus page, by file name."""
    pages = sorted(corpus.glob("*.html"))
    return {p.name: extract_article(read_source(str(p), offline=True)) for p in pages}


def quartiles(values: list[float]) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.1f} ({q1:.1f}–{q3:.1f})"


def make_pairs(
    analysers: dict[str, Analyser], articles: dict[str, Article]
) -> tuple[dict[str, dict[str, Card]], dict[str, dict[str, float]]]:
    """Every page's card made by every analyser, alternating their order page by page."""
    kinds = list(analysers)
    cards: dict[str, dict[str, Card]] = {kind: {} for kind in kinds}
    seconds: dict[str, dict[str, float]] = {kind: {} for kind in kinds}
    for index, (name, article) in enumerate(articles.items()):
        for kind in kinds if index % 2 == 0 else reversed(kinds):
            start = time.perf_counter()
            cards[kind][name] = analysers[kind].analyse(article)
            seconds[kind][name] = time.perf_counter() - start
    return cards, seconds


def pair_report(
    cards: dict[str, dict[str, Card]],
    seconds: dict[str, dict[str, float]],
    articles: dict[str, Article],
) -> list[str]:
    """Markdown: a row of time and quality figures per way, then the per-page time ratio."""
    first, second = list(cards)
    lines = [
        "| way | s/card median (q1–q3) | total s | complete | keywords in page | quotes "
        "verified | summary names found | duplicate rows | rows echoing the prompt | rows "
        "copying the example | rows of bare numbers | technologies named | identifiable | "
        "quality index |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    documents = {name: article.text for name, article in articles.items()}
    for kind in (first, second):
        run, _ = run_quality(cards[kind], documents)
        rates = [
            run.schema_complete,
            run.keyword_grounding,
            run.evidence_verified,
            run.entity_grounding,
            run.duplicate_rows,
            run.echo_rows,
            run.example_rows,
            run.number_rows,
            run.technology_naming,
            run.identifiability,
            run.index(),
        ]
        cells = " | ".join("–" if r is None else f"{r:.1%}" for r in rates)
        values = list(seconds[kind].values())
        lines.append(f"| {kind} | {quartiles(values)} | {sum(values):.0f} | {cells} |")
    names = list(articles)
    ratios = [seconds[first][n] / seconds[second][n] for n in names]
    same = sum(
        cards[first][n].model_dump(exclude={"provenance"})
        == cards[second][n].model_dump(exclude={"provenance"})
        for n in names
    )
    lines += [
        "",
        f"Per page, {first} time ÷ {second} time: median {statistics.median(ratios):.2f}× "
        f"(q1–q3 {quartiles(ratios).split(' ', 1)[1]}), {second} faster on "
        f"{sum(r > 1 for r in ratios)} of {len(names)} pages; cards identical apart from "
        f"provenance: {same} of {len(names)}.",
    ]
    return lines
