"""Sentence embeddings on a Ray Data actor pool (used by ``executor: ray``).

Components that embed text (label propagation, hard negatives, the consistency and
round-trip filters, teacher labels) run on the driver, but with ``executor: ray`` their
default embedder is replaced by a :class:`RayEmbedder`: the texts go through
``map_batches`` on ``concurrency`` actors, each of which loads the sentence-transformers
model once, and come back in input order. The rows equal the local
``encode(texts, normalize=True)`` up to float rounding, so both executors make the same
rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shopaug.pipeline.executors import ExecutorOptions

log = logging.getLogger(__name__)


class RayEmbedder:
    """``texts -> float32 unit rows``, computed on a pool of embedding actors.

    ``path`` is a sentence-transformers directory every node can read; None resolves
    the MiniLM package on each actor (its site-packages path may differ per node).
    ``batch_size`` is the texts per ``map_batches`` call (``embed_batch_size``).
    """

    def __init__(self, options: ExecutorOptions, path: str | None = None,
                 batch_size: int | None = None,
                 start: Callable[[], None] | None = None) -> None:
        self.options = options
        self.path = path
        self.batch_size = batch_size or options.embed_batch_size
        self.start = start
        #: distinct actors that served the last call (for logs and tests)
        self.actors_ = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        import ray

        texts = list(texts)
        if not texts:
            from shopaug.models.search.encoder import load_encoder

            model = load_encoder(self.path)
            # sentence-transformers 5 renamed it; the old name warns but still works
            dim = getattr(model, "get_embedding_dimension",
                          model.get_sentence_embedding_dimension)()
            return np.zeros((0, dim), dtype=np.float32)
        if self.start is not None:
            self.start()
        opts = self.options
        # at least one block per actor, else a small input leaves all but one idle
        blocks = min(len(texts), max(opts.concurrency, math.ceil(len(texts) / self.batch_size)))
        dataset = ray.data.from_items(
            [{"pos": i, "text": t} for i, t in enumerate(texts)],
            override_num_blocks=blocks).map_batches(
            _EmbedWorker, batch_format="numpy", batch_size=self.batch_size,
            compute=ray.data.ActorPoolStrategy(size=opts.concurrency),
            num_cpus=opts.num_cpus_per_worker, fn_constructor_kwargs={"path": self.path})
        pos, emb, pids = [], [], set()
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            pos.append(batch["pos"])
            emb.append(np.asarray(batch["emb"], dtype=np.float32))
            pids.update(batch["pid"].tolist())
        # Ray Data does not keep order across actors: put rows back by input position
        order = np.argsort(np.concatenate(pos), kind="stable")
        out = np.concatenate(emb)[order]
        if len(out) != len(texts):
            from shopaug.errors import ShopAugError

            raise ShopAugError(f"the Ray embedder returned {len(out)} rows for "
                               f"{len(texts)} texts")
        self.actors_ = len(pids)
        log.debug("embedded %d texts on %d actors", len(texts), self.actors_)
        return np.ascontiguousarray(out)


def uses_default_embedder(component: Any) -> bool:
    """True when ``component`` embeds text with the default (local MiniLM) embedder;
    an embedder a caller injected is theirs to keep."""
    from shopaug.augment.expand import default_embedder

    return getattr(component, "embed", None) is default_embedder


class _EmbedWorker:
    """One per actor: loads the model once, then encodes batches."""

    def __init__(self, path: str | None) -> None:
        import os

        from shopaug.models.search.encoder import load_encoder

        self.model = load_encoder(path)
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from shopaug.models.search.encoder import encode

        emb = encode(batch["text"].tolist(), model=self.model, normalize=True)
        return {"pos": batch["pos"], "emb": emb,
                "pid": np.full(len(emb), self.pid, dtype=np.int64)}
