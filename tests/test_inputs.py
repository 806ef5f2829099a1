"""Inputs, good and bad: each bad one fails with the right error and one line naming it.

Real components throughout: real trafilatura, pypdf and python-docx on files made here, and a
real HTTP server on 127.0.0.1 for URLs.
"""

from __future__ import annotations

import http.server
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmscan import sources
from slmscan.document import Article
from slmscan.errors import ExtractionError, OfflineError, SlmscanError, SourceError
from slmscan.extract import clean_text, clean_title, extract_article
from slmscan.netguard import NetworkGuard
from slmscan.sources import expand_sources, read_source

ARTICLE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Solar roofs for every new house</title>
<meta name="author" content="Ada Lovelace"></head>
<body><nav><a href="/">Home</a> <a href="/news">News</a></nav>
<article><h1>Solar roofs for every new house</h1>
<p>The city council voted on Tuesday to require solar panels on every new house built after
next spring, a rule that builders say will add little to the price of a home.</p>
<p>Supporters said the panels would pay for themselves within eight years, while critics
worried about the cost for first-time buyers and asked for a subsidy.</p>
<p>The rule follows similar measures in three neighbouring towns last year.</p>
</article><footer>Copyright 2024 Example Gazette</footer></body></html>
"""

NAV_ONLY_HTML = """<!doctype html><html><head><title>Example shop</title></head><body>
<header><a href="/"><img src="logo.png" alt="Example"></a>
<nav><ul><li><a href="/">Home</a></li><li><a href="/products">Products</a></li>
<li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li>
<li><a href="/blog">Blog</a></li></ul></nav></header>
<footer><p>Copyright 2024 Example Corporation. All rights reserved.</p>
<ul><li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms</a></li></ul>
</footer></body></html>
"""


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A one-page PDF written by hand: a Helvetica text object, a correct xref table."""

    def literal(text: str) -> bytes:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return b"(" + escaped.encode("latin-1") + b")"

    content = b"BT /F1 12 Tf 14 TL 72 720 Td " + b" ".join(literal(x) + b" Tj T*" for x in lines)
    content += b" ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    if title:
        objects.append(b"<< /Title " + literal(title) + b" >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    info = b" /Info 6 0 R" if title else b""
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (len(objects) + 1, info)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


PDF_LINES = [
    "Heat pumps in cold climates",
    "Field trials in Norway show heat pumps keep houses warm at minus twenty degrees.",
]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def article_of(path: Path) -> Article:
    return extract_article(read_source(str(path), offline=True))


def assert_one_line(error: SlmscanError | str, names: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{names}: "), message


NOBODY = 65534  # the unprivileged user of Linux and BSD systems


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("data", [b"", b"  \n\t\n"])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "empty.txt", data)
    with pytest.raises(ExtractionError, match="is empty") as info:
        article_of(path)
    assert_one_line(info.value, str(path))


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 40,  # NUL bytes
        b"\x89PNG\r\n\x1a\n" + bytes(range(1, 256)) * 40,  # an image
        bytes(b % 31 + 1 for b in range(4000)),  # no NUL, but mostly control characters
    ],
)
def test_binary_data_named_html(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "page.html", data)
    with pytest.raises(ExtractionError, match=r"is not a text/HTML document \(binary data\)") as e:
        article_of(path)
    assert_one_line(e.value, str(path))


def test_pdf_that_is_not_a_pdf(tmp_path: Path) -> None:
    path = write(tmp_path, "report.pdf", b"Just some text that someone named .pdf by mistake.")
    with pytest.raises(ExtractionError, match="is not a PDF") as info:
        article_of(path)
    assert_one_line(info.value, str(path))


@pytest.mark.parametrize(
    "data",
    [
        make_pdf(PDF_LINES)[:200],  # cut short
        b"%PDF-1.7\n" + bytes(range(256)) * 20,  # a header and then garbage
    ],
)
def test_malformed_pdf(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path, "broken.pdf", data)
    with pytest.raises(ExtractionError, match="malformed PDF") as info:
        article_of(path)
    assert_one_line(info.value, str(path))


