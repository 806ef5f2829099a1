"""Quality figures of cards, computed from the cards and their documents alone (no model).

Per card (`card_quality`) and per run (`run_quality`):

- schema-complete: every section of the card is non-empty (`Card.missing_sections()`);
- keyword grounding: share of keywords that occur in the document (case-insensitive);
- evidence-verified rows: share of table rows whose evidence quote is what the document holds
  at the quote's offsets (exactly, or after normalising whitespace, quotes, dashes and case);
- summary entity grounding: share of the summary's names (capitalised words) and numbers that
  occur in the document;
- duplicate rows: share of table rows that repeat an earlier row of the same table (same name,
  or near-identical name and description);
- echoing rows: share of table rows in which one cell says (nearly) what another cell of the
  same row says ("The court ruled" / "The court ruled that the court ruled");
- example copies: share of table rows that use a word of their section's prompt example which
  the document never uses (the example's topic leaking into a card about something else);
- invented numbers: share of table rows with a number in a cell (evidence aside) that the
  document never writes ("37% increase in heat pumps", "2 (part-time)");
- technologies named: share of technology rows whose name is written with the document's
  words (each of three letters or more, stop words aside, occurs as a word, or as its singular
  or plural): a technology the card says the document mentions, and it never names, is
  invented ("Quantum computing" on a page about AI's energy use);
- summary identifiability: does BM25 over the run's documents, queried with the card's summary
  alone, rank the card's own document strictly first.

The checks here are written independently of the pipeline's own (`grounding`, `analyse`), so
that a bug in one does not hide in the other.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

from .card import Behavior, Card, Issue, Signal, Technology
from .keyphrases import STOP_WORDS

_WORD = re.compile(r"[^\W_]+")
# Typographic quotes, dashes and no-break spaces, and the plain characters they stand for.
_QUOTES = str.maketrans("‘’‚′“”„″–—‑−\u00a0", "''''\"\"\"\"---- ")
_SIMILAR = 0.7  # word-set overlap (Jaccard) at or above which two rows say the same thing
# Lower for cells of one row: they are meant to say different things about one subject.
_ECHO = 0.5
_CELLS = ("name", "description", "change", "ten_year", "driving_force")
TABLES: tuple[str, ...] = ("signals", "behaviors", "technologies", "issues")
# A name: a run of capitalised words; at a sentence start it must not be one ordinary word.
_CAPITALISED = re.compile(r"\b[A-Z][\w'’-]*(?:[ \t]+[A-Z][\w'’-]*)*")
_SENTENCE_END = re.compile(r"(?:^|[.!?][\"')\]”’]*\s+|\n\s*)$")
_NUMBER = re.compile(r"\b\d[\d,.]*\d\b|\b\d\b")
# With the letters glued to it: "80TB" is the page's if the page writes "80TB"; "3rd" is not
# the page's "3".
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*[^\W\d_]*")
_BM25_K1, _BM25_B = 1.5, 0.75

Row = Signal | Behavior | Technology | Issue


def normalise(text: str) -> str:
    """Text with typographic quotes and dashes made plain, whitespace collapsed, lower case."""
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().casefold()


def evidence_match(quote: str, start: int, end: int, document: str) -> str | None:
    """How a quote matches the document at its offsets: "exact", "normalised", or None."""
    if not (0 <= start <= end <= len(document)):
        return None
    found = document[start:end]
    if found == quote:
        return "exact"
    return "normalised" if normalise(found) == normalise(quote) and found.strip() else None


def summary_claims(summary: str) -> list[str]:
    """The names and numbers a reader would check in a summary, each once, in order.

    A capitalised word that opens a sentence is a name only when more capitalised words follow
    it ("Riverton Council approved…") and it is not a stop word ("The Council…" → "Council").
    """
    claims: list[str] = []
    found = []
    for match in _CAPITALISED.finditer(summary):
        words = match.group(0).split()
        if _SENTENCE_END.search(summary[: match.start()]) and (
            len(words) == 1 or words[0].lower() in STOP_WORDS
        ):
            words = words[1:]
        if words:
            found.append(" ".join(words))
    found += [m.group(0) for m in _NUMBER.finditer(summary)]
    for claim in found:
        claim = claim.strip(".,")
        if claim and claim not in claims:
            claims.append(claim)
    return claims


def occurs(phrase: str, document: str) -> bool:
    """True when the phrase occurs in the document as whole words, after `normalise`.

    Whole words, so that a keyword "AI" is not found inside "said".
    """
    wanted = normalise(phrase)
    if not wanted:
        return False
    pattern = r"(?<![^\W_])" + re.escape(wanted) + r"(?![^\W_])"
    return re.search(pattern, normalise(document)) is not None


def claim_grounded(claim: str, document: str) -> bool:
    """True when every word of the claim occurs in the document (case-insensitive).

    A possessive counts as its name: "Foundation's" is grounded by "Foundation".
    """
    words = [re.sub(r"'s?$", "", w) or w for w in normalise(claim).split()]
    return all(occurs(word, document) for word in words)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def duplicate_rows(rows: Sequence[object]) -> int:
    """How many rows repeat an earlier row of the same table (same name, or near-same text)."""
    seen: list[tuple[set[str], set[str]]] = []
    duplicates = 0
    for row in rows:
        name = _words(str(getattr(row, "name", "")))
        text = name | _words(str(getattr(row, "description", "")))
        if any(
            (name and name == other_name)
            or len(text & other_text) / max(1, len(text | other_text)) >= _SIMILAR
            for other_name, other_text in seen
        ):
            duplicates += 1
        seen.append((name, text))
    return duplicates


def echo_rows(rows: Sequence[object]) -> int:
    """How many rows fill a cell with (nearly) the words of another cell of the same row."""
    echoing = 0
    for row in rows:
        cells = [_words(str(v)) for f in _CELLS if (v := getattr(row, f, None))]
        if any(len(a & b) / max(1, len(a | b)) >= _ECHO for a, b in combinations(cells, 2)):
            echoing += 1
    return echoing


def example_copies(rows: Sequence[object], example: str, document: str) -> int:
    """How many rows use a word of the prompt's example that the document never uses."""
    foreign = {w for w in _words(example) if len(w) >= 3 and w not in STOP_WORDS}
    foreign -= _words(normalise(document))
    return sum(
        bool(foreign & set().union(*(_words(str(getattr(row, f, None) or "")) for f in _CELLS)))
        for row in rows
    )


