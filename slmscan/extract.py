"""Raw documents → articles: the main text and what is known about the document.

The only module that imports trafilatura, pypdf and python-docx, each inside the function that
needs it so that `slmscan --help` starts instantly. Every failure is an `ExtractionError` whose
one-line message names the document and the cause.

Formats are told by the file name's suffix and checked against the bytes: PDF and DOCX by
their magic numbers, HTML by its tags; bytes that are not text are refused whatever the name.
Gzipped documents (`page.html.gz`) are unpacked first, never beyond a size cap.

Hostile input is bounded here: unpacked sizes are capped (gzip, DOCX), HTML beyond a size a
parser handles in seconds is slimmed or refused, and no parser expands XML entities, reads a
DTD or an external entity, or touches the network (lxml's defaults for HTML; python-docx's
parser sets resolve_entities=False). Time is bounded by the caller: a batch extracts in a
worker process it kills at a deadline.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from .card import Source
from .document import Article, RawDocument
from .errors import ExtractionError
from .reflow import markdown_text, unwrap

Format = Literal["html", "markdown", "text", "pdf", "docx"]

MIN_TEXT_CHARS = 20
MAX_TITLE_CHARS = 200
# Uncompressed size allowed inside a .docx: a small zip can expand to gigabytes.
MAX_DOCX_UNPACKED = 200 * 1024 * 1024
# A gzipped document may unpack to no more than a plain file may weigh (sources.MAX_FILE_BYTES):
# a 1 MB gzip bomb unpacks to a gigabyte.
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
# HTML handed to the parser: at 10 MB trafilatura takes ~25 s and ~400 MB; at 50 MB, two
# minutes and 1.6 GB. Bigger pages are first slimmed (scripts, styles, inline images).
MAX_HTML_CHARS = 10 * 1024 * 1024
# libxml2's HTML parser stops following elements nested deeper than this.
PARSER_MAX_DEPTH = 256
# favor_precision drops boilerplate (bylines, "Read more" links, comment counters) but on some
# layouts it loses the article itself; below this share of the balanced text it is not trusted.
PRECISION_MIN_SHARE = 0.5
# Longer texts are never a bare menu; checking them would parse big pages a second time.
NAVIGATION_CHECK_CHARS = 2000

_NO_TEXT_HINT = (
    "the page may build its text with JavaScript: save the page from a browser and scan the file"
)

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# WHATWG: these labels mean windows-1252 on the web, whatever the page claims.
_WEB_LATIN1 = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.I | re.S
)
_HTML_TAGS = re.compile(rb"<(?:head|body|title|meta|article|main|p|div|h[1-6])[\s>/]", re.I)
# Terminal escape sequences: CSI (ESC [ … or the one-byte C1 form), OSC (ESC ] … BEL/ST),
# and two-character escapes; removed whole so their parameters do not survive as text.
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
# The same escapes in HTML, removed before parsing: the parser drops the ESC but keeps "[31m".
# Bounded, and an OSC must end within its limit and before any tag, so that a stray control
# character never takes markup with it.
_ESCAPES_IN_MARKUP = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]{0,32}[ -/]{0,8}[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c<]{0,512}(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[@-Z\\-_]"
)
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")


def looks_like_html(data: bytes) -> bool:
    """True when bytes start like an HTML document, or are text with several HTML tags."""
    head = data[:4096]
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            head = head.decode(encoding, errors="ignore").encode("utf-8")
            break
    if _HTML_START.match(head):
        return True
    stripped = head.lstrip()
    return stripped.startswith(b"<") and len(_HTML_TAGS.findall(head)) >= 2


def extract_article(raw: RawDocument) -> Article:
    """The article in a raw document: main text, title and metadata, or an ExtractionError."""
    where = _where(raw)
    src = raw.src  # the id of the document as stored, gzipped or not
    raw = _gunzip(raw, where)
    if not raw.data.strip():
        raise ExtractionError(f"{where}: is empty")
    fmt = detect_format(raw)
    meta: dict[str, str | None]
    if fmt == "pdf":
        text, meta = _extract_pdf(raw.data, where)
    elif fmt == "docx":
        text, meta = _extract_docx(raw.data, where)
    else:
        decoded = decode_text(raw.data, where, html=fmt == "html", content_type=raw.content_type)
        if fmt == "html":
            text, meta = _extract_html(_ESCAPES_IN_MARKUP.sub("", decoded), raw.url, where)
        else:
            markdown = fmt == "markdown"
            text = markdown_text(_body(decoded)) if markdown else unwrap(decoded)
            meta = {"title": _text_title(decoded, markdown=markdown)}

    text = clean_text(text)
    if len(text) < MIN_TEXT_CHARS:
        raise ExtractionError(f"{where}: no main text found")
    source = Source(
        kind=raw.kind,
        location=raw.location,
        url=raw.url or _clean_field(meta.get("url")),
        title=_clean_field(meta.get("title")),
        site=_clean_field(meta.get("site")),
        author=_clean_field(meta.get("author")),
        date=_clean_field(meta.get("date")),
    )
    return Article(text=text, source=source, src=src)


def _where(raw: RawDocument) -> str:
    return "stdin" if raw.location == "-" else raw.location


_GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(raw: RawDocument, where: str) -> RawDocument:
    """A gzipped document unpacked (every gzip member), refused past MAX_UNPACKED_BYTES."""
    if not raw.data.startswith(_GZIP_MAGIC):
        return raw
    limit = MAX_UNPACKED_BYTES
    parts: list[bytes] = []
    size = 0
    data = raw.data
    try:
        while data.startswith(_GZIP_MAGIC):
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            # max_length stops the inflater at the cap: a bomb never unpacks beyond it.
            part = inflater.decompress(data, limit - size + 1)
            size += len(part)
            if size > limit or inflater.unconsumed_tail:
                raise ExtractionError(
                    f"{where}: unpacks to more than {limit // 2**20} MB (the limit)",
                    hint="a gzip file this large when unpacked is refused as a possible bomb",
                )
            if not inflater.eof:
                raise ExtractionError(f"{where}: truncated gzip data")
            parts.append(part)
            data = inflater.unused_data
    except zlib.error as e:
        raise ExtractionError(f"{where}: corrupt gzip data ({e})") from e
    name = raw.name[:-3] if raw.name.lower().endswith(".gz") else raw.name
    return replace(raw, data=b"".join(parts), name=name)


def detect_format(raw: RawDocument) -> Format:
    """The document's format, from its name and its first bytes (which win when they disagree)."""
    data, where = raw.data, _where(raw)
    suffix = Path(raw.name).suffix.lower()
    # PDF readers accept junk before the header in the first kilobyte; a file not named .pdf
    # must start with it, or a text about PDFs would be read as one.
    if data.lstrip().startswith(b"%PDF-") or (suffix == ".pdf" and b"%PDF-" in data[:1024]):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        if suffix == ".docx" or _is_docx_zip(data):
            return "docx"
        raise ExtractionError(f"{where}: is not a text/HTML document (binary data: a zip archive)")
    if suffix == ".pdf":
        raise ExtractionError(f"{where}: is not a PDF (no %PDF- header)")
    if suffix == ".docx":
        raise ExtractionError(f"{where}: is not a Word document (.docx files are zip archives)")
    if suffix == ".doc" or data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise ExtractionError(
            f"{where}: is a legacy Office file (.doc/.xls/.ppt), which slmscan cannot read",
            hint="save it as .docx or PDF and scan that",
        )
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    return "html" if looks_like_html(data) else "text"


