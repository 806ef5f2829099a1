"""Engine benchmark: slmscan's cards against the usual way, on one loaded model, in one run.

For every page of a corpus, in one process, with the same model file and threads:

- the card made slmscan's way (`Scanner.analyse`), its token counts taken from provenance and
  every llama.cpp evaluation it makes timed by batch size;
- the engine's own prefill rate (the page's document fed in one go) and raw decode rate (64
  tokens of plain argmax right after it), measured on the same loaded model right after the
  card, so that the card's wall time can be set against what its token work alone predicts;
- the same card made the usual way: one JSON-schema-constrained llama-cpp-python call per
  section, the section's instruction first (system prompt) and the article after it (user
  message); a base model gets `create_completion` with a grammar built from the same schema.

The two ways alternate which goes first from page to page so that machine noise hits both.
`run_engine_bench` writes `engine-<model>.md` (table, acceptance checks, where the time goes),
`engine-<model>.png` (plot) and `engine-<model>.json` (every measurement) to a folder.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .card import CATEGORIES, DOCUMENT_TYPES, Card, Source
from .document import Article
from .errors import SlmscanError, UsageError

#: Tokens of plain argmax decoding timed for the raw decode rate.
DECODE_PROBE = 64
#: The usual way's bound on each call's answer.
USUAL_MAX_TOKENS = 512
# The acceptance figures (medians over the pages).
TARGET_SPEEDUP = 8.0
TARGET_OVERHEAD = 1.15
TARGET_PROMPT_RATIO = 1.1

# Batch sizes of llama.cpp evaluations, for where the card's feeding time goes: a batch of a
# few tokens costs about one decode step, not its tokens ÷ the prefill rate.
BATCH_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("1", 1, 1),
    ("2-16", 2, 16),
    ("17-128", 17, 128),
    ("129+", 129, 1 << 30),
)
_KEPT_CHARS = 1500  # of each usual-way answer, in the JSON file
# The prompt layout llama-cpp-python's chat template adds around the system and user text
# (kept free when a long article has to be cut to fit the usual way's context window).
_CHAT_MARGIN = 64

Progress = Callable[[str], None]


# --- results --------------------------------------------------------------------------------


@dataclass
class UsualCall:
    """One llama-cpp-python call of the usual way."""

    section: str
    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    parsed: bool = False
    error: str | None = None
    content: str = ""  # what the model wrote (the start of it), to see why it failed


@dataclass
class PageResult:
    """Everything measured on one page, both ways."""

    page: str
    words: int | None = None
    error: str | None = None
    first: str = "slmscan"  # which way ran first on this page
    # slmscan's card (from provenance, and the engine's counters around the card)
    document_tokens: int = 0
    template_tokens: int = 0
    prompt_tokens: int = 0
    fed_tokens: int = 0
    decoded_tokens: int = 0
    decode_steps: int = 0  # decoded tokens evaluated alone (the rest rode in a batch, or none)
    decoded_batched: int = 0  # decoded tokens evaluated in a batch with the tokens after them
    parts: int = 1
    wall: float = 0.0
    feed_seconds: float = 0.0  # inside llama.cpp, evaluating prompt and fed tokens
    decode_seconds: float = 0.0  # inside llama.cpp, evaluating decoded tokens
    evals: int = 0  # llama.cpp evaluation calls during the card
    single_evals: int = 0  # of which one token each: a decode step's cost, whatever the kind
    single_eval_seconds: float = 0.0
    # evaluations by batch size (BATCH_BUCKETS): label → [calls, tokens, seconds]
    eval_buckets: dict[str, list[float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    # the engine's own rates, same run, same page
    prefill_tokens: int = 0
    prefill_rate: float = 0.0
    decode_rate: float = 0.0
    # the usual way
    usual_wall: float = 0.0
    usual_prompt_tokens: int = 0
    usual_decoded_tokens: int = 0
    usual_truncated: bool = False
    usual_missing: list[str] = field(default_factory=list)
    usual_invalid_rows: int = 0
    usual_calls: list[UsualCall] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The page was read and measured both ways."""
        return self.error is None

    @property
    def predicted(self) -> float:
        """Seconds the card's token work takes at the engine's own measured rates."""
        if not self.prefill_rate or not self.decode_rate:
            return 0.0
        # Every evaluated token is charged: a decoded token evaluated in a batch at the
        # prefill rate, one evaluated alone at the decode rate.
        fed = self.prompt_tokens + self.fed_tokens + self.decoded_batched
        return fed / self.prefill_rate + self.decode_steps / self.decode_rate

    @property
    def overhead(self) -> float:
        """Card wall time over the predicted time (stricter than the acceptance's formula)."""
        return self.wall / self.predicted if self.predicted else 0.0

    @property
    def overhead_as_issued(self) -> float:
        """Card wall time over the issue's own prediction (acceptance: ≤ 1.15).

        The issue charges every decoded token a decode step; `predicted` charges the ones that
        rode in a batch at the prefill rate, which holds the engine to more than it was asked.
        """
        if not self.prefill_rate or not self.decode_rate:
            return 0.0
        fed = self.prompt_tokens + self.fed_tokens
        return self.wall / (fed / self.prefill_rate + self.decoded_tokens / self.decode_rate)

    @property
    def prompt_ratio(self) -> float:
        """Prompt tokens evaluated over document plus template tokens (acceptance: ≤ 1.1)."""
        base = self.document_tokens + self.template_tokens
        return self.prompt_tokens / base if base else 0.0

    @property
    def prompt_ratio_with_fed(self) -> float:
        """The prompt ratio with the fed tokens (mostly rows' quotes) counted as prompt tokens."""
        base = self.document_tokens + self.template_tokens
        return (self.prompt_tokens + self.fed_tokens) / base if base else 0.0

    @property
    def speedup(self) -> float:
        """The usual way's wall time over slmscan's (acceptance: ≥ 8×)."""
        return self.usual_wall / self.wall if self.wall else 0.0

    @property
    def complete(self) -> bool:
        """slmscan's card has every section."""
        return not self.missing

    @property
    def usual_complete(self) -> bool:
        """The usual way's card parses into the schema with every section."""
        return not self.usual_missing

    @property
    def python_seconds(self) -> float:
        """Card time spent outside llama.cpp: picking tokens, constraints, tokenising."""
        return self.wall - self.feed_seconds - self.decode_seconds

    def to_json(self) -> dict[str, Any]:
        """The measurements and the figures derived from them, for the `.json` file."""
        data = asdict(self)
        for name in (
            "predicted",
            "overhead",
            "overhead_as_issued",
            "prompt_ratio",
            "prompt_ratio_with_fed",
            "speedup",
            "python_seconds",
        ):
            data[name] = round(getattr(self, name), 4)
        return data


