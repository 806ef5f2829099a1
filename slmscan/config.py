"""Paths, environment variables and settings, in one place, read when called (never at import).

Precedence: command-line flag, then environment variable, then default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Every environment variable slmscan reads, with what it does (the README lists them all).
ENVIRONMENT: dict[str, str] = {
    "SLMSCAN_HOME": "slmscan's own folder: user manifests, model lock file, assembled models "
    "(default ~/.slmscan)",
    "SLMSCAN_CACHE": "where bundled models shipped in chunks are assembled (default "
    "$SLMSCAN_HOME/cache)",
    "SLMSCAN_MODEL": "model id, alias or .gguf path used when --model is not given",
    "SLMSCAN_OFFLINE": "1 refuses every network access (URLs and model downloads)",
    "SLMSCAN_PROMPTS": "folder of prompt templates that override the built-in ones",
    "SLMSCAN_THREADS": "CPU threads for llama.cpp (default: all cores, at most 4)",
    "SLMSCAN_MAX_CONTEXT": "largest context window slmscan asks for, in tokens (default 8192)",
    "SLMSCAN_DEBUG": "1 shows Python tracebacks instead of one-line errors",
    "SLMSCAN_ALLOW_PRIVATE": "1 lets URLs reach private, loopback and link-local addresses "
    "(as --allow-private; refused by default)",
    "SLMSCAN_EXTRACT_TIMEOUT": "seconds a batch allows for reading one document's text before "
    "failing it (default 120)",
    "SLMSCAN_DOCUMENT_TIMEOUT": "seconds a batch allows the model for one document's card before "
    "failing it (default 1800)",
    "HF_HOME": "Hugging Face home; the model cache lives below it (huggingface_hub)",
    "HF_HUB_CACHE": "Hugging Face model cache folder (huggingface_hub)",
    "HUGGINGFACE_HUB_CACHE": "older name of HF_HUB_CACHE, honoured the same way (huggingface_hub)",
    "XDG_CACHE_HOME": "without HF_HOME, the Hugging Face home is $XDG_CACHE_HOME/huggingface",
    "HF_ENDPOINT": "Hugging Face Hub address (huggingface_hub; default https://huggingface.co)",
}

DEFAULT_MODEL = "smollm2-135m"
PACKAGE_ROOT = Path(__file__).resolve().parent


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def home_dir() -> Path:
    """slmscan's own folder (SLMSCAN_HOME, default ~/.slmscan)."""
    return Path(os.environ.get("SLMSCAN_HOME") or Path.home() / ".slmscan").expanduser()


def cache_dir() -> Path:
    """Where bundled models that ship in chunks are assembled (SLMSCAN_CACHE)."""
    env = os.environ.get("SLMSCAN_CACHE")
    return Path(env).expanduser() if env else home_dir() / "cache"


def resource_dir(name: str) -> Path:
    """A folder shipped with slmscan (`models` or `prompts`): inside the wheel, or the checkout."""
    bundled = PACKAGE_ROOT / "_data" / name
    if bundled.is_dir():
        return bundled
    return PACKAGE_ROOT.parent / name


def is_offline() -> bool:
    """True when SLMSCAN_OFFLINE asks for no network access at all."""
    return _truthy(os.environ.get("SLMSCAN_OFFLINE"))


def debug_enabled() -> bool:
    """True when SLMSCAN_DEBUG asks for tracebacks."""
    return _truthy(os.environ.get("SLMSCAN_DEBUG"))


def allow_private() -> bool:
    """True when SLMSCAN_ALLOW_PRIVATE lets URLs reach private, loopback and link-local hosts."""
    return _truthy(os.environ.get("SLMSCAN_ALLOW_PRIVATE"))


def allow_private_networks() -> None:
    """Let this process's URL fetches reach private networks (what --allow-private asks)."""
    os.environ["SLMSCAN_ALLOW_PRIVATE"] = "1"


def _seconds(name: str, default: float) -> float:
    env = os.environ.get(name, "").strip()
    try:
        value = float(env) if env else default
    except ValueError:
        return default
    return value if value > 0 else default


def extract_timeout() -> float:
    """Seconds a batch allows for extracting one document's text (SLMSCAN_EXTRACT_TIMEOUT)."""
    return _seconds("SLMSCAN_EXTRACT_TIMEOUT", 120.0)


def document_timeout() -> float:
    """Seconds a batch allows the model for one card (SLMSCAN_DOCUMENT_TIMEOUT)."""
    return _seconds("SLMSCAN_DOCUMENT_TIMEOUT", 1800.0)


def default_threads() -> int:
    """llama.cpp threads: SLMSCAN_THREADS, else every core up to 4 (more rarely helps)."""
    env = os.environ.get("SLMSCAN_THREADS")
    if env and env.strip().isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(4, os.cpu_count() or 1))


def max_context() -> int:
    """The largest context window slmscan asks llama.cpp for."""
    env = os.environ.get("SLMSCAN_MAX_CONTEXT")
    if env and env.strip().isdigit() and int(env) >= 1024:
        return int(env)
    return 8192


def prompts_override() -> Path | None:
    """A user's folder of prompt templates from SLMSCAN_PROMPTS, if set."""
    env = os.environ.get("SLMSCAN_PROMPTS")
    return Path(env).expanduser() if env else None


def default_model() -> str:
    """The model used when none is named: SLMSCAN_MODEL, else the measured default."""
    return os.environ.get("SLMSCAN_MODEL") or DEFAULT_MODEL


def go_offline() -> None:
    """Make huggingface_hub offline and silent; must run before it is imported to take effect."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def quiet_hub() -> None:
    """Telemetry is always off: nothing leaves the machine that the user did not ask for."""
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")


@dataclass(frozen=True)
class ScanSettings:
    """What shapes a card besides the document and the model: part of the cache key."""

    seed: int = 0
    sections: tuple[str, ...] = ()
    threads: int = field(default_factory=default_threads)
    max_context: int = field(default_factory=max_context)
