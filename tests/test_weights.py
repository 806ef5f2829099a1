"""Q4_1 models are loaded from a Q8_0 copy made once; other files load as shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from slmscan.gguf_check import check_gguf
from slmscan.scanner import resolve_model
from slmscan.weights import converted_path, prepare_weights

pytestmark = pytest.mark.model  # the real llama.cpp converts the real bundled file (~1 s)

SHA = "ab" * 32


@pytest.fixture()
def smol() -> Path:
    return resolve_model("smollm2-135m")[1]


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLMSCAN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_q4_1_model_is_converted_once_to_q8_0(smol: Path, cache: Path) -> None:
    assert check_gguf(smol).quantisation == "Q4_1"
    first = prepare_weights(check_gguf(smol), SHA, threads=2)
    assert first.form == "Q8_0 converted from Q4_1"
    assert first.path == converted_path(smol, SHA) and first.path.parent == cache
    header, shipped = check_gguf(first.path), check_gguf(smol)
    assert header.quantisation == "Q8_0"
    assert header.tensor_count == shipped.tensor_count
    assert header.metadata["tokenizer.ggml.model"] == shipped.metadata["tokenizer.ggml.model"]
    made = first.path.stat().st_mtime_ns
    again = prepare_weights(check_gguf(smol), SHA, threads=2)
    assert again == first and again.path.stat().st_mtime_ns == made
    assert [p.name for p in cache.iterdir()] == [first.path.name]  # no partial file left


def test_a_damaged_copy_is_made_again(smol: Path, cache: Path) -> None:
    target = converted_path(smol, SHA)
    cache.mkdir()
    target.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 16)
    weights = prepare_weights(check_gguf(smol), SHA, threads=2)
    assert weights.path == target and check_gguf(target).quantisation == "Q8_0"


def test_conversion_can_be_turned_off(
    smol: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLMSCAN_CONVERT_WEIGHTS", "0")
    weights = prepare_weights(check_gguf(smol), SHA, threads=2)
    assert (weights.path, weights.form) == (smol, "Q4_1 as shipped")
    assert not cache.exists()


def test_other_types_load_as_shipped(smol: Path, cache: Path) -> None:
    q8 = prepare_weights(check_gguf(smol), SHA, threads=2).path
    again = prepare_weights(check_gguf(q8), "cd" * 32, threads=2)
    assert (again.path, again.form) == (q8, "Q8_0 as shipped")


def test_a_cache_that_is_a_file_loads_the_file_as_shipped(
    smol: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("SLMSCAN_CACHE", str(blocker))
    weights = prepare_weights(check_gguf(smol), SHA, threads=2)
    assert weights.path == smol
    assert weights.form.startswith("Q4_1 as shipped (conversion to Q8_0 failed: ")