@dataclass
class BenchRun:
    """One run of the benchmark: its settings and its pages."""

    model: str
    model_file: str
    threads: int
    n_ctx: int
    llama_cpp_version: str
    usual_api: str
    usual_max_tokens: int
    key_cache: str = "f16"  # attention keys cached as, both ways
    reference_prefill_rate: float = 0.0  # 512 tokens from position 0
    reference_decode_rate: float = 0.0  # 64 argmax tokens after them
    # Was the machine ours? Process CPU time ÷ (wall time × threads) over the run (near 1 when
    # llama.cpp's threads had the cores) and the load average at the start and the end.
    cpu_share: float = 0.0
    load_start: float = 0.0
    load_end: float = 0.0
    pages: list[PageResult] = field(default_factory=list)

    @property
    def done(self) -> list[PageResult]:
        """The pages measured both ways (not failed)."""
        return [p for p in self.pages if p.ok]

    @classmethod
    def from_json(cls, path: Path) -> BenchRun:
        """A run read back from its `.json`, e.g. to render the table and plot again."""
        data = json.loads(path.read_text(encoding="utf-8"))
        pages = []
        for page in data.pop("pages"):
            known = {k: v for k, v in page.items() if k in PageResult.__dataclass_fields__}
            known["usual_calls"] = [UsualCall(**c) for c in known.get("usual_calls", [])]
            # Runs before lazy evaluation evaluated every decoded token alone.
            known.setdefault("decode_steps", known.get("decoded_tokens", 0))
            pages.append(PageResult(**known))
        return cls(**data, pages=pages)


# --- the engine's own rates and where the card's time goes -----------------------------------


