"""Proof that analysis stays on this machine: count (and refuse) network connections.

An audit hook sees every `socket.connect` and name lookup in the process. While a guard is
active, each one is counted and refused, so a card's provenance can say how many were
attempted (zero, unless something in the stack misbehaves; then the attempt fails loudly).
"""

from __future__ import annotations

import socket
import sys
import threading
from types import TracebackType

_lock = threading.Lock()
_active: list[NetworkGuard] = []
_installed = False

_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}


class NetworkRefused(ConnectionError):
    """A connection attempted while slmscan was analysing a document."""


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event not in _EVENTS or not _active:
        return
    if event in {"socket.connect", "socket.sendto"}:
        sock = args[0]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return  # local (Unix) sockets never leave the machine
    for guard in _active:
        guard.attempts += 1
    raise NetworkRefused(f"network access refused during analysis ({event})")


class NetworkGuard:
    """While active, every outbound connection or name lookup is counted and refused."""

    def __init__(self) -> None:
        self.attempts = 0

    def __enter__(self) -> NetworkGuard:
        global _installed
        with _lock:
            if not _installed:
                sys.addaudithook(_hook)  # hooks cannot be removed; the list decides if it acts
                _installed = True
            _active.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _lock:
            _active.remove(self)
