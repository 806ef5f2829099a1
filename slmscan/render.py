"""Card → Markdown in the reference card's layout, or JSON."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .card import Card

# Terminal escape sequences and control characters never reach a rendered card.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|[\x00-\x1f\x7f-\x9f]"
)


def clean_line(text: str) -> str:
    """One line of plain text: control characters and escape codes removed."""
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()


def _link_target(target: str) -> str:
    """A link destination that keeps its meaning but carries no control character or `<>`."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f<>]", lambda m: f"%{ord(m.group()):02X}", target)


def _cell(text: str) -> str:
    return clean_line(text).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[str]) -> str:
    """A padded pipe table like the reference card's (numbers right-aligned)."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if h in numeric else v.ljust(w)
            for v, w, h in zip(values, widths, headers, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if h in numeric else (":" + "-" * (w + 1))
            for w, h in zip(widths, headers, strict=True)
        )
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def _source_line(card: Card) -> str:
    source = card.source
    target = _link_target(source.url or source.location)
    label = clean_line(source.title or source.location)
    kind = "page" if source.kind == "url" or source.url else "file"
    details = [clean_line(x) for x in (source.site, source.author, source.date) if x]
    suffix = ", " + ", ".join(details) if details else ""
    return f"(from {kind} [{label}](<{target}>){suffix}.)"


def render_markdown(card: Card, *, show_ungrounded: bool = False) -> str:
    """The card as Markdown, in the reference card's order and layout.

    Rows whose evidence was not found in the document are left out unless `show_ungrounded`,
    and then marked.
    """

    def keep(row: object) -> bool:
        return show_ungrounded or bool(getattr(row, "grounded", False))

    def evidence(row: object) -> str:
        ev = getattr(row, "evidence", None)
        quote = f"“{ev.quote}”" if ev else ""
        return quote if getattr(row, "grounded", False) else f"UNGROUNDED {quote}".strip()

    out = [f"# __{clean_line(card.title)}__", "", _source_line(card), ""]
    if card.source.url:
        out += [f"__[External link](<{_link_target(card.source.url)}>)__", ""]
    if card.keywords:
        out += ["## Keywords", "", *(f"* {clean_line(k)}" for k in card.keywords), ""]
    if card.themes:
        out += ["## Themes", "", *(f"* {clean_line(t)}" for t in card.themes), ""]
    if card.category or card.type:
        out += ["## Other", ""]
        out += [f"* Category: {card.category}"] if card.category else []
        out += [f"* Type: {card.type}"] if card.type else []
        out += [""]
    if card.summary:
        out += ["## Summary", "", clean_line(card.summary), ""]
        if card.summary_flags:
            flags = ", ".join(clean_line(f) for f in card.summary_flags)
            out += [f"> Not found in the document: {flags}", ""]
    numeric = {"relevancy"}
    tables = [
        (
            "Signals",
            ["name", "description", "change", "10-year", "driving-force", "relevancy"],
            [[s.name, s.description, s.change, s.ten_year, s.driving_force, str(s.relevancy),
              evidence(s)] for s in card.signals if keep(s)],
        ),
        (
            "Behaviors",
            ["name", "description", "relevancy"],
            [[r.name, r.description, str(r.relevancy), evidence(r)]
             for r in card.behaviors if keep(r)],
        ),
        (
            "Technologies",
            ["description", "relevancy", "src"],
            [[f"{t.name}: {t.description}", str(t.relevancy), card.src, evidence(t)]
             for t in card.technologies if keep(t)],
        ),
        (
            "Issues",
            ["name", "description", "relevancy"],
            [[r.name, r.description, str(r.relevancy), evidence(r)]
             for r in card.issues if keep(r)],
        ),
    ]  # fmt: skip
    for title, headers, rows in tables:
        if rows:
            out += [f"## {title}", "", _table([*headers, "evidence"], rows, numeric), ""]
    return "\n".join(out).rstrip() + "\n"


def render_json(card: Card) -> str:
    """The card as one JSON object."""
    return card.model_dump_json(indent=2) + "\n"