def _is_docx_zip(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def decode_text(
    data: bytes, where: str, *, html: bool = False, content_type: str | None = None
) -> str:
    """Bytes → text: BOM, then UTF-8, then the declared charset, then Windows-1252/Latin-1.

    Raises ExtractionError when the bytes are binary data rather than text.
    """
    text = _decode(data, html=html, content_type=content_type)
    if text is None or _looks_binary(text):
        raise ExtractionError(f"{where}: is not a text/HTML document (binary data)")
    return text


def _decode(data: bytes, *, html: bool, content_type: str | None) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if b"\x00" in data[:8192]:
        # UTF-16 without a BOM shows as NULs in every other byte of ASCII text.
        return _decode_bomless_utf16(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in _declared_charsets(data, html=html, content_type=content_type):
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        # cp1252 leaves five bytes undefined; Latin-1 decodes every byte.
        return data.decode("latin-1")


def _decode_bomless_utf16(data: bytes) -> str | None:
    sample = data[:8192]
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    half = len(sample) // 2 or 1
    if odd_nuls / half > 0.9 and even_nuls == 0:
        return data.decode("utf-16-le", errors="replace")
    if even_nuls / half > 0.9 and odd_nuls == 0:
        return data.decode("utf-16-be", errors="replace")
    return None


def _declared_charsets(data: bytes, *, html: bool, content_type: str | None) -> list[str]:
    labels: list[str] = []
    if content_type:
        match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.I)
        if match:
            labels.append(match.group(1))
    if html:
        meta = _META_CHARSET.search(data[:8192])
        if meta:
            labels.append(meta.group(1).decode("ascii"))
    encodings: list[str] = []
    for label in labels:
        label = label.strip().lower()
        if label in _WEB_LATIN1:
            label = "cp1252"
        try:
            name = codecs.lookup(label).name
        except LookupError:
            continue
        if name not in encodings:
            encodings.append(name)
    return encodings


def _looks_binary(text: str) -> bool:
    sample = text[:8192]
    if not sample:
        return False
    if "\x00" in sample:
        return True
    # Text has a stray control character at most (line ends, tabs, form feeds and terminal
    # escapes are text); binary data decoded as Latin-1 has one in every five characters.
    odd = len(_BINARY_CONTROL.findall(sample)) + sample.count("\ufffd")
    return odd / len(sample) > 0.1


_BINARY_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """NFC, no control characters but newline and tab, single blank lines between paragraphs."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    text = _ANSI.sub("", text)
    text = _CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


# Page breaks (form feeds from PDFs), old Mac line ends and Unicode separators become newlines.
_LINE_BREAKS = {ord(c): "\n" for c in "\r\f\v\x85\u2028\u2029"}


def clean_title(title: str | None) -> str | None:
    """A title fit for one line of a card: no escapes or controls, at most 200 characters."""
    if not title:
        return None
    title = _ANSI.sub("", unicodedata.normalize("NFC", title))
    title = _CONTROL.sub(" ", title)
    title = " ".join(title.split())
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title or None


def _clean_field(value: object) -> str | None:
    # PDF metadata arrives as pypdf string objects, sometimes as bytes or numbers.
    return clean_title(str(value)) if value else None


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence libraries' warnings about broken input: we raise or succeed, never print."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# ---------------------------------------------------------------------------------------- HTML


def _extract_html(html: str, url: str | None, where: str) -> tuple[str, dict[str, str | None]]:
    import trafilatura

    if len(html) > MAX_HTML_CHARS:
        html = slim_html(html)
        if len(html) > MAX_HTML_CHARS:
            raise ExtractionError(
                f"{where}: HTML page too large to extract ({len(html) / 2**20:.0f} MB of markup "
                f"without scripts, styles and inline images; the limit is "
                f"{MAX_HTML_CHARS // 2**20} MB)",
                hint="save the article alone (or as PDF or text) and scan that",
            )
    if not re.search(r"<(?:html|body)[\s>]", html[:65536], re.I):
        # trafilatura rejects a bare fragment ("<p>…</p>" piped in) as not-quite-HTML.
        html = f"<html><body>{html}</body></html>"
    options: dict[str, Any] = {
        "url": url,
        "include_comments": False,  # readers' comments are not the document
        "include_tables": True,  # tables often carry the facts (wikipedia, reports)
        "include_images": False,
        "include_links": False,
        "include_formatting": False,
        # trafilatura's deduplication keeps a process-wide cache: in a batch it cuts
        # paragraphs that earlier documents shared, and from the fourth scan of one page on
        # (a benchmark over several models) it drops that page's own paragraphs.
        "deduplicate": False,
    }
    with _quiet("trafilatura", "htmldate", "courlan", "justext"):
        # Documents (not dicts): output_format is left at "python".
        balanced: Any = trafilatura.bare_extraction(html, with_metadata=True, **options)
        precise: Any = trafilatura.bare_extraction(html, favor_precision=True, **options)
    text = _text_of(balanced)
    precise_text = _text_of(precise)
    if len(precise_text) >= PRECISION_MIN_SHARE * len(text):
        text = precise_text
    if not text.strip():
        if nesting_depth(html) > PARSER_MAX_DEPTH:
            raise ExtractionError(
                f"{where}: no main text found (elements nested more than "
                f"{PARSER_MAX_DEPTH} deep, past what the HTML parser follows)"
            )
        raise ExtractionError(f"{where}: no main text found", hint=_NO_TEXT_HINT)
    page = _Page(html)
    if len(text) < NAVIGATION_CHECK_CHARS and page.is_navigation(text):
        raise ExtractionError(
            f"{where}: no main text found (only navigation links)", hint=_NO_TEXT_HINT
        )
    meta: dict[str, str | None] = {}
    description = None
    if balanced is not None:
        meta = {
            "title": balanced.title,
            "site": balanced.sitename,
            "author": balanced.author,
            "date": balanced.date,
            "url": balanced.url,
        }
        description = balanced.description
    if not meta.get("title"):
        meta["title"] = _html_title(html)
    standfirst = page.standfirst(description, text)
    if standfirst:
        text = f"{standfirst}\n\n{text}"
    return text, meta


# Elements whose content is never article text; each is cut up to its end tag.
_UNSEEN_START = re.compile(r"<(script|style|svg|template|noscript)\b|<!--", re.I)
_DATA_URI = re.compile(r"data:[^\"'\s>)]*", re.I)


def slim_html(html: str) -> str:
    """The page without scripts, styles, comments, SVG and inline data: URIs.

    Linear in the page's size whatever its content: each cut searches forward once, and an
    element left open cuts the rest of the page (as a browser would read it).
    """
    pieces: list[str] = []
    pos = 0
    while match := _UNSEEN_START.search(html, pos):
        pieces.append(html[pos : match.start()])
        if match.group(1) is None:  # a comment
            end = html.find("-->", match.end())
            pos = len(html) if end < 0 else end + 3
            continue
        closing = re.compile(rf"</{match.group(1)}\s*>", re.I).search(html, match.end())
        pos = len(html) if closing is None else closing.end()
    pieces.append(html[pos:])
    return _DATA_URI.sub("data:", "".join(pieces))


# "[^<>]" and not "[^>]": a run of "<a<a<a…" with no ">" must not be scanned once per "<".
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)[^<>]*?(/?)>")
# Elements with no end tag, or whose end tag HTML lets a page leave out.
_NOT_NESTING = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "thead", "tbody",
     "tfoot", "colgroup")
)  # fmt: skip


def nesting_depth(html: str) -> int:
    """How deep the page's elements nest, told from its tags (no parser, linear time)."""
    depth = deepest = 0
    for match in _TAG.finditer(html):
        closing, name, self_closing = match.groups()
        if self_closing or name.lower() in _NOT_NESTING:
            continue
        depth = max(0, depth - 1) if closing else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _text_of(document: Any) -> str:
    return (getattr(document, "text", None) or "") if document is not None else ""


def _html_title(html: str) -> str | None:
    match = re.search(r"<title[^>]*>(.*?)</title>", html[:65536], re.I | re.S)
    if not match:
        return None
    import html as html_lib

    return html_lib.unescape(re.sub(r"<[^>]+>", "", match.group(1)))


_NOT_CONTENT = re.compile(r"footer|nav|menu|sidebar|widget|promo|newsletter|subscribe", re.I)


def _squash(text: str) -> str:
    return " ".join(text.split())


class _Page:
    """The page's own parse tree, built once and only when a check needs it."""

    def __init__(self, html: str) -> None:
        self._html = html
        self._body: Any = None
        self._parsed = False

    @property
    def body(self) -> Any:
        if not self._parsed:
            from lxml import etree
            from lxml import html as lxml_html

            self._parsed = True
            # Spelled out though they are lxml's defaults: a page must not make the parser
            # fetch anything, nor lift the limits that keep its tree small.
            parser = lxml_html.HTMLParser(no_network=True, huge_tree=False)
            try:
                self._body = lxml_html.document_fromstring(self._html, parser=parser).find("body")
            except (ValueError, etree.ParserError):
                self._body = None
        return self._body

    def is_navigation(self, text: str) -> bool:
        """True when the text is made of the page's link labels (a menu, not an article).

        On a page with no article trafilatura falls back to whatever text there is, which
        is then usually the menu.
        """
        if self.body is None:
            return False
        labels = {_squash(a.text_content()) for a in self.body.iter("a")}
        lines = [_squash(line).lstrip("-•* ") for line in text.split("\n") if line.strip()]
        total = sum(len(line) for line in lines)
        in_links = sum(len(line) for line in lines if line in labels)
        return total > 0 and in_links >= 0.8 * total

    def standfirst(self, description: str | None, text: str) -> str | None:
        """The page's summary line (its "dek"), when the page shows it and the text lacks it.

        trafilatura leaves out the article header, and with it the standfirst under the
        headline, often the densest sentence of the article. A meta description that also
        stands as an element of its own in the visible body, outside navigation and footers,
        is one.
        """
        wanted = _squash(description or "")
        if len(wanted) < MIN_TEXT_CHARS or wanted in _squash(text) or self.body is None:
            return None
        for element in self.body.iter("p", "h2", "h3", "h4", "div", "span", "em", "strong"):
            if _squash(element.text_content()) != wanted:
                continue
            if not any(_hidden_or_boilerplate(n) for n in (element, *element.iterancestors())):
                return wanted
        return None


def _hidden_or_boilerplate(node: Any) -> bool:
    if node.tag in {"nav", "footer", "aside", "noscript", "template", "form"}:
        return True
    if node.get("hidden") is not None or node.get("aria-hidden") == "true":
        return True
    if "display:none" in (node.get("style") or "").replace(" ", ""):
        return True
    marks = f"{node.get('class') or ''} {node.get('id') or ''}"
    return bool(_NOT_CONTENT.search(marks))


# ------------------------------------------------------------------------------ text, Markdown


def _text_title(text: str, *, markdown: bool) -> str | None:
    """The first Markdown heading, else a short first line set apart from what follows."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = _after_front_matter(lines)
    if markdown:
        title = _front_matter_title(lines[:start])
        if title:
            return title
        previous = ""
        for line in lines[start:]:
            match = _MD_HEADING.match(line)
            if match:
                return match.group(1).strip()
            if previous.strip() and _SETEXT.match(line) and not _MD_HEADING.match(previous):
                return previous.strip()
            previous = line
    return _first_line_title(lines[start:])


def _body(markdown: str) -> str:
    """Markdown without its front matter (YAML between "---" lines), which is not text."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    return "\n".join(lines[_after_front_matter(lines) :])


def _after_front_matter(lines: list[str]) -> int:
    if lines and lines[0].strip() == "---":
        for i, line in enumerate(lines[1:], start=1):
            if line.strip() in {"---", "..."}:
                return i + 1
    return 0


def _front_matter_title(lines: list[str]) -> str | None:
    for line in lines:
        match = re.match(r"^title\s*:\s*(.+?)\s*$", line, re.I)
        if match:
            return match.group(1).strip("\"'") or None
    return None


def _first_line_title(lines: list[str], *, need_gap: bool = True) -> str | None:
    """A first line reads as a title when it is short, unpunctuated and followed by a gap."""
    content = [(i, line.strip()) for i, line in enumerate(lines) if line.strip()]
    if len(content) < 2:
        return None
    index, first = content[0]
    followed_by_gap = index + 1 < len(lines) and not lines[index + 1].strip()
    if (
        len(first) <= 120
        and (followed_by_gap or not need_gap)
        and not first.endswith((".", ",", ";", ":"))
    ):
        return first.lstrip("#").strip() or None
    return None


# ----------------------------------------------------------------------------------------- PDF


def _extract_pdf(data: bytes, where: str) -> tuple[str, dict[str, str | None]]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    with _quiet("pypdf"):
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                # Many PDFs are encrypted with an empty user password (owner restrictions only).
                try:
                    opened = reader.decrypt("")
                except DependencyError as e:
                    raise ExtractionError(
                        f"{where}: the PDF is encrypted with a cipher slmscan cannot open here",
                        hint="save an unencrypted copy and scan that",
                    ) from e
                if not opened:
                    raise ExtractionError(
                        f"{where}: the PDF is encrypted (password-protected)",
                        hint="save an unencrypted copy and scan that",
                    )
            pages = [page.extract_text() or "" for page in reader.pages]
            info = reader.metadata
            meta = {
                "title": info.title if info else None,
                "author": info.author if info else None,
                "date": _pdf_date(info),
            }
        except ExtractionError:
            raise
        except FileNotDecryptedError as e:
            raise ExtractionError(f"{where}: the PDF is encrypted (password-protected)") from e
        except RecursionError as e:
            raise ExtractionError(f"{where}: malformed PDF (nested too deeply)") from e
        except Exception as e:
            # pypdf fails on broken files with a wide range of exceptions (PdfReadError,
            # KeyError, ValueError, zlib.error, …); each means a bad input, not a bug here.
            raise ExtractionError(f"{where}: malformed PDF ({_cause(e)})") from e
    text = "\n\n".join(unwrap(page.strip()) for page in pages)
    if len(clean_text(text)) < MIN_TEXT_CHARS:
        raise ExtractionError(
            f"{where}: no main text found (the PDF has no text layer)",
            hint="scanned pages need OCR first (e.g. ocrmypdf)",
        )
    if not meta["title"]:
        # pypdf puts no blank line under a heading, so a short first line has to do.
        meta["title"] = _first_line_title(text.split("\n"), need_gap=False)
    return text, meta


def _pdf_date(info: Any) -> str | None:
    if not info:
        return None
    try:
        created = info.creation_date
    except Exception:  # an unparsable date string is not worth failing the document for
        return None
    return created.date().isoformat() if created else None


def _cause(error: BaseException) -> str:
    message = " ".join(str(error).split())
    if len(message) > 120:
        message = message[:119] + "…"
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


# ---------------------------------------------------------------------------------------- DOCX


def _extract_docx(data: bytes, where: str) -> tuple[str, dict[str, str | None]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ExtractionError(f"{where}: malformed Word document (not a valid zip archive)") from e
    if unpacked > MAX_DOCX_UNPACKED:
        raise ExtractionError(
            f"{where}: Word document too large when unpacked ({unpacked // 2**20} MB)"
        )

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_docx_blocks(document))
        props = document.core_properties
        meta = {
            "title": props.title or None,
            "author": props.author or None,
            "date": props.created.date().isoformat() if props.created else None,
        }
    except Exception as e:
        # python-docx surfaces broken packages as KeyError, ValueError, lxml syntax errors,
        # PackageNotFoundError…; each means a bad input, not a bug here.
        raise ExtractionError(f"{where}: malformed Word document ({_cause(e)})") from e
    if not meta["title"]:
        meta["title"] = _docx_title(blocks)
    return "\n\n".join(text for _, text in blocks if text), meta


def _docx_blocks(document: Any) -> Iterator[tuple[str, str]]:
    """(style name, text) of each paragraph and table row, in document order."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in document.element.body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(child, document)
            style = paragraph.style.name if paragraph.style is not None else ""
            yield style or "", paragraph.text.strip()
        elif tag == "tbl":
            for row in Table(child, document).rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = " ".join(cell.text.split())
                    # Merged cells repeat once per grid column they span.
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                if cells:
                    yield "", " | ".join(cells)


def _docx_title(blocks: list[tuple[str, str]]) -> str | None:
    """The first paragraph styled Title, else the first heading."""
    for wanted in ("Title", "Heading"):
        for style, text in blocks:
            if text and style.startswith(wanted):
                return text
    return None
