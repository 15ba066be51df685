"""Evaluate a fitted recommender on a split: accuracy overall and on slices, per user
(so two models can be compared with a paired bootstrap over users), and
beyond-accuracy measures of the lists themselves.

Slices: ``all``; ``cold_users`` (at most :data:`COLD_USER_MAX` training rows);
``cold_items`` (truth restricted to items never seen in training); ``long_tail``
(truth restricted to items seen in training but outside the head, the
:data:`HEAD_SHARE` most-bought items).

Popularity, the head and the item vectors come from the *real* positive training
rows only, so every model in a benchmark, augmented or not, is measured against the
same slices and the same popularity scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.data.split import Split
from shopaug.errors import ConfigError
from shopaug.evaluate.ranking import per_group_metrics

#: users with at most this many training interactions form the cold-user slice
COLD_USER_MAX = 3
#: the most-bought share of the training items that forms the head; the rest is long tail
HEAD_SHARE = 0.2
#: metrics of the lists alone, one value per user (coverage is per slice: see below)
LIST_METRICS = ("ild", "novelty", "arp", "head_share")


def real_positives(train: ShopData) -> pd.DataFrame:
    inter = train.interactions
    keep = inter["origin"] == "real"
    if "event" in inter.columns:
        keep &= inter["event"].fillna("") != "negative"
    return inter[keep]


def item_popularity(train: ShopData) -> pd.Series:
    """Training interaction rows per item, most bought first (ties: item id)."""
    counts = real_positives(train).groupby("item_id").size()
    return counts.rename("count").reset_index().sort_values(
        ["count", "item_id"], ascending=[False, True], kind="stable").set_index(
        "item_id")["count"]


def head_items(popularity: pd.Series, share: float = HEAD_SHARE) -> set[str]:
    """The ``ceil(share * n)`` most popular of the ``n`` items bought in training."""
    return set(popularity.index[:math.ceil(share * len(popularity))])


def catalog_coverage(recs: pd.DataFrame, catalog: Sequence[str], k: int) -> float:
    """Share of the catalog that appears in at least one top-``k`` list."""
    catalog = set(catalog)
    if not catalog:
        return float("nan")
    shown = set(recs.loc[recs["rank"] <= k, "item_id"])
    return len(shown & catalog) / len(catalog)


def list_metrics(recs: pd.DataFrame, ks: Sequence[int], train: ShopData) -> pd.DataFrame:
    """Per user and k: ``ild@k`` (mean pairwise dissimilarity inside the list),
    ``novelty@k`` (mean -log2 of the items' share of training interactions; an item
    never bought counts as bought once), ``arp@k`` (mean training interaction count of
    the items) and ``head_share@k`` (share of the list in the head).

    Dissimilarity is 1 for items of different ``category`` (an item without one is
    unlike every other) when the catalog has categories, else 1 - cosine of the items'
    buyer vectors. Lists shorter than two items have no ILD (NaN).
    """
    popularity = item_popularity(train)
    head = head_items(popularity)
    total = max(int(popularity.sum()), 1)
    items = train.items
    by_category = "category" in items.columns and items["category"].notna().any()
    category = items.drop_duplicates("item_id").set_index("item_id")["category"] if (
        by_category) else None
    users = pd.Index(recs["user_id"].unique(), name="user_id")
    out = {}
    for k in ks:
        top = recs.loc[recs["rank"] <= k, ["user_id", "item_id"]]
        count = top["item_id"].map(popularity).fillna(0).to_numpy(dtype=float)
        per = pd.DataFrame({
            "user_id": top["user_id"].to_numpy(),
            "novelty": -np.log2(np.maximum(count, 1.0) / total),
            "arp": count,
            "head_share": top["item_id"].isin(head).to_numpy(dtype=float),
        }).groupby("user_id").mean().reindex(users)
        n = top.groupby("user_id").size().reindex(users, fill_value=0).to_numpy(dtype=float)
        similar = (_same_category_pairs(top, category, users) if category is not None
                   else _cosine_pair_sum(top, train, users))
        pairs = n * (n - 1) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            ild = np.where(pairs > 0, 1.0 - similar / pairs, np.nan)
        out[f"ild@{k}"] = ild
        for name in ("novelty", "arp", "head_share"):
            out[f"{name}@{k}"] = per[name].to_numpy()
    return pd.DataFrame(out, index=users)


def _same_category_pairs(top: pd.DataFrame, category: pd.Series,
                         users: pd.Index) -> np.ndarray:
    cats = top.assign(category=top["item_id"].map(category)).dropna(subset=["category"])
    c = cats.groupby(["user_id", "category"]).size()
    return (c * (c - 1) / 2).groupby(level="user_id").sum().reindex(
        users, fill_value=0).to_numpy(dtype=float)


def _cosine_pair_sum(top: pd.DataFrame, train: ShopData, users: pd.Index) -> np.ndarray:
    """Sum over item pairs of each list of the cosine of their buyer vectors, via
    |sum of unit vectors|^2 = (list length) + 2 * (sum of pairwise cosines)."""
    import scipy.sparse as sp

    inter = real_positives(train)[["user_id", "item_id"]].drop_duplicates()
    if not len(inter) or not len(top):
        return np.zeros(len(users))
    buyers = pd.Categorical(inter["user_id"])
    item_codes = pd.Categorical(inter["item_id"])
    x = sp.csr_matrix((np.ones(len(inter)), (item_codes.codes, buyers.codes)),
                      shape=(len(item_codes.categories), len(buyers.categories)))
    x = sp.diags(1.0 / np.sqrt(np.asarray(x.sum(axis=1)).ravel())) @ x  # unit rows
    col = pd.Index(item_codes.categories).get_indexer(top["item_id"])
    row = users.get_indexer(top["user_id"])
    known = col >= 0
    lists = sp.csr_matrix((np.ones(int(known.sum())), (row[known], col[known])),
                          shape=(len(users), x.shape[0]))
    s = lists @ x
    sq = np.asarray(s.multiply(s).sum(axis=1)).ravel()
    m = np.bincount(row[known], minlength=len(users))
    return (sq - m) / 2


def _slice_truths(train: ShopData, split: Split) -> dict[str, pd.DataFrame]:
    test = split.test.interactions
    truth = test[["user_id", "item_id"]].drop_duplicates().assign(gain=1.0)
    history = real_positives(train).groupby("user_id").size()
    cold = truth["user_id"].map(history).fillna(0) <= COLD_USER_MAX
    popularity = item_popularity(train)
    tail = set(popularity.index) - head_items(popularity)
    out = {"all": truth, "cold_users": truth[cold.to_numpy()]}
    if split.cold_items:
        out["cold_items"] = truth[truth["item_id"].isin(split.cold_items)]
    out["long_tail"] = truth[truth["item_id"].isin(tail)]
    return out


def _evaluate(model, train: ShopData, split: Split,
              ks: Sequence[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    truths = _slice_truths(train, split)
    users = truths["all"]["user_id"].unique()
    if not len(users):
        raise ConfigError("the test side has no positive interactions to evaluate. Fix: "
                          "check the split (its cut, min_baskets) and the events")
    recs = model.recommend(users, k=max(ks))
    beyond = list_metrics(recs, ks, train)
    frames = []
    for name, truth in truths.items():
        if not len(truth):
            continue
        acc = per_group_metrics(recs, truth, ks)
        frame = acc.join(beyond.reindex(acc.index))
        frames.append(frame.reset_index().assign(slice=name))
    if not frames:
        return pd.DataFrame(columns=["slice", "user_id"]), recs
    long = pd.concat(frames, ignore_index=True)
    return long[["slice", "user_id", *[c for c in long.columns
                                      if c not in ("slice", "user_id")]]], recs


def per_user_metrics(model, train: ShopData, split: Split,
                     ks: Sequence[int]) -> pd.DataFrame:
    """One row per (slice, test user): accuracy (``recall@k``, ``ndcg@k``, ``hr@k``,
    ``map@k``, ...) and the list metrics of :func:`list_metrics`. Long form, ready for
    a paired bootstrap over users between two models on the same split."""
    return _evaluate(model, train, split, ks)[0]


def evaluate_recommender(model, train: ShopData, split: Split,
                         ks: Sequence[int]) -> dict[str, dict[str, float]]:
    """Mean metrics per slice (``all``, ``cold_users``, ``cold_items``, ``long_tail``),
    plus ``coverage@k``: the share of the catalog shown to the slice's users. Empty
    slices are left out."""
    long, recs = _evaluate(model, train, split, ks)
    catalog = set(train.items["item_id"]) | set(train.interactions["item_id"])
    out = {}
    for name, frame in long.groupby("slice", sort=False):
        metrics = frame.drop(columns=["slice", "user_id"])
        summary: dict[str, float] = {"users": len(frame)}
        summary.update({c: float(metrics[c].mean()) for c in metrics.columns})
        shown = recs[recs["user_id"].isin(set(frame["user_id"]))]
        summary.update({f"coverage@{k}": catalog_coverage(shown, catalog, k) for k in ks})
        out[str(name)] = summary
    return out