@contextmanager
def _timed_evals(llm: Any) -> Iterator[list[tuple[int, float]]]:
    """Time every `Llama.eval` call (tokens, seconds) while the block runs.

    The engine counts tokens by kind, but the cost of an evaluation depends on its batch size:
    one token fed alone costs a whole decode step, not 1/prefill-rate.
    """
    calls: list[tuple[int, float]] = []
    original = llm.eval

    def timed(tokens: Sequence[int]) -> None:
        start = time.perf_counter()
        original(tokens)
        calls.append((len(tokens), time.perf_counter() - start))

    llm.eval = timed  # an instance attribute shadows the method; deleting it restores it
    try:
        yield calls
    finally:
        del llm.eval


def measure_rates(
    engine: Any, tokens: Sequence[int], decode: int = DECODE_PROBE
) -> tuple[int, float, float]:
    """Prefill rate of `tokens` from position 0, then raw argmax decode rate right after them.

    Returns (tokens prefilled, prefill tokens/s, decode tokens/s). The engine is left rewound.
    """
    import numpy as np

    from .analyse import SECTION_RESERVE

    engine.rewind(0)
    # A document longer than one part is analysed in parts of at most this many tokens.
    prefix = [*engine.bos(), *tokens][: engine.n_ctx - SECTION_RESERVE]
    start = time.perf_counter()
    engine.feed(prefix, kind="prompt")
    engine.flush()
    prefill = len(prefix) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(decode):
        # Plain greedy decoding, no constraint: what the hardware gives one token at a time.
        engine._step(int(np.argmax(engine.logits())))
    raw_decode = decode / (time.perf_counter() - start)
    engine.rewind(0)
    return len(prefix), prefill, raw_decode


# --- the usual way ----------------------------------------------------------------------------


def _row_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A table row's JSON schema from the card's model, as the model would be asked for it.

    Evidence (a quote with offsets) and `grounded` are left out: the usual way is not asked to
    quote, which makes it faster, so the measured speed-up is a lower bound.
    """
    schema = model.model_json_schema()
    props = {
        k: v
        for k, v in schema["properties"].items()
        if k not in {"evidence", "grounded", "relevancy"}
    }
    props["relevancy"] = schema["properties"]["relevancy"]  # last, as in the reference tables
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def _strings(count: int) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "minItems": 1,
        "maxItems": count,
    }


@dataclass(frozen=True)
class UsualSection:
    """One call of the usual way: a card section's instruction and JSON schema."""

    name: str
    instruction: str
    schema: dict[str, Any]


def usual_sections(article: Article) -> list[UsualSection]:
    """The usual way's calls for one article: instruction and JSON schema of each section.

    One call per card section (keywords, themes, other, summary and each table), as the issue
    describes the usual pattern, plus one for a title when the page has none. Instructions are
    slmscan's own templates (task and rules; their examples show slmscan's line format, not
    JSON), with the same counts slmscan asks for.
    """
    from .analyse import (
        CLASSIFY_VALUES,
        ROW_TYPES,
        ROWS,
        SECTION_PROMPTS,
        TITLE_PROMPT,
        item_counts,
    )
    from .prompts import PromptTemplate, load_template

    def instruction(name: str, values: dict[str, str]) -> str:
        template = load_template(name)
        plain = PromptTemplate(template.name, template.path, {**template.sections, "Example": ""})
        text = plain.render(values).replace("the document above", "the document")
        # The usual way's rows have no evidence field, so its rules must not ask for one.
        return "\n".join(line for line in text.splitlines() if "vidence" not in line)

    def call(
        name: str, prompt: str, values: dict[str, str], properties: dict[str, Any]
    ) -> UsualSection:
        schema = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
        text = f"{instruction(prompt, values)}\n\nAnswer with one JSON object."
        return UsualSection(name, text, schema)

    # The same counts slmscan asks for; the usual way may return up to as many rows.
    counts = {**item_counts(len(article.text)), **ROWS}
    properties: dict[str, dict[str, Any]] = {
        "keywords": {"keywords": _strings(counts["keywords"])},
        "themes": {"themes": _strings(counts["themes"])},
        "other": {
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "type": {"type": "string", "enum": list(DOCUMENT_TYPES)},
        },
        "summary": {"summary": {"type": "string", "minLength": 1}},
    }
    for table, rows in ROWS.items():
        items = _row_schema(ROW_TYPES[table])
        properties[table] = {
            table: {"type": "array", "items": items, "minItems": 1, "maxItems": rows}
        }
    sections = [
        call(name, prompt, {**CLASSIFY_VALUES, "count": str(counts.get(name, ""))},
             properties[name])
        for name, prompt in SECTION_PROMPTS.items()
    ]  # fmt: skip
    if not article.title:  # slmscan writes a title only when the page has none
        title = {"title": {"type": "string", "minLength": 1}}
        sections.append(call("title", TITLE_PROMPT, {}, title))
    return sections


