"""Writing cards to files: sanitised names confined to the output folder, atomic writes."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

from .card import Card
from .errors import SourceError

_SLUG_MAX = 60


def slugify(text: str) -> str:
    """A file-name-safe slug: ASCII letters, digits and dashes, at most 60 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:_SLUG_MAX].rstrip("-") or "document"


def card_stem(card: Card) -> str:
    """`<slug>-<src8>`: readable, and unique per document."""
    return f"{slugify(card.title)}-{card.src[:8]}"


def write_atomic(path: Path, text: str) -> None:
    """Write a file so that it is either complete or absent: temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def confined(folder: Path, name: str) -> Path:
    """`folder/name`, refusing any name that would land outside the folder."""
    root = folder.resolve()
    target = (root / name).resolve()
    if target.parent != root:
        raise SourceError(f"refusing to write {name!r} outside {folder}")
    return target
