"""Per-field constraints, checked on the token the model chose (see engine.Constraint)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Characters no card field may contain: they break tables or terminals.
_FORBIDDEN = re.compile(rb"[|\x00-\x08\x0b-\x1f\x7f`*#<>\[\]{}\\]")
_SENTENCE_END = re.compile(rb"[.!?](?=\s|$)")
# "1." or "2)." or "3 (" at the start, a "Label:" at the start, or anywhere a quotation mark
# (plain or typographic), the table's evidence label or its relevancy scale.
_LEAK = re.compile(
    rb"\d+\s*[.):,(-]+(?:\s|$)|[A-Z][a-z ]{2,14}:|.*(?:\"|\xe2\x80\x9c|\xe2\x80\x9d)"
    rb"|.*Evidence|.*\(1-5\)",
    re.DOTALL,
)
# A number with the letters glued to it: "3D" and "1800s" do not make "3" or "1800" the page's.
_NUMBER = re.compile(rb"\d+(?:[.,]\d+)*[A-Za-z]*")
_DIGIT = re.compile(rb"\d")
_NUMBER_END = re.compile(rb"\d[.,\d]*[A-Za-z]*$")  # a number the next piece may go on with
_OPEN_NUMBER = re.compile(rb"\d+(?:[.,]\d+)*\.$")  # "1." may yet become "1.5"
_LOWER_WORD = re.compile(rb"[a-z0-9\x80-\xff]+")  # of lower-cased text
# Cells that fill a slot without saying anything.
_PLACEHOLDER = re.compile(
    r"(?:n/?a|none|null|nil|nothing|unknown|tbd|tba|todo|placeholder|example|same as above"
    r"|not (?:applicable|available|given|known|mentioned|specified|stated)|lorem ipsum.*"
    r"|\W*)",
    re.IGNORECASE,
)
# Words an English phrase cannot end on: a cell that stops on one was cut off mid-thought.
_DANGLING = frozenset(
    b"a an the of to in on at by for from with as and or but nor that which whether "
    b"is are was were be been has have had will would should could can may must "
    b"its their our your my".split()
)
# Words that only continue a phrase: an answer starting with one is a fragment ("of device").
CONTINUING = frozenset(
    b"of and or nor but than whether is are was were been has had would should could".split()
)
# What a cell's cleaning strips from its ends (analyse._clean): judged as the reader sees it.
TRIMMED = " \"'-:;,"
_FIRST_WORD = re.compile(rb"\s*([A-Za-z]+)")


def stems(text: bytes) -> list[bytes]:
    """Words cut to four letters, so that "losses" and "loss" count as the same word."""
    return [w[:4] for w in _LOWER_WORD.findall(text.lower())]


@dataclass(frozen=True)
class Numbers:
    """The numbers a document writes ("2019", "1.5", "40,000", "3D"): a card writes no others.

    Tiny models fill cells with figures that look like facts ("37% increase in heat pumps")
    or with the prompt's format ("2 (part-time)", "555599998"); a number the document never
    wrote is never a fact the card can show.
    """

    whole: frozenset[bytes]
    prefixes: frozenset[bytes]  # of every number, so that one can be checked as it is written

    @classmethod
    def of(cls, text: str) -> Numbers:
        whole = frozenset(_NUMBER.findall(text.encode("utf-8")))
        return cls(whole, frozenset(n[:i] for n in whole for i in range(1, len(n) + 1)))

    def allows(self, text: bytes) -> bool:
        """Is every number in `text` one of the document's, the last perhaps being written?"""
        for match in _NUMBER.finditer(text):
            number, rest = match.group(), text[match.end() :]
            if not rest:
                written = number in self.prefixes
            elif rest in (b".", b","):  # "1." ends a sentence, or goes on as "1.5"
                written = number in self.whole or number + rest in self.prefixes
            else:
                written = number in self.whole
            if not written:
                return False
        return True

    def continues(self, text: bytes) -> bool:
        """Does `text` end in a number that may go on as one of the document's ("1." of "1.5")?"""
        match = _OPEN_NUMBER.search(text)
        return match is not None and match.group() in self.prefixes


