"""Recommendation evaluation: slices, beyond-accuracy metrics and the per-user table,
checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopaug.data.bundle import ShopData
from shopaug.data.split import Split
from shopaug.evaluate.rec import (
    catalog_coverage,
    evaluate_recommender,
    head_items,
    item_popularity,
    list_metrics,
    per_user_metrics,
)

DAY0 = pd.Timestamp("2024-01-01")
# Training counts: a 4, b 3, c 2, d 1, e 1 (11 rows). f is in the catalog, never bought.
TRAIN = [("u1", "a"), ("u2", "a"), ("u3", "a"), ("u4", "a"), ("u1", "b"), ("u3", "b"),
         ("u4", "b"), ("u3", "c"), ("u4", "c"), ("u3", "d"), ("u4", "e")]
ITEMS = pd.DataFrame({"item_id": list("abcdef"), "title": list("ABCDEF"),
                      "category": ["x", "x", "y", "y", None, "z"]})
RECS = {"u1": ["a", "b", "c"], "u2": ["d", "e", "f"]}


def _rows(pairs, start_day: int, **extra) -> pd.DataFrame:
    return pd.DataFrame([{"user_id": u, "item_id": i, "event": "purchase", "value": 1.0,
                          "timestamp": DAY0 + pd.Timedelta(days=start_day + n), **extra}
                         for n, (u, i) in enumerate(pairs)])


def _train(items: pd.DataFrame = ITEMS) -> ShopData:
    # Synthetic and negative rows must not move popularity, the head or the slices.
    noise = pd.concat([_rows([("u2~crop0", "e")] * 5, 0, origin="synthetic"),
                       _rows([("u2", "d")], 0, origin="synthetic", event="negative")])
    return ShopData(items=items, interactions=pd.concat([_rows(TRAIN, 0), noise]))


class FixedLists:
    """A stub recommender returning preset lists."""

    def __init__(self, lists: dict[str, list[str]]):
        self.lists = lists

    def recommend(self, user_ids, k: int = 10) -> pd.DataFrame:
        rows = [(u, item, r + 1, 1.0 / (r + 1)) for u in user_ids
                for r, item in enumerate(self.lists.get(u, [])[:k])]
        return pd.DataFrame(rows, columns=["user_id", "item_id", "rank", "score"])


def _recs(lists=RECS) -> pd.DataFrame:
    return FixedLists(lists).recommend(list(lists), k=10)


def _split() -> tuple[ShopData, Split]:
    train = _train()
    # u1 buys a (head), b (long tail) and f (cold); u2 buys a only.
    test = ShopData(items=ITEMS, interactions=_rows(
        [("u1", "a"), ("u1", "b"), ("u1", "f"), ("u2", "a")], 40))
    return train, Split(train, test, kind="temporal", cold_items=frozenset({"f"}))


def test_popularity_and_head_use_real_positive_rows() -> None:
    pop = item_popularity(_train())
    assert pop.to_dict() == {"a": 4, "b": 3, "c": 2, "d": 1, "e": 1}
    assert head_items(pop) == {"a"}  # ceil(0.2 * 5) = 1
    assert head_items(pd.Series(1, index=list("abcdefghijk"))) == {"a", "b", "c"}  # ceil(2.2)


def test_catalog_coverage() -> None:
    recs = _recs()
    assert catalog_coverage(recs, list("abcdef"), 3) == 1.0
    assert catalog_coverage(recs, list("abcdef"), 2) == pytest.approx(4 / 6)  # a b d e
    assert catalog_coverage(recs, list("abcdefgh"), 1) == pytest.approx(2 / 8)


def test_list_metrics_by_category() -> None:
    m = list_metrics(_recs(), (2, 3), _train())
    # u1: (a,b) same category, (a,c) and (b,c) differ; u2: y, none, z all differ
    assert m.loc["u1", "ild@3"] == pytest.approx(2 / 3)
    assert m.loc["u1", "ild@2"] == 0.0
    assert m.loc["u2", "ild@3"] == 1.0 and m.loc["u2", "ild@2"] == 1.0
    nov = np.mean([-math.log2(4 / 11), -math.log2(3 / 11), -math.log2(2 / 11)])
    assert m.loc["u1", "novelty@3"] == pytest.approx(nov)
    assert m.loc["u2", "novelty@3"] == pytest.approx(-math.log2(1 / 11))  # f counts as 1
    assert m.loc["u1", "arp@3"] == pytest.approx(3.0)
    assert m.loc["u2", "arp@3"] == pytest.approx(2 / 3)
    assert m.loc["u1", "arp@2"] == pytest.approx(3.5)
    assert m.loc["u1", "head_share@3"] == pytest.approx(1 / 3)
    assert m.loc["u2", "head_share@3"] == 0.0


def test_list_metrics_by_co_occurrence_without_categories() -> None:
    train = _train(items=ITEMS[["item_id", "title"]])
    m = list_metrics(_recs({"u1": ["a", "b", "c"], "u2": ["a"]}), (3,), train)
    # buyers: a {u1..u4}, b {u1,u3,u4}, c {u3,u4}
    cos_ab, cos_ac, cos_bc = 3 / math.sqrt(4 * 3), 2 / math.sqrt(4 * 2), 2 / math.sqrt(3 * 2)
    expected = np.mean([1 - cos_ab, 1 - cos_ac, 1 - cos_bc])
    assert m.loc["u1", "ild@3"] == pytest.approx(expected)
    assert np.isnan(m.loc["u2", "ild@3"])  # one item: no pairs
    # an item nobody bought is unlike everything
    m = list_metrics(_recs({"u1": ["a", "f"]}), (2,), train)
    assert m.loc["u1", "ild@2"] == pytest.approx(1.0)


def test_per_user_metrics_long_form_and_long_tail_slice() -> None:
    train, split = _split()
    per_user = per_user_metrics(FixedLists(RECS), train, split, ks=(3,))
    assert list(per_user.columns[:2]) == ["slice", "user_id"]
    assert {"recall@3", "ndcg@3", "hr@3", "map@3", "ild@3", "novelty@3"} <= set(per_user)
    users = per_user.groupby("slice")["user_id"].apply(sorted).to_dict()
    assert users == {"all": ["u1", "u2"], "cold_users": ["u1", "u2"], "cold_items": ["u1"],
                     "long_tail": ["u1"]}
    tail = per_user[per_user["slice"] == "long_tail"].iloc[0]
    assert tail["recall@3"] == 1.0  # truth restricted to b, recommended at rank 2
    assert tail["ndcg@3"] == pytest.approx(1 / math.log2(3))
    everything = per_user[per_user["slice"] == "all"].set_index("user_id")
    assert everything.loc["u1", "recall@3"] == pytest.approx(2 / 3)  # a, b of a, b, f
    assert everything.loc["u2", "recall@3"] == 0.0
    assert everything.loc["u1", "ild@3"] == pytest.approx(2 / 3)


def test_evaluate_recommender_summary() -> None:
    train, split = _split()
    summary = evaluate_recommender(FixedLists(RECS), train, split, ks=(3,))
    assert list(summary) == ["all", "cold_users", "cold_items", "long_tail"]
    everything = summary["all"]
    assert everything["users"] == 2
    assert everything["recall@3"] == pytest.approx(1 / 3)
    assert everything["coverage@3"] == 1.0  # all six catalog items shown
    assert everything["arp@3"] == pytest.approx((3 + 2 / 3) / 2)
    assert summary["long_tail"]["coverage@3"] == pytest.approx(3 / 6)  # u1's list only
    assert summary["cold_items"]["recall@3"] == 0.0  # f never recommended to u1


def test_evaluate_recommender_cold_users_count_real_rows_only() -> None:
    train, split = _split()
    more = pd.concat([train.interactions, _rows([("u1", "c")] * 5, 0, origin="synthetic")])
    summary = evaluate_recommender(FixedLists(RECS), train.replace(interactions=more),
                                   split, ks=(3,))
    assert summary["cold_users"]["users"] == 2  # synthetic rows do not warm a user up
