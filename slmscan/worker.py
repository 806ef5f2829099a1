"""Extraction and inference in a worker process: a crash or a runaway document fails one document.

`InferenceWorker` (the parent's side) starts `python -m slmscan.worker`, which loads the model
once and then extracts and analyses the documents sent to it, one at a time. When the worker
dies (llama.cpp aborting, a segfault in a parser, the kernel's OOM killer) the document is
tried once more in a fresh worker, then failed; when a document takes longer than its limit to
extract or to analyse, the worker is killed and the document failed. The parent never dies of
what happens in the worker.

Protocol: two pipes, framed by `multiprocessing.connection` (length-prefixed messages), every
message JSON, a document's bytes a frame of their own. Nothing is pickled, so a worker that a
hostile document took over cannot make the parent run code; the parent caps and validates all
it receives (a card must pass the schema).

    parent → worker   {"op": "start", "options": {…ScanOptions…}}         once
                      {"op": "analyse", "location": …, "kind": …, "name": …, "url": …,
                       "content_type": …}  then the bytes                per document
                      (end of pipe)                                     stop
    worker → parent   {"event": "ready"}                                model loaded
                      {"event": "extracted"}                            text found, model runs
                      {"event": "step", "step": "summary"}              a section starts
                      {"event": "card", "card": {…}}                    done
                      {"event": "failed", "error": "ExtractionError", "message": …, "hint": …}
                      {"event": "fatal", "error": "ModelLoadError", "message": …, "hint": …}

"failed" fails one document; "fatal" (a model, prompt or usage error) stops the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import config, errors
from .card import Card
from .document import RawDocument
from .errors import (
    ExtractionError,
    GenerationError,
    ModelError,
    ModelLoadError,
    PromptError,
    SlmscanError,
    UsageError,
)
from .scanner import ScanOptions

#: Runs a document gets when it kills the worker: the second crash fails it.
MAX_ATTEMPTS = 2
# Messages from the worker are small (a card is tens of kilobytes): anything bigger is garbage.
_MAX_MESSAGE = 16 * 2**20
# Seconds a worker gets to exit on its own once its pipe is closed.
_EXIT_GRACE = 5.0
# Seconds between a dead worker's pipe closing and the process being reapable.
_DYING_GRACE = 2.0


@dataclass(frozen=True)
class Limits:
    """Per-document time limits, in seconds, and the time a worker may take to load the model."""

    extract_seconds: float = field(default_factory=config.extract_timeout)
    generate_seconds: float = field(default_factory=config.document_timeout)
    load_seconds: float = 900.0


@dataclass(frozen=True)
class Outcome:
    """One document's result from the worker: a card, or the error that failed it."""

    card: Card | None = None
    error: SlmscanError | None = None
    attempts: int = 1


class _Crashed(Exception):
    """The worker died, or spoke out of turn: it is no longer usable."""


class _TimedOut(Exception):
    """The worker did not answer before the deadline."""


