"""Negative sampling and teacher pseudo-labels for recommenders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopaug import registry
from shopaug.augment.rec_negatives import NegativeSampling, RecTeacherLabels
from shopaug.data.bundle import ShopData
from shopaug.models.rec.base import Recommender, positives
from shopaug.pipeline.runner import RunContext
from shopaug.testing import check_component


def ctx(seed: int = 0) -> RunContext:
    return RunContext(seed=seed, run_dir=Path("."), progress=False)


def zipf_shop(n_users: int = 40, n_items: int = 60, seed: int = 0) -> ShopData:
    """Users buy 3-12 items each, drawn with Zipf-like popularity (item 0 most popular)."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": [f"i{j:02d}" for j in range(n_items)],
                          "title": [f"item {j}" for j in range(n_items)]})
    pop = 1 / np.arange(1, n_items + 1)
    rows = []
    for u in range(n_users):
        bought = rng.choice(n_items, size=rng.integers(3, 13), replace=False, p=pop / pop.sum())
        for n, j in enumerate(bought):
            rows.append({"user_id": f"u{u:02d}", "item_id": f"i{j:02d}",
                         "timestamp": pd.Timestamp("2024-01-01") + pd.Timedelta(days=u + n),
                         "session_id": f"b{u}-{n // 3}", "event": "purchase", "value": 1.0})
    users = pd.DataFrame({"user_id": [f"u{u:02d}" for u in range(n_users)] + ["cold"]})
    return ShopData(items=items, users=users, interactions=pd.DataFrame(rows))


class Reverse(Recommender):
    """Recommends items in reverse id order with scores k..1: known hard candidates."""

    name = "reverse_test"

    def fit(self, train: ShopData, seed: int = 0) -> Reverse:
        self.items_ = sorted(train.items["item_id"], reverse=True)
        return self

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        top = self.items_[:k]
        return pd.DataFrame([(u, i, r + 1, float(len(top) - r)) for u in user_ids
                             for r, i in enumerate(top)],
                            columns=["user_id", "item_id", "rank", "score"])


@pytest.fixture(autouse=True)
def _register_reverse(monkeypatch):
    # registered for these tests only, so other tests' registry listings stay as they were
    monkeypatch.setitem(registry._LOCAL["recommender"], Reverse.name, Reverse)


def negatives_of(out: ShopData) -> pd.DataFrame:
    inter = out.interactions
    return inter[inter["event"] == "negative"]


def pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


@pytest.mark.parametrize("strategy", ["uniform", "popularity", "hard"])
def test_negatives_never_collide_with_the_users_positives(strategy):
    data = zipf_shop()
    config = {"strategy": strategy, "per_positive": 3, "hard_from": "reverse_test",
              "hard_depth": 20}
    out = NegativeSampling(config).run(data, ctx())
    neg = negatives_of(out)
    pos = data.interactions
    assert len(neg) >= 0.9 * 3 * len(pos)  # only repeated draws are dropped
    assert not pairs(neg) & pairs(pos)
    assert (neg["value"] == 0).all() and (neg["origin"] == "synthetic").all()
    assert (neg["augmenter"] == "negative_sampling").all() and neg["config_hash"].notna().all()
    # each negative sits at the time (and in the basket) of a positive of the same user
    anchors = set(zip(pos["user_id"], pos["timestamp"], pos["session_id"], strict=True))
    assert set(zip(neg["user_id"], neg["timestamp"], neg["session_id"], strict=True)) <= anchors
    assert len(positives(out.interactions)) == len(pos)


def test_popularity_strategy_skews_to_popular_items():
    data = zipf_shop()
    top = {f"i{j:02d}" for j in range(6)}  # the 10% most popular items

    def share_top(strategy: str) -> float:
        neg = negatives_of(NegativeSampling(strategy=strategy, per_positive=5).run(data, ctx()))
        return float(neg["item_id"].isin(top).mean())

    uniform, popular = share_top("uniform"), share_top("popularity")
    assert uniform < 0.15  # about 6 of 60 items, fewer once positives are excluded
    assert popular > 2 * uniform


def test_hard_negatives_come_from_the_recommenders_top_unseen_items():
    data = zipf_shop()
    neg = negatives_of(NegativeSampling(strategy="hard", hard_from="reverse_test",
                                        hard_depth=10, per_positive=2).run(data, ctx()))
    hard = set(sorted(data.items["item_id"], reverse=True)[:10])
    assert set(neg["item_id"]) <= hard
    assert neg["item_id"].nunique() > 3


def test_negatives_are_seeded():
    data = zipf_shop()
    a = NegativeSampling(strategy="popularity").run(data, ctx(1)).interactions
    b = NegativeSampling(strategy="popularity").run(data, ctx(1)).interactions
    c = NegativeSampling(strategy="popularity").run(data, ctx(2)).interactions
    pd.testing.assert_frame_equal(a, b)
    assert not a["item_id"].equals(c["item_id"])


@pytest.mark.parametrize("config", [{}, {"strategy": "popularity", "alpha": 0.75},
                                    {"strategy": "hard", "hard_depth": 3}])
def test_negative_sampling_passes_the_kit(config):
    passed = check_component(NegativeSampling, config=config)
    assert {"no_input_mutation", "same_seed_same_output", "empty_input_ok"} <= set(passed)


# -- teacher labels ----------------------------------------------------------------------
def test_teacher_labels_give_short_histories_unseen_weighted_positives():
    data = zipf_shop()
    out = RecTeacherLabels(teacher="reverse_test", per_user=2, max_history=4,
                           weight=0.5).run(data, ctx())
    inter = out.interactions
    fake, real = inter[inter["origin"] == "synthetic"], data.interactions
    history = real.groupby("user_id").size()
    short = set(history[history <= 4].index) | {"cold"}
    assert set(fake["user_id"]) == short
    assert (fake.groupby("user_id").size() == 2).all()
    assert not pairs(fake) & pairs(real)
    assert fake["value"].between(0, 0.5).all() and fake["value"].max() == 0.5
    # scores k..1 over the k = per_user + max_history candidates, normalised by the best
    assert set(fake["quality_score"].round(4)) <= {round(s / 6, 4) for s in range(1, 7)}
    assert (fake["event"] == "purchase").all()
    last = real.groupby("user_id")["timestamp"].max()
    warm = fake[fake["user_id"] != "cold"]
    assert (warm["timestamp"].to_numpy() == warm["user_id"].map(last).to_numpy()).all()
    assert fake["timestamp"].max() <= real["timestamp"].max()


def test_teacher_labels_with_the_popularity_teacher():
    data = zipf_shop()
    out = RecTeacherLabels(teacher="popularity", per_user=1, max_history=3,
                           include_cold=False).run(data, ctx())
    fake = out.interactions[out.interactions["origin"] == "synthetic"]
    assert len(fake) and "cold" not in set(fake["user_id"])
    buyers = data.interactions.groupby("item_id")["user_id"].nunique()
    # each label is the most popular item the user has not bought
    for user, item in zip(fake["user_id"], fake["item_id"], strict=True):
        seen = set(data.interactions.loc[data.interactions["user_id"] == user, "item_id"])
        assert buyers[item] == buyers.drop(list(seen & set(buyers.index))).max()


def test_teacher_labels_pass_the_kit():
    passed = check_component(RecTeacherLabels, config={"max_history": 3, "per_user": 2})
    assert {"no_input_mutation", "same_seed_same_output", "empty_input_ok"} <= set(passed)