@dataclass(frozen=True)
class Vocabulary:
    """The words a document writes, with their singulars and plurals: a cell that names what
    the document mentions uses no others.

    Asked for the technologies a page mentions, tiny models name ones it never does ("Quantum
    computing" on a page about AI's energy use). Single letters and words with digits are not
    judged (`Numbers` judges the numbers).
    """

    whole: frozenset[bytes]
    prefixes: frozenset[bytes]  # of every word, so that one can be checked as it is written

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        whole = frozenset(f for w in _words(text.encode("utf-8")) for f in _forms(w))
        return cls(whole, frozenset(w[:i] for w in whole for i in range(1, len(w) + 1)))

    def allows(self, text: bytes, *, finished: bool) -> bool:
        """Is every word of `text` the document's, the last perhaps being written?"""
        words = _words(text)
        for i, word in enumerate(words):
            if len(word) < 2 or _DIGIT.search(word):
                continue
            known = self.prefixes if not finished and i == len(words) - 1 else self.whole
            if word not in known:
                return False
        return True


def _words(text: bytes) -> list[bytes]:
    """Lower-case words; a typographic apostrophe splits like a plain one ("Rust’s")."""
    return _LOWER_WORD.findall(text.lower().replace("’".encode(), b"'"))


def _forms(word: bytes) -> tuple[bytes, ...]:
    """A word with its plural and singular as English writes them, give or take."""
    forms = [word, word + b"s", word + b"es"]
    if word.endswith(b"y"):
        forms.append(word[:-1] + b"ies")
    if word.endswith(b"ies"):
        forms.append(word[:-3] + b"y")
    if word.endswith(b"es"):
        forms.append(word[:-2])
    if word.endswith(b"s"):
        forms.append(word[:-1])
    return tuple(forms)


