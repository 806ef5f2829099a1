"""Quality figures on hand-made documents whose right answers are known."""

from __future__ import annotations

from slmscan.card import Behavior, Card, Evidence, Issue, Source, Technology
from slmscan.document import Article
from slmscan.fake import FakeAnalyser
from slmscan.quality import (
    Bm25,
    card_quality,
    duplicate_rows,
    echo_rows,
    evidence_match,
    example_copies,
    invented_numbers,
    normalise,
    occurs,
    run_quality,
    summary_claims,
    technology_names,
)

COUNCIL = (
    "Riverton Council approved a new budget on Monday.\n"
    "The budget moves 2,400,000 dollars from road repairs to the public library.\n"
    "Residents said the library had been closed on weekends for two years.\n"
    "Mayor Ellen Ruiz called the vote “a fair compromise” after a long debate."
)
VOLCANO = (
    "Geologists on Iceland recorded a swarm of small earthquakes near the volcano.\n"
    "Magma is rising under the peninsula, and lava could reach the surface within days.\n"
    "The fishing town nearby was evacuated as a precaution by the civil protection agency."
)
BAKING = (
    "Sourdough bread needs a starter of flour and water fed every day.\n"
    "Bakers fold the dough several times and let it rise overnight in a cool room.\n"
    "A hot oven and steam give the loaf its crisp crust and open crumb."
)


def _card(text: str, **update: object) -> Card:
    """A valid card of the text (the fake model's), with some fields replaced."""
    article = Article(text, Source(kind="text", location="test.txt"), "0" * 32)
    return FakeAnalyser().analyse(article).model_copy(update=update)


def _quote_row(text: str, quote: str, name: str = "budget", **kw: object) -> Behavior:
    start = text.find(quote)
    evidence = Evidence(quote=quote, start=max(start, 0), end=max(start, 0) + len(quote),
                        match="exact")  # fmt: skip
    return Behavior(name=name, description=kw.pop("description", f"about {name}"), relevancy=3,
                    evidence=evidence, grounded=start >= 0, **kw)  # fmt: skip


def test_evidence_offsets_verified_exact_and_normalised() -> None:
    quote = "The budget moves 2,400,000 dollars"
    start = COUNCIL.index(quote)
    assert evidence_match(quote, start, start + len(quote), COUNCIL) == "exact"
    # Typographic quotes, case and spacing differ: still the same words at the same place.
    said = "“a fair compromise”"
    at = COUNCIL.index(said)
    assert evidence_match('"A FAIR  compromise"', at, at + len(said), COUNCIL) == "normalised"
    # The right words at the wrong offsets are not verified: the offsets are part of the claim.
    assert evidence_match(quote, start + 1, start + 1 + len(quote), COUNCIL) is None
    assert evidence_match(quote, start, len(COUNCIL) + 10, COUNCIL) is None


def test_planted_unsupported_row_is_counted_unverified() -> None:
    good = _quote_row(COUNCIL, "Residents said the library had been closed", name="closures")
    planted = Behavior(
        name="resignation",
        description="the mayor resigned",
        relevancy=5,
        evidence=Evidence(quote="The mayor resigned in disgrace", start=0, end=30, match="exact"),
        grounded=False,
    )
    card = _card(COUNCIL, behaviors=[good, planted])
    figures = card_quality(card, COUNCIL)
    fake_rows = len(card.signals) + len(card.technologies) + len(card.issues)
    assert figures.rows == fake_rows + 2
    assert figures.rows_verified == fake_rows + 1
    assert figures.rows_flagged == 1


