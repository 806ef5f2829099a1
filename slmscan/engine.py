"""The only module that imports llama_cpp: load a model, evaluate tokens, decode fields.

Decoding is greedy and constrained per field by sampling first and checking only the chosen
token (then the next best, up to a few dozen), instead of masking the whole vocabulary at every
step as a grammar does: with Gemma's 262k-token vocabulary that mask costs more than the model.
The caller feeds everything it knows in advance (instructions, labels, separators) in batches,
and asks the model only for content.
"""

from __future__ import annotations

import ctypes
import string
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from .errors import GenerationError, ModelLoadError

_CANDIDATES = 48  # how many next-best tokens to try when the best one is refused
_NGRAM = 4  # a field may not repeat a run of this many tokens (stops loops)
_RESTARTS = 2  # new starts for a field whose first attempts could not end anywhere
_WORD_BYTES = (string.ascii_letters + "-'").encode()  # "counter-rev" is half of one word

FeedKind = Literal["prompt", "fed"]
_DECODED = "decoded"


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
    fed: int = 0  # scaffolding tokens evaluated without decoding
    decoded: int = 0  # tokens the model chose
    decode_steps: int = 0  # of those, evaluated alone: one decode step each
    decoded_batched: int = 0  # of those, evaluated in one batch with the tokens fed after them
    prompt_seconds: float = 0.0  # every evaluation but a decode step
    decode_seconds: float = 0.0  # decode steps

    def snapshot(self) -> Counters:
        return Counters(**self.__dict__)

    def since(self, before: Counters) -> Counters:
        return Counters(**{k: v - getattr(before, k) for k, v in self.__dict__.items()})


