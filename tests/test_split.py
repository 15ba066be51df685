from __future__ import annotations

import pandas as pd
import pytest

import shopaug
from shopaug import LeakageError
from shopaug.data.split import Split
from shopaug.errors import ConfigError, SchemaError


@pytest.fixture(scope="module")
def demo():
    from shopaug.datasets import demo_path

    return shopaug.load(demo_path(), format="online_retail").data


def test_temporal_cut_separates_train_and_test(demo):
    parts = shopaug.split(demo, "temporal", test_days=30)
    train, test = parts.train.interactions, parts.test.interactions
    assert train["timestamp"].max() < parts.cut <= test["timestamp"].min()
    assert len(train) + len(test) == len(demo.interactions)
    sizes = parts.report()["sizes"]
    assert sizes["train"]["interactions"] == len(train)
    assert parts.cold_items == frozenset(set(test["item_id"]) - set(train["item_id"]))


def test_temporal_validation_window(demo):
    parts = shopaug.split(demo, "temporal", test_days=30, valid_days=14)
    valid = parts.valid.interactions
    assert parts.train.interactions["timestamp"].max() < valid["timestamp"].min()
    assert valid["timestamp"].max() < parts.cut
    total = sum(len(p.interactions) for p in (parts.train, parts.valid, parts.test))
    assert total == len(demo.interactions)


def test_explicit_cut_outside_the_data_is_refused(demo):
    with pytest.raises(ConfigError, match="choose a cut inside"):
        shopaug.split(demo, "temporal", cut="2030-01-01")


def test_leave_last_basket_takes_each_users_last_basket(demo):
    parts = shopaug.split(demo, "leave_last_basket")
    train, test = parts.train.interactions, parts.test.interactions
    assert test.groupby("user_id")["session_id"].nunique().eq(1).all()
    last_train = train.groupby("user_id")["timestamp"].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    assert (last_train.reindex(first_test.index) <= first_test).all()
    assert not set(zip(train["user_id"], train["session_id"], strict=True)) & set(
        zip(test["user_id"], test["session_id"], strict=True))
    # users with a single basket stay in train
    one_basket = demo.interactions.groupby("user_id")["session_id"].nunique().eq(1)
    assert not set(one_basket[one_basket].index) & set(test["user_id"])


def test_cold_start_holds_out_new_items_only(demo):
    parts = shopaug.split(demo, "cold_start", test_days=90, holdout="items")
    test = parts.test.interactions
    assert len(test) and test["item_id"].isin(parts.cold_items).all()
    assert not set(parts.train.interactions["item_id"]) & parts.cold_items
    assert parts.report()["warm_test_rows_dropped"] > 0


def test_cold_start_users(demo):
    parts = shopaug.split(demo, "cold_start", test_days=90, holdout="users")
    assert parts.test.interactions["user_id"].isin(parts.cold_users).all()
    assert not set(parts.train.interactions["user_id"]) & parts.cold_users


def test_query_split_never_splits_a_query(sample):
    dup = sample.queries.iloc[[0]].assign(query_id="q1b", text="  MUG ")
    data = sample.replace(queries=pd.concat([sample.queries, dup]))
    for seed in range(5):
        parts = shopaug.split(data, "by_query", seed=seed, test_fraction=0.5)
        train_q, test_q = set(parts.train.queries["query_id"]), set(parts.test.queries["query_id"])
        assert not train_q & test_q
        assert {"q1", "q1b"} <= train_q or {"q1", "q1b"} <= test_q  # same text, same side
        assert set(parts.test.judgments["query_id"]) <= test_q


def test_query_split_depends_on_the_seed_only(sample):
    a = shopaug.split(sample, "by_query", seed=1, test_fraction=0.5)
    b = shopaug.split(sample, "by_query", seed=1, test_fraction=0.5)
    assert a.test.fingerprint() == b.test.fingerprint()
    sides = {frozenset(shopaug.split(sample, "by_query", seed=s, test_fraction=0.5)
                       .test.queries["query_id"]) for s in range(8)}
    assert len(sides) > 1


def test_splits_need_their_tables(sample):
    with pytest.raises(SchemaError, match="needs interactions"):
        shopaug.split(sample.replace(interactions=sample.interactions.iloc[:0]), "temporal")
    with pytest.raises(SchemaError, match="needs queries"):
        shopaug.split(sample.replace(queries=sample.queries.iloc[:0],
                                     judgments=sample.judgments.iloc[:0]), "by_query")


def test_a_leaky_split_is_refused(sample):
    inter = sample.interactions
    with pytest.raises(LeakageError, match="also appear in train"):
        Split(sample, sample.replace(interactions=inter.iloc[:3]), kind="custom")
    with pytest.raises(LeakageError, match="test queries are also in train"):
        Split(sample, sample.replace(interactions=inter.iloc[:0]), kind="custom")
    late = sample.replace(interactions=inter)
    with pytest.raises(LeakageError, match="after the cut"):
        Split(late, sample.replace(interactions=inter.iloc[:0], queries=sample.queries.iloc[:0],
                                   judgments=sample.judgments.iloc[:0]),
              kind="temporal", cut=inter["timestamp"].min())
    with pytest.raises(LeakageError, match="cold-start items"):
        Split(sample, sample.replace(interactions=inter.iloc[:0], queries=sample.queries.iloc[:0],
                                     judgments=sample.judgments.iloc[:0]),
              kind="custom", cold_items=frozenset({"i1"}))
