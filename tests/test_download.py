"""Pinned, verified Hub downloads against a real Hub-protocol server on 127.0.0.1.

Pulls run the real CLI in a fresh process (huggingface_hub reads HF_HUB_OFFLINE once, at import,
and this process imported it offline); what is checked afterwards runs here, offline, under a
NetworkGuard that counts and refuses every connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import (
    HubFile,
    HubServer,
    bundled_smollm2,
    run_slmscan,
    start_slmscan,
    write_tiny_gguf,
)

from slmscan import lockfile
from slmscan.errors import IntegrityError, ModelError, ModelNotInstalledError
from slmscan.netguard import NetworkGuard

SMOL_SHA = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOL_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_REPO = "test-org/tiny-GGUF"


def write_manifest(
    model_id: str,
    repo: str,
    filename: str,
    *,
    revision: str = "main",
    sha256: str | None = None,
) -> Path:
    """A user manifest in $SLMSCAN_HOME/models, as `slmscan models add` would write."""
    folder = Path(os.environ["SLMSCAN_HOME"]) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    pin = f'sha256 = "{sha256}"\n' if sha256 else ""
    path = folder / f"{model_id}.toml"
    path.write_text(
        f'id = "{model_id}"\nname = "{repo}/{filename}"\nfamily = "chatml"\n{pin}'
        'licence = "Apache-2.0"\nquantisation = "Q4_1"\n'
        "context_trained = 8192\ncontext_suggested = 8192\n\n"
        f'[source]\nkind = "hub"\nrepo = "{repo}"\nfilename = "{filename}"\n'
        f'revision = "{revision}"\n'
    )
    return path


def hub_cache() -> Path:
    return Path(os.environ["HF_HOME"]) / "hub"


def cached_files(repo: str) -> list[Path]:
    """Every file (not folder) in the repo's cache folder, links included."""
    storage = hub_cache() / ("models--" + repo.replace("/", "--"))
    return sorted(p for p in storage.rglob("*") if p.is_file() or p.is_symlink())


def usable_files(repo: str) -> list[Path]:
    """Snapshot links and complete blobs: what a loader could pick up (refs hold a commit id)."""
    blobs = [p for p in cached_files(repo) if p.parent.name == "blobs"]
    links = [p for p in cached_files(repo) if "snapshots" in p.parts]
    return [p for p in blobs if not p.name.endswith(".incomplete")] + links


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.fixture
def smol(hub: HubServer) -> HubFile:
    """The bundled SmolLM2 GGUF, served as if it were a Hub repo, and a manifest for it."""
    write_manifest("smol-hub", SMOL_REPO, SMOL_FILE)
    return hub.serve(SMOL_REPO, SMOL_FILE, bundled_smollm2())


@pytest.fixture
def tiny(hub: HubServer, tmp_path: Path) -> HubFile:
    """A few-kB GGUF served as a Hub repo, and a manifest for it."""
    write_manifest("tiny", TINY_REPO, "tiny.gguf")
    return hub.serve(TINY_REPO, "tiny.gguf", write_tiny_gguf(tmp_path / "tiny.gguf"))


def pull(hub: HubServer, model: str, *extra: str) -> tuple[int, str, str]:
    result = run_slmscan("models", "pull", model, *extra, endpoint=hub.url)
    return result.returncode, result.stdout, result.stderr


# --- the acceptance suite, on the real bundled model ------------------------------------------


