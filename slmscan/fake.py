"""A fake model: instant, deterministic cards made without llama.cpp (`--model fake`).

For tests of everything around the model (batches, outputs, crashes, benchmarks' plumbing)
and for trying slmscan's pipeline on a machine without a model. Its cards are built from the
document's own key phrases and sentences, so they are valid and grounded, but they are not
analysis: provenance says `model_id: fake`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from typing import TypedDict

from . import __version__
from .card import Behavior, Card, Evidence, Issue, Provenance, Signal, Technology
from .document import Article
from .grounding import Row
from .keyphrases import candidate_phrases
from .sentences import split_sentences

FAKE_MODEL_ID = "fake"
#: A document containing this string makes the fake model abort the process (crash tests).
ABORT_MARKER = "SLMSCAN-FAKE-ABORT"


class _RowFields(TypedDict):
    name: str
    description: str
    relevancy: int
    evidence: Evidence
    grounded: bool


def _by_relevancy(rows: Iterable[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: -r.relevancy)


class FakeAnalyser:
    """Stands in for `analyse.Analyser`; same `analyse` signature."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def analyse(self, article: Article, network_calls: Callable[[], int] = lambda: 0) -> Card:
        """A deterministic card of the article's phrases and sentences."""
        started = time.perf_counter()
        if ABORT_MARKER in article.text:
            os.abort()  # stands in for a native crash inside llama.cpp
        phrases = candidate_phrases(article.text, limit=12) or ["document"]
        sentences = split_sentences(article.text) or []
        digest = hashlib.sha256(article.text.encode()).digest()

        def row(i: int) -> _RowFields:
            s = sentences[i % len(sentences)]
            return _RowFields(
                name=phrases[i % len(phrases)],
                description=s.text,
                relevancy=1 + digest[i] % 5,
                evidence=Evidence(quote=s.text, start=s.start, end=s.end, match="exact"),
                grounded=True,
            )

        rows = range(min(3, len(sentences)))
        signals = [
            Signal(**row(i), change=f"more {phrases[0]}", ten_year="unknown", driving_force="n/a")
            for i in rows
        ]
        return Card(
            src=article.src,
            title=article.title or phrases[0],
            source=article.source,
            keywords=phrases[:7],
            themes=phrases[7:10] or phrases[:3],
            category="other",
            type="other",
            summary=" ".join(s.text for s in sentences[:4]) or article.text[:300],
            signals=_by_relevancy(signals),
            behaviors=_by_relevancy(Behavior(**row(i + 1)) for i in rows),
            technologies=_by_relevancy(Technology(**row(i + 2)) for i in rows),
            issues=_by_relevancy(Issue(**row(i + 3)) for i in rows),
            provenance=Provenance(
                slmscan_version=__version__,
                llama_cpp_version="none",
                model_id=FAKE_MODEL_ID,
                model_file="none",
                model_sha256="0" * 64,
                prompt_versions={},
                seed=self.seed,
                sampling={"method": "fake"},
                n_ctx=0,
                threads=0,
                document_tokens=len(article.text.split()),
                template_tokens=0,
                prompt_tokens=0,
                fed_tokens=0,
                decoded_tokens=0,
                parts=1,
                truncated=False,
                sections=[],
                seconds=round(time.perf_counter() - started, 3),
                network_calls=network_calls(),
            ),
        )
