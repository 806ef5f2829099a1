"""The two shapes a document takes before it becomes a card: raw bytes, then an article."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from .card import Source


@dataclass(frozen=True)
class RawDocument:
    """Bytes as read from a file, stdin or a URL, before any parsing."""

    location: str  # the path, URL or "-" as the user named it
    kind: Literal["url", "file", "stdin", "text"]
    data: bytes
    name: str  # a file name whose suffix tells the format ("page.html", "stdin.txt")
    url: str | None = None
    content_type: str | None = None

    @property
    def src(self) -> str:
        """The card id: md5 of the URL for fetched pages, else sha256 of the bytes (32 hex)."""
        if self.kind == "url" and self.url:
            return hashlib.md5(self.url.encode(), usedforsecurity=False).hexdigest()
        return hashlib.sha256(self.data).hexdigest()[:32]


@dataclass(frozen=True)
class Article:
    """A document's main text and what is known about it."""

    text: str
    source: Source
    src: str

    @property
    def title(self) -> str | None:
        """The document's own title, when it has one."""
        return self.source.title
