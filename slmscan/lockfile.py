"""Trust on first use: the commit and sha256 of every Hub file slmscan downloaded.

A manifest may name a branch (`revision = "main"`) and no sha256, because nobody could check the
file when the manifest was written. The first `slmscan models pull` then resolves the branch to a
commit, hashes what arrived, and records both here, in `$SLMSCAN_HOME/models.lock.json`. From
then on that commit is what slmscan asks for (so a cached file needs no network at all) and that
sha256 is what every load is checked against, like a package lock file. Moving to a newer
upload is explicit: `slmscan models pull ID --update`.

    {"version": 1, "files": {"org/repo/file.gguf@main": {"repo": ..., "filename": ...,
     "revision": "main", "commit": "<40 hex>", "sha256": "<64 hex>", "size": 123,
     "recorded": "2026-11-28T12:00:00+00:00"}}}
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import config
from .errors import IntegrityError, ModelError

LOCK_NAME = "models.lock.json"
LOCK_VERSION = 1


@dataclass(frozen=True)
class LockEntry:
    """One Hub file as first downloaded: where from, which commit, which bytes."""

    repo: str
    filename: str
    revision: str
    commit: str
    sha256: str
    size: int
    recorded: str = ""

    @property
    def key(self) -> str:
        """The entry's key in the lock file."""
        return lock_key(self.repo, self.filename, self.revision)


def lock_key(repo: str, filename: str, revision: str) -> str:
    """The key of a repo/filename/revision in the lock file."""
    return f"{repo}/{filename}@{revision}"


def lock_path() -> Path:
    """Where the lock file lives: $SLMSCAN_HOME/models.lock.json."""
    return config.home_dir() / LOCK_NAME


def read_lock() -> dict[str, LockEntry]:
    """Every recorded entry, by key; an empty dict when nothing was downloaded yet."""
    path = lock_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(
            f"{path}: unreadable model lock file ({e})",
            hint=f"repair {path}, or delete it to trust the next downloads again",
        ) from e
    try:
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {LOCK_VERSION}")
        return {key: LockEntry(**entry) for key, entry in data["files"].items()}
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ModelError(
            f"{path}: invalid model lock file ({e})",
            hint=f"repair {path}, or delete it to trust the next downloads again",
        ) from e


def find_entry(repo: str, filename: str, revision: str) -> LockEntry | None:
    """The recorded entry for a repo/filename/revision, if any."""
    return read_lock().get(lock_key(repo, filename, revision))


def _write(entries: dict[str, LockEntry]) -> None:
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": LOCK_VERSION,
        "files": {key: asdict(entry) for key, entry in sorted(entries.items())},
    }
    # Write a sibling temp file and rename it: a crash never leaves half a lock file.
    fd, tmp = tempfile.mkstemp(prefix=".models.lock.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record_entry(entry: LockEntry) -> LockEntry:
    """Add or replace an entry (stamped with the time it was recorded); returns it."""
    if not entry.recorded:
        stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
        entry = LockEntry(**{**asdict(entry), "recorded": stamp})
    entries = read_lock()
    entries[entry.key] = entry
    _write(entries)
    return entry


def forget_entry(repo: str, filename: str, revision: str) -> bool:
    """Drop an entry; True when there was one."""
    entries = read_lock()
    if entries.pop(lock_key(repo, filename, revision), None) is None:
        return False
    _write(entries)
    return True


def check_against_entry(entry: LockEntry, path: Path, sha256: str, model_id: str) -> None:
    """Refuse a file whose sha256 is not the one recorded on first download."""
    if sha256 != entry.sha256:
        raise IntegrityError(
            f"{path}: sha256 {sha256[:12]}… differs from {entry.sha256[:12]}… recorded in "
            f"{lock_path()} for {entry.repo}/{entry.filename} at commit {entry.commit[:12]}",
            hint=f"slmscan models pull {model_id} --force  (downloads that commit again)",
        )