@dataclass
class Engine:
    """One loaded model and its context window."""

    path: Path
    n_ctx: int
    threads: int
    seed: int = 0
    key_cache: str = "f16"  # or "q8_0", as the model's manifest says
    counters: Counters = field(default_factory=Counters)

    def __post_init__(self) -> None:
        import llama_cpp

        self._lib = llama_cpp
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_batch=512,
                # Decoding gains from a second thread as prefill does: 1.35-1.6x with 2
                # (benchmarks/results/threads.md).
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=self.seed,
                type_k=key_type(self.key_cache),
                swa_full=True,  # sliding-window models (Gemma 3) need the whole prefix to rewind
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelLoadError(f"{self.path}: llama.cpp could not load the model ({e})") from e
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self.n_vocab = int(self._llm.n_vocab())
        self._pieces: dict[int, bytes] = {}
        self._buffer = ctypes.create_string_buffer(256)
        # Tokens waiting to be evaluated, with their kind: nothing is evaluated until logits
        # are needed, so labels, chosen tokens and the scaffolding after them go in one batch
        # (a single token costs a whole decode step), and tokens after the last question of a
        # section are never evaluated at all.
        self._pending: list[tuple[int, str]] = []

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
            n = self._lib.llama_token_to_piece(self._vocab, token, self._buffer, 256, 0, False)
            cached = self._buffer.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def is_end(self, token: int) -> bool:
        """True for end-of-generation tokens (end of turn, end of text)."""
        return bool(self._lib.llama_vocab_is_eog(self._vocab, token))

    # --- evaluation ---------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """How many tokens the context holds, evaluated or waiting to be."""
        return int(self._llm.n_tokens) + len(self._pending)

    def rewind(self, position: int) -> None:
        """Forget everything after `position`; the prefix before it stays evaluated."""
        evaluated = int(self._llm.n_tokens)
        if position >= evaluated:
            del self._pending[position - evaluated :]
        else:
            self._pending.clear()
            self._llm.n_tokens = position  # llama-cpp-python drops the KV cells on the next eval

    def _append(self, tokens: Sequence[int], kind: str) -> None:
        if self.position + len(tokens) > self.n_ctx:
            if kind == _DECODED:
                raise GenerationError(f"the answer ran past the context window of {self.n_ctx}")
            raise GenerationError(
                f"the prompt needs {self.position + len(tokens)} tokens, "
                f"more than the context window of {self.n_ctx}"
            )
        self._pending.extend((int(token), kind) for token in tokens)

    def feed(self, tokens: Sequence[int], kind: FeedKind = "fed") -> None:
        """Add tokens the model reads without choosing them, counted as `kind`."""
        self._append(tokens, kind)

    def _step(self, token: int) -> None:
        """Add a token the model chose."""
        self._append([token], _DECODED)
        self.counters.decoded += 1

    def flush(self) -> None:
        """Evaluate the waiting tokens now, in one call (llama.cpp splits it into batches)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        start = time.perf_counter()
        self._llm.eval([token for token, _ in pending])
        elapsed = time.perf_counter() - start
        c = self.counters
        if len(pending) == 1 and pending[0][1] == _DECODED:
            c.decode_steps += 1
            c.decode_seconds += elapsed
            return
        c.prompt_seconds += elapsed
        for _, kind in pending:
            if kind == "prompt":
                c.prompt += 1
            elif kind == "fed":
                c.fed += 1
            else:
                c.decoded_batched += 1

    def logits(self) -> np.ndarray:
        """The next-token logits after the last token (a view, no copy)."""
        self.flush()
        pointer = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))

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
        """Decode one field greedily under `constraint`; it ends at a newline or end token.

        A field cut short (by `max_tokens`, its length, or no acceptable token) is taken back
        to its longest start that may end ("in favour of the" → "in favour") and does not stop
        inside a word (the model's next wish tells: "the techn" → "the"), in the context too.
        When none may ("10/10/202"), the field starts again without the first token that led
        there, up to `_RESTARTS` times; "" if every start fails.
        """
        banned: set[int] = set()
        for _ in range(_RESTARTS + 1):
            text, first = self._decode(constraint, max_tokens, penalties, banned)
            if text or first is None:
                break
            banned.add(first)
        return text.decode("utf-8", errors="ignore")

    def _decode(
        self,
        constraint: Constraint,
        max_tokens: int,
        penalties: dict[int, float] | None,
        banned: set[int],
    ) -> tuple[bytes, int | None]:
        """One greedy attempt at a field (see `generate`); returns it and its first token."""
        start = self.position
        text = b""
        tokens: list[int] = []
        ends: list[int] = []  # len(text) after each token
        seen: set[tuple[int, ...]] = set()
        if penalties:
            penalty_ids = np.fromiter(penalties.keys(), dtype=np.intp)
            penalty_values = np.fromiter(penalties.values(), dtype=np.float32)

        def acceptable(token: int) -> bool:
            if self.is_end(token):
                return constraint.may_stop(text)
            if not tokens and token in banned:
                return False
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

        ended = False  # by the model's choice: an end token or a newline
        for _ in range(max_tokens):
            logits = self.logits()
            if penalties:
                logits[penalty_ids] -= penalty_values  # the buffer is rewritten by the next eval
            token = self._pick(logits, acceptable)
            if token is None or self.is_end(token):
                ended = token is not None
                break
            piece = self.piece(token)
            newline = piece.find(b"\n")
            if newline >= 0:
                text += piece[:newline]
                ended = True
                break
            if len(tokens) >= _NGRAM - 1:
                seen.add((*tokens[1 - _NGRAM :], token))
            tokens.append(token)
            text += piece
            ends.append(len(text))
            self._step(token)
            if constraint.finished(text):
                break
        whole = len(text)
        wish = int(np.argmax(self.logits())) if not ended and text[-1:] in _WORD_BYTES else None
        if wish is not None and self.piece(wish)[:1].isalpha():
            whole = len(text.rstrip(_WORD_BYTES))  # cut in the middle of a word ("the techn")
        if whole < len(text) or not constraint.may_stop(text):
            kept = len(ends)
            while kept and (
                ends[kept - 1] > whole or not constraint.may_stop(text[: ends[kept - 1]])
            ):
                kept -= 1
            text = text[: ends[kept - 1]] if kept else b""
            self.rewind(start + kept)
        return text, tokens[0] if tokens else None

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

    def weigh(self, options: Sequence[str]) -> tuple[int, list[float]]:
        """Pick the option whose whole text the model finds likeliest, and feed it.

        Unlike `choose`, every token of every option counts, so options that share a first
        token ("the economy", "the environment") are still told apart, and the model's belief
        is read where it answers in its own words rather than from a list it was shown (small
        models then mostly repeat the list's first item). Costs one evaluation per distinct
        proper prefix of the options. Returns the chosen index and each option's probability
        among the options.
        """
        sequences = [self.text_tokens(option) for option in options]
        if not all(sequences):
            raise GenerationError("cannot weigh an empty option")
        start = self.position
        logp = np.zeros(len(sequences))
        for prefix in sorted({tuple(seq[:n]) for seq in sequences for n in range(len(seq))}):
            self.rewind(start)
            self.feed(prefix)
            values = self.logits().astype(np.float64)
            norm = np.logaddexp.reduce(values)
            for i, seq in enumerate(sequences):
                if len(seq) > len(prefix) and tuple(seq[: len(prefix)]) == prefix:
                    logp[i] += values[seq[len(prefix)]] - norm
        chosen = int(np.argmax(logp))
        self.rewind(start)
        self.feed(sequences[chosen])
        probs = np.exp(logp - logp.max())
        return chosen, (probs / probs.sum()).tolist()

    def close(self) -> None:
        """Free the model and its context."""
        self._llm.close()


def key_type(key_cache: str) -> int | None:
    """llama.cpp's type for a manifest's `key_cache` (None: its default, f16)."""
    import llama_cpp

    return llama_cpp.GGML_TYPE_Q8_0 if key_cache == "q8_0" else None


def load_engine(
    path: Path, *, n_ctx: int, threads: int, seed: int = 0, key_cache: str = "f16"
) -> Engine:
    """Load a GGUF model with a context window of `n_ctx` tokens."""
    return Engine(path=path, n_ctx=n_ctx, threads=threads, seed=seed, key_cache=key_cache)


def trained_context(path: Path) -> int:
    """The context length the model was trained with, read from the GGUF header."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
        arch = reader.fields["general.architecture"].contents()
        return int(reader.fields[f"{arch}.context_length"].contents())
    except (KeyError, ValueError, OSError) as e:
        raise ModelLoadError(f"{path}: cannot read the model's context length ({e})") from e
