"""GGUF header checks: what slmscan looks at before llama.cpp ever sees a model file.

llama.cpp aborts the whole process (uncatchable from Python) on some malformed files, so a file
is read here first, with the format definitions of the `gguf` package (magic, versions, value
and tensor types, architectures): magic, version, sane tensor and metadata counts, every length
inside the file, an architecture llama.cpp knows, and a file at least as long as its tensors
say. Any failure is one `ModelLoadError` line naming the file and the cause.

The parser is our own, not `gguf.GGUFReader`: the reader builds a numpy view per vocabulary
entry and needs ~4 s for the 98 MB bundled model (longer for 262k-token vocabularies); this
walk takes a fraction of that and never materialises the metadata it does not need. The chat
template stored in the file is skipped, never kept: slmscan never renders it.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError

# Far beyond any real model (the largest have a few thousand tensors and a few hundred keys),
# small enough that a corrupt count fails here instead of in an allocation inside llama.cpp.
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 16
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NESTING = 2  # arrays of arrays exist in the spec; deeper nesting is not a model
SUPPORTED_VERSIONS = (2, 3)  # llama.cpp refuses version 1 (32-bit counts)
_SHORT_STRING = 4096  # longer metadata strings (chat templates) are skipped, not kept

# GGUFValueType → struct format, for fixed-size values.
_SCALARS: dict[int, str] = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
                            7: "<?", 10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip
_STRING, _ARRAY = 8, 9

_HINT = "check that the file is a complete GGUF model (compare its size and sha256 with its source)"


@dataclass(frozen=True)
class GGUFHeader:
    """What the header of a GGUF file says, after every check passed."""

    path: Path
    version: int
    tensor_count: int
    kv_count: int
    architecture: str
    file_size: int
    required_size: int = 0  # bytes the file must have for every tensor to be inside it
    metadata: dict[str, object] = field(default_factory=dict)
    tokens_found: frozenset[str] = frozenset()

    @property
    def context_length(self) -> int | None:
        """The context length the model was trained with, if the header records it."""
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) else None

    @property
    def quantisation(self) -> str | None:
        """The file type as llama.cpp names it (e.g. Q4_K_M), if the header records it."""
        from gguf import LlamaFileType

        value = self.metadata.get("general.file_type")
        if not isinstance(value, int):
            return None
        try:
            return LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
        except ValueError:
            return None


class _Truncated(Exception):
    """The header runs past the end of the file."""


class _Corrupt(Exception):
    """A value in the header that no real model has."""


class _Walker:
    """Reads little-endian GGUF values from a memory map, checking every length first."""

    def __init__(self, buf: mmap.mmap, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Truncated(self.pos)

    def scalar(self, fmt: str) -> int | float | bool:
        n = struct.calcsize(fmt)
        self.need(n)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value  # type: ignore[no-any-return]

    def u32(self) -> int:
        return int(self.scalar("<I"))

    def u64(self) -> int:
        return int(self.scalar("<Q"))

    def raw_string(self) -> tuple[int, int]:
        """(start, length) of a string, skipped over."""
        n = self.u64()
        self.need(n)
        start = self.pos
        self.pos += n
        return start, n

    def string(self) -> str:
        start, n = self.raw_string()
        return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")

    def value(self, vtype: int, key: str, wanted: frozenset[bytes], found: set[bytes]) -> object:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            start, n = self.raw_string()
            if n > _SHORT_STRING or key.startswith("tokenizer.chat_template"):
                return None  # the chat template is code from the file's author: never kept
            return bytes(self.buf[start : start + n]).decode("utf-8", errors="replace")
        if vtype == _ARRAY:
            self.array(key, wanted, found, depth=1)
            return None
        raise _Corrupt(f"metadata {key!r} has unknown value type {vtype}")

    def array(self, key: str, wanted: frozenset[bytes], found: set[bytes], depth: int) -> None:
        if depth > MAX_NESTING:
            raise _Corrupt(f"metadata {key!r} nests arrays {depth} deep")
        itype = self.u32()
        count = self.u64()
        if itype in _SCALARS:
            n = struct.calcsize(_SCALARS[itype]) * count
            self.need(n)
            self.pos += n
        elif itype == _STRING:
            # Each item is at least its 8-byte length: a count the file cannot hold is truncation.
            self.need(8 * count)
            look = bool(wanted) and key == "tokenizer.ggml.tokens"
            longest = max((len(w) for w in wanted), default=0)
            for _ in range(count):
                start, n = self.raw_string()
                if look and n <= longest:
                    piece = bytes(self.buf[start : start + n])
                    if piece in wanted:
                        found.add(piece)
        elif itype == _ARRAY:
            self.need(12 * count)
            for _ in range(count):
                self.array(key, wanted, found, depth + 1)
        else:
            raise _Corrupt(f"metadata {key!r} is an array of unknown type {itype}")


def _supported_architectures() -> frozenset[str]:
    from gguf import MODEL_ARCH_NAMES

    return frozenset(MODEL_ARCH_NAMES.values())


def _tensor_sizes() -> dict[int, tuple[int, int]]:
    from gguf import GGML_QUANT_SIZES

    return {int(k): v for k, v in GGML_QUANT_SIZES.items()}


def _parse(path: Path, buf: mmap.mmap, size: int, wanted: frozenset[bytes]) -> GGUFHeader:
    from gguf import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC

    walker = _Walker(buf, size)
    if walker.u32() != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path}: not a GGUF model file (it starts with {bytes(buf[:4])!r}, not b'GGUF')",
            hint="name a .gguf model file, or a model id from `slmscan models list`",
        )
    version = walker.u32()
    if version not in SUPPORTED_VERSIONS:
        if version in (2 << 24, 3 << 24):  # the version bytes of a big-endian file, read LE
            raise ModelLoadError(f"{path}: a big-endian GGUF file, which this machine cannot load")
        raise ModelLoadError(
            f"{path}: GGUF version {version} is not supported (llama.cpp reads versions 2 and 3)"
        )
    tensor_count = walker.u64()
    kv_count = walker.u64()
    if tensor_count > MAX_TENSORS or kv_count > MAX_KV:
        raise _Corrupt(f"{tensor_count} tensors and {kv_count} metadata entries")

    metadata: dict[str, object] = {}
    found: set[bytes] = set()
    for _ in range(kv_count):
        key = walker.string()
        vtype = walker.u32()
        metadata[key] = walker.value(vtype, key, wanted, found)

    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Corrupt(f"alignment {alignment!r} is not a power of two")

    sizes = _tensor_sizes()
    data_end = 0
    for _ in range(tensor_count):
        name = walker.string()
        n_dims = walker.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise _Corrupt(f"tensor {name!r} has {n_dims} dimensions")
        dims = [walker.u64() for _ in range(n_dims)]
        ttype = walker.u32()
        offset = walker.u64()
        if ttype not in sizes:
            raise _Corrupt(f"tensor {name!r} has unknown type {ttype}")
        block, type_size = sizes[ttype]
        elements = 1
        for d in dims:
            elements *= d
        if dims[0] % block or offset % alignment:
            raise _Corrupt(f"tensor {name!r} is misaligned")
        data_end = max(data_end, offset + elements // block * type_size)

    data_start = -(-walker.pos // alignment) * alignment  # round up to the alignment
    required = data_start + data_end if tensor_count else walker.pos

    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise ModelLoadError(f"{path}: the GGUF header names no model architecture", hint=_HINT)
    return GGUFHeader(
        path=path,
        version=version,
        tensor_count=tensor_count,
        kv_count=kv_count,
        architecture=architecture,
        file_size=size,
        required_size=required,
        metadata=metadata,
        tokens_found=frozenset(t.decode("utf-8") for t in found),
    )


def read_gguf_header(path: Path, *, tokens: Iterable[str] = ()) -> GGUFHeader:
    """Parse and sanity-check a GGUF header; `tokens` are looked up in the vocabulary."""
    wanted = frozenset(t.encode("utf-8") for t in tokens)
    try:
        size = path.stat().st_size
        if size < 24:  # magic, version and the two counts
            raise ModelLoadError(
                f"{path}: not a GGUF model file (only {size} bytes)",
                hint="name a .gguf model file, or a model id from `slmscan models list`",
            )
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, buf, size, wanted)
    except _Truncated as e:
        raise ModelLoadError(
            f"{path}: truncated GGUF file: it ends inside its header (byte {e.args[0]} of {size})",
            hint=_HINT,
        ) from None
    except _Corrupt as e:
        raise ModelLoadError(f"{path}: corrupt GGUF header: {e}", hint=_HINT) from None
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot read the model file ({e})") from e


def check_gguf(path: Path, *, tokens: Iterable[str] = ()) -> GGUFHeader:
    """Everything slmscan checks before handing a file to llama.cpp; one-line errors."""
    header = read_gguf_header(path, tokens=tokens)
    if header.architecture not in _supported_architectures():
        raise ModelLoadError(
            f"{path}: model architecture {header.architecture!r} is not one llama.cpp supports",
            hint="choose a model from `slmscan models list`",
        )
    if header.file_size < header.required_size:
        raise ModelLoadError(
            f"{path}: truncated GGUF file: its header describes {header.required_size} bytes, "
            f"the file has {header.file_size}",
            hint=_HINT,
        )
    return header