class UsualWay:
    """Cards the usual way: one schema-constrained llama-cpp-python call per section."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        threads: int,
        chat: bool,
        max_tokens: int,
        key_cache: str = "f16",
    ) -> None:
        import llama_cpp

        from .engine import key_type

        self.chat = chat
        self.max_tokens = max_tokens
        self.n_ctx = n_ctx
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            # The same key cache as slmscan's engine, so that the comparison is of the method.
            type_k=key_type(key_cache),
            verbose=False,
        )

    def warm_up(self) -> None:
        """One tiny call, so that the first page does not pay for first-call setup."""
        if self.chat:
            self.llm.create_chat_completion(
                messages=[{"role": "user", "content": "Hello"}], max_tokens=4, temperature=0
            )
        else:
            self.llm.create_completion("Hello", max_tokens=4, temperature=0)

    def _fit(self, text: str, instruction: str) -> tuple[str, bool]:
        """The article, cut to fit the context window with the instruction and the answer."""
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        used = len(self.llm.tokenize(instruction.encode("utf-8"), add_bos=False))
        budget = self.n_ctx - self.max_tokens - used - _CHAT_MARGIN
        if len(tokens) <= budget:
            return text, False
        return self.llm.detokenize(tokens[:budget]).decode("utf-8", errors="ignore"), True

    def call(
        self, section: UsualSection, text: str
    ) -> tuple[UsualCall, dict[str, Any] | None, bool]:
        """One section's call: (its record, the parsed JSON or None, whether text was cut)."""
        from llama_cpp import LlamaGrammar

        start = time.perf_counter()
        record = UsualCall(section.name, 0.0)
        data: dict[str, Any] | None = None
        article, truncated = self._fit(text, section.instruction)
        try:
            if self.chat:
                response: Any = self.llm.create_chat_completion(
                    messages=[
                        {"role": "system", "content": section.instruction},
                        {"role": "user", "content": article},
                    ],
                    response_format={"type": "json_object", "schema": section.schema},
                    temperature=0,
                    max_tokens=self.max_tokens,
                )
                content = response["choices"][0]["message"]["content"] or ""
            else:
                grammar = LlamaGrammar.from_json_schema(json.dumps(section.schema), verbose=False)
                prompt = f"{section.instruction}\n\nDocument:\n{article}\n\nAnswer (JSON):\n"
                response = self.llm.create_completion(
                    prompt, grammar=grammar, temperature=0, max_tokens=self.max_tokens
                )
                content = response["choices"][0]["text"]
            record.finish_reason = response["choices"][0].get("finish_reason")
            record.prompt_tokens = int(response["usage"]["prompt_tokens"])
            record.completion_tokens = int(response["usage"]["completion_tokens"])
            record.content = content[:_KEPT_CHARS]
            try:
                parsed = json.loads(content)
                if isinstance(parsed, dict):
                    data, record.parsed = parsed, True
                else:
                    record.error = "not a JSON object"
            except json.JSONDecodeError as e:
                record.error = f"invalid JSON ({e.msg} at {e.pos} of {len(content)} chars)"
        except (ValueError, RuntimeError) as e:  # llama-cpp-python's context and input errors
            record.error = f"{type(e).__name__}: {e}"
        record.seconds = time.perf_counter() - start
        return record, data, truncated

    def close(self) -> None:
        """Free the model."""
        self.llm.close()


