"""The recommender contract: ``fit(train)`` then ``recommend(users, k)``."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from shopaug.components import Component, ComponentConfig
from shopaug.data.bundle import ShopData

RECS_COLUMNS = ("user_id", "item_id", "rank", "score")


class Recommender(Component):
    kind = "recommender"
    Config = ComponentConfig

    def fit(self, train: ShopData, seed: int = 0) -> Recommender:
        raise NotImplementedError

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        """Top-``k`` items per user: columns user_id, item_id, rank (1 = best), score."""
        raise NotImplementedError
