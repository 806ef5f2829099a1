"""Checks of a card against its document that need no model: duplicates and unsupported names."""

from __future__ import annotations

import re
from typing import TypeVar

from .card import Behavior, Issue, Signal, Technology

Row = TypeVar("Row", Signal, Behavior, Technology, Issue)

_WORDS = re.compile(r"[a-z0-9]+")
_SIMILAR = 0.7  # word-set overlap above which two rows say the same thing


def _words(text: str) -> set[str]:
    return set(_WORDS.findall(text.lower()))


def _overlap(a: set[str], b: set[str]) -> float:
    return len(a & b) / max(1, len(a | b))


def dedupe_rows(rows: list[Row]) -> list[Row]:
    """Merge rows that repeat each other (same name, same evidence, or near-identical text)."""
    kept: list[Row] = []
    for row in rows:
        name, text = _words(row.name), _words(row.name + " " + row.description)
        duplicate = next(
            (
                i
                for i, other in enumerate(kept)
                if _words(other.name) == name
                or _overlap(_words(other.name + " " + other.description), text) >= _SIMILAR
            ),
            None,
        )
        if duplicate is None:
            kept.append(row)
        elif row.relevancy > kept[duplicate].relevancy:
            kept[duplicate] = row
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
