"""SASRec on tiny planted sequences: conformance, learning a next-item pattern that
popularity cannot see, synthetic-row weights, fallbacks and exclude_seen."""

from __future__ import annotations

import pandas as pd
import pytest

from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError
from shopaug.models.rec.popularity import Popularity
from shopaug.models.rec.sasrec import SASRec
from shopaug.testing import check_component

T0 = pd.Timestamp("2024-01-01")
CHAIN = [f"c{i}" for i in range(8)]  # c0 -> c1 -> ... -> c7 -> c0
TINY = {"hidden": 16, "blocks": 1, "max_len": 8, "dropout": 0.0, "batch_size": 16,
        "lr": 0.01, "threads": 1}


def chain_data(users: int = 48, length: int = 5, origin: str = "real",
               value: float = 1.0) -> tuple[ShopData, dict[str, str]]:
    """Every user buys the decoy 'pop' first, then walks the chain from their own start.
    Returns the data and each user's true next item."""
    rows, truth = [], {}
    for u in range(users):
        user, start = f"u{u:02d}", u % len(CHAIN)
        walk = ["pop"] + [CHAIN[(start + j) % len(CHAIN)] for j in range(length)]
        rows += [(user, item, day) for day, item in enumerate(walk)]
        truth[user] = CHAIN[(start + length) % len(CHAIN)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    inter["timestamp"] = T0 + pd.to_timedelta(inter.pop("day"), unit="D")
    inter["origin"], inter["value"] = origin, value
    items = [*CHAIN, "pop"]
    return ShopData(items=pd.DataFrame({"item_id": items, "title": items}),
                    interactions=inter), truth


def hit_at_1(recs: pd.DataFrame, truth: dict[str, str]) -> float:
    top = recs[recs["rank"] == 1].set_index("user_id")["item_id"]
    return sum(top.get(u) == item for u, item in truth.items()) / len(truth)


def test_conformance():
    passed = check_component(SASRec, config={**TINY, "epochs": 2})
    assert "same_seed_same_output" in passed and "empty_input_ok" in passed
    check_component(SASRec, config={**TINY, "epochs": 1, "heads": 2, "neg": 3,
                                    "loss": "sampled_softmax", "exclude_seen": True})


def test_learns_a_planted_sequence_better_than_popularity():
    data, truth = chain_data()
    model = SASRec({**TINY, "epochs": 40}).fit(data, seed=0)
    assert model.losses_[-1] < model.losses_[0] / 2
    sasrec = hit_at_1(model.recommend(list(truth), k=3), truth)
    popular = hit_at_1(Popularity().fit(data).recommend(list(truth), k=3), truth)
    assert popular == 0.0  # 'pop' is everyone's top item
    assert sasrec >= 0.8


def test_synthetic_weights_scale_the_loss():
    """The chain lives only in synthetic pseudo-users (real users buy 'pop' and one
    chain item): they teach it at weight 1 and nothing at weight 0."""
    queries = pd.DataFrame({"user_id": [f"q{i}" for i in range(8) for _ in "ab"],
                            "item_id": [x for c in CHAIN for x in ("pop", c)],
                            "timestamp": [T0, T0 + pd.Timedelta(days=1)] * 8})
    truth = {f"q{i}": CHAIN[(i + 1) % 8] for i in range(8)}
    scores = {}
    for value in (1.0, 0.0):
        synth, _ = chain_data(origin="synthetic", value=value)
        data = synth.append("interactions", queries)
        model = SASRec({**TINY, "epochs": 40}).fit(data, seed=0)
        scores[value] = hit_at_1(model.recommend(list(truth), k=1), truth)
    assert scores[1.0] >= 0.75 and scores[0.0] <= 0.25


def test_unknown_users_get_popularity_and_order_is_kept():
    data, _ = chain_data(users=16)
    model = SASRec({**TINY, "epochs": 2}).fit(data)
    recs = model.recommend(["nobody", "u03", "nobody", "u01"], k=4)
    assert recs["user_id"].drop_duplicates().tolist() == ["nobody", "u03", "u01"]
    fallback = recs[recs["user_id"] == "nobody"]
    expected = Popularity().fit(data).recommend(["nobody"], k=4)
    assert fallback["item_id"].tolist() == expected["item_id"].tolist()
    for _, rows in recs.groupby("user_id"):
        assert rows["rank"].tolist() == [1, 2, 3, 4]
        assert rows["score"].is_monotonic_decreasing


def test_exclude_seen_and_determinism():
    data, _ = chain_data(users=16, length=3)
    config = {**TINY, "epochs": 3, "exclude_seen": True}
    recs = SASRec(config).fit(data, seed=1).recommend(["u00"], k=20)
    assert set(recs["item_id"]).isdisjoint({"pop", "c0", "c1", "c2"})
    assert len(recs) == 5  # nine items, four seen
    again = SASRec(config).fit(data, seed=1).recommend(["u00"], k=20)
    pd.testing.assert_frame_equal(recs, again)
    other = SASRec(config).fit(data, seed=2).recommend(["u00"], k=20)
    assert not recs["score"].equals(other["score"])


def test_config_checks():
    with pytest.raises(ConfigError, match="multiple of heads"):
        SASRec(hidden=10, heads=3)


def test_histories_of_one_item_fall_back_to_popularity():
    data = ShopData(items=pd.DataFrame({"item_id": ["a", "b"], "title": ["A", "B"]}),
                    interactions=pd.DataFrame({"user_id": ["u1", "u2", "u3"],
                                               "item_id": ["a", "b", "b"],
                                               "timestamp": T0}))
    model = SASRec({**TINY, "epochs": 1}).fit(data)
    assert model.net_ is None
    recs = model.recommend(["u1", "new"], k=2)
    assert recs.groupby("user_id", sort=False)["item_id"].agg(list).to_dict() == {
        "u1": ["b", "a"], "new": ["b", "a"]}
