"""Checks of a card against its document that need no model: duplicates and unsupported names."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import TypeVar

from .card import Behavior, Evidence, Issue, Signal, Technology

Row = TypeVar("Row", Signal, Behavior, Technology, Issue)

_WORDS = re.compile(r"[a-z0-9]+")
_SIMILAR = 0.7  # word-set overlap above which two rows say the same thing


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower()))


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def dedupe_rows(rows: list[Row]) -> list[Row]:
    """Drop rows that repeat a more relevant one (same name, or near-identical text).

    Rows are taken most relevant first (the earlier among equals) and each is checked against
    every row kept so far, so no two kept rows repeat each other: replacing a kept row by a more
    relevant duplicate, instead, could let the newcomer repeat another kept row. Returns the kept
    rows, most relevant first.
    """
    kept: list[Row] = []
    for row in sorted(rows, key=lambda r: -r.relevancy):
        name, text = _words(row.name), _words(row.name + " " + row.description)
        if not any(
            _words(other.name) == name
            or _overlap(_words(other.name + " " + other.description), text) >= _SIMILAR
            for other in kept
        ):
            kept.append(row)
    return kept


# Capitalised words not at the start of a sentence, and numbers: the claims a reader checks.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*")
_NUMBER = re.compile(r"\b\d[\d,.]*\b")


def flag_summary(summary: str, document: str) -> list[str]:
    """Names and numbers in the summary that do not occur in the document."""
    haystack = document.lower()
    flags: list[str] = []
    for match in [*_NAME.finditer(summary), *_NUMBER.finditer(summary)]:
        claim = match.group(0).strip(".,")
        words = claim.split()
        if any(w.lower() not in haystack for w in words) and claim not in flags:
            flags.append(claim)
    return flags


_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "-", "—": "-"})
_FUZZY_MIN = 0.9  # share of the quote's characters a fuzzy match must reproduce


def _normalise(text: str) -> tuple[str, list[int]]:
    """Lower-cased text with quotes, dashes and runs of whitespace unified, and for each
    character of the result its offset in the original."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text.translate(_QUOTES).lower()):
        if ch.isspace():
            if out and out[-1] == " ":
                continue
            ch = " "
        out.append(ch)
        where.append(i)
    return "".join(out), where


def locate_quote(quote: str, text: str) -> Evidence | None:
    """Find a quote in the text: exactly, then normalised, then by a bounded fuzzy match."""
    quote = quote.strip()
    if not quote:
        return None
    start = text.find(quote)
    if start >= 0:
        return Evidence(quote=quote, start=start, end=start + len(quote), match="exact")
    norm_text, where = _normalise(text)
    norm_quote, _ = _normalise(quote)
    start = norm_text.find(norm_quote.strip())
    if start >= 0:
        end = where[start + len(norm_quote.strip()) - 1] + 1
        return Evidence(quote=text[where[start] : end], start=where[start], end=end,
                        match="normalised")  # fmt: skip
    if len(norm_quote) > 400:
        return None  # fuzzy matching is quadratic; long quotes are not quotes
    matcher = SequenceMatcher(None, norm_text, norm_quote.strip(), autojunk=False)
    block = max(matcher.get_matching_blocks(), key=lambda b: b.size)
    if block.size == 0:
        return None
    lo = max(0, block.a - block.b)
    hi = min(len(norm_text), lo + len(norm_quote.strip()))
    window = SequenceMatcher(None, norm_text[lo:hi], norm_quote.strip(), autojunk=False)
    if window.ratio() < _FUZZY_MIN:
        return None
    start, end = where[lo], where[hi - 1] + 1
    return Evidence(quote=text[start:end], start=start, end=end, match="fuzzy")


def verify_rows(rows: list[Row], text: str) -> list[Row]:
    """Re-check each row's evidence against the text; rows whose quote is not there are
    kept with `grounded=False` (left out of the Markdown, flagged in JSON)."""
    checked = []
    for row in rows:
        found = locate_quote(row.evidence.quote, text) if row.evidence else None
        checked.append(row.model_copy(update={"evidence": found or row.evidence,
                                              "grounded": found is not None}))  # fmt: skip
    return checked
