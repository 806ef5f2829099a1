"""Article → card: the document is evaluated once, then every section continues from it.

The layout of every prompt is

    [system + user-turn markup] "Document:" <document as plain text>      ← shared prefix
    <section instruction> [end of turn, start of answer] <scaffold> ...   ← per section

so each section rewinds to the end of the shared prefix and pays only for its own tokens.
Labels, separators and quotes are fed; the model decodes only content. Table rows start with
evidence: the model picks one of the document's sentences (it decodes only until the choice is
unique), so every row's quote is a real span of the text by construction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from . import __version__
from .card import (
    CATEGORIES,
    DOCUMENT_TYPES,
    Behavior,
    Card,
    Category,
    DocumentType,
    Evidence,
    Issue,
    Provenance,
    SectionRun,
    Signal,
    Technology,
)
from .constraints import (
    CONTINUING,
    TRIMMED,
    FreeText,
    Numbers,
    Vocabulary,
    first_word,
    is_placeholder,
    stems,
)
from .document import Article
from .engine import Counters, Engine
from .formats import SYSTEM, PromptFormat
from .grounding import Row, dedupe_rows, flag_summary, verify_rows
from .keyphrases import STOP_WORDS, candidate_phrases
from .prompts import PromptTemplate, load_template
from .sentences import Sentence, split_sentences

#: Card sections in card order, with the prompt template that makes each.
SECTION_PROMPTS: dict[str, str] = {
    "keywords": "extract_keywords",
    "themes": "name_themes",
    "other": "classify_document",
    "summary": "summarize_document",
    "signals": "extract_signals",
    "behaviors": "extract_behaviors",
    "technologies": "extract_technologies",
    "issues": "extract_issues",
}
SECTIONS: tuple[str, ...] = tuple(SECTION_PROMPTS)
TITLE_PROMPT = "write_title"
#: Values a classification prompt may use. The built-in one lists only the types: shown the
#: categories too, small models answered the list's first one for nearly every document
#: (benchmarks/results/classify.md), so the category is weighed as the answer's own words.
CLASSIFY_VALUES = {"categories": ", ".join(CATEGORIES), "types": ", ".join(DOCUMENT_TYPES)}
#: How categories read in the answer's sentence ("mainly about the economy"); others as named.
_CATEGORY_WORDS = {"economy": "the economy", "environment": "the environment",
                   "other": "something else"}  # fmt: skip

#: Rows asked for per table (fewer for short documents); twice as many are kept after merging.
ROWS = {"signals": 4, "behaviors": 5, "technologies": 3, "issues": 5}
_SHORT_CHARS = 1500  # a document (or part) this short is asked for fewer keywords and themes
_NAME_PENALTY = 2.0  # logit penalty on tokens already used in this table's names
# Logit penalty on content words already written in the row: each cell should add something.
_ECHO_PENALTY = 3.0
# Logit penalty on words of the prompt's example that the document does not use: enough to
# outweigh a tiny model's pull to copy them.
_FOREIGN_PENALTY = 20.0
_WORDS = re.compile(r"[a-z]+")
# A theme names a subject: "the impact of", "in terms" start a phrase about one. (Refused at
# the first piece, so words written with such a piece first, "by" + "zantine", are lost.)
_THEME_NO_START = CONTINUING | frozenset(b"the a an in to".split())
# Words a card may always use even when its example had them and the document does not.
_COMMON = frozenset(stems(" ".join(sorted(STOP_WORDS)).encode()))
# A description is asked for in one sentence: "Many" or "15% seconds" describes nothing.
_DESCRIPTION_MIN_WORDS = 3
_SUMMARY_MIN_WORDS = 8
_SUMMARY_MIN_CHARS = 60  # of a summary asked again
_SUMMARY_START = "The document discusses"  # how good summaries by small models tend to begin
_SUMMARY_MIN_SHARED = 3  # distinct uncommon word stems of the document
SECTION_RESERVE = 1400  # context tokens kept free for one section's instruction and answer


@dataclass(frozen=True)
class ModelInfo:
    """What the card's provenance says about the model."""

    id: str
    file: str
    sha256: str
    family: str


