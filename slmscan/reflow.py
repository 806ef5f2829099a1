"""Paragraphs out of text laid out in lines: Markdown source and hard-wrapped text or PDF pages.

A line break inside a paragraph is layout, not meaning. Left in, it cuts the sentences
evidence is quoted in ("… a PhD project at the crossroads of linguistics and"), and a small
model copies the layout: a summary stops at its first line break, mid-sentence.
"""

from __future__ import annotations

import re
from typing import Any

# A line that starts a block of its own: a list item, heading, quote, table row or code.
_BLOCK_START = re.compile(r"\s*(?:[-*•+–]\s|\d{1,3}(?:\.\d{1,3})*[.)]\s|#|>|\||```|~~~)|\s{4}")
# Lines nothing runs on into, however long: code, table rows, headings.
_CLOSED = re.compile(r"\s{4}|\t|\s*[|#]")
_WORD_HYPHEN = re.compile(r"[^\W\d_]-$")  # "infor-" at a line end goes on as "infor-mation"
_TAG = re.compile(r"<[^>]*>")
_MIN_LINES = 4  # fewer lines tell nothing about a wrapping width
_WIDTHS = (45, 140)  # text wrapped at a margin: two-column PDFs up to small print
_RAGGED = 20  # how far short of the margin a wrapped line may end (the next word was longer)


def _wrap_width(lines: list[str]) -> int | None:
    """The margin the text was wrapped at, or None when its lines are not wrapped.

    Wrapped text has many of its lines of prose ending a little short of one width; text
    with a paragraph per line has long lines of every length, and lists short ones.
    """
    prose = sorted(len(line.strip()) for line in lines if len(line.split()) >= 2)
    if len(prose) < _MIN_LINES:
        return None
    width = prose[int(len(prose) * 0.9)]
    # A PDF's lines in a proportional font reach the margin at lengths a little apart.
    full = sum(width - _RAGGED <= n <= width * 1.2 for n in prose)
    return width if _WIDTHS[0] <= width <= _WIDTHS[1] and full * 3 >= len(prose) else None


def unwrap(text: str) -> str:
    """Join the lines of hard-wrapped paragraphs; text that is not wrapped comes back as is.

    A line that reached the margin goes on in the next one, unless that one starts a block
    (a list item, a heading); a short line ends its paragraph, as a heading's does.
    """
    lines = text.split("\n")
    width = _wrap_width(lines)
    if width is None:
        return text
    out: list[str] = []
    reached = False  # did the line before reach the margin?
    for line in lines:
        if reached and line.strip() and not _BLOCK_START.match(line):
            previous = out[-1].rstrip()
            glue = "" if _WORD_HYPHEN.search(previous) and line.lstrip()[:1].islower() else " "
            out[-1] = previous + glue + line.strip()
        else:
            out.append(line)
        reached = len(line.strip()) >= width - _RAGGED and not _CLOSED.match(line)
    return "\n".join(out)


def markdown_text(source: str) -> str:
    """The text a reader of rendered Markdown sees: paragraphs on one line each, link text
    without its address, no images or HTML tags, list items and table rows on their own lines.
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(source)
    blocks: list[tuple[str, str]] = []  # and the list or table it is a line of ("": none)
    row: list[str] = []
    in_cell = False
    item_start = False  # the next paragraph is the first of a list item
    for token in tokens:
        kind = token.type
        if kind == "list_item_open":
            item_start = True
        elif kind in ("th_open", "td_open"):
            in_cell = True
        elif kind in ("th_close", "td_close"):
            in_cell = False
        elif kind == "tr_close":
            if any(row):
                blocks.append((" | ".join(row), "table"))
            row = []
        elif kind == "inline":
            text = _inline_text(token.children or [])
            if in_cell:
                row.append(text)
            elif text:
                blocks.append((f"- {text}", "list") if item_start else (text, ""))
                item_start = False
        elif kind in ("fence", "code_block"):
            blocks.append((token.content.rstrip("\n"), ""))
        elif kind == "html_block":
            # Markdown may go on inside a block of HTML until its blank line ("<br/>" above
            # a line of badges): read again without the tags.
            untagged = _TAG.sub("", token.content)
            text = markdown_text(untagged) if untagged != token.content else untagged.strip()
            if text:
                blocks.append((text, ""))
    parts: list[str] = []
    for i, (text, group) in enumerate(blocks):
        if i:  # items of a list, and rows of a table, stay together as lines of one block
            parts.append("\n" if group and blocks[i - 1][1] == group else "\n\n")
        parts.append(text)
    return "".join(parts)


def _inline_text(children: list[Any]) -> str:
    parts: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        # Images, inline HTML and the marks of links and emphasis show no text of their own.
    return re.sub(r"[ \t]+", " ", "".join(parts)).strip()
