"""The recommender contract: ``fit(train)`` then ``recommend(users, k)``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from shopaug.components import Component, ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError

RECS_COLUMNS = ("user_id", "item_id", "rank", "score")


class Recommender(Component):
    kind = "recommender"
    Config = ComponentConfig
    #: False when ``fit`` never reads its seed: a benchmark then fits once and reuses
    #: the result for every seed instead of training identical models again
    seeded: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Every model's (and plugin's) ``recommend`` gets the same argument checks."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("recommend")
        if own is not None and not getattr(own, "_checked", False):
            @functools.wraps(own)
            def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
                _check_request(user_ids, k)
                return own(self, user_ids, k)

            recommend._checked = True  # type: ignore[attr-defined]
            cls.recommend = recommend  # type: ignore[method-assign]

    def fit(self, train: ShopData, seed: int = 0) -> Recommender:
        raise NotImplementedError

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        """Top-``k`` items per user: columns user_id, item_id, rank (1 = best), score."""
        raise NotImplementedError


def _check_request(user_ids: object, k: object) -> None:
    if isinstance(user_ids, str | bytes):
        raise ConfigError(f"user_ids is one string ({user_ids!r}); pass a list such as "
                          f"[{user_ids!r}]")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a whole number of at least 1, got {k!r}")


def positives(interactions: pd.DataFrame) -> pd.DataFrame:
    """Rows that say the user wanted the item: everything except sampled negatives."""
    if "event" not in interactions.columns:
        return interactions
    return interactions[interactions["event"].fillna("") != "negative"]


def weights(interactions: pd.DataFrame) -> np.ndarray:
    """Training weight per row: ``value`` for synthetic rows (their confidence), 1.0 for
    real ones (their value is a quantity, not a weight) and wherever value is missing."""
    out = np.ones(len(interactions))
    if "value" in interactions.columns and "origin" in interactions.columns:
        synthetic = (interactions["origin"] == "synthetic").to_numpy()
        values = interactions["value"].to_numpy(dtype=float, na_value=np.nan)
        out[synthetic] = np.nan_to_num(values[synthetic], nan=1.0)
    return out


class MatrixRecommender(Recommender):
    """Shared machinery of recommenders that score a user x item matrix (item-kNN, ALS,
    BPR): ids become row/column codes once (pandas Categorical), users the model never
    saw get the most popular items, and dense score blocks become top-k tables in batches.

    Subclasses implement ``_fit_matrix`` and ``_score``; their config may set
    ``exclude_seen`` and ``use_weights``.
    """

    #: cells of the dense score block scored at once (rows x items), bounds memory
    BLOCK_CELLS = 1 << 22

    def _fit_matrix(self, inter: pd.DataFrame, w: np.ndarray, users: np.ndarray,
                    items: np.ndarray, seed: int) -> None:
        raise NotImplementedError

    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores, shape (len(rows), n_items), for the given user codes."""
        raise NotImplementedError

    def fit(self, train: ShopData, seed: int = 0) -> MatrixRecommender:
        import scipy.sparse as sp

        inter = positives(train.interactions)
        w = weights(inter) if getattr(self.config, "use_weights", True) else np.ones(len(inter))
        keep = w > 0
        inter, w = inter[keep], w[keep]
        users = pd.Categorical(inter["user_id"].astype(str))
        items = pd.Categorical(inter["item_id"].astype(str))
        self.user_index_ = pd.Index(users.categories)
        self.item_ids_ = items.categories.to_numpy(dtype=object)
        u = users.codes.astype(np.int32)
        i = items.codes.astype(np.int32)
        shape = (len(self.user_index_), len(self.item_ids_))
        # Popularity for the fallback: buyers per item, each counted at its largest weight.
        pairs = pd.DataFrame({"u": u, "i": i, "w": w}).groupby(["u", "i"])["w"].max()
        self.pop_ = np.bincount(pairs.index.get_level_values("i"), weights=pairs.to_numpy(),
                                minlength=shape[1])
        self.pop_order_ = np.argsort(-self.pop_, kind="stable")  # ties: item id order
        self.seen_ = (sp.csr_matrix((np.ones(len(u), bool), (u, i)), shape=shape)
                      if getattr(self.config, "exclude_seen", False) else None)
        if len(inter):
            self._fit_matrix(inter, w, u, i, seed)
        return self

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        from shopaug.errors import ShopAugError

        if not hasattr(self, "item_ids_"):
            raise ShopAugError("call fit() before recommend()")
        users = list(dict.fromkeys(str(u) for u in user_ids))
        n_items = len(self.item_ids_)
        kk = min(k, n_items)
        if not users or kk <= 0:
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
                RECS_COLUMNS, ("str", "str", "int64", "float64"), strict=True)})
        rows = self.user_index_.get_indexer(users)
        top = np.tile(self.pop_order_[:kk], (len(users), 1))
        score = np.tile(self.pop_[self.pop_order_[:kk]], (len(users), 1)).astype(float)
        known = np.flatnonzero(rows >= 0)
        # A strict popularity tie-break: items nobody scored still come in a sensible order.
        prior = 1.0 - np.argsort(self.pop_order_) / max(n_items, 1)
        step = max(1, self.BLOCK_CELLS // max(n_items, 1))
        for start in range(0, len(known), step):
            batch = known[start:start + step]
            raw = np.asarray(self._score(rows[batch]), dtype=float)
            key = raw + 1e-9 * max(float(np.abs(raw).max(initial=0.0)), 1.0) * prior
            if self.seen_ is not None:
                key[self.seen_[rows[batch]].toarray()] = -np.inf
            part = np.argpartition(-key, kk - 1, axis=1)[:, :kk]
            order = np.argsort(-np.take_along_axis(key, part, axis=1), axis=1, kind="stable")
            best = np.take_along_axis(part, order, axis=1)
            top[batch] = best
            score[batch] = np.where(np.isinf(np.take_along_axis(key, best, axis=1)), -np.inf,
                                    np.take_along_axis(raw, best, axis=1))
        out = pd.DataFrame({
            "user_id": np.repeat(np.array(users, dtype=object), kk),
            "item_id": self.item_ids_[top.ravel()],
            "rank": np.tile(np.arange(1, kk + 1), len(users)),
            "score": score.ravel(),
        })
        # Excluded (already seen) items are dropped when fewer than k unseen ones remain.
        out = out[np.isfinite(out["score"].to_numpy())].reset_index(drop=True)
        return out.astype({"user_id": "str", "item_id": "str"})


def top_k_per_row(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores, best first; ties go to the
    lower index, so the order is deterministic. ``k`` must be at least 1."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((top, -np.take_along_axis(scores, top, axis=1)), axis=1)
    return np.take_along_axis(top, order, axis=1)


def time_order(interactions: pd.DataFrame) -> np.ndarray:
    """Row positions that sort interactions by user, then time. Ties (the lines of one
    basket share a timestamp) keep their row order, so sequences are reproducible."""
    users = pd.factorize(interactions["user_id"], sort=True)[0]
    stamps = interactions["timestamp"].to_numpy("datetime64[us]").astype("int64")
    return np.lexsort((np.arange(len(interactions)), stamps, users))