def test_encrypted_pdf(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(PDF_LINES)))
    # RC4: pypdf writes it without optional crypto libraries.
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    path = write(tmp_path, "locked.pdf", buffer.getvalue())
    with pytest.raises(ExtractionError, match="encrypted") as info:
        article_of(path)
    assert_one_line(info.value, str(path))
    assert info.value.hint


def test_pdf_encrypted_only_against_editing_is_read(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=io.BytesIO(make_pdf(PDF_LINES, title="Heat pumps")))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    article = article_of(write(tmp_path, "restricted.pdf", buffer.getvalue()))
    assert "minus twenty degrees" in article.text


def test_malformed_docx(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.docx", make_docx()[:3000])
    with pytest.raises(ExtractionError, match="malformed Word document") as info:
        article_of(path)
    assert_one_line(info.value, str(path))


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.docx", b"plain words, not a Word document at all")
    with pytest.raises(ExtractionError, match="is not a Word document") as info:
        article_of(path)
    assert_one_line(info.value, str(path))


def test_latin1_text_decodes(tmp_path: Path) -> None:
    text = "Menu du jour\n\nAu café on sert une crème brûlée, “faite maison”.\n"
    article = article_of(write(tmp_path, "menu.txt", text.encode("cp1252")))
    assert "Au café on sert une crème brûlée, “faite maison”." in article.text
    assert article.title == "Menu du jour"


def test_html_meta_charset_is_honoured(tmp_path: Path) -> None:
    html = ARTICLE_HTML.replace('charset="utf-8"', 'charset="iso-8859-1"')
    html = html.replace("neighbouring towns", "neighbouring towns near Orléans")
    article = article_of(write(tmp_path, "page.html", html.encode("latin-1")))
    assert "near Orléans" in article.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_text_with_bom(tmp_path: Path, encoding: str) -> None:
    text = "Grüße aus Köln\n\nDie Straßenbahn fährt heute später, sagt die Stadt."
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    article = article_of(write(tmp_path, "gruss.txt", data))
    assert article.text == text
    assert article.title == "Grüße aus Köln"


def test_page_with_no_main_text(tmp_path: Path) -> None:
    path = write(tmp_path, "shop.html", NAV_ONLY_HTML.encode())
    with pytest.raises(ExtractionError, match="no main text found") as info:
        article_of(path)
    assert_one_line(info.value, str(path))


def test_text_too_short(tmp_path: Path) -> None:
    path = write(tmp_path, "short.txt", b"Hi there.")
    with pytest.raises(ExtractionError, match="no main text found"):
        article_of(path)


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "gone.html"
    with pytest.raises(SourceError, match="no such file") as info:
        read_source(str(path), offline=True)
    assert_one_line(info.value, str(path))


def test_folder_given_to_read_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a folder"):
        read_source(str(tmp_path), offline=True)


def test_file_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_FILE_BYTES", 1024)
    path = write(tmp_path, "big.txt", b"x" * 2048)
    with pytest.raises(SourceError, match="too large") as info:
        read_source(str(path), offline=True)
    assert_one_line(info.value, str(path))


def read_error(path: Path) -> str:
    """What read_source raises for `path`, as "kind|message"."""
    try:
        read_source(str(path), offline=True)
    except SlmscanError as error:
        return f"{type(error).__name__}|{error}"
    return "no error|"


def read_error_as_nobody(path: Path) -> str:
    """read_error as user nobody, in a forked child: root reads any file."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            message = read_error(path)
        except BaseException as error:  # the child reports whatever happened, and exits
            message = f"{type(error).__name__}|{error}"
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reported = pipe.read().decode()
    os.waitpid(pid, 0)
    return reported


@pytest.mark.skipif(os.name != "posix", reason="file permissions are POSIX")
def test_unreadable_file() -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)  # nobody may reach the file, just not read it
        path = write(Path(folder), "secret.txt", b"private words")
        path.chmod(0)
        reader = read_error_as_nobody if os.geteuid() == 0 else read_error
        kind, _, message = reader(path).partition("|")
    assert kind == "SourceError", message
    assert "permission denied" in message, message
    assert_one_line(message, str(path))


def test_url_when_offline_opens_no_socket() -> None:
    url = "https://example.org/article.html"
    with NetworkGuard() as guard, pytest.raises(OfflineError) as info:
        read_source(url, offline=True)
    assert guard.attempts == 0
    assert str(info.value) == (
        f"{url}: not fetched: slmscan is offline (--offline or SLMSCAN_OFFLINE)"
    )


@pytest.mark.parametrize(
    "url", ["ftp://example.org/a.txt", "file:///etc/passwd", "javascript:alert(1)"]
)
@pytest.mark.parametrize("offline", [True, False])
def test_unsupported_scheme(url: str, offline: bool) -> None:
    with NetworkGuard() as guard, pytest.raises(SourceError, match="unsupported URL scheme") as e:
        read_source(url, offline=offline)
    assert type(e.value) is SourceError  # refused for what it is, not for being offline
    assert guard.attempts == 0
    assert_one_line(e.value, url)


def test_pdf_named_html_is_read_as_pdf(tmp_path: Path) -> None:
    article = article_of(write(tmp_path, "download.html", make_pdf(PDF_LINES)))
    assert "minus twenty degrees" in article.text


# ---------------------------------------------------------------------------- good inputs


def test_txt(tmp_path: Path) -> None:
    text = "Quarterly notes\n\nSales rose in the north.\nCosts fell in the south.\n"
    path = write(tmp_path, "notes.txt", text.encode())
    raw = read_source(str(path), offline=True)
    article = extract_article(raw)
    assert article.text == text.strip()
    assert article.title == "Quarterly notes"
    assert article.source.kind == "file"
    assert article.source.location == str(path)
    assert article.src == raw.src


def test_txt_without_an_obvious_title(tmp_path: Path) -> None:
    text = "Sales rose in the north, and costs fell in the south, the report says.\n"
    assert article_of(write(tmp_path, "notes.txt", text.encode())).title is None


def test_markdown_title_from_heading(tmp_path: Path) -> None:
    text = "Some preface line.\n\n# Field guide to mosses\n\nMosses grow on north faces.\n"
    article = article_of(write(tmp_path, "guide.md", text.encode()))
    assert article.title == "Field guide to mosses"
    assert "Mosses grow on north faces." in article.text


def test_pdf(tmp_path: Path) -> None:
    from pypdf import PdfReader

    data = make_pdf(PDF_LINES, title="Heat pumps report")
    # The fixture itself must be a PDF pypdf reads, or the test proves nothing.
    assert "minus twenty" in PdfReader(io.BytesIO(data)).pages[0].extract_text()
    article = article_of(write(tmp_path, "report.pdf", data))
    assert article.title == "Heat pumps report"
    assert PDF_LINES[1] in article.text


def test_pdf_title_falls_back_to_first_line(tmp_path: Path) -> None:
    article = article_of(write(tmp_path, "report.pdf", make_pdf(PDF_LINES)))
    assert article.title == "Heat pumps in cold climates"


def make_docx(title: str | None = None) -> bytes:
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_heading("Harbour expansion plan", level=0)
    document.add_paragraph("The port will add two berths for container ships by 2028.")
    document.add_heading("Costs", level=1)
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {
        (0, 0): "Item",
        (0, 1): "Cost",
        (1, 0): "Dredging",
        (1, 1): "40 M",
    }.items():
        table.cell(row, col).text = text
    document.add_paragraph("Work starts in spring.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx(tmp_path: Path) -> None:
    article = article_of(write(tmp_path, "plan.docx", make_docx()))
    assert article.title == "Harbour expansion plan"
    assert "The port will add two berths" in article.text
    assert "Dredging | 40 M" in article.text
    # Document order: the table sits between the two paragraphs around it.
    assert article.text.index("Dredging") < article.text.index("Work starts in spring.")


def test_docx_title_from_core_properties(tmp_path: Path) -> None:
    article = article_of(write(tmp_path, "plan.docx", make_docx(title="Port plan 2028")))
    assert article.title == "Port plan 2028"


def test_stdin_html() -> None:
    raw = read_source("-", offline=True, stdin=io.BytesIO(ARTICLE_HTML.encode()))
    assert (raw.kind, raw.location, raw.name) == ("stdin", "-", "stdin.html")
    article = extract_article(raw)
    assert article.title == "Solar roofs for every new house"
    assert "pay for themselves within eight years" in article.text
    assert "Copyright" not in article.text


def test_stdin_text() -> None:
    raw = read_source("-", offline=True, stdin=io.BytesIO(b"Plain words piped in, nothing more."))
    assert raw.name == "stdin.txt"
    assert extract_article(raw).text == "Plain words piped in, nothing more."


def test_stdin_error_names_stdin() -> None:
    raw = read_source("-", offline=True, stdin=io.BytesIO(b""))
    with pytest.raises(ExtractionError) as info:
        extract_article(raw)
    assert_one_line(info.value, "stdin")


def test_folder_expands_recursively_sorted(tmp_path: Path) -> None:
    for name in [
        "b.txt",
        "a/z.md",
        "a/deep/one.html",
        "a/Report.PDF",
        "c/notes.docx",
        "c/photo.png",  # not a document
        "a/.draft.md",  # hidden file
        ".git/index.html",  # hidden folder
    ]:
        write(tmp_path, name, b"x")
    missing = str(tmp_path / "missing.txt")
    specs = [str(tmp_path), "-", "https://example.org/x", missing]
    found = expand_sources(specs)
    rel = [os.path.relpath(p, tmp_path) if p.startswith(str(tmp_path)) else p for p in found]
    assert rel == [
        "a/Report.PDF",
        "a/deep/one.html",
        "a/z.md",
        "b.txt",
        "c/notes.docx",
        "-",
        "https://example.org/x",
        "missing.txt",  # kept: reading it reports the error, the others still run
    ]


def test_named_file_with_other_suffix_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "README.rst", b"Project notes\n\nThis project reads documents.\n")
    assert expand_sources([str(path)]) == [str(path)]
    assert article_of(path).title == "Project notes"


def test_cleaning_removes_controls_and_escapes() -> None:
    text = "\x1b[1mBold\x1b[0m line\x07\r\n\n\n\n\nCafe\u0301 ends here.\x00\t"
    assert clean_text(text) == "Bold line\n\nCafé ends here."
    assert clean_title("\x1b]0;pwned\x07Real\ntitle\x1b[31m") == "Real title"
    assert clean_title("word " * 100) == ("word " * 100)[:199].rstrip() + "…"
    assert len(clean_title("x" * 500) or "") == 200


def test_title_escape_codes_from_a_file(tmp_path: Path) -> None:
    data = b"\x1b[31mRed\x1b[0m alert\n\nThe terminal would have turned this text red."
    article = article_of(write(tmp_path, "alert.txt", data))
    assert article.title == "Red alert"
    assert "\x1b" not in article.text


# -------------------------------------------------------------------------------- network


class _Handler(http.server.BaseHTTPRequestHandler):
    user_agents: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads it

    def do_GET(self) -> None:
        self.user_agents.append(self.headers.get("User-Agent", ""))
        routes: dict[str, tuple[int, str, bytes]] = {
            "/article": (200, "text/html; charset=utf-8", ARTICLE_HTML.encode()),
            "/doc": (200, "application/pdf", make_pdf(PDF_LINES, title="Heat pumps")),
            "/plain": (200, "text/plain", b"Notes from a server, plain as can be."),
            "/big": (200, "text/plain", b"y" * 5000),
        }
        if self.path == "/to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/file.txt")
            self.end_headers()
            return
        if self.path not in routes:
            self.send_error(404, "Not Found")
            return
        status, content_type, body = routes[self.path]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if self.path != "/big":  # no length: the cap must hold while reading
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests fetch from 127.0.0.1, which a user reaches only with --allow-private."""
    monkeypatch.setenv("SLMSCAN_ALLOW_PRIVATE", "1")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    # A short poll interval: shutdown() waits for it.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.network
@pytest.mark.usefixtures("allow_loopback")
def test_url_fetched_from_local_server(server: str) -> None:
    from slmscan import __version__

    url = f"{server}/article"
    raw = read_source(url, offline=False)
    assert (raw.kind, raw.location, raw.url, raw.name) == ("url", url, url, "page.html")
    assert raw.content_type == "text/html; charset=utf-8"
    assert _Handler.user_agents[-1] == f"slmscan/{__version__}"
    article = extract_article(raw)
    assert article.source.url == url
    assert article.title == "Solar roofs for every new house"
    assert "pay for themselves within eight years" in article.text


@pytest.mark.network
@pytest.mark.usefixtures("allow_loopback")
@pytest.mark.parametrize(("path", "name"), [("/doc", "page.pdf"), ("/plain", "page.txt")])
def test_url_name_follows_content_type(server: str, path: str, name: str) -> None:
    raw = read_source(server + path, offline=False)
    assert raw.name == name
    assert len(extract_article(raw).text) > 20


@pytest.mark.network
@pytest.mark.usefixtures("allow_loopback")
def test_url_errors(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SourceError, match="HTTP error 404") as info:
        read_source(f"{server}/missing", offline=False)
    assert_one_line(info.value, f"{server}/missing")
    with pytest.raises(SourceError, match="redirected to a ftp: URL"):
        read_source(f"{server}/to-ftp", offline=False)
    monkeypatch.setattr(sources, "MAX_URL_BYTES", 500)  # /plain fits, /doc and /big do not
    with pytest.raises(SourceError, match="response too large"):
        read_source(f"{server}/big", offline=False)
    with pytest.raises(SourceError, match="response too large"):  # declared Content-Length
        read_source(f"{server}/doc", offline=False)


@pytest.mark.network
@pytest.mark.usefixtures("allow_loopback")
def test_unreachable_url_is_a_source_error() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SourceError, match="cannot fetch") as info:
        read_source(f"http://127.0.0.1:{port}/", offline=False)
    assert_one_line(info.value, f"http://127.0.0.1:{port}/")