def usual_card(
    article: Article, outputs: dict[str, dict[str, Any]], like: Card
) -> tuple[Card, int]:
    """The usual way's answers as a card, validated as slmscan's are; (card, rows refused).

    A row that does not validate (a relevancy out of 1-5, an empty field) is dropped; a section
    whose call gave no parseable JSON is empty. Provenance is `like`'s with the usual way's token
    counts, so that the card validates; only its content is compared.
    """
    from .analyse import ROW_TYPES

    invalid = 0
    tables: dict[str, list[BaseModel]] = {}
    for table, model in ROW_TYPES.items():
        rows = outputs.get(table, {}).get(table, [])
        kept: list[BaseModel] = []
        for row in rows if isinstance(rows, list) else []:
            try:
                kept.append(model.model_validate({**row, "grounded": False}))
            except (ValidationError, TypeError):
                invalid += 1
        tables[table] = kept

    def strings(value: object) -> list[str]:
        items = value if isinstance(value, list) else []
        return [s.strip() for s in items if isinstance(s, str) and s.strip()]

    def choice(value: object, allowed: Sequence[str]) -> str | None:
        return value if isinstance(value, str) and value in allowed else None

    def field(section: str) -> object:
        return outputs.get(section, {}).get(section)

    summary = field("summary")
    other = outputs.get("other", {})
    title = field("title") or article.title or "Untitled document"
    card = Card(
        src=article.src,
        title=str(title).strip() or "Untitled document",
        source=article.source,
        keywords=strings(field("keywords")),
        themes=strings(field("themes")),
        category=choice(other.get("category"), CATEGORIES),  # type: ignore[arg-type]
        type=choice(other.get("type"), DOCUMENT_TYPES),  # type: ignore[arg-type]
        summary=summary.strip() if isinstance(summary, str) and summary.strip() else None,
        **tables,  # type: ignore[arg-type]
        provenance=like.provenance.model_copy(
            update={"sections": [], "notes": ["made the usual way (benchmark)"]}
        ),
    )
    return card, invalid


# --- the run ----------------------------------------------------------------------------------


def corpus_pages(corpus: Path) -> list[tuple[Path, int | None]]:
    """The corpus's pages in order: its manifest.json's documents, else its files by name."""
    from .sources import SUPPORTED_SUFFIXES

    manifest = corpus / "manifest.json"
    if manifest.is_file():
        documents = json.loads(manifest.read_text(encoding="utf-8"))["documents"]
        return [(corpus / d["file"], d.get("words")) for d in documents]
    if not corpus.is_dir():
        raise UsageError(f"{corpus}: no such corpus folder", hint="pass --corpus DIR")
    files = sorted(p for p in corpus.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES)
    return [(p, None) for p in files]


def _warm_up_article() -> Article:
    text = (
        "The town council opened a new library on Monday. It lends books, tools and laptops, "
        "and it offers free courses in repairing bicycles and household electronics. The "
        "council expects the library to serve about two thousand people every month."
    )
    return Article(text=text, source=Source(kind="text", location="-"), src="warm-up")


def _slmscan_card(scanner: Any, engine: Any, article: Article, result: PageResult) -> Card:
    before = engine.counters.snapshot()
    with _timed_evals(engine._llm) as calls:
        start = time.perf_counter()
        card: Card = scanner.analyse(article)
        result.wall = time.perf_counter() - start
    used = engine.counters.since(before)
    p = card.provenance
    result.document_tokens, result.template_tokens = p.document_tokens, p.template_tokens
    result.prompt_tokens, result.fed_tokens = p.prompt_tokens, p.fed_tokens
    result.decoded_tokens, result.parts = p.decoded_tokens, p.parts
    result.feed_seconds, result.decode_seconds = used.prompt_seconds, used.decode_seconds
    result.decode_steps, result.decoded_batched = used.decode_steps, used.decoded_batched
    result.evals = len(calls)
    singles = [seconds for n, seconds in calls if n == 1]
    result.single_evals, result.single_eval_seconds = len(singles), sum(singles)
    for label, low, high in BATCH_BUCKETS:
        inside = [(n, seconds) for n, seconds in calls if low <= n <= high]
        result.eval_buckets[label] = [
            len(inside),
            sum(n for n, _ in inside),
            sum(s for _, s in inside),
        ]
    result.missing = card.missing_sections()
    return card


def _usual(usual: UsualWay, article: Article, result: PageResult) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    for section in usual_sections(article):
        record, data, truncated = usual.call(section, article.text)
        result.usual_calls.append(record)
        result.usual_truncated |= truncated
        if data is not None:
            outputs[section.name] = data
    result.usual_wall = time.perf_counter() - start
    result.usual_prompt_tokens = sum(c.prompt_tokens for c in result.usual_calls)
    result.usual_decoded_tokens = sum(c.completion_tokens for c in result.usual_calls)
    return outputs


