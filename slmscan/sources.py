"""Inputs as the user names them (files, folders, URLs, "-") → raw documents.

This is the only module that opens network connections: one plain HTTP(S) GET per URL, with
certificates verified, a timeout, a size cap and no redirects to other schemes. Nothing here
parses a document; `extract.py` does that.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .document import RawDocument
from .errors import OfflineError, SourceError

#: File suffixes a folder is searched for (a file named on its own is read whatever its suffix).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".html", ".htm", ".xhtml", ".txt", ".md", ".markdown", ".pdf", ".docx"}
)

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_URL_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT = 30.0  # seconds without progress on the socket
# A server that trickles bytes never trips the socket timeout; this bounds the whole download.
FETCH_DEADLINE = 300.0

_CHUNK = 64 * 1024
# Schemes recognised without "//" so that "file:/etc/passwd" or "javascript:…" is refused as a
# URL rather than reported as a missing file.
_BARE_SCHEMES = {"file", "javascript", "data", "mailto", "about", "blob", "vbscript"}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")

_CONTENT_NAMES = {
    "text/html": "page.html",
    "application/xhtml+xml": "page.html",
    "application/pdf": "page.pdf",
    "text/plain": "page.txt",
    "text/markdown": "page.md",
    "text/x-markdown": "page.md",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "page.docx",
}


def _url_scheme(spec: str) -> str | None:
    """The scheme when `spec` is meant as a URL, else None (a path)."""
    match = _SCHEME.match(spec)
    if not match or len(match.group(1)) < 2:  # "C:" is a drive letter, not a scheme
        return None
    scheme = match.group(1).lower()
    if spec[match.end() :].startswith("//") or scheme in _BARE_SCHEMES:
        return scheme
    return None


def is_url(spec: str) -> bool:
    """True when `spec` names a URL (of any scheme) rather than a path or "-"."""
    return _url_scheme(spec) is not None and not Path(spec).exists()


def expand_sources(specs: list[str]) -> list[str]:
    """Every document the user named: folders walked recursively, the rest kept as given."""
    expanded: list[str] = []
    for spec in specs:
        if spec == "-" or is_url(spec) or not os.path.isdir(spec):
            # Missing paths are kept: read_source reports them, and the other inputs still run.
            expanded.append(spec)
        else:
            expanded.extend(_walk(spec))
    return expanded


def _walk(folder: str) -> list[str]:
    """Supported files below `folder`, hidden ones left out, sorted by path (as `find | sort`)."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder):  # symlinked folders are not entered: no loops
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(
            os.path.join(root, name)
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        )
    return sorted(found, key=lambda path: Path(path).parts)


def read_source(spec: str, *, offline: bool, stdin: BinaryIO | None = None) -> RawDocument:
    """The raw bytes of one input: "-" for stdin, an http(s) URL, or a file path."""
    if spec == "-":
        return _read_stdin(stdin if stdin is not None else sys.stdin.buffer)
    if is_url(spec):
        return _fetch(spec, offline=offline)
    return _read_file(spec)


def _read_stdin(stream: BinaryIO) -> RawDocument:
    from .extract import looks_like_html

    data = _read_capped(stream, MAX_FILE_BYTES, "stdin")
    name = "stdin.html" if looks_like_html(data) else "stdin.txt"
    return RawDocument(location="-", kind="stdin", data=data, name=name)


def _read_capped(stream: BinaryIO, limit: int, where: str) -> bytes:
    try:
        data = stream.read(limit + 1)
    except OSError as e:
        raise SourceError(f"{where}: cannot read ({e.strerror or e})") from e
    if len(data) > limit:
        raise SourceError(f"{where}: too large (over {limit // 2**20} MB, the limit)")
    return data


def _read_file(spec: str) -> RawDocument:
    path = Path(spec)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SourceError(f"{spec}: no such file") from None
    except OSError as e:
        raise SourceError(f"{spec}: cannot read ({e.strerror or e})") from e
    if stat.S_ISDIR(info.st_mode):
        raise SourceError(f"{spec}: is a folder, not a file")
    if info.st_size > MAX_FILE_BYTES:
        raise SourceError(
            f"{spec}: too large ({info.st_size / 2**20:.0f} MB; the limit is "
            f"{MAX_FILE_BYTES // 2**20} MB)"
        )
    try:
        with path.open("rb") as f:
            # Capped again while reading: pipes and devices report no size.
            data = _read_capped(f, MAX_FILE_BYTES, spec)
    except PermissionError:
        raise SourceError(f"{spec}: permission denied") from None
    except IsADirectoryError:
        raise SourceError(f"{spec}: is a folder, not a file") from None
    except SourceError:
        raise
    except OSError as e:
        raise SourceError(f"{spec}: cannot read ({e.strerror or e})") from e
    return RawDocument(location=spec, kind="file", data=data, name=path.name)


