"""Which weights the embedded engine loads: the GGUF as it is, or its f16 expansion.

On CPUs without int8 matrix units (this project's 2-core reference machine), llama.cpp
evaluates prompt tokens of SmolLM2-135M ~1.8x faster with f16 weights than with the
4-bit blocks it ships in (2.2 vs 4.1 ms per token; a whole `synthetic_queries` batch
~1.4x faster, since decoding single tokens gains less). Expanding 4-bit blocks to f16
keeps the model: f16 holds their values up to rounding. It costs memory (270 MB instead
of 98 MB for 135M parameters), so ``auto`` expands small models only.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import time
from functools import cache
from pathlib import Path

from shopaug.llm.engine import EngineError

log = logging.getLogger(__name__)

#: llm.weights: "file" loads the GGUF as it is; "f16" expands its weights; "auto"
#: expands small quantized models only
WEIGHTS = ("auto", "file", "f16")
#: ``auto`` expands quantized models up to this many parameters (at most ~600 MB of f16)
AUTO_F16_MAX_PARAMS = 300_000_000
#: general.file_type values of unquantized GGUF files (F32, F16, BF16): nothing to expand
_FLOAT_FILE_TYPES = {"0", "1", "32"}


@cache
def _file_sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a model file, computed once per (path, size, mtime)."""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime)


@cache
def cpu_has_amx() -> bool:
    """Whether this llama.cpp build runs matrix products on Intel AMX tiles."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def model_params():
    """llama.cpp's default model parameters, made safe for this CPU.

    On CPUs with AMX (Sapphire Rapids and later), llama.cpp moves 4- and 8-bit weights
    into an AMX buffer whose matrix product crashes or computes garbage for Q4_0/Q4_1
    (llama.cpp #16315, #20824): SmolLM2's shipped Q4_1 file segfaulted on the first
    decode here. Extra buffer types are then switched off; f16 weights never used them.
    """
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    if cpu_has_amx():
        params.use_extra_bufts = False
    return params


def resolve_weights(path: Path, weights: str) -> Path:
    """The file to load for the GGUF at ``path``: ``path`` itself, or its f16 expansion
    when ``weights`` is "f16", or "auto" and the model is quantized with at most
    AUTO_F16_MAX_PARAMS parameters. A cache that cannot be written falls back to
    ``path`` with a warning: slower, not wrong."""
    if weights not in WEIGHTS:
        raise EngineError(f"llm.weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    if weights == "file" or (weights == "auto" and not _worth_expanding(path)):
        return path
    try:
        return f16_weights(path, file_digest(path))
    except OSError as exc:
        log.warning("cannot keep f16 weights of %s (%s); using the file as it is",
                    path.name, exc)
        return path


def _worth_expanding(path: Path) -> bool:
    """A quantized model small enough for ``auto``, read from the file's metadata."""
    import llama_cpp
    from llama_cpp import _internals

    params = model_params()
    params.vocab_only = True  # metadata and vocabulary only: ~0.1 s
    try:
        header = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise EngineError(f"cannot load {path}: {exc}") from None
    try:
        buf = ctypes.create_string_buffer(16)
        llama_cpp.llama_model_meta_val_str(header.model, b"general.file_type", buf, len(buf))
        file_type, n_params = buf.value.decode(), header.n_params()
    finally:
        header.close()
    return file_type not in _FLOAT_FILE_TYPES and 0 < n_params <= AUTO_F16_MAX_PARAMS


def f16_weights(path: Path, digest: str) -> Path:
    """A copy of the GGUF at ``path`` with its weights expanded to f16 by llama.cpp's own
    converter (~1 s for 135M parameters), made once and kept in
    ``$SHOPAUG_CACHE_DIR/models`` under the source file's hash."""
    target = expanded_weights_dir() / f"{path.stem}.{digest[:16]}.f16.gguf"
    if target.is_file():
        os.utime(target)  # newest by use: `shopaug cache prune --older-than-days` keeps it
        return target
    import llama_cpp

    from shopaug.artifacts import atomic_file

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16
    params.allow_requantize = True  # the input is already quantized: expand it
    params.nthread = os.cpu_count() or 1
    start = time.perf_counter()
    with atomic_file(target) as staging:  # a concurrent process sees all or nothing
        code = llama_cpp.llama_model_quantize(str(path).encode(), str(staging).encode(),
                                              ctypes.byref(params))
        if code != 0:
            raise EngineError(f"llama.cpp could not expand {path.name} to f16 (code {code})")
    log.info("expanded %s to f16 weights in %.1fs: %s", path.name,
             time.perf_counter() - start, target)
    return target


def expanded_weights_dir(answers: str | os.PathLike | None = None) -> Path:
    """The ``models`` directory next to the LLM answer file ``answers`` (default
    ``$SHOPAUG_CACHE_DIR/models``, else ``~/.cache/shopaug/models``)."""
    from shopaug.llm.cache import beside_answers

    return beside_answers("models", answers)


def _expanded(root: Path) -> list[Path]:
    return sorted(root.glob("*.f16.gguf")) if root.is_dir() else []


def expanded_weights_info(root: Path) -> str:
    """One line: how many f16 expansions the cache keeps, and their size."""
    files = _expanded(root)
    size = sum(f.stat().st_size for f in files)
    return f"f16 weights: {len(files)} in {root} ({size / 1e6:,.0f} MB)"


def prune_expanded(root: Path, older_than_days: float | None = None,
                   everything: bool = False) -> int:
    """Delete f16 expansions unused for ``older_than_days`` (or all; the next run makes
    them again in about a second), and staging files a killed run left; returns how many
    expansions went."""
    from shopaug.artifacts import remove_stale_staging

    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    if root.is_dir():  # staging is named .<target>.<pid>-<random>.tmp
        for tmp in root.glob(".*.f16.gguf.*.tmp"):
            remove_stale_staging(root / tmp.name[1:-4].rsplit(".", 1)[0])
    deleted = 0
    for f in _expanded(root):
        if everything or (cutoff is not None and f.stat().st_mtime < cutoff):
            f.unlink(missing_ok=True)
            deleted += 1
    return deleted
