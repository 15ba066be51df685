from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopaug.evaluate.ranking import bootstrap_ci, per_group_metrics, summarize


def _ranked(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def test_hand_computed_metrics():
    ranked = _ranked([("u", "a", 1), ("u", "x", 2), ("u", "b", 3), ("v", "y", 1)])
    truth = pd.DataFrame({"user_id": ["u", "u", "u", "v"], "item_id": ["a", "b", "c", "z"],
                          "gain": 1.0})
    m = per_group_metrics(ranked, truth, ks=(3,))
    u = m.loc["u"]
    assert u["hr@3"] == 1 and u["recall@3"] == pytest.approx(2 / 3)
    assert u["precision@3"] == pytest.approx(2 / 3)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert u["ndcg@3"] == pytest.approx(dcg / idcg)
    assert u["map@3"] == pytest.approx((1 + 2 / 3) / 3)
    assert u["mrr@3"] == 1.0
    assert m.loc["v"].sum() == 0  # no hits


def test_graded_gains_and_cutoff():
    ranked = _ranked([("q", "low", 1), ("q", "high", 2)])
    truth = pd.DataFrame({"user_id": ["q", "q"], "item_id": ["high", "low"],
                          "gain": [1.0, 0.1]})
    m = per_group_metrics(ranked, truth, ks=(1, 2))
    assert m.loc["q", "ndcg@1"] == pytest.approx(0.1)
    ideal = 1 + 0.1 / math.log2(3)
    assert m.loc["q", "ndcg@2"] == pytest.approx((0.1 + 1 / math.log2(3)) / ideal)


def test_users_without_recommendations_score_zero():
    truth = pd.DataFrame({"user_id": ["u", "w"], "item_id": ["a", "b"], "gain": 1.0})
    m = per_group_metrics(_ranked([("u", "a", 1)]), truth, ks=(5,))
    assert summarize(m)["hr@5"] == 0.5


def test_bootstrap_interval_brackets_the_mean():
    values = np.random.default_rng(0).random(500)
    mean, lo, hi = bootstrap_ci(values, seed=1)
    assert lo < mean < hi and hi - lo < 0.1
    assert bootstrap_ci(values, seed=1) == (mean, lo, hi)


def test_exponential_gain_matches_burges() -> None:
    from shopaug.evaluate.search import exponential_gain

    gains = pd.Series([0.0, 1 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(exponential_gain(gains), [0, 1, 3, 7])
