"""Item-based k-nearest-neighbours: items bought by the same people are recommended
together.

Similarity is the cosine between item columns of the user x item matrix, computed
sparse and in blocks of items, keeping each item's ``neighbors`` most similar items.
A user's score for an item is their history times that similarity. Synthetic
pseudo-users (augmented sequences) are simply more rows of the matrix, so their
co-occurrences count as more evidence, at their weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.components import ComponentConfig
from shopaug.models.rec.base import MatrixRecommender

#: cells (items x items) of one dense similarity block; bounds memory (8 bytes each)
SIM_BLOCK_CELLS = 1 << 22


class ItemKNNConfig(ComponentConfig):
    #: similar items kept per item
    neighbors: int = Field(100, ge=1)
    #: cosine shrinkage: sim = dot / (|a| |b| + shrink); damps pairs with little support
    shrink: float = Field(0.0, ge=0)
    #: an item's similarity to itself: 1 (its cosine) lets past purchases score as
    #: rebuy candidates, which basket data rewards; 0 is classic item-kNN (other items only)
    self_similarity: float = Field(1.0, ge=0)
    #: skip items the user already interacted with (basket data: customers rebuy)
    exclude_seen: bool = False
    #: weigh synthetic rows by their value (their confidence); False counts them as 1
    use_weights: bool = True
    #: history half-life in days: older purchases count less when scoring (None: no decay)
    half_life_days: float | None = Field(None, gt=0)


class ItemKNN(MatrixRecommender):
    name = "itemknn"
    seeded = False  # nothing in fit is random
    Config = ItemKNNConfig

    def _fit_matrix(self, inter: pd.DataFrame, w: np.ndarray, users: np.ndarray,
                    items: np.ndarray, seed: int) -> None:
        shape = (len(self.user_index_), len(self.item_ids_))
        # One cell per (user, item): its largest weight, so rebuys do not swamp co-occurrence.
        x = _pair_matrix(users, items, w, shape)
        self.similarity_ = item_similarity(x, self.config.neighbors, self.config.shrink)
        if self.config.half_life_days is None:
            self.history_ = x
        else:
            ts = inter["timestamp"]
            age = ((ts.max() - ts) / pd.Timedelta(days=1)).to_numpy(dtype=float,
                                                                      na_value=0.0)
            decay = np.power(0.5, age / self.config.half_life_days)
            self.history_ = _pair_matrix(users, items, w * decay, shape)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        history = self.history_[rows]
        return (history @ self.similarity_ + self.config.self_similarity * history).toarray()


def _pair_matrix(users: np.ndarray, items: np.ndarray, values: np.ndarray,
                 shape: tuple[int, int]) -> Any:
    import scipy.sparse as sp

    pairs = pd.DataFrame({"u": users, "i": items, "v": values}).groupby(["u", "i"])["v"].max()
    return sp.csr_matrix((pairs.to_numpy(dtype=np.float64),
                          (pairs.index.get_level_values("u"), pairs.index.get_level_values("i"))),
                         shape=shape)


def item_similarity(x: Any, neighbors: int, shrink: float = 0.0) -> Any:
    """Item x item cosine similarity of the columns of ``x`` (users x items), row ``j``
    keeping only the ``neighbors`` items most similar to ``j``, diagonal zero.

    Vectorised: one sparse product per block of items, densified (the block is sized
    to :data:`SIM_BLOCK_CELLS`) so the top neighbours come from one ``argpartition``.
    """
    import scipy.sparse as sp

    x = sp.csc_matrix(x, dtype=np.float64)
    n_items = x.shape[1]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    xt = x.T.tocsr()
    keep = min(neighbors, max(n_items - 1, 0))
    step = max(1, SIM_BLOCK_CELLS // max(n_items, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n_items, step):
        stop = min(start + step, n_items)
        sim = (xt[start:stop] @ x).toarray()
        sim /= np.outer(norms[start:stop], norms) + shrink
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if keep < n_items:
            top = np.argpartition(-sim, keep - 1, axis=1)[:, :keep] if keep else (
                np.zeros((stop - start, 0), dtype=np.intp))
        else:
            top = np.tile(np.arange(n_items), (stop - start, 1))
        v = np.take_along_axis(sim, top, axis=1)
        r = np.repeat(np.arange(start, stop), top.shape[1])
        nonzero = v.ravel() > 0
        rows.append(r[nonzero])
        cols.append(top.ravel()[nonzero])
        vals.append(v.ravel()[nonzero])
    if not rows:
        return sp.csr_matrix((n_items, n_items))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_items, n_items))
