"""Every error slmscan raises on purpose, written for the person at the keyboard.

    SlmscanError                      base; the CLI prints "Error: <message>" and "Hint: <hint>"
    ├── UsageError (ValueError)       a flag or argument that cannot work
    ├── SourceError (OSError)         an input that cannot be read or fetched
    │   └── OfflineError              a network fetch refused because we are offline
    ├── ExtractionError (ValueError)  a document with no usable main text
    ├── PromptError (ValueError)      a prompt template that is missing or malformed
    ├── ModelError                    a model that cannot be found, fetched, verified or loaded
    │   ├── ModelNotFoundError (LookupError)
    │   ├── ModelNotInstalledError    known but not on this machine
    │   ├── DownloadError (OSError)
    │   ├── IntegrityError            bytes differ from the pinned sha256
    │   └── ModelLoadError            not a usable GGUF, or llama.cpp refused it
    └── GenerationError (RuntimeError)  the model's output could not be turned into a card

Each class also subclasses the stdlib exception that callers already catch, so library users can
write `except OSError` where that is what they mean.
"""

from __future__ import annotations


class SlmscanError(Exception):
    """Base of every error slmscan raises on purpose."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(SlmscanError, ValueError):
    """A flag or argument that cannot work."""


class SourceError(SlmscanError, OSError):
    """An input that cannot be read or fetched."""


class OfflineError(SourceError):
    """A network fetch refused because slmscan runs offline."""

    hint = "drop --offline (and unset SLMSCAN_OFFLINE) to fetch URLs"


class ExtractionError(SlmscanError, ValueError):
    """A document with no usable main text."""


class PromptError(SlmscanError, ValueError):
    """A prompt template that is missing or malformed."""


class ModelError(SlmscanError):
    """A model that cannot be found, fetched, verified or loaded."""


class ModelNotFoundError(ModelError, LookupError):
    """No manifest and no file by that name."""

    hint = "slmscan models list"


class ModelNotInstalledError(ModelError):
    """A known model whose file is not on this machine."""


class DownloadError(ModelError, OSError):
    """A model download that failed."""


class IntegrityError(ModelError):
    """A model file whose bytes differ from the pinned sha256."""


class ModelLoadError(ModelError):
    """A file that is not a usable GGUF model, or that llama.cpp refused."""


class GenerationError(SlmscanError, RuntimeError):
    """Model output that could not be turned into a card."""
