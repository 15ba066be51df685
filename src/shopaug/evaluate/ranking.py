"""Ranking metrics over whole result tables, vectorised (no per-user Python loop).

``ranked``: one row per recommended/retrieved item with columns ``<group>``,
``item_id`` and ``rank`` (1 = best). ``truth``: the relevant items per group
with a ``gain`` column (1.0 for implicit feedback; graded gains in [0, 1] for
search). Groups in ``truth`` that ``ranked`` lacks score zero, so a model that
skips hard users is not rewarded for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from shopaug.errors import ConfigError

METRICS = ("hr", "recall", "precision", "ndcg", "map", "mrr")


def per_group_metrics(
    ranked: pd.DataFrame, truth: pd.DataFrame, ks: Sequence[int] = (10, 20),
    group: str = "user_id",
) -> pd.DataFrame:
    """A frame indexed by group with columns like ``ndcg@10``, ``recall@20``.

    An item counts once per group on both sides (its best gain, its first rank), so a
    duplicated judgment or recommendation cannot push a metric above 1."""
    if not ks or min(ks) < 1:
        raise ConfigError(f"ks must be positive cut-offs such as (10, 20), got {tuple(ks)}")
    truth = truth[[group, "item_id", "gain"]]
    if truth.duplicated([group, "item_id"]).any():
        truth = truth.sort_values("gain", ascending=False).drop_duplicates([group, "item_id"])
    if ranked.duplicated([group, "item_id"]).any():
        ranked = ranked.sort_values("rank").drop_duplicates([group, "item_id"])
    groups = pd.Index(truth[group].unique(), name=group)
    relevant = truth[truth["gain"] > 0]
    n_rel = relevant.groupby(group).size().reindex(groups, fill_value=0)
    ideal = _ideal_dcg(truth, groups, group, max(ks))
    hits = ranked[[group, "item_id", "rank"]].merge(truth, on=[group, "item_id"], how="inner")
    hits = hits[hits[group].isin(groups)]
    out = {}
    for k in ks:
        top = hits[hits["rank"] <= k]
        rel = top[top["gain"] > 0]
        n_hit = rel.groupby(group).size().reindex(groups, fill_value=0)
        dcg = (top["gain"] / np.log2(top["rank"] + 1)).groupby(top[group]).sum()
        dcg = dcg.reindex(groups, fill_value=0.0)
        # AP@k: precision at each relevant rank; precision counts relevant items above.
        rel = rel.sort_values([group, "rank"])
        prec_at_hit = (rel.groupby(group).cumcount() + 1) / rel["rank"]
        ap = prec_at_hit.groupby(rel[group]).sum().reindex(groups, fill_value=0.0)
        first = rel.groupby(group)["rank"].min().reindex(groups)
        denom = n_rel.clip(upper=k).replace(0, np.nan)
        out[f"hr@{k}"] = (n_hit > 0).astype(float)
        out[f"recall@{k}"] = (n_hit / n_rel.replace(0, np.nan)).fillna(0.0)
        out[f"precision@{k}"] = n_hit / k
        out[f"ndcg@{k}"] = (dcg / ideal[k].replace(0, np.nan)).fillna(0.0)
        out[f"map@{k}"] = (ap / denom).fillna(0.0)
        out[f"mrr@{k}"] = (1.0 / first).fillna(0.0)
    return pd.DataFrame(out, index=groups)


def _ideal_dcg(truth: pd.DataFrame, groups: pd.Index, group: str,
               k_max: int) -> dict[int, pd.Series]:
    ordered = truth.sort_values([group, "gain"], ascending=[True, False])
    position = ordered.groupby(group).cumcount() + 1
    discounted = ordered["gain"] / np.log2(position + 1)
    ideal = {}
    for k in range(1, k_max + 1):
        mask = position <= k
        ideal[k] = discounted[mask].groupby(ordered.loc[mask, group]).sum().reindex(
            groups, fill_value=0.0)
    return ideal


def summarize(per_group: pd.DataFrame) -> dict[str, float]:
    return {col: float(per_group[col].mean()) for col in per_group.columns}


def bootstrap_ci(values: np.ndarray | pd.Series, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and a percentile bootstrap interval over groups (users or queries)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(values.mean()), float(lo), float(hi)
