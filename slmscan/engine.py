"""The only module that imports llama_cpp: load a model, evaluate tokens, decode fields.

Decoding is greedy and constrained per field by sampling first and checking only the chosen
token (then the next best, up to a few dozen), instead of masking the whole vocabulary at every
step as a grammar does: with Gemma's 262k-token vocabulary that mask costs more than the model.
The caller feeds everything it knows in advance (instructions, labels, separators) in batches,
and asks the model only for content.

Sections can run at once in lanes: sequences of one context that share the document's cells,
each section in its own thread. A thread that needs logits waits; once every lane waits, all
their tokens go to llama.cpp in one call, because on a CPU a call with one token per lane costs
far less than a call per lane (benchmarks/results/parallel.md). Only the thread that runs the
lanes calls llama.cpp, so the threads never touch the context at the same time.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import numpy as np

from .errors import GenerationError, ModelLoadError

_CANDIDATES = 48  # how many next-best tokens to try when the best one is refused
_NGRAM = 4  # a field may not repeat a run of this many tokens (stops loops)
_BATCH = 512  # tokens per llama.cpp call

FeedKind = Literal["prompt", "template", "fed"]
_DECODED = "decoded"
T = TypeVar("T")


class Constraint(Protocol):
    """What a field may contain; checked on the chosen token only."""

    def allows(self, text: bytes, piece: bytes) -> bool:
        """May the field so far (`text`) be extended by `piece`?"""
        ...

    def may_stop(self, text: bytes) -> bool:
        """May the field end here?"""
        ...

    def finished(self, text: bytes) -> bool:
        """Is the field complete, so that decoding stops without asking the model?"""
        ...


@dataclass
class Counters:
    """Token work done by the engine, by kind."""

    prompt: int = 0  # instruction and document tokens evaluated
    template: int = 0  # of those, slmscan's own prompt text (everything but the document)
    fed: int = 0  # scaffolding tokens evaluated without decoding
    decoded: int = 0  # tokens the model chose
    decode_steps: int = 0  # of those, evaluated alone in their lane: one decode step each
    decoded_batched: int = 0  # of those, evaluated in one batch with the tokens fed after them
    prompt_seconds: float = 0.0  # every evaluation but a decode step
    decode_seconds: float = 0.0  # decode steps (a lane's share of a call lanes share)

    def snapshot(self) -> Counters:
        return Counters(**self.__dict__)

    def since(self, before: Counters) -> Counters:
        return Counters(**{k: v - getattr(before, k) for k, v in self.__dict__.items()})

    def add(self, other: Counters) -> None:
        for k, v in other.__dict__.items():
            setattr(self, k, getattr(self, k) + v)


@dataclass(eq=False)
class _Lane:
    """One sequence of the context: what it holds, what waits, and the logits after it."""

    seq: int
    counters: Counters
    evaluated: int = 0  # positions of this sequence in the KV cache
    kept: int = 0  # of those, how many are still wanted (a rewind lowers it)
    pending: list[tuple[int, str]] = field(default_factory=list)
    logits: np.ndarray | None = None
    logits_at: int = -1  # the position the logits predict
    error: GenerationError | None = None

    @property
    def position(self) -> int:
        return self.kept + len(self.pending)


@dataclass
class Engine:
    """One loaded model, its context window, and the lanes that share it."""

    path: Path
    n_ctx: int
    threads: int
    seed: int = 0
    key_cache: str = "f16"  # or "q8_0": measured by benchmarks/key_cache.py, not yet adopted
    lanes: int = 1  # sections decoded at once
    lane_tokens: int = 0  # room each extra lane adds to the KV cache
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.lanes = max(1, self.lanes)
        try:
            # The Llama object loads the weights and tokenises; its own small context is unused,
            # because lanes need a context of several sequences, which it cannot make.
            self._llm = llama_cpp.Llama(
                model_path=str(self.path), n_ctx=64, n_batch=64, verbose=False
            )
            params = llama_cpp.llama_context_default_params()
            # Positions stay within n_ctx in every lane; only the cells grow with the lanes.
            params.n_ctx = self.n_ctx + (self.lanes - 1) * self.lane_tokens
            params.n_batch = params.n_ubatch = _BATCH
            params.n_seq_max = self.lanes + 1 if self.lanes > 1 else 1
            params.kv_unified = True  # lanes share the document's cells instead of copying them
            # Decoding gains from a second thread as prefill does: 1.35-1.6x with 2
            # (benchmarks/results/threads.md).
            params.n_threads = params.n_threads_batch = self.threads
            params.swa_full = True  # sliding-window models (Gemma 3) need the whole prefix
            if self.key_cache == "q8_0":
                params.type_k = llama_cpp.GGML_TYPE_Q8_0
            self._ctx = llama_cpp.llama_init_from_model(self._llm.model, params)
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"{self.path}: llama.cpp could not load the model ({e})") from e
        if not self._ctx:
            self._llm.close()
            raise ModelLoadError(f"{self.path}: llama.cpp could not make a context for the model")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(_BATCH, 0, 1)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.n_vocab = int(self._llm.n_vocab())
        self._pieces: dict[int, bytes] = {}
        self._buffer = ctypes.create_string_buffer(256)
        self._buffer_lock = threading.Lock()
        # The main lane counts into the engine's counters; other lanes add theirs when done.
        self._main = _Lane(seq=0, counters=self.counters)
        self._local = threading.local()
        self._waiting: _Waiting | None = None

    # --- tokens -------------------------------------------------------------------------------

    @property
    def llama_cpp_version(self) -> str:
        return str(self._lib.__version__)

    def bos(self) -> list[int]:
        """The beginning-of-sequence token, for models that expect one."""
        if self._lib.llama_vocab_get_add_bos(self._vocab):
            return [int(self._llm.token_bos())]
        return []

    def text_tokens(self, text: str) -> list[int]:
        """Tokenise text as plain text: control-token strings inside it stay ordinary text."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def markup_tokens(self, text: str) -> list[int]:
        """Tokenise slmscan's own prompt markup, where chat markers are control tokens."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (cached; tokens are asked about again and again)."""
        cached = self._pieces.get(token)
        if cached is None:
            with self._buffer_lock:
                n = self._lib.llama_token_to_piece(self._vocab, token, self._buffer, 256, 0, False)
                cached = self._buffer.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (end of turn, end of text)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # --- lanes --------------------------------------------------------------------------------

    @property
    def _lane(self) -> _Lane:
        return getattr(self._local, "lane", None) or self._main

    @property
    def lane_counters(self) -> Counters:
        """The counters of the calling thread's lane (the engine's own outside `in_lanes`)."""
        return self._lane.counters

    def in_lanes(self, base: int, jobs: Sequence[Callable[[], T]]) -> list[T]:
        """Run jobs that each continue from the first `base` tokens; returns their results.

        With several lanes the jobs run at once, each in its own lane and thread (a lane takes
        the next job when its own is done), and the first job's error is raised once all have
        finished. Each lane must stay within `lane_tokens` tokens after `base`.
        """
        if self.lanes == 1 or len(jobs) < 2:
            return [job() for job in jobs]
        self.flush()
        if self._main.kept < base:
            raise GenerationError("the shared prefix is not evaluated")
        lanes = [
            _Lane(seq=s, counters=Counters()) for s in range(1, min(self.lanes, len(jobs)) + 1)
        ]
        for lane in lanes:
            self._lib.llama_memory_seq_rm(self._memory, lane.seq, -1, -1)
            self._lib.llama_memory_seq_cp(self._memory, 0, lane.seq, 0, base)
            lane.evaluated = lane.kept = base
        results: list[T | None] = [None] * len(jobs)
        errors: list[BaseException | None] = [None] * len(jobs)
        queue = list(range(len(jobs)))
        self._waiting = waiting = _Waiting(len(lanes))

        def work(lane: _Lane) -> None:
            self._local.lane = lane
            try:
                while True:
                    with waiting.cond:
                        if not queue:
                            return
                        index = queue.pop(0)
                    try:
                        results[index] = jobs[index]()
                    except BaseException as e:  # raised again by the calling thread below
                        errors[index] = e
            finally:
                waiting.leave()

        threads = [threading.Thread(target=work, args=(lane,), daemon=True) for lane in lanes]
        try:
            for thread in threads:
                thread.start()
            while batch := waiting.next_batch():
                try:
                    self._evaluate(batch)
                except GenerationError as e:
                    for lane in batch:
                        lane.error = e
                waiting.release(batch)
            for thread in threads:
                thread.join()
        finally:
            self._waiting = None
            for lane in lanes:
                self._lib.llama_memory_seq_rm(self._memory, lane.seq, -1, -1)
                self.counters.add(lane.counters)
        for error in errors:
            if error is not None:
                raise error
        return results  # type: ignore[return-value]

    # --- evaluation ---------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """How many tokens the calling lane holds, evaluated or waiting to be."""
        return self._lane.position

    def rewind(self, position: int) -> None:
        """Forget everything after `position`; the prefix before it stays evaluated."""
        lane = self._lane
        if position >= lane.kept:
            del lane.pending[position - lane.kept :]
        else:
            lane.pending.clear()
            lane.kept = position  # its cells are dropped before the lane's next evaluation

    def _append(self, tokens: Sequence[int], kind: str) -> None:
        lane = self._lane
        if lane.position + len(tokens) > self.n_ctx:
            if kind == _DECODED:
                raise GenerationError(f"the answer ran past the context window of {self.n_ctx}")
            raise GenerationError(
                f"the prompt needs {lane.position + len(tokens)} tokens, "
                f"more than the context window of {self.n_ctx}"
            )
        lane.pending.extend((int(token), kind) for token in tokens)

    def feed(self, tokens: Sequence[int], kind: FeedKind = "fed") -> None:
        """Add tokens the model reads without choosing them, counted as `kind`."""
        self._append(tokens, kind)

    def _step(self, token: int) -> None:
        """Add a token the model chose."""
        self._append([token], _DECODED)
        self._lane.counters.decoded += 1

    def flush(self) -> None:
        """Evaluate the calling lane's waiting tokens now (with the other lanes', in lanes)."""
        lane = self._lane
        if not lane.pending:
            return
        if lane is self._main:
            self._evaluate([lane])
        else:
            assert self._waiting is not None
            self._waiting.wait(lane)
        if lane.error is not None:
            error, lane.error = lane.error, None
            raise error

    def logits(self) -> np.ndarray:
        """The next-token logits after the calling lane's last token."""
        self.flush()
        lane = self._lane
        if lane.logits is None or lane.logits_at != lane.position:
            raise GenerationError("no logits at this position: feed a token first")
        return lane.logits

    def _evaluate(self, lanes: Sequence[_Lane]) -> None:
        """Evaluate the waiting tokens of `lanes` in as few llama.cpp calls as they fit."""
        entries: list[tuple[int, int, int, bool]] = []
        owners: list[_Lane] = []
        for lane in lanes:
            if lane.kept < lane.evaluated:
                self._lib.llama_memory_seq_rm(self._memory, lane.seq, lane.kept, -1)
                lane.evaluated = lane.kept
            last = len(lane.pending) - 1
            for i, (token, _) in enumerate(lane.pending):
                entries.append((token, lane.evaluated + i, lane.seq, i == last))
                owners.append(lane)
        shares = {id(lane): 0.0 for lane in lanes}
        for start in range(0, len(entries), _BATCH):
            chunk = entries[start : start + _BATCH]
            try:
                elapsed = self._decode(chunk)
            except GenerationError:
                # Whatever this evaluation stored is dropped: the lanes stay as they were.
                for lane in lanes:
                    self._lib.llama_memory_seq_rm(self._memory, lane.seq, lane.evaluated, -1)
                    lane.kept = min(lane.kept, lane.evaluated)
                    lane.pending = []
                raise
            for i, (_, pos, _, wanted) in enumerate(chunk):
                lane = owners[start + i]
                shares[id(lane)] += elapsed / len(chunk)
                if wanted:
                    row = self._lib.llama_get_logits_ith(self._ctx, i)
                    lane.logits = np.ctypeslib.as_array(row, shape=(self.n_vocab,)).copy()
                    lane.logits_at = pos + 1
        for lane in lanes:
            self._count(lane, shares[id(lane)])
            lane.evaluated += len(lane.pending)
            lane.kept = lane.evaluated
            lane.pending = []

    @staticmethod
    def _count(lane: _Lane, seconds: float) -> None:
        c = lane.counters
        if len(lane.pending) == 1 and lane.pending[0][1] == _DECODED:
            c.decode_steps += 1
            c.decode_seconds += seconds
            return
        c.prompt_seconds += seconds
        for _, kind in lane.pending:
            if kind == "fed":
                c.fed += 1
            elif kind == _DECODED:
                c.decoded_batched += 1
            else:
                c.prompt += 1
                c.template += kind == "template"

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> float:
        """One llama.cpp call for (token, position, sequence, wants logits); returns seconds."""
        batch = self._batch
        for i, (token, pos, seq, wanted) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, wanted
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(entries)
        start = time.perf_counter()
        status = self._lib.llama_decode(self._ctx, batch)
        elapsed = time.perf_counter() - start
        if status != 0:
            cause = "no room left in the context window" if status == 1 else f"status {status}"
            raise GenerationError(f"llama.cpp could not evaluate {len(entries)} tokens ({cause})")
        return elapsed

    # --- decoding -----------------------------------------------------------------------------

    def _pick(self, logits: np.ndarray, acceptable: Callable[[int], bool]) -> int | None:
        best = int(np.argmax(logits))
        if acceptable(best):
            return best
        top = np.argpartition(logits, -_CANDIDATES)[-_CANDIDATES:]
        for token in top[np.argsort(-logits[top])]:
            if int(token) != best and acceptable(int(token)):
                return int(token)
        return None

    def generate(
        self,
        constraint: Constraint,
        max_tokens: int,
        penalties: dict[int, float] | None = None,
    ) -> str:
        """Decode one field greedily under `constraint`; it ends at a newline or end token."""
        text = b""
        tokens: list[int] = []
        seen: set[tuple[int, ...]] = set()
        if penalties:
            penalty_ids = np.fromiter(penalties.keys(), dtype=np.intp)
            penalty_values = np.fromiter(penalties.values(), dtype=np.float32)

        def acceptable(token: int) -> bool:
            if self.is_end(token):
                return constraint.may_stop(text)
            piece = self.piece(token)
            newline = piece.find(b"\n")
            if newline >= 0:
                head = piece[:newline]
                return (not head or constraint.allows(text, head)) and constraint.may_stop(
                    text + head
                )
            if len(tokens) >= _NGRAM - 1 and (*tokens[1 - _NGRAM :], token) in seen:
                return False
            return bool(piece) and constraint.allows(text, piece)

        for _ in range(max_tokens):
            logits = self.logits()
            if penalties:
                logits = logits.copy()  # the lane keeps its logits as llama.cpp gave them
                logits[penalty_ids] -= penalty_values
            token = self._pick(logits, acceptable)
            if token is None or self.is_end(token):
                break
            piece = self.piece(token)
            newline = piece.find(b"\n")
            if newline >= 0:
                text += piece[:newline]
                break
            if len(tokens) >= _NGRAM - 1:
                seen.add((*tokens[1 - _NGRAM :], token))
            tokens.append(token)
            text += piece
            self._step(token)
            if constraint.finished(text):
                break
        return text.decode("utf-8", errors="ignore")

    def choose(self, options: Sequence[str]) -> tuple[int, list[float]]:
        """Pick one of `options` (text) by the model's probabilities; see `choose_tokens`."""
        return self.choose_tokens([self.text_tokens(option) for option in options])

    def choose_tokens(self, sequences: Sequence[Sequence[int]]) -> tuple[int, list[float]]:
        """Pick one token sequence by walking their trie greedily, and feed all of it.

        The model decodes only where the sequences differ; once one is left, the rest of it is
        fed in one batch. Returns its index and each sequence's probability at the first token
        where they differ (the model's whole belief there, not only its top choice).
        """
        alive = [i for i, seq in enumerate(sequences) if seq]
        if not alive:
            raise GenerationError("nothing to choose from")
        beliefs: list[float] | None = None
        depth = 0
        while len(alive) > 1:
            ended = [i for i in alive if len(sequences[i]) == depth]
            if ended:
                alive = ended[:1]
                break
            nexts = sorted({sequences[i][depth] for i in alive})
            if len(nexts) == 1:
                token = nexts[0]
                self.feed([token])
            else:
                values = self.logits()[nexts].astype(np.float64)
                probs = np.exp(values - values.max())
                probs /= probs.sum()
                if beliefs is None:
                    beliefs = [0.0] * len(sequences)
                    for i in alive:
                        beliefs[i] = float(probs[nexts.index(sequences[i][depth])])
                token = nexts[int(np.argmax(values))]
                self._step(token)
            alive = [i for i in alive if sequences[i][depth] == token]
            depth += 1
        chosen = alive[0]
        self.feed(sequences[chosen][depth:])
        if beliefs is None:
            beliefs = [1.0 if i == chosen else 0.0 for i in range(len(sequences))]
        return chosen, beliefs

    def close(self) -> None:
        """Free the context and the model."""
        if self._ctx:
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._ctx = None
        self._llm.close()


