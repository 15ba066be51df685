"""Training pairs for the fine-tuned search encoders: judged (query, item) texts with
separate caps for real and synthetic pairs, hard negatives, and batches in which
in-batch negatives are never another positive of the same query."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.models.search.base import item_text


def training_pairs(train: ShopData, use_synthetic: bool = True, max_pairs: int | None = None,
                   seed: int = 0, with_description: bool = True,
                   max_synthetic_pairs: int | None = None,
                   min_gain: float | None = None,
                   unjudged_first: bool = False) -> pd.DataFrame:
    """Judged (query, item) pairs with texts: columns query_id, item_id, query, item,
    gain, origin. ``min_gain`` keeps only pairs at or above it (before any cap).
    ``max_pairs`` caps the real pairs and ``max_synthetic_pairs`` the synthetic ones,
    each sampled with ``seed``: a real-only and an augmented model then train on the
    same real pairs, and the augmented one on synthetic pairs on top of them.
    ``unjudged_first``: the synthetic cap keeps the pairs of items that no real pair
    teaches (cold items) before the others."""
    judg = train.judgments
    if not use_synthetic:
        judg = judg[judg["origin"] == "real"]
    items = train.items.drop_duplicates("item_id")
    texts = pd.Series(item_text(items, with_description).to_numpy(), index=items["item_id"])
    queries = train.queries.drop_duplicates("query_id").set_index("query_id")["text"]
    pairs = judg[["query_id", "item_id", "gain", "origin"]].assign(
        query=judg["query_id"].map(queries), item=judg["item_id"].map(texts))
    pairs = pairs.dropna(subset=["query", "item", "gain"])
    pairs = pairs[(pairs["query"].str.strip() != "") & (pairs["item"].str.strip() != "")]
    if min_gain is not None:
        pairs = pairs[pairs["gain"] >= min_gain]
    # real judgments win over synthetic ones for the same pair
    pairs = pairs.sort_values("origin", key=lambda s: s != "real", kind="stable")
    pairs = pairs.drop_duplicates(["query_id", "item_id"])
    pairs = pairs.sort_values(["query_id", "item_id"]).reset_index(drop=True)
    is_real = (pairs["origin"] == "real").to_numpy()
    keep = np.ones(len(pairs), dtype=bool)
    # the real sample depends only on the real pairs, whatever synthetic ones are present
    for rows, cap, rng_seed in ((np.flatnonzero(is_real), max_pairs, seed),
                                (np.flatnonzero(~is_real), max_synthetic_pairs, seed + 1)):
        if cap is None or len(rows) <= cap:
            continue
        rng = np.random.default_rng(rng_seed)
        if unjudged_first and not is_real[rows[0]]:
            order = rng.permutation(len(rows))
            taught = pairs.loc[is_real, "item_id"]  # items some real pair teaches
            warm = pairs["item_id"].iloc[rows[order]].isin(taught).to_numpy()
            chosen = order[np.argsort(warm, kind="stable")][:cap]
        else:
            chosen = rng.choice(len(rows), cap, replace=False)
        keep[np.setdiff1d(rows, rows[chosen])] = False
    return pairs[keep].reset_index(drop=True)


def with_hard_negatives(pairs: pd.DataFrame, train: ShopData, use_synthetic: bool,
                        max_gain: float, seed: int, with_description: bool = True
                        ) -> pd.DataFrame:
    """``pairs`` (positives) with a ``negative`` item text each: a judged item of the
    same query with gain <= ``max_gain`` (a real low grade, or a teacher's low grade of
    a synthetic query's candidate), else a random catalog item that is not one of the
    query's positives. Graded judgments hold exactly the near misses a reranker must
    tell apart, and in-batch negatives are almost never that close."""
    rng = np.random.default_rng(seed + 2)
    judg = train.judgments if use_synthetic else train.judgments[
        train.judgments["origin"] == "real"]
    items = train.items.drop_duplicates("item_id")
    texts = pd.Series(item_text(items, with_description).to_numpy(), index=items["item_id"])
    low = judg[judg["gain"] <= max_gain]
    pool = low.assign(item=low["item_id"].map(texts)).dropna(subset=["item"])
    by_query = pool.groupby("query_id")["item"].agg(list).to_dict()
    positives = judg[judg["gain"] > max_gain].groupby("query_id")["item_id"].agg(set)
    all_texts = texts.to_numpy()
    negatives = []
    for query_id, item in zip(pairs["query_id"], pairs["item"], strict=True):
        near = [t for t in by_query.get(query_id, ()) if t != item]
        if near:
            negatives.append(near[int(rng.integers(len(near)))])
            continue
        taken = {texts.get(i) for i in positives.get(query_id, ())} | {item}
        for _ in range(20):  # a random item: almost never a positive of this query
            pick = all_texts[int(rng.integers(len(all_texts)))]
            if pick not in taken:
                break
        negatives.append(pick)
    return pairs.assign(negative=negatives)


def distinct_batches(pairs: pd.DataFrame, batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches in which no query and no item repeats, so in-batch negatives
    are never another positive of the same query (common with graded judgments). A
    ``negative`` column's items count as items too."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs)).tolist()
    queries, items = pairs["query"].to_numpy(), pairs["item"].to_numpy()
    negatives = (pairs["negative"].to_numpy() if "negative" in pairs
                 else np.full(len(pairs), None))
    batches = []
    while order:
        batch, seen_q, seen_i, rest = [], set(), set(), []
        for idx in order:
            if len(batch) < batch_size and queries[idx] not in seen_q \
                    and items[idx] not in seen_i and negatives[idx] not in seen_i:
                batch.append(idx)
                seen_q.add(queries[idx])
                seen_i.add(items[idx])
                if negatives[idx] is not None:
                    seen_i.add(negatives[idx])
            else:
                rest.append(idx)
        batches.append(batch)
        order = rest
    batches = [b for b in batches if len(b) > 1]
    # Late batches hold the leftovers of queries with many positives: spread them out.
    return [batches[i] for i in rng.permutation(len(batches))]
