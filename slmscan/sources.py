"""Inputs as the user names them (files, folders, URLs, "-") → raw documents.

This is the only module that opens network connections: one plain HTTP(S) GET per URL, with
certificates verified, a timeout, a size cap and no redirects to other schemes. Every connection
(the first and each redirect's) goes to an address checked first: the host is resolved, every
address it has must be a public one unless private networks are allowed (`--allow-private`),
and the socket connects to one of those checked addresses, so a second lookup cannot swap in
another (DNS rebinding). Proxies from the environment are not used: through a proxy the address
reached could not be checked. Nothing here parses a document; `extract.py` does that.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
import sys
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from . import config
from .document import RawDocument
from .errors import OfflineError, SourceError

#: File suffixes a folder is searched for (a file named on its own is read whatever its suffix).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".html", ".htm", ".xhtml", ".txt", ".md", ".markdown", ".pdf", ".docx"}
)
#: A supported file compressed with gzip (`page.html.gz`) is found too; extract.py unpacks it.
COMPRESSED_SUFFIX = ".gz"

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
            if not name.startswith(".") and is_supported_name(name)
        )
    return sorted(found, key=lambda path: Path(path).parts)


def is_supported_name(name: str) -> bool:
    """True for a file name a folder walk picks up: a supported suffix, gzipped or not."""
    lowered = name.lower()
    if lowered.endswith(COMPRESSED_SUFFIX):
        lowered = lowered[: -len(COMPRESSED_SUFFIX)]
    return Path(lowered).suffix in SUPPORTED_SUFFIXES


def read_source(
    spec: str,
    *,
    offline: bool,
    stdin: BinaryIO | None = None,
    allow_private: bool | None = None,
) -> RawDocument:
    """The raw bytes of one input: "-" for stdin, an http(s) URL, or a file path.

    `allow_private` lets URLs reach private, loopback and link-local addresses; None reads the
    setting (SLMSCAN_ALLOW_PRIVATE, default no).
    """
    if spec == "-":
        return _read_stdin(stdin if stdin is not None else sys.stdin.buffer)
    if is_url(spec):
        if allow_private is None:
            allow_private = config.allow_private()
        return _fetch(spec, offline=offline, allow_private=allow_private)
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


def address_refusal(address: str) -> str | None:
    """Why an IP address is not one on the public internet (e.g. "a loopback address"), or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # "%eth0": an IPv6 zone, not the IP
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address reaches that IPv4 host: judge that one.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return address_refusal(str(embedded))
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:  # shared (carrier-grade NAT), reserved, documentation ranges…
        return "not a public address"
    return None


def _checked_addresses(host: str, port: int, *, allow_private: bool) -> list[Any]:
    """The host's addresses, every one of them checked (one bad address refuses them all)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host} ({e.strerror or e})") from e
    if not allow_private:
        for *_, sockaddr in infos:
            reason = address_refusal(str(sockaddr[0]))
            if reason is not None:
                shown = host if host == sockaddr[0] else f"{host} ({sockaddr[0]})"
                raise SourceError(
                    f"refused to connect to {shown}: {reason}",
                    hint="pass --allow-private (or set SLMSCAN_ALLOW_PRIVATE=1) to fetch from "
                    "private networks",
                )
    return infos


def _connect(
    address: tuple[str, int],
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
    *,
    allow_private: bool,
) -> socket.socket:
    """`socket.create_connection`, but only to checked addresses, connecting by number."""
    host, port = address
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in _checked_addresses(
        host, port, allow_private=allow_private
    ):
        sock = socket.socket(family, kind, proto)
        try:
            if isinstance(timeout, int | float):  # http.client passes a sentinel for "default"
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError(f"cannot connect to {host}: no addresses")


def _opener(*, allow_private: bool) -> Any:
    """A urllib opener: checked connections, verified certificates, no proxies, http(s) only."""
    import functools
    import http.client
    import ssl
    import urllib.request

    connect = functools.partial(_connect, allow_private=allow_private)

    class CheckedHTTPConnection(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class CheckedHTTPSConnection(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    class CheckedHTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(CheckedHTTPConnection, req)

    class CheckedHTTPSHandler(urllib.request.HTTPSHandler):
        def __init__(self) -> None:
            # Explicit, so that no process-wide override (PYTHONHTTPSVERIFY=0, a patched
            # default context) can turn verification off: certificates and host names always.
            self.verified = ssl.create_default_context()
            super().__init__(context=self.verified)

        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(CheckedHTTPSConnection, req, context=self.verified)

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
            # urllib alone also follows ftp:; the new host's addresses are checked on connect.
            scheme = urlsplit(newurl).scheme.lower()
            if scheme not in {"http", "https"}:
                raise SourceError(
                    f"{req.full_url}: redirected to a {scheme}: URL, which is refused"
                )
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}),
        CheckedHTTPHandler,
        CheckedHTTPSHandler,
        HttpOnlyRedirects,
    )


def _fetch(url: str, *, offline: bool, allow_private: bool) -> RawDocument:
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
        with _opener(allow_private=allow_private).open(request, timeout=FETCH_TIMEOUT) as response:
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
        if isinstance(e.reason, SourceError):  # an address refused on connect, wrapped by urllib
            raise SourceError(f"{url}: {e.reason.message}", hint=e.reason.hint) from None
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
