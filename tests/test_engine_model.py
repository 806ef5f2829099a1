"""The engine's deferred evaluation, on the real bundled model through llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from slmscan.engine import Engine
from slmscan.scanner import Scanner

pytestmark = pytest.mark.model

TEXT = "The council opened a library that lends tools. Answer:"


@pytest.fixture
def engine(smol_scanner: Scanner) -> Iterator[Engine]:
    engine = smol_scanner._load().engine
    engine.rewind(0)
    yield engine
    engine.rewind(0)


@pytest.fixture
def evals(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every llama.cpp evaluation the engine makes."""
    sizes: list[int] = []
    original = engine._llm.eval

    def counted(tokens: Sequence[int]) -> None:
        sizes.append(len(tokens))
        original(tokens)

    monkeypatch.setattr(engine._llm, "eval", counted)
    return sizes


def _top(logits: np.ndarray, n: int = 5) -> list[int]:
    return [int(t) for t in np.argsort(-logits)[:n]]


def test_tokens_fed_in_pieces_are_evaluated_in_one_call(engine: Engine, evals: list[int]) -> None:
    tokens = [*engine.bos(), *engine.text_tokens(TEXT)]
    engine.feed(tokens)
    alone = _top(engine.logits().copy())
    engine.rewind(0)
    evals.clear()
    for token in tokens:
        engine.feed([token])
    assert evals == [] and engine.position == len(tokens)
    assert _top(engine.logits().copy()) == alone
    assert evals == [len(tokens)]


def test_rewinding_into_waiting_tokens_drops_only_those_after_it(
    engine: Engine, evals: list[int]
) -> None:
    prefix = [*engine.bos(), *engine.text_tokens(TEXT)]
    engine.feed(prefix)
    expected = _top(engine.logits().copy())
    engine.feed(engine.text_tokens(" no, not at all"))
    engine.rewind(len(prefix) - 2)
    engine.feed(prefix[-2:])
    evals.clear()
    assert _top(engine.logits().copy()) == expected
    assert evals == [2]  # the evaluated prefix before the rewind point was kept


def test_a_chosen_token_rides_with_the_scaffolding_after_it(
    engine: Engine, evals: list[int]
) -> None:
    engine.feed([*engine.bos(), *engine.text_tokens("Is a library a building? Answer:")])
    engine.flush()
    before = engine.counters.snapshot()
    evals.clear()
    chosen, beliefs = engine.choose([" yes", " no"])
    assert chosen in (0, 1) and abs(sum(beliefs) - 1) < 1e-6
    assert evals == []  # the choice needed only the logits already there
    engine.feed(engine.text_tokens("\nWhy:"))
    engine.logits()
    used = engine.counters.since(before)
    assert evals[-1] >= 2
    assert (used.decoded, used.decoded_batched, used.decode_steps) == (1, 1, 0)


class _OneWord:
    """Any text, but the field may only end after exactly one word."""

    def allows(self, text: bytes, piece: bytes) -> bool:
        return True

    def may_stop(self, text: bytes) -> bool:
        return len(text.split()) == 1

    def finished(self, text: bytes) -> bool:
        return False


def test_a_field_cut_short_is_taken_back_to_where_it_may_end(engine: Engine) -> None:
    engine.feed([*engine.bos(), *engine.text_tokens("Describe the library in a sentence:")])
    start = engine.position
    before = engine.counters.snapshot()
    text = engine.generate(_OneWord(), max_tokens=8)
    decoded = engine.counters.since(before).decoded
    assert len(text.split()) == 1 and decoded > engine.position - start  # more was written
    engine.flush()
    kept = [int(t) for t in engine._llm.input_ids[start : engine.position]]
    assert b"".join(engine.piece(t) for t in kept).decode() == text  # the context agrees


class _NotAsFirst(_OneWord):
    """One word, but not one that starts as `first` does: that start leads nowhere."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def may_stop(self, text: bytes) -> bool:
        return super().may_stop(text) and not text.startswith(self.first)


def test_a_field_that_cannot_end_starts_again_without_its_first_token(engine: Engine) -> None:
    engine.feed([*engine.bos(), *engine.text_tokens("Describe the library in a sentence:")])
    start = engine.position
    first = engine.generate(_OneWord(), max_tokens=1).encode()
    engine.rewind(start)
    text = engine.generate(_NotAsFirst(first), max_tokens=8)
    assert text and len(text.split()) == 1 and not text.encode().startswith(first)


class _Anything(_OneWord):
    """Any text may end anywhere: only running out of tokens cuts it."""

    def may_stop(self, text: bytes) -> bool:
        return True


def test_a_field_out_of_tokens_does_not_end_in_half_a_word(engine: Engine) -> None:
    line = "The internationalisation of counterrevolutionaries."
    prompt = [*engine.bos(), *engine.text_tokens(f"Copy the line.\nLine: {line}\nCopy: The")]
    engine.feed(prompt)
    full = engine.generate(_Anything(), max_tokens=24)
    assert full.strip() == line.removeprefix("The ")  # several words of several tokens
    trimmed = 0
    for n in range(2, len(engine.text_tokens(full)) + 1):
        engine.rewind(len(prompt) - 1)
        engine.feed(prompt[-1:])  # its logits again, for a new answer
        before = engine.counters.snapshot()
        text = engine.generate(_Anything(), max_tokens=n)
        assert full.startswith(text) and not full[len(text) : len(text) + 1].isalpha(), n
        trimmed += engine.counters.since(before).decoded > engine.position - len(prompt)
    assert trimmed  # some of the cuts fell inside a word and were taken back


def _sequence_logp(engine: Engine, start: list[int], option: list[int]) -> float:
    """log P(option | start), one token at a time: an independent reckoning for `weigh`."""
    engine.rewind(0)
    engine.feed(start)
    total = 0.0
    for token in option:
        values = engine.logits().astype(np.float64)
        total += values[token] - values.max() - np.log(np.exp(values - values.max()).sum())
        engine.feed([token])
    return total


def test_weighing_counts_every_token_of_every_option(engine: Engine) -> None:
    start = [*engine.bos(), *engine.text_tokens("Rain fell on the forests and the rivers rose.")]
    options = [" the economy", " the environment", " sports"]
    engine.feed(start)
    chosen, probs = engine.weigh(options)
    sequences = [engine.text_tokens(o) for o in options]
    assert sequences[0][0] == sequences[1][0]  # the first token alone cannot tell them apart
    assert engine.position == len(start) + len(sequences[chosen])
    logp = np.array([_sequence_logp(engine, start, seq) for seq in sequences])
    expected = np.exp(logp - logp.max()) / np.exp(logp - logp.max()).sum()
    assert probs == pytest.approx(expected.tolist(), abs=1e-4)
    assert chosen == int(np.argmax(logp)) and probs[0] != pytest.approx(probs[1], abs=1e-3)