@pytest.mark.network
def test_pull_downloads_verifies_and_pins_the_commit(hub: HubServer, smol: HubFile) -> None:
    code, out, err = pull(hub, "smol-hub")
    assert code == 0, err
    path = Path(out.split()[-1])
    # The standard Hugging Face cache under HF_HOME, at the commit the server resolved "main" to.
    assert (
        path
        == hub_cache()
        / f"models--{SMOL_REPO.replace('/', '--')}"
        / "snapshots"
        / (smol.commit)
        / SMOL_FILE
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SMOL_SHA
    entry = lockfile.find_entry(SMOL_REPO, SMOL_FILE, "main")
    assert entry is not None
    assert (entry.commit, entry.sha256, entry.size) == (smol.commit, SMOL_SHA, smol.size)
    # One metadata request and one transfer; telemetry was off before huggingface_hub loaded.
    assert [r.method for r in hub.requests] == ["HEAD", "GET"]
    assert not any("/api/" in r.path for r in hub.requests)
    assert SMOL_FILE in err and "100%" in err  # the progress bar, on stderr


@pytest.mark.network
def test_pull_again_makes_no_request(hub: HubServer, smol: HubFile) -> None:
    assert pull(hub, "smol-hub")[0] == 0
    before = len(hub.requests)
    code, out, err = pull(hub, "smol-hub", "--quiet")
    assert code == 0, err
    assert len(hub.requests) == before  # the pinned commit is asked for by hash: no HEAD, no GET
    assert "verified" in out and "%" not in err


@pytest.mark.network
def test_dropped_connection_resumes_with_a_range_request(hub: HubServer, smol: HubFile) -> None:
    hub.drop_after, hub.drop_times = 20_000_000, 1
    code, out, err = pull(hub, "smol-hub")
    assert code == 0, err
    gets = [r for r in hub.requests if r.method == "GET"]
    assert len(gets) == 2 and gets[1].range is not None
    # The client resumes from the last whole chunk it kept, not from byte 0.
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 20_000_000
    assert hashlib.sha256(Path(out.split()[-1]).read_bytes()).hexdigest() == SMOL_SHA


@pytest.mark.network
def test_killed_pull_leaves_nothing_usable_and_the_next_pull_completes(
    hub: HubServer, smol: HubFile
) -> None:
    from slmscan.download import model_path
    from slmscan.models import find_manifest

    hub.stall_after = 30_000_000
    process = start_slmscan("models", "pull", "smol-hub", endpoint=hub.url)
    try:
        assert hub.stalled.wait(timeout=60), "the download never started"
    finally:
        process.kill()  # as hard as a power cut: no cleanup runs
        process.communicate(timeout=30)
    assert usable_files(SMOL_REPO) == []  # only the .incomplete part file (and a lock)
    assert any(p.name.endswith(".incomplete") for p in cached_files(SMOL_REPO))
    assert lockfile.find_entry(SMOL_REPO, SMOL_FILE, "main") is None
    with pytest.raises(ModelNotInstalledError):
        model_path(find_manifest("smol-hub"))

    hub.stall_after = None
    hub.release.set()
    code, out, err = pull(hub, "smol-hub")
    assert code == 0, err
    assert hashlib.sha256(Path(out.split()[-1]).read_bytes()).hexdigest() == SMOL_SHA
    assert not any(p.name.endswith(".incomplete") for p in cached_files(SMOL_REPO))


@pytest.mark.network
def test_different_bytes_are_refused_and_nothing_usable_remains(
    hub: HubServer, smol: HubFile
) -> None:
    hub.tamper(SMOL_REPO, SMOL_FILE)  # same size, one byte flipped, real sha256 announced
    code, _, err = pull(hub, "smol-hub")
    assert code == 1
    error = next(line for line in err.splitlines() if line.startswith("Error: "))
    assert "sha256" in error and "the download was deleted" in error
    assert "Hint: slmscan models pull smol-hub" in err
    assert usable_files(SMOL_REPO) == []
    assert lockfile.find_entry(SMOL_REPO, SMOL_FILE, "main") is None
    listing = run_slmscan("models", "list").stdout
    assert next(line for line in listing.splitlines() if line.startswith("smol-hub")).endswith("no")


@pytest.mark.network
def test_offline_with_the_file_cached_makes_zero_connections(
    hub: HubServer, smol: HubFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slmscan.download import verify_model
    from slmscan.gguf_check import check_gguf
    from slmscan.scanner import resolve_model

    assert pull(hub, "smol-hub")[0] == 0
    before = len(hub.requests)
    monkeypatch.setenv("SLMSCAN_OFFLINE", "1")
    # Everything Scanner._load does before llama.cpp: resolve, verify, check the header.
    with NetworkGuard() as guard:
        manifest, path = resolve_model("smol-hub")
        sha = verify_model(manifest, path)
        check_gguf(path)
    assert guard.attempts == 0
    assert sha == SMOL_SHA and smol.commit in str(path)
    # And through the CLI, with HF_ENDPOINT still pointing at the server.
    result = run_slmscan("models", "path", "smol-hub", "--offline", endpoint=hub.url)
    assert result.returncode == 0 and result.stdout.strip() == str(path)
    assert len(hub.requests) == before


def test_offline_without_the_file_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slmscan.scanner import resolve_model

    monkeypatch.setenv("SLMSCAN_OFFLINE", "1")
    with NetworkGuard() as guard, pytest.raises(ModelNotInstalledError) as caught:
        resolve_model("qwen2.5-0.5b")
    assert guard.attempts == 0
    assert caught.value.hint == "slmscan models pull qwen2.5-0.5b"

    doc = tmp_path / "doc.md"
    doc.write_text("A short note about small language models.\n")
    started = time.monotonic()
    result = run_slmscan("scan", "--offline", "--model", "qwen2.5-0.5b", str(doc))
    assert time.monotonic() - started < 30  # no retries, no waiting on a network
    assert result.returncode == 1
    assert "Error: model qwen2.5-0.5b is not installed" in result.stderr
    assert "Hint: slmscan models pull qwen2.5-0.5b" in result.stderr
    path = run_slmscan("models", "path", "qwen2.5-0.5b", "--offline")
    assert path.returncode == 1 and "Hint: slmscan models pull qwen2.5-0.5b" in path.stderr


@pytest.mark.parametrize(("offline", "expected"), [("1", "True True"), ("", "False True")])
def test_hub_settings_are_made_before_huggingface_hub_loads(offline: str, expected: str) -> None:
    """huggingface_hub reads them once, at import: slmscan's import path sets them first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_HUB_")}
    env["SLMSCAN_OFFLINE"] = offline
    code = (
        "import sys; from slmscan import download; download._hub();"
        "import huggingface_hub.constants as c;"
        "print(c.HF_HUB_OFFLINE, c.HF_HUB_DISABLE_TELEMETRY)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == expected, result.stderr


# --- pins, the lock file and the cache, on a tiny file ---------------------------------------


@pytest.mark.network
def test_file_changed_at_the_recorded_commit_is_refused(
    hub: HubServer, tiny: HubFile, tmp_path: Path
) -> None:
    assert pull(hub, "tiny")[0] == 0
    assert run_slmscan("models", "rm", "tiny").returncode == 0
    # Same repo, same commit, other bytes (their own sha256 announced: a consistent server).
    other = write_tiny_gguf(tmp_path / "other.gguf", tokens=["<unk>", "changed", "vocabulary"])
    hub.serve(TINY_REPO, "tiny.gguf", other, commit=tiny.commit)
    code, _, err = pull(hub, "tiny")
    assert code == 1
    assert "recorded in" in err and "models.lock.json" in err
    assert usable_files(TINY_REPO) == []
    # Trusting the new file is explicit, and records it.
    code, _, err = pull(hub, "tiny", "--update")
    assert code == 0, err
    entry = lockfile.find_entry(TINY_REPO, "tiny.gguf", "main")
    assert entry is not None and entry.sha256 == hashlib.sha256(other.read_bytes()).hexdigest()


@pytest.mark.network
def test_sha256_pinned_in_the_manifest_is_enforced(hub: HubServer, tiny: HubFile) -> None:
    write_manifest("tiny", TINY_REPO, "tiny.gguf", sha256="0" * 64)
    code, _, err = pull(hub, "tiny")
    assert code == 1 and "pinned in the manifest" in err
    assert usable_files(TINY_REPO) == []


@pytest.mark.network
def test_a_cached_but_unverified_file_is_not_installed(hub: HubServer, tiny: HubFile) -> None:
    from slmscan.download import installed_path
    from slmscan.models import find_manifest

    assert pull(hub, "tiny")[0] == 0
    lockfile.lock_path().unlink()  # as if another tool had downloaded the file
    assert installed_path(find_manifest("tiny")) is None
    gets = hub.gets
    code, _, err = pull(hub, "tiny")  # verifies the cached file and records it, no transfer
    assert code == 0, err
    assert hub.gets == gets
    assert installed_path(find_manifest("tiny")) is not None


@pytest.mark.network
def test_hf_hub_cache_is_respected(
    hub: HubServer, tiny: HubFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slmscan.download import model_path
    from slmscan.models import find_manifest

    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("HF_HUB_CACHE", str(elsewhere))
    code, out, err = pull(hub, "tiny")
    assert code == 0, err
    assert Path(out.split()[-1]).is_relative_to(elsewhere)
    assert model_path(find_manifest("tiny")).is_relative_to(elsewhere)
    assert not (Path(os.environ["HF_HOME"]) / "hub").exists()


@pytest.mark.network
def test_rm_deletes_the_file_and_keeps_the_pin(hub: HubServer, tiny: HubFile) -> None:
    assert pull(hub, "tiny")[0] == 0
    result = run_slmscan("models", "rm", "tiny")
    assert result.returncode == 0 and result.stdout.count("removed ") == 2  # link and blob
    assert usable_files(TINY_REPO) == []
    assert lockfile.find_entry(TINY_REPO, "tiny.gguf", "main") is not None
    before = len(hub.requests)
    assert pull(hub, "tiny")[0] == 0  # the same commit again, by hash
    assert all(f"/resolve/{tiny.commit}/" in r.path for r in hub.requests[before:])
    again = run_slmscan("models", "rm", "tiny")
    assert again.returncode == 0
    assert run_slmscan("models", "rm", "tiny").returncode == 1  # nothing left to remove


@pytest.mark.network
@pytest.mark.parametrize(
    ("repo", "filename", "revision", "message"),
    [
        ("nobody/missing-GGUF", "tiny.gguf", "main", "no such repository"),
        (TINY_REPO, "absent.gguf", "main", "no file 'absent.gguf'"),
        (TINY_REPO, "tiny.gguf", "v9", "no revision 'v9'"),
    ],
)
def test_hub_errors_are_one_line_download_errors(
    hub: HubServer, tiny: HubFile, repo: str, filename: str, revision: str, message: str
) -> None:
    write_manifest("broken", repo, filename, revision=revision)
    code, _, err = pull(hub, "broken")
    assert code == 1 and message in err and "Traceback" not in err
    assert any(line.startswith("Error: cannot download ") for line in err.splitlines())


@pytest.mark.slow  # huggingface_hub retries a refused connection with backoff for ~25 s
def test_unreachable_hub_is_a_download_error() -> None:
    write_manifest("tiny", TINY_REPO, "tiny.gguf")
    result = run_slmscan("models", "pull", "tiny", endpoint="http://127.0.0.1:9")
    assert result.returncode == 1
    assert "Error: cannot download" in result.stderr and "Traceback" not in result.stderr


# --- the lock file ---------------------------------------------------------------------------


def test_lock_file_records_finds_and_forgets() -> None:
    entry = lockfile.LockEntry("o/r", "f.gguf", "main", "a" * 40, "b" * 64, 10)
    recorded = lockfile.record_entry(entry)
    assert recorded.recorded  # stamped
    assert lockfile.find_entry("o/r", "f.gguf", "main") == recorded
    assert lockfile.find_entry("o/r", "f.gguf", "dev") is None
    data = json.loads(lockfile.lock_path().read_text())
    assert data["version"] == 1 and "o/r/f.gguf@main" in data["files"]
    assert lockfile.forget_entry("o/r", "f.gguf", "main")
    assert not lockfile.forget_entry("o/r", "f.gguf", "main")


def test_a_damaged_lock_file_is_an_error_not_a_silent_reset() -> None:
    lockfile.lock_path().parent.mkdir(parents=True, exist_ok=True)
    lockfile.lock_path().write_text("{not json")
    with pytest.raises(ModelError) as caught:
        lockfile.read_lock()
    assert str(lockfile.lock_path()) in caught.value.message and caught.value.hint


def test_mismatch_with_the_lock_names_the_file_and_the_command(tmp_path: Path) -> None:
    entry = lockfile.LockEntry("o/r", "f.gguf", "main", "a" * 40, "b" * 64, 10)
    path = tmp_path / "f.gguf"
    with pytest.raises(IntegrityError) as caught:
        lockfile.check_against_entry(entry, path, "c" * 64, "my-model")
    assert str(path) in caught.value.message and "o/r/f.gguf" in caught.value.message
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("slmscan models pull my-model --force")


def test_bytes_changed_after_the_pull_are_refused_at_load(tmp_path: Path) -> None:
    """A cached Hub file edited on disk: the load-time check against the lock catches it."""
    from slmscan.download import verify_model
    from slmscan.models import find_manifest

    write_manifest("tiny", TINY_REPO, "tiny.gguf")
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    lockfile.record_entry(lockfile.LockEntry(TINY_REPO, "tiny.gguf", "main", "a" * 40, sha, 1))
    assert verify_model(find_manifest("tiny"), path) == sha
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(IntegrityError):
        verify_model(find_manifest("tiny"), path)
