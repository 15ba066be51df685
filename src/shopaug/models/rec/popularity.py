"""Most-popular items: the baseline every recommender must beat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.rec.base import Recommender, positives


class PopularityConfig(ComponentConfig):
    #: count distinct buyers, interaction rows, or summed quantity/value
    weight: Literal["users", "interactions", "value"] = "users"
    #: only count the last N days before the end of training (None: all time)
    window_days: float | None = None
    #: skip items the user already interacted with
    exclude_seen: bool = False
    #: count synthetic rows too (default: popularity is a fact about real sales, and
    #: pseudo-users such as attribute or sequence users would distort it)
    include_synthetic: bool = False


class Popularity(Recommender):
    name = "popularity"
    seeded = False  # nothing in fit is random
    Config = PopularityConfig

    def fit(self, train: ShopData, seed: int = 0) -> Popularity:
        inter = positives(train.interactions)
        if not self.config.include_synthetic:
            inter = inter[inter["origin"] == "real"]
        if self.config.window_days is not None and len(inter):
            start = inter["timestamp"].max() - pd.Timedelta(days=self.config.window_days)
            inter = inter[inter["timestamp"] >= start]
        if self.config.weight == "users":
            scores = inter.groupby("item_id")["user_id"].nunique()
        elif self.config.weight == "interactions":
            scores = inter.groupby("item_id").size()
        else:
            scores = inter["value"].fillna(1.0).groupby(inter["item_id"]).sum()
        # Ties broken by item id so the order is deterministic.
        ranked = scores.rename("score").reset_index().sort_values(
            ["score", "item_id"], ascending=[False, True], kind="stable")
        self.ranking_ = ranked.reset_index(drop=True)
        self.seen_ = (positives(train.interactions).groupby("user_id")["item_id"].agg(set)
                      if self.config.exclude_seen else None)
        return self

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        if not hasattr(self, "ranking_"):
            raise ShopAugError("call fit() before recommend()")
        users = list(dict.fromkeys(user_ids))
        if self.seen_ is None or not len(self.ranking_):
            top = self.ranking_.head(k)
            n = len(top)
            return pd.DataFrame({
                "user_id": np.repeat(np.array(users, dtype=object), n),
                "item_id": np.tile(top["item_id"].to_numpy(), len(users)),
                "rank": np.tile(np.arange(1, n + 1), len(users)),
                "score": np.tile(top["score"].to_numpy(dtype=float), len(users)),
            }).astype({"user_id": "str", "item_id": "str"})
        # Excluding seen items: take enough of the head that k unseen ones remain.
        longest = max((len(s) for s in self.seen_), default=0)
        head = self.ranking_.head(k + longest)
        frames = []
        for user in users:
            seen = self.seen_.get(user, set())
            picked = head[~head["item_id"].isin(seen)].head(k)
            frames.append(picked.assign(user_id=user, rank=np.arange(1, len(picked) + 1)))
        out = pd.concat(frames, ignore_index=True) if frames else self.ranking_.head(0)
        return out.reindex(columns=["user_id", "item_id", "rank", "score"])