class InferenceWorker:
    """The parent's handle on one worker process, restarted after a crash."""

    def __init__(self, options: ScanOptions, limits: Limits | None = None) -> None:
        self.options = options
        self.limits = limits or Limits()
        self._process: subprocess.Popen[bytes] | None = None
        self._to_worker: Connection | None = None
        self._from_worker: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The running worker's process id, if one runs."""
        return self._process.pid if self._process is not None else None

    def analyse(self, raw: RawDocument, step: Callable[[str], None] | None = None) -> Outcome:
        """A card of one raw document, or the error that failed it; raises only run-wide errors.

        `step(name)` hears each step of the analysis as it starts.
        """
        where = "stdin" if raw.location == "-" else raw.location
        attempts = 0
        while True:
            attempts += 1
            self._ensure_started()
            extracted = False
            try:
                for event in self._run(raw):
                    kind = event.get("event")
                    if kind == "extracted":
                        extracted = True
                    elif kind == "step":
                        if step is not None:
                            step(str(event.get("step"))[:80])
                    else:
                        return _outcome(event, where, attempts)
            except _TimedOut:
                self._stop(0)
                return Outcome(
                    error=_timeout_error(where, extracted, self.limits), attempts=attempts
                )
            except _Crashed as crash:
                status = self._stop(_DYING_GRACE)
                if attempts < MAX_ATTEMPTS:
                    continue  # once more, in a fresh worker: the crash may not be this document's
                cause = status or str(crash)
                error: SlmscanError = (
                    GenerationError(f"{where}: the model crashed on it twice ({cause}); skipped")
                    if extracted
                    else ExtractionError(
                        f"{where}: reading it crashed the worker twice ({cause}); skipped"
                    )
                )
                return Outcome(error=error, attempts=attempts)

    def _run(self, raw: RawDocument) -> Any:
        """Send one document; yield the worker's events about it until the last one."""
        header = {
            "op": "analyse",
            "location": raw.location,
            "kind": raw.kind,
            "name": raw.name,
            "url": raw.url,
            "content_type": raw.content_type,
        }
        try:
            self._send(header)
            assert self._to_worker is not None
            self._to_worker.send_bytes(raw.data)
        except OSError as e:
            raise _Crashed("the worker stopped reading") from e
        deadline = time.monotonic() + self.limits.extract_seconds
        while True:
            event = self._receive(deadline)
            yield event
            if event.get("event") == "extracted":
                deadline = time.monotonic() + self.limits.generate_seconds
            elif event.get("event") != "step":
                return

    def _ensure_started(self) -> None:
        if self._process is not None:
            return
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "slmscan.worker",
                    str(to_worker_r),
                    str(from_worker_w),
                    str(os.getpid()),
                ],
                pass_fds=(to_worker_r, from_worker_w),
                stdin=subprocess.DEVNULL,
                # The protocol has its own pipes; stray native prints must not reach a
                # stdout that may carry cards.
                stdout=subprocess.DEVNULL,
            )
        except BaseException:
            for fd in (to_worker_w, from_worker_r):
                os.close(fd)
            raise
        finally:
            for fd in (to_worker_r, from_worker_w):
                os.close(fd)
        self._to_worker = Connection(to_worker_w, readable=False)
        self._from_worker = Connection(from_worker_r, writable=False)
        try:
            self._send({"op": "start", "options": _options_to_json(self.options)})
            event = self._receive(time.monotonic() + self.limits.load_seconds)
        except OSError as e:
            status = self._stop(_DYING_GRACE)
            raise ModelLoadError(f"the model worker died while starting ({status or e})") from e
        except _Crashed as e:
            status = self._stop(_DYING_GRACE)
            raise ModelLoadError(
                f"the model worker died while loading the model ({status or e})",
                hint="try another model: slmscan models list",
            ) from None
        except _TimedOut:
            self._stop(0)
            raise ModelLoadError(
                f"loading the model took longer than {self.limits.load_seconds:.0f} s"
            ) from None
        if event.get("event") == "fatal":
            self._stop(_EXIT_GRACE)
            raise _error(event)
        if event.get("event") != "ready":
            self._stop(0)
            raise ModelLoadError(f"the model worker answered {event.get('event')!r} to start")

    def _send(self, message: dict[str, Any]) -> None:
        assert self._to_worker is not None
        self._to_worker.send_bytes(json.dumps(message).encode())

    def _receive(self, deadline: float) -> dict[str, Any]:
        assert self._from_worker is not None
        remaining = deadline - time.monotonic()
        # poll() is true at end of file too; recv_bytes then raises EOFError.
        if remaining <= 0 or not self._from_worker.poll(remaining):
            raise _TimedOut
        try:
            data = self._from_worker.recv_bytes(_MAX_MESSAGE)
        except (EOFError, OSError) as e:
            raise _Crashed("the worker closed its pipe") from e
        try:
            message = json.loads(data)
        except ValueError as e:
            raise _Crashed("the worker sent a malformed message") from e
        if not isinstance(message, dict):
            raise _Crashed("the worker sent a malformed message")
        return message

    def _stop(self, grace: float) -> str | None:
        """End the worker: close its pipes, give it `grace` seconds to exit, then kill it.

        Returns how it ended when it died on its own of a signal or an error status.
        """
        process, self._process = self._process, None
        for conn in (self._to_worker, self._from_worker):
            if conn is not None:
                conn.close()
        self._to_worker = self._from_worker = None
        if process is None:
            return None
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return None
        return _describe_exit(process.returncode)

    def close(self) -> None:
        """Stop the worker: close its pipe and let it exit, killing it if it does not."""
        self._stop(_EXIT_GRACE)

    def __enter__(self) -> InferenceWorker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stop(0)  # stopped by Ctrl-C or an error: the document in progress is moot


def _outcome(event: dict[str, Any], where: str, attempts: int) -> Outcome:
    kind = event.get("event")
    if kind == "card":
        try:
            return Outcome(card=Card.model_validate(event.get("card")), attempts=attempts)
        except ValueError:  # pydantic's ValidationError: not a card, whatever the worker says
            error = GenerationError(f"{where}: the worker sent a card that fails the schema")
            return Outcome(error=error, attempts=attempts)
    if kind == "failed":
        return Outcome(error=_error(event), attempts=attempts)
    if kind == "fatal":
        raise _error(event)
    raise _Crashed(f"the worker sent an unexpected {kind!r} event")