@dataclass
class FreeText:
    """One line of prose: no table or markup characters, bounded, optionally a few sentences."""

    max_chars: int = 300
    # A word begun beyond this many ends the field before it: refusing it would leave the model
    # to glue letters on the last word instead ("using" + "t-sne").
    max_words: int | None = None
    min_words: int = 0  # the field may not end before this many words
    sentences: int | None = None  # stop after this many sentences
    min_chars: int = 2
    avoid: tuple[bytes, ...] = ()  # earlier fields, lower-cased: not to be copied
    foreign: frozenset[bytes] = frozenset()  # word stems of the prompt's example not in the text
    numbers: Numbers | None = None  # the only numbers the field may write (None: any)
    vocabulary: Vocabulary | None = None  # the only words the field may write (None: any)
    no_start: frozenset[bytes] = CONTINUING  # lower-case words the answer may not start with
    refused: bytes = b""  # characters refused on top of the table and markup ones

    def allows(self, text: bytes, piece: bytes) -> bool:
        if _FORBIDDEN.search(piece) or (self.refused and any(c in self.refused for c in piece)):
            return False
        if not text.strip().decode("utf-8", "ignore"):  # no whole character written yet
            # Judged on text and piece together: the first piece of a character split over two
            # tokens (" ₇") decodes to nothing.
            first = (text + piece).strip().decode("utf-8", "ignore")[:1]
            if first and not (_is_letter(first) or first in "0123456789"):
                return False  # a start on punctuation or a mark like "²" is the format leaking in
        if (not text.strip() or text.strip().isalpha()) and self._starts_badly(text + piece):
            return False  # checked while the first word is being written, whatever its pieces
        if _LEAK.match((text + piece).lstrip()):
            return False  # list numbers, labels and quotes are the prompt's format leaking in
        words = stems(text + piece)
        if len(words) >= 2 and any(_starts_like(words, stems(a)) for a in self.avoid):
            return False  # small models fill a field with the one before it
        if any(len(w) == 4 and w in self.foreign for w in words[-2:]):
            return False  # ... or with the example's topic, which the document never mentions
        if self.numbers is not None and (_DIGIT.search(piece) or _NUMBER_END.search(text)):
            if not self.numbers.allows(text + piece):
                return False
            if self._ends_early(text) and not piece[:1].isdigit():
                return False  # "with a 1." + " The": the last sentence would end on "1."
        if self.vocabulary is not None and not self.vocabulary.allows(text + piece, finished=False):
            return False
        return len(text) + len(piece) <= self.max_chars

    def may_stop(self, text: bytes) -> bool:
        stripped = text.strip()
        if self._over_words(text) or self._under_words(text):
            return False
        if stripped.lower() in self.avoid or is_placeholder(stripped.decode("utf-8", "ignore")):
            return False
        words = stripped.rstrip(TRIMMED.encode()).lower().split()
        if words and words[-1] in _DANGLING:
            return False
        if self.numbers is not None and not self.numbers.allows(stripped + b" "):
            return False  # "about 1" where the document has only "15"
        if self.vocabulary is not None and not self.vocabulary.allows(stripped, finished=True):
            return False
        # Letters of the decoded text: the bytes of "–" or "€" are not letters.
        letters = sum(_is_letter(c) for c in stripped.decode("utf-8", "ignore"))
        return len(stripped) >= self.min_chars and letters >= 2

    def _starts_badly(self, text: bytes) -> bool:
        """Does the answer's first word, as far as it is written, equal a refused start?"""
        return first_word(text) in self.no_start

    def _under_words(self, text: bytes) -> bool:
        return len(text.split()) < self.min_words

    def _over_words(self, text: bytes) -> bool:
        return self.max_words is not None and len(text.split()) > self.max_words

    def finished(self, text: bytes) -> bool:
        if self._over_words(text):
            return True  # the engine takes the field back to before the extra word
        if self.sentences is None:
            return len(text) >= self.max_chars
        ends = len(_SENTENCE_END.findall(text)) - self._open(text)
        return ends >= self.sentences or len(text) >= self.max_chars

    def _open(self, text: bytes) -> bool:
        """Does the text end on a period that may still be a decimal point ("1." of "1.5")?"""
        return self.numbers is not None and self.numbers.continues(text)

    def _ends_early(self, text: bytes) -> bool:
        """Would the period ending `text` complete the answer's sentences if no digit follows?"""
        return (
            self.sentences is not None
            and self._open(text)
            and len(_SENTENCE_END.findall(text)) >= self.sentences
        )


def first_word(text: bytes) -> bytes:
    """The letters the text starts with, lower-cased ("Part-time" -> "part")."""
    match = _FIRST_WORD.match(text)
    return match.group(1).lower() if match else b""


def _is_letter(char: str) -> bool:
    """A letter as a reader sees one: "É" or "漢", not the subscript "ₑ" or the modifier "ʰ"
    (which `str.isalpha` accepts); they are marks a tiny model copies from formulas."""
    return (
        unicodedata.category(char) in ("Lu", "Ll", "Lt", "Lo")
        and unicodedata.normalize("NFKC", char) == char
    )


def _starts_like(words: list[bytes], earlier: list[bytes]) -> bool:
    """Do `words` begin as `earlier` does, the last of them perhaps a word still being written?

    Refusing a copy only once its word is complete would leave the model half a word it can
    only finish as a non-word ("The app" + "y court"); refused at its first piece, it takes
    another word.
    """
    n = len(words)
    return (
        len(earlier) >= n
        and earlier[: n - 1] == words[:-1]
        and earlier[n - 1].startswith(words[-1])
    )


def is_placeholder(text: str) -> bool:
    """True for an answer that only fills its slot: "N/A", "unknown", "...", "not mentioned"."""
    return _PLACEHOLDER.fullmatch(text.strip().rstrip(".")) is not None
