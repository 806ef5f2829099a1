"""Sentences of a text, with their character offsets: the units evidence is quoted in."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? (and closing quotes/brackets) before whitespace, or at a line break.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n+")
_MIN_WORDS = 4
_MAX_WORDS = 40


@dataclass(frozen=True)
class Sentence:
    """A span of the text: `text == source[start:end]`."""

    start: int
    end: int
    text: str


def split_sentences(text: str) -> list[Sentence]:
    """Sentences of at least four words; long ones are cut at a word boundary near 40 words."""
    sentences: list[Sentence] = []
    start = 0
    for match in [*_BOUNDARY.finditer(text), None]:
        end = match.start() if match else len(text)
        if match and match.group(0)[0] in "\"'”’)]":
            end += len(match.group(0).rstrip())
        chunk = text[start:end]
        offset = start + (len(chunk) - len(chunk.lstrip()))
        chunk = chunk.strip()
        words = chunk.split()
        if len(words) >= _MIN_WORDS:
            if len(words) > _MAX_WORDS:
                cut = _nth_word_end(chunk, _MAX_WORDS)
                chunk = chunk[:cut]
            sentences.append(Sentence(offset, offset + len(chunk), chunk))
        start = match.end() if match else len(text)
    return sentences


def _nth_word_end(text: str, n: int) -> int:
    for i, match in enumerate(re.finditer(r"\S+", text), start=1):
        if i == n:
            return match.end()
    return len(text)
