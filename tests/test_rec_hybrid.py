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


def test_candidates_carry_price_and_how_often_the_user_tries_new_lines() -> None:
    day = pd.Timestamp("2024-01-01")
    # "old" sells from day 0; "new" first sells on day 100. u_early buys old in its
    # first weeks (fresh) and again on day 100 (not fresh); u_late buys new at launch.
    rows = [("u_early", "old", 0), ("u_early", "old", 100), ("u_late", "old", 90),
            ("u_late", "new", 100), ("u_late", "new", 101)]
    inter = pd.DataFrame([{"user_id": u, "item_id": i, "timestamp": day + pd.Timedelta(days=d)}
                          for u, i, d in rows])
    items = pd.DataFrame({"item_id": ["old", "new"], "title": ["a", "b"], "price": [2.5, 9.0]})
    data = ShopData(items=items, interactions=inter)
    model = HybridRecommender(sources=[{"name": "popularity", "n": 2}])
    sources = model._fit_sources(data, 0)
    cands = model._candidates(sources, data, ["u_early", "u_late"]).set_index(
        ["user_id", "item_id"])
    assert cands.loc[("u_early", "new"), "item_price"] == 9.0
    assert cands.loc[("u_late", "old"), "item_price"] == 2.5
    share = cands["user_new_share"].groupby("user_id").first()
    assert share["u_early"] == 0.5 and share["u_late"] == 2 / 3


def test_each_source_trains_on_the_augmenters_it_names() -> None:
    data = _rebuyers(n_users=20)
    last = data.interactions["timestamp"].max()
    # 30 pseudo-buyers make "own0" the top seller, but only for sources that read them
    fake = pd.DataFrame({"user_id": [f"s{i}" for i in range(30)], "item_id": "own0",
                         "timestamp": last, "origin": "synthetic", "augmenter": "sim"})
    data = data.append("interactions", fake)
    counted = {"name": "popularity", "n": 1, "config": {"include_synthetic": True}}
    sources = [counted, {**counted, "augmenters": []}, {**counted, "augmenters": ["other"]},
               {**counted, "augmenters": ["sim"]}]
    fitted = HybridRecommender(sources=sources)._fit_sources(data, 0)
    tops = [model.recommend(["u5"], k=1)["item_id"].iloc[0] for _, model in fitted]
    assert tops[0] == tops[3] == "own0"
    assert tops[1] == tops[2] != "own0"



def test_each_source_sees_only_the_values_its_augmenters_filled_in() -> None:
    from shopaug import registry
    from shopaug.models.rec.popularity import Popularity

    class SeesTitles(Popularity):
        """Popularity that remembers the catalog titles it was trained with."""

        name = "sees_titles"

        def fit(self, train: ShopData, seed: int = 0) -> SeesTitles:
            self.titles_ = dict(zip(train.items["item_id"], train.items["title"],
                                    strict=True))
            return super().fit(train, seed)

    registry.register("recommender", SeesTitles)
    data = _rebuyers(n_users=20)
    enriched = data.replace(items=data.items.assign(title="enriched")).record_fills(
        data, "item_enrichment")
    sources = [{"name": "sees_titles", "n": 1, "augmenters": augmenters}
               for augmenters in (None, [], ["item_enrichment"], ["other"])]
    fitted = HybridRecommender(sources=sources)._fit_sources(enriched, 0)
    seen = [set(model.titles_.values()) for _, model in fitted]
    assert seen[0] == seen[2] == {"enriched"}
    assert seen[1] == seen[3] == set(data.items["title"]) != {"enriched"}

def test_user_features_count_real_purchases_only() -> None:
    # A simulated pick is dated at the user's last event, so the ranker never sees it in
    # its labelled window; counted when serving, it would pass for a past purchase.
    data = _rebuyers(n_users=20)
    last = data.interactions.loc[data.interactions["user_id"] == "u1", "timestamp"].max()
    picks = pd.DataFrame({"user_id": "u1", "item_id": ["own2", "own3"], "timestamp": last,
                          "origin": "synthetic", "augmenter": "interaction_simulation",
                          "value": 0.5})
    sources = [{"name": "popularity", "n": 30, "config": {"include_synthetic": True}}]
    hybrid = HybridRecommender(sources=sources, valid_days=21, n_estimators=10).fit(
        data.append("interactions", picks))
    cands = hybrid._candidates(hybrid.sources_, hybrid.train_, ["u1"]).set_index("item_id")
    assert cands.loc["own2", "user_item_count"] == 0
    assert cands.loc["own1", "user_item_count"] == 12
    assert (cands["user_rows"] == 24).all()  # 12 weeks x 2 real purchases