@dataclass
class _Draft:
    """A card's content before it is validated; merged across the parts of a long document."""

    keywords: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    category_votes: dict[Category, float] = field(default_factory=dict)
    type_votes: dict[DocumentType, float] = field(default_factory=dict)
    summaries: list[str] = field(default_factory=list)
    rows: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    runs: list[SectionRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Prompter:
    """Feeds prompts for one model family and runs sections on a shared document prefix."""

    def __init__(self, engine: Engine, fmt: PromptFormat, prompts: dict[str, PromptTemplate]):
        self.engine = engine
        self.fmt = fmt
        self.prompts = prompts
        self.template_tokens = 0

    def feed_markup(self, text: str) -> None:
        tokens = self.engine.markup_tokens(text)
        self.template_tokens += len(tokens)
        self.engine.feed(tokens, kind="prompt")

    def feed_text(self, text: str) -> None:
        tokens = self.engine.text_tokens(text)
        self.template_tokens += len(tokens)
        self.engine.feed(tokens, kind="prompt")

    def start_document(self, document_tokens: list[int]) -> int:
        """Evaluate the shared prefix; returns the position every section starts from."""
        self.engine.rewind(0)
        header = self.engine.bos()
        self.template_tokens += len(header)
        self.engine.feed(header, kind="prompt")
        if self.fmt.system_in_user:
            self.feed_markup(self.fmt.user_start)
            self.feed_text(SYSTEM + "\n\nDocument:\n")
        else:
            self.feed_markup(self.fmt.system_start)
            self.feed_text(SYSTEM)
            self.feed_markup(self.fmt.turn_end + self.fmt.user_start)
            self.feed_text("Document:\n")
        self.engine.feed(document_tokens, kind="prompt")
        self.engine.flush()  # evaluated once, before any section: its cost is the card's
        return self.engine.position

    def start_answer(self, prompt: str, values: dict[str, str], scaffold: str) -> None:
        """Feed a section's instruction, close the user turn and open the answer."""
        self.feed_text("\n\n" + self.prompts[prompt].render(values))
        self.feed_markup(self.fmt.turn_end + self.fmt.answer_start)
        self.feed_text(scaffold)

    def label(self, text: str) -> None:
        """Feed a field label (scaffolding the model does not decode)."""
        self.feed_text(text)


def summary_problem(
    summary: str, document_stems: set[bytes], prompt_stems: frozenset[bytes] = frozenset()
) -> str | None:
    """Why a summary cannot stand for its document, or None.

    Small models sometimes answer with a copy of an instruction ("100 words to 150 words"), a
    sentence about the prompt ("The document above is a summary of the main points"), or a run
    of numbers; each says nothing of the document. Words the prompt also uses do not count.
    """
    words = re.findall(r"[^\W\d_]+|\d+", summary)
    if len(words) < _SUMMARY_MIN_WORDS:
        return "is too short"
    if sum(w.isdigit() for w in words) * 3 > len(words):
        return "is mostly numbers"
    shared = {w for w in stems(summary.encode()) if len(w) == 4} & document_stems
    if len(shared - _COMMON - prompt_stems) < _SUMMARY_MIN_SHARED:
        return "does not use the document's words"
    return None


def _is_content(piece: bytes) -> bool:
    """A token that carries meaning: a word of three letters or more, not a stop word."""
    word = piece.strip().lower().decode("utf-8", "ignore")
    return len(word) >= 3 and word.isalpha() and word not in STOP_WORDS


def _clean(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(TRIMMED)
    return text


class Analyser:
    """Makes cards with one loaded model."""

    def __init__(
        self,
        engine: Engine,
        fmt: PromptFormat,
        model: ModelInfo,
        *,
        prompts_dir: Path | None = None,
        sections: Sequence[str] = SECTIONS,
        seed: int = 0,
    ) -> None:
        self.engine = engine
        self.model = model
        self.sections = [s for s in SECTIONS if s in sections]
        self.seed = seed
        names = [SECTION_PROMPTS[s] for s in self.sections] + [TITLE_PROMPT]
        self.prompts = {name: load_template(name, prompts_dir) for name in names}
        self.prompter = _Prompter(engine, fmt, self.prompts)

    # --- the whole card -----------------------------------------------------------------------

    def analyse(
        self,
        article: Article,
        network_calls: Callable[[], int] = lambda: 0,
        progress: Callable[[str], None] | None = None,
    ) -> Card:
        """Make the card of one article; `progress` hears the name of each step as it starts."""
        started = time.perf_counter()
        engine = self.engine
        before = engine.counters.snapshot()
        self.prompter.template_tokens = 0
        document_tokens = engine.text_tokens(article.text)
        parts = self._split(article.text, len(document_tokens))
        draft = _Draft()
        title = article.title
        for index, (offset, part_text) in enumerate(parts):
            part_tokens = engine.text_tokens(part_text) if len(parts) > 1 else document_tokens
            base = self.prompter.start_document(part_tokens)
            self._part_text = part_text
            self._part_stems = set(stems(part_text.encode()))
            self._part_numbers = Numbers.of(part_text)
            named = _NAMED_FROM_DOCUMENT.intersection(self.sections)
            self._part_vocabulary = Vocabulary.of(part_text) if named else None
            self._part_words = set(_WORDS.findall(part_text.lower()))
            self._part_tokens = self._written_with(part_tokens, self._part_words)
            sentences = [
                Sentence(s.start + offset, s.end + offset, s.text)
                for s in split_sentences(part_text)
            ]
            for section in self.sections:
                if progress:
                    part = f" (part {index + 1}/{len(parts)})" if len(parts) > 1 else ""
                    progress(f"{section}{part}")
                self._run_section(section, base, sentences, draft, len(part_text))
            if index == 0 and not title:
                title = self._title(base)
        if len(parts) > 1 and "summary" in self.sections:
            self._merge_summaries(draft)
            draft.notes.append(f"split into {len(parts)} parts; summary made from part summaries")
        used = engine.counters.since(before)
        return self._card(article, title, draft, document_tokens, parts, used, started,
                          network_calls())  # fmt: skip

    def _split(self, text: str, n_tokens: int) -> list[tuple[int, str]]:
        budget = self.engine.n_ctx - SECTION_RESERVE
        if n_tokens <= budget:
            return [(0, text)]
        # Split at paragraph or sentence boundaries into parts of at most `budget` tokens,
        # estimated from the document's own characters-per-token ratio.
        chars = int(len(text) / n_tokens * budget * 0.9)
        parts: list[tuple[int, str]] = []
        start = 0
        while start < len(text):
            end = min(len(text), start + chars)
            if end < len(text):
                window = text[start:end]
                cut = max(window.rfind("\n"), window.rfind(". "))
                if cut > chars // 2:
                    end = start + cut + 1
            parts.append((start, text[start:end]))
            start = end
        return parts

    # --- sections -----------------------------------------------------------------------------

    def _run_section(
        self, section: str, base: int, sentences: list[Sentence], draft: _Draft, n_chars: int
    ) -> None:
        engine = self.engine
        engine.rewind(base)
        before = engine.counters.snapshot()
        template_before = self.prompter.template_tokens
        started = time.perf_counter()
        notes: list[str] = []
        prompt = SECTION_PROMPTS[section]
        if section == "keywords":
            draft.keywords += self._keywords(prompt, n_chars, self._part_text)
        elif section == "themes":
            draft.themes += self._themes(prompt, n_chars)
        elif section == "other":
            self._classify(prompt, draft)
        elif section == "summary":
            draft.summaries.append(self._summary(prompt, notes))
        else:
            rows = self._table(section, prompt, sentences, notes)
            if not sentences:
                notes.append("no rows: the document has no sentences to quote")
            draft.rows.setdefault(section, []).extend(rows)
        used = engine.counters.since(before)
        draft.runs.append(
            SectionRun(
                section=section,
                prompt_version=self.prompts[prompt].version,
                prompt_tokens=used.prompt,
                fed_tokens=used.fed,
                decoded_tokens=used.decoded,
                seconds=round(time.perf_counter() - started, 3),
                template_tokens=self.prompter.template_tokens - template_before,
                notes=notes,
            )
        )

    def _keywords(self, prompt: str, n_chars: int, text: str) -> list[str]:
        """Keywords chosen by the model among candidate phrases of the document."""
        engine = self.engine
        candidates = candidate_phrases(text)
        count = min(len(candidates), item_counts(n_chars)["keywords"])
        if not count:
            return []
        self.prompter.start_answer(prompt, {"count": str(count)}, "Keywords:\n-")
        options = [engine.text_tokens(" " + c) for c in candidates]
        left = list(range(len(candidates)))
        chosen: list[str] = []
        for i in range(count):
            if i:
                self.prompter.label("\n-")
            pick, _ = engine.choose_tokens([options[j] for j in left])
            chosen.append(candidates[left.pop(pick)])
        return chosen

    def _themes(self, prompt: str, n_chars: int) -> list[str]:
        count = item_counts(n_chars)["themes"]
        self.prompter.start_answer(prompt, {"count": str(count)}, "Themes:\n-")
        items: list[str] = []
        penalties: dict[int, float] = {}
        for i in range(count):
            if i:
                self.prompter.label("\n-")
            avoid = tuple(t.encode() for t in items)
            constraint = FreeText(
                max_chars=40,
                max_words=3,  # the prompt's rule: one to three words each
                avoid=avoid,
                foreign=self._foreign(prompt, instructions=True),
                no_start=_THEME_NO_START,
                numbers=self._part_numbers,
            )
            item = _clean(self.engine.generate(constraint, max_tokens=10, penalties=penalties))
            item = item.lower()
            if item and item not in items:
                items.append(item)
            for token in self.engine.text_tokens(" " + item):
                penalties[token] = _NAME_PENALTY
        return items

    def _classify(self, prompt: str, draft: _Draft) -> None:
        self.prompter.start_answer(prompt, CLASSIFY_VALUES, "The document is mainly about")
        _, beliefs = self.engine.weigh([" " + _CATEGORY_WORDS.get(c, c) for c in CATEGORIES])
        for category, p in zip(CATEGORIES, beliefs, strict=True):
            draft.category_votes[category] = draft.category_votes.get(category, 0.0) + p
        self.prompter.label(".\nType:")
        _, beliefs = self.engine.choose([" " + t for t in DOCUMENT_TYPES])
        for kind, p in zip(DOCUMENT_TYPES, beliefs, strict=True):
            draft.type_votes[kind] = draft.type_votes.get(kind, 0.0) + p

    def _summary(self, prompt: str, notes: list[str]) -> str:
        """The summary; one that is not about the document is asked again once, with the reason."""
        engine = self.engine
        self.prompter.start_answer(prompt, {}, "")
        start = engine.position
        constraint = FreeText(
            max_chars=700,
            sentences=5,
            min_chars=20,
            foreign=self._foreign(prompt),
            numbers=self._part_numbers,
        )
        self.prompter.label("Summary:")
        first = _trim_sentence(_clean(engine.generate(constraint, 150)))
        asked = frozenset(stems(self.prompts[prompt].render({}).encode()))
        reason = summary_problem(first, self._part_stems, asked)
        if reason is None:
            return first
        engine.rewind(start)
        # The retry is started for the model, and may not stop as early as the first answer.
        self.prompter.label(f"(Summary again: {reason}.)\nSummary: {_SUMMARY_START}")
        retry = replace(constraint, min_chars=_SUMMARY_MIN_CHARS)
        second = _trim_sentence(_clean(f"{_SUMMARY_START} {engine.generate(retry, 150)}"))
        if summary_problem(second, self._part_stems, asked) is None:
            return second
        notes.append(f"the summary {reason}, also after one retry")
        return first

    def _title(self, base: int) -> str:
        self.engine.rewind(base)
        self.prompter.start_answer(TITLE_PROMPT, {}, "Title:")
        constraint = FreeText(
            max_chars=90, foreign=self._foreign(TITLE_PROMPT), numbers=self._part_numbers
        )
        text = self.engine.generate(constraint, 24)
        return _clean(text) or "Untitled document"

    def _relevancy(self) -> int:
        self.prompter.label("\nRelevancy (1-5):")
        _, beliefs = self.engine.choose([" 1", " 2", " 3", " 4", " 5"])
        expected = sum((i + 1) * p for i, p in enumerate(beliefs))
        return min(5, max(1, round(expected)))

    def _table(
        self, section: str, prompt: str, sentences: list[Sentence], notes: list[str]
    ) -> list[dict[str, object]]:
        engine = self.engine
        wanted = min(ROWS[section], max(1, len(sentences) // 3))
        if not sentences:
            return []
        self.prompter.start_answer(prompt, {"count": str(wanted)}, 'Evidence: "')
        options = [engine.text_tokens(s.text) for s in sentences]
        unused = set(range(len(sentences)))
        example = self._example_penalties(prompt)
        foreign = self._foreign(prompt)
        penalties = dict(example)
        rows: list[dict[str, object]] = []
        fields = _TABLE_FIELDS[section]
        # The example is a row too: small models copy its cells, and its name's form
        # ("Part-time car use" -> "Part-of-a-business") unless its first word is refused.
        template = self.prompts[prompt]
        values = [template.example_value(label) for label in ["Evidence"] + [f[1] for f in fields]]
        example_row = tuple(v.lower().encode() for v in values if v)
        name = values[1]
        name_starts = CONTINUING | ({first_word(name.encode())} - {b""} if name else set())
        for i in range(wanted):
            if not unused:
                break
            if i:
                self.prompter.label('\n\nEvidence: "')
            order = sorted(unused)
            pick, _ = engine.choose_tokens([options[j] for j in order])
            chosen = sentences[order[pick]]
            unused.discard(order[pick])
            row: dict[str, object] = {
                "evidence": Evidence(
                    quote=chosen.text, start=chosen.start, end=chosen.end, match="exact"
                ),
                "grounded": True,
            }
            self.prompter.label('"')
            said = dict(example)  # and content tokens of this row's cells so far
            for key, label, limit in fields:
                is_name = key == "name"
                earlier = tuple(v.lower().encode() for v in row.values() if isinstance(v, str))
                # Every cell of the rows before, whatever its column: a tiny model moves a
                # row's name into the next row's "In ten years".
                earlier += tuple(
                    v.lower().encode() for r in rows for v in r.values() if isinstance(v, str)
                )
                constraint = FreeText(
                    max_chars=limit * 6,
                    sentences=None if is_name else 1,
                    avoid=earlier + example_row,
                    foreign=foreign,
                    numbers=self._part_numbers,
                    vocabulary=self._part_vocabulary
                    if is_name and section in _NAMED_FROM_DOCUMENT
                    else None,
                    no_start=name_starts if is_name else CONTINUING,
                    refused=b",:;" if is_name else b"",  # a name is a label, not a sentence
                    min_words=_DESCRIPTION_MIN_WORDS if key == "description" else 0,
                )
                value = self._field(label, constraint, limit, penalties if is_name else said)
                if not value:
                    break
                row[key] = value
                for token in engine.text_tokens(" " + value):
                    if is_name:
                        penalties[token] = max(penalties.get(token, 0.0), _NAME_PENALTY)
                    if _is_content(engine.piece(token)):
                        said[token] = max(said.get(token, 0.0), _ECHO_PENALTY)
            else:
                row["relevancy"] = self._relevancy()
                rows.append(row)
                continue
            notes.append(f"dropped a row: no usable {label.lower()} after one retry")
            self.prompter.label("\n")  # the next row starts on its own line
        return rows

    def _field(
        self,
        label: str,
        constraint: FreeText,
        limit: int,
        penalties: dict[int, float] | None,
    ) -> str:
        """One table cell; an empty or placeholder answer is asked again once, with the reason.

        Returns "" when the second answer is no better.
        """
        engine = self.engine
        start = engine.position
        self.prompter.label(f"\n{label}:")
        value = _clean(engine.generate(constraint, max_tokens=limit, penalties=penalties))
        if value and not is_placeholder(value):
            return value
        reason = "it was empty" if not value else f'"{value}" says nothing'
        engine.rewind(start)
        advice = "Use words of the document"
        self.prompter.label(f"\n({label} again: {reason}. {advice}.)\n{label}:")
        # Not the note's own words: asked again, a small model may answer with them.
        note = tuple(t.lower().encode() for t in (reason, advice, f"{label} again"))
        retry = replace(constraint, avoid=constraint.avoid + note)
        value = _clean(engine.generate(retry, max_tokens=limit, penalties=penalties))
        value = value if value and not is_placeholder(value) else ""
        # The note leaves the context once answered: later cells would copy it.
        engine.rewind(start)
        if value:
            self.prompter.label(f"\n{label}:")
            engine.feed(engine.text_tokens(" " + value))
        return value

    # --- merging and validation ---------------------------------------------------------------

    def _foreign(self, prompt: str, instructions: bool = False) -> frozenset[bytes]:
        """Words of the prompt's example that the document does not use: never to be written.

        With `instructions`, the words of its task and rules too, for a field with no example
        to copy, where small models copy the rules instead ("one to three words each").
        """
        template = self.prompts[prompt]
        text = template.example_text
        if instructions:
            text += "\n" + template.instructions_text
        words = stems(text.encode())
        return frozenset(w for w in words if len(w) == 4 and w not in self._part_stems) - _COMMON

    def _example_penalties(self, prompt: str) -> dict[int, float]:
        """Logit penalties on the first token of each word of the prompt's example that the
        document does not use: tiny models otherwise write about the example's topic.

        Whole words, so that the short ones the stem filter misses ("car") count too; only
        first tokens of three letters or more that the document's own words are not written
        with, so that no word the document uses is held back, while a token that merely
        begins one ("comm" of "commuters" beside "community") still is.
        """
        words = set(_WORDS.findall(self.prompts[prompt].example_text.lower()))
        words = (words | {w[:-1] for w in words if w.endswith("s")}) - self._part_words
        penalties: dict[int, float] = {}
        for word in words - STOP_WORDS:
            for variant in (" " + word, " " + word.capitalize()):
                token = self.engine.text_tokens(variant)[0]
                start = self.engine.piece(token).strip()
                if len(start) >= 3 and token not in self._part_tokens:
                    penalties[token] = _FOREIGN_PENALTY
        return penalties

    def _written_with(self, part_tokens: list[int], part_words: set[str]) -> set[int]:
        """The tokens a part is written with, also in its words' lower-case and capitalised
        forms (a word may begin a sentence or a table cell)."""
        words = sorted(part_words)
        tokens = set(part_tokens)
        for form in (words, [w.capitalize() for w in words]):
            tokens.update(self.engine.text_tokens(" " + " ".join(form)))
        return tokens

    def _merge_summaries(self, draft: _Draft) -> None:
        joined = "\n".join(draft.summaries)
        tokens = self.engine.text_tokens(joined)
        self._part_stems = set(stems(joined.encode()))  # the merged summary's document
        self._part_numbers = Numbers.of(joined)
        base = self.prompter.start_document(tokens)
        self.engine.rewind(base)
        draft.summaries = [self._summary(SECTION_PROMPTS["summary"], draft.notes)]

    def _card(
        self,
        article: Article,
        title: str | None,
        draft: _Draft,
        document_tokens: list[int],
        parts: list[tuple[int, str]],
        used: Counters,
        started: float,
        network_calls: int,
    ) -> Card:
        def table(section: str, row_type: type[Row]) -> list[Row]:
            rows = [row_type.model_validate(row) for row in draft.rows.get(section, [])]
            return dedupe_rows(verify_rows(rows, article.text))[: ROWS[section] * 2]

        summary = draft.summaries[0] if draft.summaries else None
        return Card(
            src=article.src,
            title=_clean(title or "") or "Untitled document",
            source=article.source,
            keywords=_dedupe(draft.keywords)[:10],
            themes=_dedupe(draft.themes)[:9],
            category=_most_voted(draft.category_votes),
            type=_most_voted(draft.type_votes),
            summary=summary,
            summary_flags=flag_summary(summary, article.text) if summary else [],
            signals=table("signals", Signal),
            behaviors=table("behaviors", Behavior),
            technologies=table("technologies", Technology),
            issues=table("issues", Issue),
            provenance=Provenance(
                slmscan_version=__version__,
                llama_cpp_version=self.engine.llama_cpp_version,
                model_id=self.model.id,
                model_file=self.model.file,
                model_sha256=self.model.sha256,
                prompt_versions={name: p.version for name, p in sorted(self.prompts.items())},
                seed=self.seed,
                sampling={"method": "greedy, constrained per field", "temperature": 0},
                n_ctx=self.engine.n_ctx,
                threads=self.engine.threads,
                key_cache=self.engine.key_cache,
                document_tokens=len(document_tokens),
                template_tokens=self.prompter.template_tokens,
                prompt_tokens=used.prompt,
                fed_tokens=used.fed,
                decoded_tokens=used.decoded,
                parts=len(parts),
                truncated=False,
                sections=draft.runs,
                notes=draft.notes,
                seconds=round(time.perf_counter() - started, 3),
                network_calls=network_calls,
            ),
        )


# Tables of what the document mentions, whose names are written with the document's words; a
# signal or an issue is the card's own reading ("Shift to small models") and may not be.
_NAMED_FROM_DOCUMENT = frozenset({"technologies"})
_TABLE_FIELDS: dict[str, list[tuple[str, str, int]]] = {
    "signals": [
        ("name", "Signal", 10),
        ("description", "Description", 28),
        ("change", "Change", 20),
        ("ten_year", "In ten years", 20),
        ("driving_force", "Driving force", 14),
    ],
    "behaviors": [("name", "Behavior", 10), ("description", "Description", 28)],
    "technologies": [("name", "Technology", 10), ("description", "Description", 28)],
    "issues": [("name", "Issue", 10), ("description", "Description", 28)],
}
ROW_TYPES: dict[str, type[Signal | Behavior | Technology | Issue]] = {
    "signals": Signal,
    "behaviors": Behavior,
    "technologies": Technology,
    "issues": Issue,
}


_Choice = TypeVar("_Choice", bound=str)


def _most_voted(votes: dict[_Choice, float]) -> _Choice | None:
    return max(votes, key=votes.__getitem__) if votes else None


def item_counts(n_chars: int) -> dict[str, int]:
    """Keywords and themes asked for from a document (or part) of `n_chars` characters."""
    short = n_chars <= _SHORT_CHARS
    return {"keywords": 5 if short else 7, "themes": 3 if short else 5}


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _trim_sentence(text: str) -> str:
    """Cut an answer that ran into its length limit back to its last full sentence."""
    if text.endswith((".", "!", "?")):
        return text
    end = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    return text[: end + 1] if end > 0 else text