def _opener() -> Any:
    """A urllib opener whose redirects go only to http(s) (urllib alone also follows ftp:)."""
    import urllib.request

    class HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(
            self,
            req: urllib.request.Request,
            fp: Any,
            code: int,
            msg: str,
            headers: Any,
            newurl: str,
        ) -> urllib.request.Request | None:
            scheme = urlsplit(newurl).scheme.lower()
            if scheme not in {"http", "https"}:
                raise SourceError(
                    f"{req.full_url}: redirected to a {scheme}: URL, which is refused"
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    # The default HTTPS handler verifies certificates against the system's trust store.
    return urllib.request.build_opener(HttpOnlyRedirects)


def _fetch(url: str, *, offline: bool) -> RawDocument:
    scheme = _url_scheme(url)
    if scheme not in {"http", "https"}:
        raise SourceError(f"{url}: unsupported URL scheme '{scheme}:' (only http and https)")
    if not urlsplit(url).hostname:
        raise SourceError(f"{url}: not a valid URL (no host)")
    if offline:
        raise OfflineError(f"{url}: not fetched: slmscan is offline (--offline or SLMSCAN_OFFLINE)")

    # Imported here: http.client and ssl cost tens of milliseconds that only fetching needs.
    import http.client
    import urllib.error
    import urllib.request

    from . import __version__

    request = urllib.request.Request(
        url,
        headers={
            "User-Agent": f"slmscan/{__version__}",
            "Accept": "text/html,application/xhtml+xml,application/pdf,text/plain;q=0.9,*/*;q=0.5",
            # urllib does not decompress; asking for identity keeps the size cap meaningful.
            "Accept-Encoding": "identity",
        },
    )
    try:
        with _opener().open(request, timeout=FETCH_TIMEOUT) as response:
            length = response.headers.get("Content-Length", "")
            if length.strip().isdigit() and int(length) > MAX_URL_BYTES:
                raise SourceError(_too_large(url))
            data = _read_response(response, url)
            content_type = response.headers.get("Content-Type")
            encoding = (response.headers.get("Content-Encoding") or "").strip().lower()
    except SourceError:
        raise
    except urllib.error.HTTPError as e:
        raise SourceError(f"{url}: HTTP error {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise SourceError(f"{url}: cannot fetch ({_reason(e.reason)})") from e
    except TimeoutError as e:
        raise SourceError(f"{url}: timed out after {FETCH_TIMEOUT:.0f} s") from e
    except OSError as e:  # includes http.client's connection errors
        raise SourceError(f"{url}: cannot fetch ({_reason(e)})") from e
    except http.client.HTTPException as e:
        # IncompleteRead, LineTooLong, …: a broken server, not a bug in slmscan.
        raise SourceError(f"{url}: broken HTTP response ({type(e).__name__})") from e
    except ValueError as e:  # urllib's "URL can't contain control characters" and the like
        raise SourceError(f"{url}: not a valid URL ({e})") from e

    data = _decompress(data, encoding, url)
    return RawDocument(
        location=url,
        kind="url",
        data=data,
        name=_name_for(content_type, url),
        url=url,
        content_type=content_type,
    )


def _read_response(response: BinaryIO, url: str) -> bytes:
    deadline = time.monotonic() + FETCH_DEADLINE
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(_CHUNK):
        size += len(chunk)
        if size > MAX_URL_BYTES:
            raise SourceError(_too_large(url))
        if time.monotonic() > deadline:
            raise SourceError(f"{url}: download took longer than {FETCH_DEADLINE:.0f} s")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(data: bytes, encoding: str, url: str) -> bytes:
    """Undo a Content-Encoding the server sent anyway, without letting it grow past the cap."""
    if encoding in {"", "identity"}:
        return data
    if encoding not in {"gzip", "x-gzip", "deflate"}:
        raise SourceError(f"{url}: unsupported Content-Encoding '{encoding}'")
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(data, MAX_URL_BYTES + 1)
    except zlib.error as e:
        raise SourceError(f"{url}: corrupt {encoding} response ({e})") from e
    if len(out) > MAX_URL_BYTES:
        raise SourceError(_too_large(url))
    return out


def _too_large(url: str) -> str:
    return f"{url}: response too large (over {MAX_URL_BYTES // 2**20} MB, the limit)"


def _reason(reason: object) -> str:
    text = getattr(reason, "strerror", None) or str(reason)
    if "CERTIFICATE_VERIFY_FAILED" in str(reason):
        return "TLS certificate verification failed"
    if isinstance(reason, TimeoutError) or "timed out" in text:
        return f"timed out after {FETCH_TIMEOUT:.0f} s"
    return " ".join(text.split())  # one line, whatever the library put in it


def _name_for(content_type: str | None, url: str) -> str:
    """A file name whose suffix tells extract.py the format of a fetched page."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _CONTENT_NAMES:
        return _CONTENT_NAMES[media]
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return f"page{suffix}"
    # Most of the web is HTML; extract.py still sniffs PDF and binary data by their bytes.
    return "page.html"