class _Waiting:
    """Where lane threads wait for their tokens to be evaluated, all together."""

    def __init__(self, threads: int) -> None:
        self.cond = threading.Condition()
        self.running = threads  # threads that may still add tokens before waiting
        self.lanes: list[_Lane] = []

    def wait(self, lane: _Lane) -> None:
        """Called by a lane's thread: block until the engine has evaluated the lane."""
        with self.cond:
            self.lanes.append(lane)
            self.running -= 1
            self.cond.notify_all()
            while lane in self.lanes:
                self.cond.wait()

    def leave(self) -> None:
        """Called by a lane's thread when it has no more jobs."""
        with self.cond:
            self.running -= 1
            self.cond.notify_all()

    def next_batch(self) -> list[_Lane]:
        """Block until every thread waits or has left; the waiting lanes (none: all done)."""
        with self.cond:
            while self.running > 0:
                self.cond.wait()
            return list(self.lanes)

    def release(self, lanes: list[_Lane]) -> None:
        """Let the threads of `lanes` go on."""
        with self.cond:
            self.lanes = [lane for lane in self.lanes if lane not in lanes]
            self.running += len(lanes)
            self.cond.notify_all()


def load_engine(
    path: Path,
    *,
    n_ctx: int,
    threads: int,
    seed: int = 0,
    key_cache: str = "f16",
    lanes: int = 1,
    lane_tokens: int = 0,
) -> Engine:
    """Load a GGUF model with a context window of `n_ctx` tokens (per lane)."""
    return Engine(
        path=path,
        n_ctx=n_ctx,
        threads=threads,
        seed=seed,
        key_cache=key_cache,
        lanes=lanes,
        lane_tokens=lane_tokens,
    )


def trained_context(path: Path) -> int:
    """The context length the model was trained with, read from the GGUF header."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        arch = reader.fields["general.architecture"].contents()
        return int(reader.fields[f"{arch}.context_length"].contents())
    except (KeyError, ValueError, OSError) as e:
        raise ModelLoadError(f"{path}: cannot read the model's context length ({e})") from e