def run_engine_bench(
    model: str,
    corpus: Path,
    out: Path,
    limit: int | None = None,
    threads: int | None = None,
    *,
    usual_max_tokens: int = USUAL_MAX_TOKENS,
    progress: Progress | None = None,
) -> Path:
    """Benchmark the engine on a corpus both ways; write table, plot and JSON; return the table."""
    from . import config
    from .enginebench_report import write_results
    from .extract import extract_article
    from .scanner import Scanner, ScanOptions, resolve_model
    from .sources import read_source

    say = progress or (lambda _message: None)
    pages = corpus_pages(corpus)[:limit] if limit else corpus_pages(corpus)
    if not pages:
        raise UsageError(f"{corpus}: no pages to benchmark")
    threads = threads or config.default_threads()
    manifest, path = resolve_model(model)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"engine-{manifest.id}"

    # Offline: a benchmark never touches the network (the Scanner sets the Hub offline too).
    with Scanner(ScanOptions(model=model, offline=True, threads=threads)) as scanner:
        analyser = scanner._load()  # loaded here, so that no page's time includes loading
        engine = getattr(analyser, "engine", None)
        if engine is None:
            raise UsageError(f"model {model} has no engine to measure", hint="pick a real model")
        usual = UsualWay(
            path,
            n_ctx=engine.n_ctx,
            threads=threads,
            chat=manifest.family != "completion",
            max_tokens=usual_max_tokens,
            key_cache=manifest.key_cache,
        )
        try:
            run = BenchRun(
                model=manifest.id,
                model_file=path.name,
                threads=threads,
                n_ctx=engine.n_ctx,
                llama_cpp_version=engine.llama_cpp_version,
                usual_api="create_chat_completion + response_format json_object schema"
                if usual.chat
                else "create_completion + LlamaGrammar.from_json_schema",
                usual_max_tokens=usual_max_tokens,
                key_cache=manifest.key_cache,
            )
            run.load_start = os.getloadavg()[0]
            run_started, cpu_started = time.perf_counter(), time.process_time()
            say(f"warming up {manifest.id} ({threads} threads, n_ctx {engine.n_ctx})")
            scanner.analyse(_warm_up_article())
            usual.warm_up()
            warm = engine.text_tokens(_warm_up_article().text * 40)[:512]
            measure_rates(engine, warm)  # the first evaluation pays one-off setup costs
            _, run.reference_prefill_rate, run.reference_decode_rate = measure_rates(engine, warm)
            for index, (file, words) in enumerate(pages):
                result = PageResult(page=file.name, words=words)
                run.pages.append(result)
                try:
                    article = extract_article(read_source(str(file), offline=True))
                except SlmscanError as e:
                    result.error = e.message
                    say(f"[{index + 1}/{len(pages)}] {file.name}: {e.message}")
                    continue
                # Alternate which way goes first, so that drift in the machine hits both.
                result.first = "slmscan" if index % 2 == 0 else "usual"
                outputs: dict[str, dict[str, Any]] = {}
                if result.first == "usual":
                    outputs = _usual(usual, article, result)
                card = _slmscan_card(scanner, engine, article, result)
                result.prefill_tokens, result.prefill_rate, result.decode_rate = measure_rates(
                    engine, engine.text_tokens(article.text)
                )
                if result.first == "slmscan":
                    outputs = _usual(usual, article, result)
                made, result.usual_invalid_rows = usual_card(article, outputs, card)
                result.usual_missing = made.missing_sections()
                say(
                    f"[{index + 1}/{len(pages)}] {file.name}: slmscan {result.wall:.1f} s "
                    f"(predicted {result.predicted:.1f} s), usual {result.usual_wall:.1f} s, "
                    f"speed-up {result.speedup:.1f}x"
                )
                run.load_end = os.getloadavg()[0]
                wall = time.perf_counter() - run_started
                run.cpu_share = (time.process_time() - cpu_started) / (wall * threads)
                write_results(run, stem)  # a long run interrupted still leaves its pages
        finally:
            usual.close()
    return write_results(run, stem, plot=True)