def test_summary_naming_an_absent_organisation_lowers_entity_grounding() -> None:
    faithful = "The vote was close. Riverton Council moved 2,400,000 dollars to the library."
    invented = faithful + " The plan was drawn up by Acme Corporation in 2019."
    assert summary_claims(faithful) == ["Riverton Council", "2,400,000"]
    good = card_quality(_card(COUNCIL, summary=faithful), COUNCIL)
    bad = card_quality(_card(COUNCIL, summary=invented), COUNCIL)
    assert (good.claims, good.claims_grounded) == (2, 2)
    assert bad.claims == 4 and bad.claims_grounded == 2
    assert set(bad.unsupported_claims) == {"Acme Corporation", "2019"}
    possessive = card_quality(_card(COUNCIL, summary="It was Riverton Council’s vote."), COUNCIL)
    assert possessive.claims == possessive.claims_grounded == 1


def test_keywords_are_found_as_whole_words_in_any_case() -> None:
    assert occurs("public LIBRARY", COUNCIL)
    assert occurs("fair compromise", COUNCIL)
    assert not occurs("AI", COUNCIL)  # inside "said", "repairs": not a word of the text
    card = _card(COUNCIL, keywords=["budget", "Public library", "AI", "space travel"])
    figures = card_quality(card, COUNCIL)
    assert (figures.keywords, figures.keywords_grounded) == (4, 2)


def test_duplicate_rows_same_name_or_near_identical_text() -> None:
    rows = [
        _quote_row(COUNCIL, "Riverton Council approved", name="Budget vote"),
        _quote_row(COUNCIL, "Riverton Council approved", name="budget  VOTE"),  # same name
        _quote_row(COUNCIL, "The budget moves", name="funds moved",
                   description="money moved from road repairs to the library"),
        _quote_row(COUNCIL, "The budget moves", name="funds moved to library",
                   description="money moved from road repairs to the library"),
        _quote_row(COUNCIL, "Residents said", name="weekend closures",
                   description="the library was shut on weekends"),
    ]  # fmt: skip
    assert duplicate_rows(rows) == 2
    card = _card(COUNCIL, behaviors=rows, issues=[Issue(**rows[0].model_dump())])
    # A row repeated in another table is not a duplicate within its table.
    assert card_quality(card, COUNCIL).duplicate_rows == 2


def test_echo_rows_cells_repeating_each_other() -> None:
    rows = [
        _quote_row(COUNCIL, "Riverton Council approved", name="The council approved a budget",
                   description="The council approved the new budget"),  # 4 of 6 words shared
        _quote_row(COUNCIL, "The budget moves", name="Library funding",
                   description="Money for road repairs goes to the public library instead"),
    ]  # fmt: skip
    assert echo_rows(rows) == 1
    card = _card(COUNCIL, behaviors=rows, issues=[], signals=[], technologies=[])
    assert card_quality(card, COUNCIL).echo_rows == 1


def test_example_copies_are_example_words_the_document_never_uses() -> None:
    example = "Sales of electric bikes doubled last year.\nRise of electric bikes\nMore budget"
    rows = [
        _quote_row(COUNCIL, "The budget moves", name="Electric bikes for the library"),
        # "budget" is in the example and in the document: the document's own word.
        _quote_row(COUNCIL, "Riverton Council approved", name="A new budget",
                   description="The council approved the budget on Monday"),
    ]  # fmt: skip
    assert example_copies(rows, example, COUNCIL) == 1
    assert example_copies(rows, "", COUNCIL) == 0
    card = _card(COUNCIL, behaviors=rows, issues=[], signals=[], technologies=[])
    assert card_quality(card, COUNCIL, {"behaviors": example}).example_rows == 1
    assert card_quality(card, COUNCIL, {"issues": example}).example_rows == 0  # other table
    run, _ = run_quality({"a": card}, {"a": COUNCIL}, {"behaviors": example})
    assert run.example_rows == 1 / 2
    assert run_quality({"a": card}, {"a": COUNCIL})[0].example_rows is None  # not counted


