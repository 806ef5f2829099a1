"""GGUF header checks: every bad file is one line, never a crash inside llama.cpp.

The malicious-template test at the end runs the real model and is marked `model`.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest
from hub_server import bundled_smollm2, run_slmscan, write_tiny_gguf

from slmscan.errors import ModelLoadError
from slmscan.gguf_check import check_gguf, read_gguf_header


def assert_one_line(error: ModelLoadError, *fragments: str) -> None:
    assert "\n" not in error.message
    for fragment in fragments:
        assert fragment in error.message


def test_bundled_model_passes_and_its_header_is_read(tmp_path: Path) -> None:
    header = check_gguf(bundled_smollm2(), tokens=["<|im_start|>", "<start_of_turn>"])
    assert (header.version, header.architecture) == (3, "llama")
    assert (header.tensor_count, header.kv_count) == (272, 33)
    assert header.context_length == 8192 and header.quantisation == "Q4_1"
    # The tensors end exactly at the end of the file: the size check has no slack to hide in.
    assert header.required_size == header.file_size == 98362432
    assert header.tokens_found == {"<|im_start|>"}
    # The embedded chat template is skipped, never kept: nothing could render it by accident.
    assert header.metadata["tokenizer.chat_template"] is None


def test_header_agrees_with_gguf_reader(tmp_path: Path) -> None:
    from gguf import GGUFReader

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    header = check_gguf(path)
    reader = GGUFReader(str(path))
    assert header.tensor_count == len(reader.tensors)
    assert header.kv_count == reader.fields["GGUF.kv_count"].contents()
    assert header.architecture == reader.fields["general.architecture"].contents()
    assert header.required_size == max(t.data_offset + t.n_bytes for t in reader.tensors)
    assert header.context_length == 4096 and header.quantisation == "F32"


def test_not_a_gguf_file_is_one_line(tmp_path: Path) -> None:
    text = tmp_path / "notes.gguf"
    text.write_text("These are my notes, not a model. " * 10)
    with pytest.raises(ModelLoadError) as caught:
        check_gguf(text)
    assert_one_line(caught.value, str(text), "not a GGUF model file")

    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError) as caught:
        check_gguf(empty)
    assert_one_line(caught.value, "not a GGUF model file", "0 bytes")


def test_truncated_bundled_model_is_one_line(tmp_path: Path) -> None:
    # What an interrupted copy or download leaves: the header, then half the tensors.
    truncated = tmp_path / "SmolLM2-half.gguf"
    with bundled_smollm2().open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(50_000_000))
    with pytest.raises(ModelLoadError) as caught:
        check_gguf(truncated)
    assert_one_line(caught.value, "truncated GGUF file", "98362432 bytes", "50000000")


def test_file_cut_inside_its_header_is_one_line(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ModelLoadError) as caught:
        check_gguf(cut)
    assert_one_line(caught.value, "truncated GGUF file", "ends inside its header")


def _header_bytes(version: int, tensors: int, kvs: int) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (_header_bytes(1, 0, 0) + bytes(64), "GGUF version 1 is not supported"),
        (b"GGUF" + struct.pack(">IQQ", 3, 1, 1) + bytes(64), "big-endian"),
        (_header_bytes(3, 1 << 40, 1) + bytes(64), "corrupt GGUF header"),
        (_header_bytes(3, 0, 1 << 40) + bytes(64), "corrupt GGUF header"),
        # One key claiming a string of 2**60 bytes: a length the file cannot hold.
        (_header_bytes(3, 0, 1) + struct.pack("<Q", 1 << 60) + bytes(64), "truncated"),
    ],
)
def test_corrupt_headers_are_one_line(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError) as caught:
        check_gguf(path)
    assert_one_line(caught.value, fragment)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "odd.gguf", architecture="not-a-real-arch")
    read_gguf_header(path)  # well-formed …
    with pytest.raises(ModelLoadError) as caught:
        check_gguf(path)  # … but nothing llama.cpp could run
    assert_one_line(caught.value, "'not-a-real-arch' is not one llama.cpp supports")


def test_bad_files_are_refused_before_llama_cpp_loads(tmp_path: Path) -> None:
    """Through the scan pipeline: resolve_model and Scanner._load refuse before load_engine."""
    from slmscan.scanner import Scanner, ScanOptions, resolve_model

    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model")
    with pytest.raises(ModelLoadError):
        resolve_model(str(bad))
    with pytest.raises(ModelLoadError):
        Scanner(ScanOptions(model=str(bad), offline=True))._load()


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_cli_scan_with_a_bad_model_file_is_one_error_line(tmp_path: Path, kind: str) -> None:
    model = tmp_path / "model.gguf"
    if kind == "text":
        model.write_text("just text\n")
    else:
        data = write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
        model.write_bytes(data[: len(data) - 16])
    doc = tmp_path / "doc.md"
    doc.write_text("A short note about small language models.\n")
    result = run_slmscan("scan", "--offline", "--model", str(model), str(doc))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and str(model) in lines[0]
    assert all(line.startswith(("Error: ", "Hint: ")) for line in lines)
    assert "Traceback" not in result.stderr


# --- safe loading ------------------------------------------------------------------------------

# If a template were ever rendered (by slmscan, or by llama-cpp-python outside its sandbox), this
# would run a shell command. Two routes, so a sandbox that blocks one is not the only proof.
PAYLOAD = (
    "{{ cycler.__init__.__globals__.os.system('touch {canary}') }}"
    "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch {canary}') }}"
    "{% for message in messages %}{{ message['content'] }}{% endfor %}"
)


def write_malicious_copy(source: Path, target: Path, canary: Path) -> Path:
    """Copy a GGUF (tensors and metadata) with its chat template replaced by PAYLOAD."""
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, Keys

    reader = GGUFReader(str(source))
    arch = reader.fields[Keys.General.ARCHITECTURE].contents()
    writer = GGUFWriter(str(target), arch, endianess=reader.endianess)
    for fld in reader.fields.values():
        if fld.name == Keys.General.ARCHITECTURE or fld.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        if fld.name == Keys.Tokenizer.CHAT_TEMPLATE:
            continue
        kind = fld.types[0]
        sub = fld.types[-1] if kind == GGUFValueType.ARRAY else None
        writer.add_key_value(fld.name, fld.contents(), kind, sub_type=sub)
    writer.add_chat_template(PAYLOAD.replace("{canary}", str(canary)))
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return target


@pytest.fixture(scope="module")
def malicious_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("malicious")
    canary = folder / "CANARY"
    model = write_malicious_copy(bundled_smollm2(), folder / "evil-smollm2.gguf", canary)
    return model, canary


def test_malicious_copy_is_a_valid_gguf_carrying_the_payload(
    malicious_model: tuple[Path, Path],
) -> None:
    model, canary = malicious_model
    header = check_gguf(model)  # well-formed: the header check is not what saves us
    assert header.tensor_count == 272 and header.required_size == header.file_size
    assert PAYLOAD.replace("{canary}", str(canary)).encode() in model.read_bytes()
    assert not canary.exists()


def test_payload_is_live_when_rendered_without_a_sandbox(tmp_path: Path) -> None:
    """The control: the payload really runs a command when rendered the naive way."""
    import jinja2

    canary = tmp_path / "CONTROL"
    template = jinja2.Environment().from_string(PAYLOAD.replace("{canary}", str(canary)))
    template.render(messages=[{"role": "user", "content": "hi"}])
    assert canary.exists()


@pytest.mark.model
@pytest.mark.slow
def test_malicious_template_executes_nothing(
    malicious_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """slmscan's own load, then a real `slmscan scan --model THAT.gguf`: no canary, ever."""
    from slmscan.scanner import Scanner, ScanOptions

    model, canary = malicious_model
    with Scanner(ScanOptions(model=str(model), offline=True, sections=("keywords",))) as scanner:
        analyser = scanner._load()
        assert analyser.model.family == "chatml"  # from the vocabulary, not the template
    assert not canary.exists()

    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Small models on laptops\n\nSmall language models now run on ordinary laptops. "
        "They read documents locally, so nothing leaves the machine.\n"
    )
    args = ("--model", str(model), "--sections", "keywords", "--format", "json", str(doc))
    result = run_slmscan("scan", "--offline", *args, cwd=tmp_path, timeout=600)
    assert not canary.exists(), "the embedded chat template was executed"
    assert not (tmp_path / "CANARY").exists()
    assert result.returncode == 0, result.stderr
    assert shutil.which("touch")  # the payload's command exists: its absence proves nothing else
