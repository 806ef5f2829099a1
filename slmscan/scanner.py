"""Sources → cards: the library API behind `slmscan scan`.

    with Scanner(ScanOptions(model="smollm2-135m")) as scanner:
        for result in scanner.scan(["article.html", "https://example.org/post"]):
            print(result.card.title if result.card else result.error)

The model is loaded once, on the first document that has text to analyse. A document that
fails is a failed result, not an exception; errors that stop every document (a model that
cannot load) are raised.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from . import config
from .analyse import SECTIONS, Analyser, ModelInfo
from .card import Card
from .document import Article
from .errors import ModelError, PromptError, SlmscanError, UsageError
from .fake import FAKE_MODEL_ID, FakeAnalyser
from .models import Manifest, find_manifest, manifest_for_path


@dataclass(frozen=True)
class ScanOptions:
    """How to scan: which model, which sections, offline or not."""

    model: str | None = None  # manifest id, alias, or a .gguf path; default: config
    sections: tuple[str, ...] = SECTIONS
    offline: bool = False
    seed: int = 0
    prompts: Path | None = None
    threads: int | None = None


@dataclass
class ScanResult:
    """One document's outcome: a card, or the error that stopped it."""

    location: str
    card: Card | None = None
    error: SlmscanError | None = None

    @property
    def ok(self) -> bool:
        return self.card is not None


def resolve_model(name: str) -> tuple[Manifest, Path]:
    """A manifest and its local file, for a model id, alias or .gguf path."""
    from .download import model_path

    candidate = Path(name).expanduser()
    if name.endswith(".gguf") or candidate.is_file():
        if not candidate.is_file():
            raise UsageError(f"{name}: no such model file")
        return manifest_for_path(candidate), candidate
    manifest = find_manifest(name)
    return manifest, model_path(manifest)


@dataclass
class Scanner:
    """Scans documents with one model, loaded on first use."""

    options: ScanOptions = field(default_factory=ScanOptions)

    def __post_init__(self) -> None:
        unknown = [s for s in self.options.sections if s not in SECTIONS]
        if unknown or not self.options.sections:
            raise UsageError(
                f"unknown section {unknown[0]!r}" if unknown else "no sections chosen",
                hint=f"sections are: {', '.join(SECTIONS)}",
            )
        self.offline = self.options.offline or config.is_offline()
        if self.offline:
            config.go_offline()
        config.quiet_hub()
        self._analyser: Analyser | FakeAnalyser | None = None

    def _load(self) -> Analyser | FakeAnalyser:
        if self._analyser is None and self.options.model == FAKE_MODEL_ID:
            self._analyser = FakeAnalyser(self.options.seed)
        if self._analyser is None:
            from .download import verify_model
            from .engine import load_engine
            from .formats import prompt_format
            from .gguf_check import check_gguf

            manifest, path = resolve_model(self.options.model or config.default_model())
            sha256 = verify_model(manifest, path)
            check_gguf(path)  # a bad header is a one-line error here, not an abort in llama.cpp
            n_ctx = min(manifest.context_trained, config.max_context())
            engine = load_engine(
                path,
                n_ctx=n_ctx,
                threads=self.options.threads or config.default_threads(),
                seed=self.options.seed,
                key_cache=manifest.key_cache,
            )
            self._analyser = Analyser(
                engine,
                prompt_format(manifest.family),
                ModelInfo(manifest.id, path.name, sha256, manifest.family),
                prompts_dir=self.options.prompts,
                sections=self.options.sections,
                seed=self.options.seed,
            )
        return self._analyser

    def analyse(self, article: Article, progress: Callable[[str], None] | None = None) -> Card:
        """The card of one extracted article, made with no network access."""
        from .netguard import NetworkGuard

        analyser = self._load()
        with NetworkGuard() as guard:
            if isinstance(analyser, FakeAnalyser):
                return analyser.analyse(article, network_calls=lambda: guard.attempts)
            return analyser.analyse(article, lambda: guard.attempts, progress)

    def scan(
        self,
        sources: list[str],
        stdin: BinaryIO | None = None,
        progress: Callable[[str, str], None] | None = None,
    ) -> Iterator[ScanResult]:
        """Cards for every source (files, folders, URLs, "-"), in order, one result each.

        `progress(location, step)` hears each step of each document as it starts.
        """
        from .extract import extract_article
        from .sources import expand_sources, read_source

        for location in expand_sources(sources):
            try:
                raw = read_source(location, offline=self.offline, stdin=stdin or sys.stdin.buffer)
                article = extract_article(raw)
                report = functools.partial(progress, location) if progress else None
                yield ScanResult(location, card=self.analyse(article, report))
            except (ModelError, PromptError, UsageError):
                raise  # these stop every document, not only this one
            except SlmscanError as e:
                yield ScanResult(location, error=e)

    def close(self) -> None:
        """Free the model."""
        if isinstance(self._analyser, Analyser):
            self._analyser.engine.close()
            self._analyser = None

    def __enter__(self) -> Scanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