def invented_numbers(rows: Sequence[object], document: str) -> int:
    """How many rows write a number, in a cell other than the evidence, that the document does
    not (as a whole number: "2" is not found in "2019")."""
    return sum(
        any(
            not occurs(number, document)
            for f in _CELLS
            for number in _DIGITS.findall(str(getattr(row, f, None) or ""))
        )
        for row in rows
    )


def technology_names(rows: Sequence[Technology], document: str) -> int:
    """How many technology rows have a name whose words all occur in the document (see the
    module's docstring)."""
    words = _words(normalise(document))

    def found(word: str) -> bool:
        forms = {word, word + "s", word.removesuffix("s")}
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
        if word.endswith("y"):
            forms.add(word[:-1] + "ies")  # "industry" of "industries"
        return len(word) < 3 or word in STOP_WORDS or bool(forms & words)

    return sum(all(found(w) for w in _WORD.findall(row.name.casefold())) for row in rows)


@dataclass(frozen=True)
class CardQuality:
    """Counts behind one card's quality figures (rates are derived, so runs can add them up)."""

    complete: bool
    missing: tuple[str, ...]
    keywords: int
    keywords_grounded: int
    rows: int
    rows_verified: int
    rows_flagged: int  # rows the pipeline itself marked `grounded: false`
    duplicate_rows: int
    echo_rows: int
    example_rows: int  # 0 when no examples were given
    number_rows: int
    technologies: int
    technologies_named: int  # of them, named with the document's words
    claims: int
    claims_grounded: int
    unsupported_claims: tuple[str, ...]
    identifiable: bool | None = None  # set by `run_quality`, which sees the whole folder

    def as_dict(self) -> dict[str, object]:
        """Plain values, for JSON."""
        return asdict(self)


def card_quality(
    card: Card, document: str, examples: Mapping[str, str] | None = None
) -> CardQuality:
    """The quality counts of one card against the extracted text it was made from.

    `examples`: each table's prompt example (table name to text), for `example_copies`.
    """
    keyword_hits = sum(occurs(k, document) for k in card.keywords)
    tables: dict[str, Sequence[Row]] = {name: getattr(card, name) for name in TABLES}
    rows = [row for table in tables.values() for row in table]
    verified = sum(
        row.evidence is not None
        and evidence_match(row.evidence.quote, row.evidence.start, row.evidence.end, document)
        is not None
        for row in rows
    )
    claims = summary_claims(card.summary or "")
    unsupported = tuple(c for c in claims if not claim_grounded(c, document))
    return CardQuality(
        complete=not card.missing_sections(),
        missing=tuple(card.missing_sections()),
        keywords=len(card.keywords),
        keywords_grounded=keyword_hits,
        rows=len(rows),
        rows_verified=verified,
        rows_flagged=sum(not row.grounded for row in rows),
        duplicate_rows=sum(duplicate_rows(table) for table in tables.values()),
        echo_rows=echo_rows(rows),
        example_rows=sum(
            example_copies(table, (examples or {}).get(name, ""), document)
            for name, table in tables.items()
        ),
        number_rows=invented_numbers(rows, document),
        technologies=len(card.technologies),
        technologies_named=technology_names(card.technologies, document),
        claims=len(claims),
        claims_grounded=len(claims) - len(unsupported),
        unsupported_claims=unsupported,
    )


