"""Grounding without a model: hand-made documents whose right answers are known."""

from __future__ import annotations

import json

from slmscan.card import Behavior, Card, Evidence, Issue, Source
from slmscan.document import Article
from slmscan.fake import FakeAnalyser
from slmscan.grounding import dedupe_rows, flag_summary, locate_quote, verify_rows
from slmscan.quality import duplicate_rows
from slmscan.render import render_markdown

TEXT = (
    "The harbour authority  published its “yearly report” on Monday.\n"
    "Container traffic grew by 12 percent — the fastest rise in a decade.\n"
    "Dredging costs are rising as ships get bigger."
)


def test_exact_quote_offsets_point_at_the_quote() -> None:
    ev = locate_quote("Container traffic grew by 12 percent", TEXT)
    assert ev is not None and ev.match == "exact"
    assert TEXT[ev.start : ev.end] == "Container traffic grew by 12 percent"


def test_normalised_quote_matches_whitespace_quotes_dashes_and_case() -> None:
    ev = locate_quote('the harbour authority published its "yearly report"', TEXT)
    assert ev is not None and ev.match == "normalised"
    assert TEXT[ev.start : ev.end] == "The harbour authority  published its “yearly report”"
    ev = locate_quote("grew by 12 percent - the fastest", TEXT)
    assert ev is not None and TEXT[ev.start : ev.end].endswith("the fastest")


def test_fuzzy_match_is_bounded() -> None:
    ev = locate_quote("Dredging costs are rising as the ships get bigger.", TEXT)
    assert ev is not None and ev.match == "fuzzy"
    assert TEXT[ev.start : ev.end].startswith("Dredging costs")
    assert locate_quote("Fishing quotas were cut by half last spring.", TEXT) is None


def _row(name: str, quote: str, relevancy: int = 3) -> Behavior:
    return Behavior(name=name, description=f"{name} happens.", relevancy=relevancy,
                    evidence=Evidence(quote=quote, start=0, end=len(quote), match="exact"),
                    grounded=True)  # fmt: skip


def test_planted_unsupported_row_is_dropped_from_markdown_and_flagged_in_json() -> None:
    article = Article(TEXT, Source(kind="text", location="-", title="Harbour"), "0" * 32)
    card = FakeAnalyser().analyse(article)
    planted = _row("Moon shipping", "Ships now sail to the moon every week.", relevancy=5)
    real = _row("Bigger ships", "Dredging costs are rising as ships get bigger.")
    behaviors = verify_rows([planted, real], TEXT)
    card = card.model_copy(update={"behaviors": behaviors})
    assert [r.grounded for r in card.behaviors] == [False, True]
    markdown = render_markdown(card)
    assert "Moon shipping" not in markdown and "Bigger ships" in markdown
    assert "UNGROUNDED" in render_markdown(card, show_ungrounded=True)
    data = json.loads(card.model_dump_json())
    assert data["behaviors"][0]["name"] == "Moon shipping"
    assert data["behaviors"][0]["grounded"] is False
    assert Card.model_validate(data) == card


def test_summary_naming_an_absent_organisation_is_flagged() -> None:
    summary = "The harbour authority and the World Shipping Council reported 12 percent growth."
    assert flag_summary(summary, TEXT) == ["World Shipping Council"]


def test_a_merge_never_leaves_two_rows_that_repeat_each_other() -> None:
    # The third row repeats the first by name and the second by its words; keeping it in the
    # first row's place once left it beside the second (a card of the corpus had such a pair).
    rows = [
        Behavior(name="Cheap solar", description="Prices fall.", relevancy=2, grounded=True),
        Behavior(name="Solar panels", description="Cheap solar panels on roofs.", relevancy=3,
                 grounded=True),
        Behavior(name="Cheap Solar", description="Solar panels on roofs.", relevancy=4,
                 grounded=True),
    ]  # fmt: skip
    merged = dedupe_rows(rows)
    assert [(r.name, r.relevancy) for r in merged] == [("Cheap Solar", 4)]
    assert duplicate_rows(merged) == 0  # the quality benchmark's own check agrees


def test_duplicate_rows_are_merged_keeping_the_most_relevant() -> None:
    rows = [
        Issue(name="Rising dredging costs", description="Dredging gets more expensive.",
              relevancy=2, grounded=True),
        Issue(name="Rising Dredging Costs", description="Costs rise.", relevancy=4,
              grounded=True),
        Issue(name="Traffic growth", description="Containers grow fast.", relevancy=3,
              grounded=True),
    ]  # fmt: skip
    merged = dedupe_rows(rows)
    assert [(r.name, r.relevancy) for r in merged] == [
        ("Rising Dredging Costs", 4),
        ("Traffic growth", 3),
    ]
