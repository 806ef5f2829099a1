"""Main-text extraction on real web pages: ours against trafilatura's defaults.

Each page of the shared corpus lists snippets its main text must contain and boilerplate it
must not; a page scores one point per snippet that comes out right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from slmscan.extract import extract_article
from slmscan.sources import read_source

pytestmark = pytest.mark.corpus


@dataclass(frozen=True)
class PageScore:
    file: str
    snippets: int
    ours: int
    default: int
    text: str
    title: str | None


def satisfied(text: str, page: dict[str, list[str]]) -> int:
    """How many of the page's snippets the text gets right."""
    present = sum(snippet in text for snippet in page["must_contain"])
    absent = sum(snippet not in text for snippet in page["must_not_contain"])
    return present + absent


@pytest.fixture(scope="module")
def scores(corpus: Path) -> list[PageScore]:
    import trafilatura

    manifest = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    results = []
    for page in manifest["documents"]:
        raw = read_source(str(corpus / page["file"]), offline=True)
        article = extract_article(raw)
        default = trafilatura.extract(raw.data) or ""
        results.append(
            PageScore(
                file=page["file"],
                snippets=len(page["must_contain"]) + len(page["must_not_contain"]),
                ours=satisfied(article.text, page),
                default=satisfied(default, page),
                text=article.text,
                title=article.title,
            )
        )
    return results


def test_corpus_has_every_page(scores: list[PageScore]) -> None:
    assert len(scores) == 24


def test_every_page_has_text_and_title(scores: list[PageScore]) -> None:
    for page in scores:
        assert len(page.text.split()) >= 100, f"{page.file}: {len(page.text.split())} words"
        assert page.title, f"{page.file}: no title"
        assert "\n" not in page.title


def test_ours_at_least_trafilatura_default(
    scores: list[PageScore], capsys: pytest.CaptureFixture[str]
) -> None:
    ours = sum(page.ours for page in scores)
    default = sum(page.default for page in scores)
    total = sum(page.snippets for page in scores)
    with capsys.disabled():
        print(
            f"\nextraction snippets satisfied: ours {ours}/{total}, trafilatura default "
            f"{default}/{total} ({len(scores)} pages)"
        )
    worse = [f"{p.file}: {p.ours} < {p.default}" for p in scores if p.ours < p.default]
    assert ours >= default, "; ".join(worse)