def _terms(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


class Bm25:
    """Okapi BM25 (k1 1.5, b 0.75) over a fixed set of documents."""

    def __init__(self, documents: Sequence[str]) -> None:
        self.bags = [Counter(_terms(d)) for d in documents]
        self.lengths = [sum(bag.values()) for bag in self.bags]
        self.average = sum(self.lengths) / max(1, len(self.lengths)) or 1.0
        self.frequency: Counter[str] = Counter(term for bag in self.bags for term in bag)

    def scores(self, query: str) -> list[float]:
        """Each document's score for the query."""
        n = len(self.bags)
        terms = set(_terms(query))
        out = []
        for bag, length in zip(self.bags, self.lengths, strict=True):
            norm = _BM25_K1 * (1 - _BM25_B + _BM25_B * length / self.average)
            score = 0.0
            for term in terms & bag.keys():
                df, tf = self.frequency[term], bag[term]
                # The "1 +" keeps idf positive for terms most documents have (as Lucene does).
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * tf * (_BM25_K1 + 1) / (tf + norm)
            out.append(score)
        return out

    def top1(self, query: str | None, own: int) -> bool:
        """True when the query ranks document `own` strictly first."""
        if not query or not query.strip():
            return False
        scores = self.scores(query)
        # A tie with another document is a miss: the query did not single its document out.
        return all(scores[own] > s for i, s in enumerate(scores) if i != own)


@dataclass(frozen=True)
class RunQuality:
    """Quality figures of a set of cards; rates are 0..1, None when nothing was counted."""

    cards: int
    schema_complete: float | None
    keyword_grounding: float | None
    evidence_verified: float | None
    entity_grounding: float | None
    duplicate_rows: float | None
    echo_rows: float | None
    example_rows: float | None  # None when no examples were given
    number_rows: float | None
    technology_naming: float | None
    identifiability: float | None

    def index(self) -> float | None:
        """One number for charts: the mean of the rates, faults counted as 1 - rate."""
        faults = [self.duplicate_rows, self.echo_rows, self.example_rows, self.number_rows]
        rates = [
            self.schema_complete,
            self.keyword_grounding,
            self.evidence_verified,
            self.entity_grounding,
            *(None if r is None else 1 - r for r in faults),
            self.technology_naming,
            self.identifiability,
        ]
        known = [r for r in rates if r is not None]
        return sum(known) / len(known) if known else None

    def as_dict(self) -> dict[str, object]:
        """Plain values (and the index), for JSON and CSV."""
        return {**asdict(self), "index": self.index()}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def run_quality(
    cards: Mapping[str, Card],
    documents: Mapping[str, str],
    examples: Mapping[str, str] | None = None,
) -> tuple[RunQuality, dict[str, CardQuality]]:
    """Figures of every card (keyed like `documents`) and of the run.

    `documents` is every document of the folder, including those without a card: they are
    the haystack summaries must be identified in. `examples` as for `card_quality`; without
    them the run has no example-copies figure.
    """
    keys = list(documents)
    index = Bm25([documents[k] for k in keys])
    per_card: dict[str, CardQuality] = {}
    for key, card in cards.items():
        figures = card_quality(card, documents[key], examples)
        hit = index.top1(card.summary, keys.index(key))
        per_card[key] = CardQuality(**{**asdict(figures), "identifiable": hit})
    return summarise(per_card.values(), examples=bool(examples)), per_card


def summarise(figures: Iterable[CardQuality], examples: bool = False) -> RunQuality:
    """Add up per-card counts into the run's rates (`examples`: were example copies counted)."""
    items = list(figures)

    def total(name: str) -> int:
        return sum(int(getattr(f, name)) for f in items)

    scored = [f for f in items if f.identifiable is not None]
    return RunQuality(
        cards=len(items),
        schema_complete=_rate(total("complete"), len(items)),
        keyword_grounding=_rate(total("keywords_grounded"), total("keywords")),
        evidence_verified=_rate(total("rows_verified"), total("rows")),
        entity_grounding=_rate(total("claims_grounded"), total("claims")),
        duplicate_rows=_rate(total("duplicate_rows"), total("rows")),
        echo_rows=_rate(total("echo_rows"), total("rows")),
        example_rows=_rate(total("example_rows"), total("rows")) if examples else None,
        number_rows=_rate(total("number_rows"), total("rows")),
        technology_naming=_rate(total("technologies_named"), total("technologies")),
        identifiability=_rate(sum(bool(f.identifiable) for f in scored), len(scored)),
    )
