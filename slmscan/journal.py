"""The batch journal: one SQLite file in the output folder, the record of what each document became.

A batch run asks the journal, for each document, whether it is already done under the same key
(the document's content, the model's sha256, the prompts' version and the settings), records
each outcome in one transaction, and regenerates every output file from it at the end. The
journal, not the files beside it, is the truth: a run killed at any moment leaves it either
with a document's whole outcome or without it.

    meta       name → value            schema version
    documents  location → outcome      the current outcome of each document (one row each)
        location TEXT PRIMARY KEY      path, URL or "-" as the user named it
        key      TEXT                  sha256 of content + model + prompts + settings ("" when
                                       the document could not even be read)
        content_sha256 TEXT            sha256 of the bytes read ("" when unread)
        status   TEXT                  'done' or 'failed'
        card     TEXT                  the card as written (JSON, timings zeroed), when done
        stem     TEXT                  its files' name before any suffix for a duplicate
        error    TEXT                  the one-line error, when failed
        attempts INTEGER               worker runs the document took (2 after two crashes)
        timings  TEXT                  JSON: measured seconds, total and per section
        finished TEXT                  UTC time of the outcome (ISO 8601)
    outputs    name                    every file the batch wrote into the folder, so that
                                       stale ones (a document's old card) can be removed
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .errors import SourceError, UsageError

JOURNAL_NAME = "journal.sqlite"
SCHEMA_VERSION = "1"

Status = Literal["done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    location TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    card TEXT,
    stem TEXT,
    error TEXT,
    attempts INTEGER NOT NULL,
    timings TEXT,
    finished TEXT NOT NULL,
    CHECK ((status = 'done') = (card IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS documents_stem ON documents (stem);
CREATE TABLE IF NOT EXISTS outputs (name TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class Entry:
    """One document's current outcome, as the journal holds it."""

    location: str
    key: str
    content_sha256: str
    status: Status
    card: str | None
    stem: str | None
    error: str | None
    attempts: int
    timings: dict[str, Any]

    @property
    def done(self) -> bool:
        return self.status == "done"


class Journal:
    """The SQLite journal of one output folder; one writer at a time (a lock on the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd = _lock(path)
        try:
            # isolation_level=None: transactions are spelled out below, one per outcome.
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA synchronous = FULL")  # a commit survives a power cut
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as e:
            os.close(self._lock_fd)
            raise SourceError(
                f"{path}: not a usable slmscan journal ({e})",
                hint="move it away (the cards beside it stay valid) and run again",
            ) from e
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise UsageError(
                f"{self.path}: journal schema {row[0]}, this slmscan reads {SCHEMA_VERSION}",
                hint="use another --out folder, or the slmscan version that wrote this one",
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as e:  # disk full, read-only folder, I/O error
            raise SourceError(
                f"{self.path}: cannot write the journal ({e})",
                hint="free some space and run the same command again: nothing done is lost",
            ) from e

    def entry(self, location: str) -> Entry | None:
        """The current outcome of one document, or None when it was never recorded."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM documents WHERE location = ?", (location,)
        ).fetchone()
        return _entry(row) if row else None

    def is_done(self, location: str, key: str) -> bool:
        """True when the document has a card made under exactly this key."""
        entry = self.entry(location)
        return entry is not None and entry.done and entry.key == key

    def record(
        self,
        location: str,
        *,
        key: str,
        content_sha256: str,
        status: Status,
        card: str | None = None,
        stem: str | None = None,
        error: str | None = None,
        attempts: int = 0,
        timings: dict[str, Any] | None = None,
        outputs: Iterable[str] = (),
    ) -> None:
        """Replace a document's outcome, and note the files about to be written for it."""
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    location,
                    key,
                    content_sha256,
                    status,
                    card,
                    stem,
                    error,
                    attempts,
                    json.dumps(timings or {}, sort_keys=True),
                    finished,
                ),
            )
            db.executemany("INSERT OR IGNORE INTO outputs VALUES (?)", [(n,) for n in outputs])

    def entries(self) -> Iterator[Entry]:
        """Every document's current outcome, sorted by location (the order of every output).

        Read as they are used, not all at once: a folder of ten thousand cards stays small.
        """
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM documents ORDER BY location"):
            yield _entry(row)

    def file_stem(self, location: str, stem: str) -> str:
        """The name a done document's files get: its stem, numbered when another shares it.

        Only documents with identical content (and so title and src) share a stem; the first
        by location keeps it and the others get "-2", "-3"… in location order.
        """
        rows = self._db.execute(
            "SELECT location FROM documents WHERE stem = ? AND status = 'done' AND location < ?",
            (stem, location),
        ).fetchall()
        return stem if not rows else f"{stem}-{len(rows) + 1}"

    def outputs(self) -> set[str]:
        """Names of every file the batch has written (or was about to) into the folder."""
        return {row[0] for row in self._db.execute("SELECT name FROM outputs")}

    def add_outputs(self, names: Iterable[str]) -> None:
        """Note files about to be written into the folder."""
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO outputs VALUES (?)", [(n,) for n in names])

    def set_outputs(self, names: Iterable[str]) -> None:
        """Replace the record of written files (after stale ones were removed)."""
        with self._transaction() as db:
            db.execute("DELETE FROM outputs")
            db.executemany("INSERT INTO outputs VALUES (?)", [(n,) for n in sorted(names)])

    def close(self) -> None:
        """Close the database and release the folder's lock."""
        self._db.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_COLUMNS = "location, key, content_sha256, status, card, stem, error, attempts, timings"


def _entry(row: tuple[Any, ...]) -> Entry:
    location, key, content_sha256, status, card, stem, error, attempts, timings = row
    return Entry(
        location, key, content_sha256, status, card, stem, error, attempts, json.loads(timings)
    )


def _lock(path: Path) -> int:
    """An exclusive lock on the journal file for the whole run: two runs would interleave."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise SourceError(f"{path}: cannot open the journal ({e.strerror or e})") from e
    try:
        # flock, not fcntl: SQLite's own fcntl locks on the same file are left alone by it.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError(
            f"another slmscan run is writing to {path.parent}",
            hint="wait for it to finish, or choose another --out folder",
        ) from None
    except OSError:
        pass  # a file system without flock (some network shares): run unguarded, as before
    return fd
