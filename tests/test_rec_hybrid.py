"""The hybrid recommender: candidates from several sources, reranked by LightGBM."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.models.rec.hybrid import HybridRecommender
from shopaug.testing import check_component, sample_data

SOURCES = [{"name": "popularity", "n": 10}]


def test_conformance() -> None:
    check_component(HybridRecommender, sample_data(), {"sources": SOURCES, "valid_days": 20,
                                                       "n_estimators": 5})


def _rebuyers(n_users: int = 60, seed: int = 0) -> ShopData:
    """Every user keeps rebuying their own item; a few items are popular with everyone.
    Popularity alone misses the personal item; the ranker must learn that a past
    purchase predicts the next one."""
    rng = np.random.default_rng(seed)
    items = [f"p{i}" for i in range(5)] + [f"own{u}" for u in range(n_users)]
    rows = []
    start = pd.Timestamp("2024-01-01")
    for u in range(n_users):
        for week in range(12):
            day = start + pd.Timedelta(days=7 * week + int(rng.integers(0, 3)))
            rows.append((f"u{u}", f"own{u}", day))
            rows.append((f"u{u}", f"p{int(rng.integers(0, 5))}", day))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return ShopData(items=pd.DataFrame({"item_id": items, "title": items}), interactions=inter)


def test_ranker_learns_repeat_purchases_popularity_cannot() -> None:
    data = _rebuyers()
    sources = [{"name": "popularity", "n": 3}, {"name": "popularity",
                                                "config": {"weight": "interactions"}, "n": 3}]
    hybrid = HybridRecommender(sources=sources, valid_days=21, n_estimators=30).fit(data)
    assert hybrid.ranker_ is not None and "user_item_count" in hybrid.feature_names_
    # the personal item is not among popularity's candidates, so no miracle is possible:
    # the ranker can only reorder; check it orders by the user's own history signal
    recs = hybrid.recommend(["u1", "u2"], k=3)
    assert len(recs) == 6 and recs.groupby("user_id")["rank"].max().eq(3).all()
    personal = [{"name": "popularity", "n": 70}]
    hybrid = HybridRecommender(sources=personal, valid_days=21, n_estimators=30).fit(data)
    top = hybrid.recommend([f"u{u}" for u in range(10)], k=1).set_index("user_id")["item_id"]
    assert (top == [f"own{u}" for u in range(10)]).mean() >= 0.9
    assert hybrid.feature_importances().index[0] == "user_item_count"


def test_without_a_labelled_window_it_falls_back_to_reciprocal_ranks() -> None:
    data = sample_data()
    hybrid = HybridRecommender(sources=SOURCES, valid_days=1000).fit(data)
    assert hybrid.ranker_ is None
    assert len(hybrid.recommend(["u1", "stranger"], k=2)) == 4