def test_invented_numbers_are_numbers_the_document_never_writes() -> None:
    rows = [
        # "2,400,000" is the document's; the quote's numbers do not count.
        _quote_row(COUNCIL, "The budget moves", name="Library funding",
                   description="2,400,000 dollars go to the library"),
        _quote_row(COUNCIL, "Residents said", name="3rd closure",
                   description="The library closed on weekends"),  # "3" inside a word
        _quote_row(COUNCIL, "Riverton Council approved", name="Budget vote",
                   description="A 37% rise in library visits"),
        _quote_row(COUNCIL, "Mayor Ellen Ruiz", name="A fair compromise",
                   description="The mayor called the vote fair"),
    ]  # fmt: skip
    assert invented_numbers(rows, COUNCIL) == 2
    assert invented_numbers(rows[:1], COUNCIL.replace("2,400,000", "2,400")) == 1
    card = _card(COUNCIL, behaviors=rows, issues=[], signals=[], technologies=[])
    assert card_quality(card, COUNCIL).number_rows == 2
    assert run_quality({"a": card}, {"a": COUNCIL})[0].number_rows == 2 / 4


def test_schema_complete_needs_every_section() -> None:
    assert card_quality(_card(COUNCIL), COUNCIL).complete
    figures = card_quality(_card(COUNCIL, themes=[], summary=None), COUNCIL)
    assert not figures.complete and figures.missing == ("themes", "summary")


def test_identifiability_on_a_tiny_folder() -> None:
    folder = {"council.txt": COUNCIL, "volcano.txt": VOLCANO, "baking.txt": BAKING}
    cards = {
        "council.txt": _card(COUNCIL, summary="The council moved library money in its budget."),
        "volcano.txt": _card(VOLCANO, summary="Magma under Iceland may bring lava to the town."),
        # A summary of the wrong document: BM25 finds the volcano, not the bread.
        "baking.txt": _card(BAKING, summary="Earthquakes and lava near a volcano."),
    }
    run, per_card = run_quality(cards, folder)
    assert [per_card[k].identifiable for k in folder] == [True, True, False]
    assert run.identifiability == 2 / 3
    assert run.cards == 3 and run.schema_complete == 1.0


def test_bm25_ranks_and_ties_are_misses() -> None:
    index = Bm25([COUNCIL, VOLCANO, BAKING])
    scores = index.scores("lava volcano magma")
    assert scores[1] > scores[0] == scores[2] == 0.0
    assert index.top1("lava volcano magma", 1)
    assert not index.top1("nothing in common whatsoever", 0)  # all zero: a tie, not a hit
    assert not index.top1("", 0) and not index.top1(None, 0)


def test_run_rates_add_up_counts_not_averages() -> None:
    folder = {"a": COUNCIL, "b": VOLCANO}
    cards = {
        "a": _card(COUNCIL, keywords=["budget", "AI", "zebra", "library"]),  # 2 of 4
        "b": _card(VOLCANO, keywords=["lava"]),  # 1 of 1
    }
    run, _ = run_quality(cards, folder)
    assert run.keyword_grounding == 3 / 5
    assert run.duplicate_rows is not None and 0 <= run.duplicate_rows <= 1
    assert run.index() is not None and 0 <= run.index() <= 1


def test_normalise() -> None:
    assert normalise("  “Fair”\u00a0—\n‘deal’ ") == "\"fair\" - 'deal'"


def test_technology_names_are_written_with_the_documents_words() -> None:
    def tech(name: str) -> Technology:
        row = _quote_row(VOLCANO, "Magma is rising", name=name)
        return Technology(**row.model_dump())

    rows = [
        tech("Earthquake swarm recording"),  # the page writes "recorded", not "recording"
        tech("Earthquake near the volcano"),  # its plural is the page's; "the" is a stop word
        tech("Seismic drone"),  # never in the page
        tech("Civil protection agencies"),
    ]
    assert technology_names(rows, VOLCANO) == 2
    plural = VOLCANO.replace("agency", "agencies")  # the page's plural of the name's singular
    assert technology_names([tech("Civil protection agency")], plural) == 1
    card = _card(VOLCANO, technologies=rows)
    assert (card_quality(card, VOLCANO).technologies_named, len(rows)) == (2, 4)
    assert run_quality({"a": card}, {"a": VOLCANO})[0].technology_naming == 2 / 4
