"""The model's weights in a form llama.cpp's CPU backend evaluates fast in batches.

On x86, llama.cpp has batched matrix kernels (repacked or tinyBLAS) for Q4_0, Q8_0 and the
K-quants, but multiplies Q4_1 weights one dot product at a time. The bundled SmolLM2 ships as
Q4_1 and most of its card time is evaluating batches, so slmscan converts such a file once to
Q8_0 and loads that: 1.3-1.5x faster on batches of 16 tokens and more, decoding unchanged
(benchmarks/results/weights.md). Q8_0 moves each weight by at most 1/254 of its block's
largest, far less than the Q4_1 quantisation did; the next-token predictions still differ at
about one position in twenty, so cards differ from the shipped file's, and the card's
provenance says which form was loaded. Other types load as shipped (Gemma's Q4_K_M gains
less than 1.2x from Q8_0).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import ModelLoadError
from .gguf_check import GGUFHeader, check_gguf

_SLOW_TYPES = frozenset({"Q4_1"})  # file types measured slow in batches; others load as they are
_TARGET = "Q8_0"


@dataclass(frozen=True)
class Weights:
    """The file llama.cpp loads, and what slmscan did to get it."""

    path: Path
    form: str  # "Q4_1 as shipped", "Q8_0 converted from Q4_1", ...


def converted_path(path: Path, sha256: str) -> Path:
    """Where the converted copy of a model file lives: keyed by the source's sha256."""
    return config.cache_dir() / f"{path.stem}.{_TARGET.lower()}-{sha256[:16]}.gguf"


def prepare_weights(header: GGUFHeader, sha256: str, threads: int) -> Weights:
    """The weights to load for a checked model file, converting them once if that is faster.

    A failed conversion (a full disk, a read-only cache) is not an error: the file is then
    loaded as it is, only slower, and the form says why.
    """
    path, kind = header.path, header.quantisation or "unknown type"
    if kind not in _SLOW_TYPES or not config.convert_weights():
        return Weights(path, f"{kind} as shipped")
    target = converted_path(path, sha256)
    if target.is_file() and not _is_whole(target):
        target.unlink(missing_ok=True)  # damaged since it was written: made again
    if not target.is_file():
        problem = convert(path, target, threads)
        if problem:
            return Weights(path, f"{kind} as shipped (conversion to {_TARGET} failed: {problem})")
    return Weights(target, f"{_TARGET} converted from {kind}")


def _is_whole(path: Path) -> bool:
    try:
        check_gguf(path)
    except ModelLoadError:
        return False
    return True


def convert(source: Path, target: Path, threads: int) -> str | None:
    """Write `target` as Q8_0 from `source`; returns what went wrong, or None."""
    import llama_cpp

    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True
    params.nthread = threads
    # llama.cpp reports every tensor it converts; slmscan's output is the card, not that.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        failed = llama_cpp.llama_model_quantize(
            str(source).encode(), str(partial).encode(), ctypes.byref(params)
        )
        if failed:
            return "llama.cpp could not convert the file"
        partial.replace(target)  # concurrent conversions each rename a whole file
    except OSError as e:
        return e.strerror or str(e)
    finally:
        with contextlib.suppress(OSError):  # its folder may be what failed
            partial.unlink(missing_ok=True)
    return None
