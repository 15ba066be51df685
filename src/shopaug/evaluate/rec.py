"""Evaluate a fitted recommender on a split, overall and on slices."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.data.split import Split
from shopaug.evaluate.ranking import per_group_metrics, summarize

#: users with at most this many training interactions form the cold-user slice
COLD_USER_MAX = 3


def evaluate_recommender(model, train: ShopData, split: Split,
                         ks: Sequence[int]) -> dict[str, dict[str, float]]:
    """Metrics per slice: ``all``, ``cold_users`` and ``cold_items`` (users whose test
    items include one never seen in training). Empty slices are left out."""
    test = split.test.interactions
    truth = test[["user_id", "item_id"]].drop_duplicates().assign(gain=1.0)
    users = truth["user_id"].unique()
    recs = model.recommend(users, k=max(ks))
    per_user = per_group_metrics(recs, truth, ks)
    history = train.interactions.groupby("user_id").size()
    n_train = pd.Series(users).map(history).fillna(0).to_numpy()
    slices = {
        "all": per_user,
        "cold_users": per_user[n_train <= COLD_USER_MAX],
    }
    if split.cold_items:
        cold_truth = truth[truth["item_id"].isin(split.cold_items)]
        slices["cold_items"] = per_group_metrics(recs, cold_truth, ks)
    return {name: {"users": len(frame), **summarize(frame)}
            for name, frame in slices.items() if len(frame)}