def _error(event: dict[str, Any]) -> SlmscanError:
    """The worker's error as the same class in this process (SlmscanError if unknown)."""
    cls = getattr(errors, str(event.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, SlmscanError)):
        cls = SlmscanError
    hint = event.get("hint")
    return cls(str(event.get("message")), hint=hint if isinstance(hint, str) else None)


def _timeout_error(where: str, extracted: bool, limits: Limits) -> SlmscanError:
    if extracted:
        return GenerationError(
            f"{where}: making the card took longer than {limits.generate_seconds:g} s "
            "(the limit); skipped",
            hint="raise SLMSCAN_DOCUMENT_TIMEOUT, or choose a faster model",
        )
    return ExtractionError(
        f"{where}: extracting the text took longer than {limits.extract_seconds:g} s "
        "(the limit); skipped",
        hint="raise SLMSCAN_EXTRACT_TIMEOUT for very large documents",
    )


def _describe_exit(returncode: int | None) -> str | None:
    if returncode is None or returncode == 0:
        return None
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _options_to_json(options: ScanOptions) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return list(value)
        return value

    return {k: plain(v) for k, v in dataclasses.asdict(options).items()}


def _options_from_json(data: dict[str, Any]) -> ScanOptions:
    # The fields that are not plain JSON values; a new one of that kind needs a line here.
    data = dict(data)
    data["sections"] = tuple(data["sections"])
    data["prompts"] = Path(data["prompts"]) if data.get("prompts") else None
    return ScanOptions(**data)


# ------------------------------------------------------------------------------ worker side


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when the parent dies (a SIGKILLed batch leaves none)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    # Elsewhere the worker still ends when it next reads its pipe and finds it closed.
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(0)


def serve(incoming: Connection, outgoing: Connection) -> int:
    """The worker's loop: load the model, then extract and analyse each document it is sent."""
    from .extract import extract_article
    from .scanner import Scanner

    def send(**message: Any) -> None:
        outgoing.send_bytes(json.dumps(message).encode())

    def error_message(kind: str, e: SlmscanError) -> dict[str, Any]:
        return {"event": kind, "error": type(e).__name__, "message": e.message, "hint": e.hint}

    start = json.loads(incoming.recv_bytes())
    try:
        scanner = Scanner(_options_from_json(start["options"]))
        # Loaded now, not on the first document, so that its time counts against no document.
        scanner._load()
    except SlmscanError as e:
        send(**error_message("fatal", e))
        return 1
    send(event="ready")
    with scanner:
        while True:
            try:
                header = json.loads(incoming.recv_bytes())
                data = incoming.recv_bytes()
            except EOFError:
                return 0  # the parent closed the pipe: the batch is over
            raw = RawDocument(
                location=header["location"],
                kind=header["kind"],
                data=data,
                name=header["name"],
                url=header.get("url"),
                content_type=header.get("content_type"),
            )
            where = "stdin" if raw.location == "-" else raw.location
            try:
                article = extract_article(raw)
                send(event="extracted")
                card = scanner.analyse(article, lambda name: send(event="step", step=name))
            except (ModelError, PromptError, UsageError) as e:
                send(**error_message("fatal", e))  # every later document would fail the same
                return 1
            except SlmscanError as e:
                send(**error_message("failed", e))
                continue
            except RecursionError:
                send(**error_message("failed", ExtractionError(f"{where}: nested too deeply")))
                continue
            except MemoryError:
                send(**error_message("failed", ExtractionError(f"{where}: out of memory")))
                continue
            except Exception as e:
                # A bug, here or in a library, that this document set off. One document fails
                # and the batch goes on; the traceback is shown on request.
                if config.debug_enabled():
                    traceback.print_exc()
                error = GenerationError(
                    f"{where}: unexpected {type(e).__name__} (a bug; SLMSCAN_DEBUG=1 shows it)"
                )
                send(**error_message("failed", error))
                continue
            send(event="card", card=card.model_dump(mode="json"))


def main(argv: list[str]) -> int:
    """Entry point of `python -m slmscan.worker READ_FD WRITE_FD PARENT_PID`."""
    read_fd, write_fd, parent_pid = (int(a) for a in argv)
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the parent decides what stops, and stops this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    incoming = Connection(read_fd, writable=False)
    outgoing = Connection(write_fd, readable=False)
    try:
        return serve(incoming, outgoing)
    except (EOFError, BrokenPipeError):
        return 0  # the parent went away mid-message


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