WRAPPED = (
    "The harbour board met on Monday and agreed to dredge the eastern channel before the "
    "autumn storms, so that the larger ferries can dock at low tide. Fishermen asked for the "
    "work to pause in the spawning season, and the board promised a survey of the seabed first."
)


def test_hard_wrapped_text_is_read_as_paragraphs(tmp_path: Path) -> None:
    import textwrap

    text = "Harbour news\n\n" + textwrap.fill(WRAPPED, 64) + "\n"
    article = article_of(write(tmp_path, "news.txt", text.encode()))
    assert article.text == f"Harbour news\n\n{WRAPPED}"
    assert article.title == "Harbour news"


def test_markdown_is_read_as_rendered_text(tmp_path: Path) -> None:
    import textwrap

    body = textwrap.fill(WRAPPED.replace("eastern channel", "[eastern channel](/map)"), 64)
    text = f"---\ntitle: Harbour news\n---\n\n![logo](logo.png)\n\n{body}\n"
    article = article_of(write(tmp_path, "news.md", text.encode()))
    assert article.text == WRAPPED  # no front matter, image, link address or line breaks
    assert article.title == "Harbour news"


def test_pdf_lines_are_joined_into_paragraphs(tmp_path: Path) -> None:
    import textwrap

    lines = ["Harbour news", *textwrap.wrap(WRAPPED, 80)]
    article = article_of(write(tmp_path, "news.pdf", make_pdf(lines)))
    assert WRAPPED in article.text
    assert article.text.startswith("Harbour news\n")
