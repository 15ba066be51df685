"""Collaborative-filtering recommenders: item-kNN, ALS and BPR (``implicit``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError, ShopAugError
from shopaug.models.rec.itemknn import ItemKNN, item_similarity
from shopaug.models.rec.mf import ALS, BPR
from shopaug.testing import check_component, sample_data

pytest.importorskip("implicit")

FAST = {ALS: {"factors": 8, "iterations": 5, "threads": 1},
        BPR: {"factors": 8, "iterations": 20}}


def _bundle(rows: list[tuple], extra: pd.DataFrame | None = None) -> ShopData:
    """rows: (user, item, day); ``extra`` rows (e.g. synthetic ones) appended as given."""
    inter = pd.DataFrame([{"user_id": u, "item_id": i, "event": "purchase", "value": 1.0,
                           "timestamp": pd.Timestamp("2024-01-01") + pd.Timedelta(days=d)}
                          for u, i, d in rows])
    if extra is not None:
        inter = pd.concat([inter, extra], ignore_index=True)
    return ShopData(interactions=inter)


def _synthetic(rows: list[tuple], value: float = 1.0, event: str = "purchase") -> pd.DataFrame:
    return pd.DataFrame([{"user_id": u, "item_id": i, "event": event, "value": value,
                          "timestamp": pd.Timestamp("2024-01-01") + pd.Timedelta(days=d),
                          "origin": "synthetic", "augmenter": "test"} for u, i, d in rows])


def _planted(n_groups: int = 3, per_group: int = 10, users_per_group: int = 20,
             seed: int = 0) -> tuple[ShopData, dict[str, int], dict[str, int]]:
    """Users buy only inside their own group of items: the structure a CF model must find."""
    rng = np.random.default_rng(seed)
    rows, user_group, item_group = [], {}, {}
    for g in range(n_groups):
        items = [f"g{g}i{j}" for j in range(per_group)]
        item_group.update(dict.fromkeys(items, g))
        for n in range(users_per_group):
            user = f"g{g}u{n}"
            user_group[user] = g
            rows += [(user, item, d) for d, item in enumerate(rng.choice(items, 4, False))]
    return _bundle(rows), user_group, item_group


# Basket data: bread goes with butter, beer with crisps; tea is the odd one out.
BASKETS = [("a", "bread", 0), ("a", "butter", 0), ("b", "bread", 1), ("b", "butter", 1),
           ("c", "bread", 2), ("c", "butter", 2), ("c", "tea", 2), ("d", "beer", 3),
           ("d", "crisps", 3), ("e", "beer", 4), ("e", "crisps", 4), ("f", "beer", 5),
           ("f", "crisps", 5), ("g", "beer", 6), ("h", "bread", 7)]


@pytest.mark.parametrize("cls,config", [
    (ItemKNN, {}), (ItemKNN, {"exclude_seen": True, "half_life_days": 14, "shrink": 1.0}),
    (ALS, FAST[ALS]), (ALS, {**FAST[ALS], "threads": 0}), (BPR, FAST[BPR]),
])
def test_conformance(cls, config) -> None:
    passed = check_component(cls, config=config)
    assert "same_seed_same_output" in passed and "empty_input_ok" in passed


def test_registered() -> None:
    from shopaug import registry

    for name in ("itemknn", "als", "bpr"):
        assert registry.create("recommender", name, {}).name == name
    with pytest.raises(ConfigError):
        ItemKNN(neighbors=0)


def test_itemknn_recommends_what_is_bought_together() -> None:
    model = ItemKNN(exclude_seen=True).fit(_bundle(BASKETS))
    recs = model.recommend(["h", "g"], k=2)
    top = recs.groupby("user_id")["item_id"].first()
    assert top["h"] == "butter" and top["g"] == "crisps"
    # bread-buyer h: butter (3 shared buyers) clearly beats tea (1 shared buyer)
    h = recs[recs["user_id"] == "h"].set_index("item_id")["score"]
    assert h["butter"] > h.get("tea", 0.0)
    bought = {"h": "bread", "g": "beer"}
    assert not (recs["item_id"] == recs["user_id"].map(bought)).any()  # seen items excluded


def test_itemknn_unknown_user_gets_popular_items_and_self_similarity_scores_rebuys() -> None:
    data = _bundle(BASKETS)
    recs = ItemKNN().fit(data).recommend(["nobody"], k=3)
    assert recs["item_id"].tolist() == ["beer", "bread", "butter"]  # 4, 4 (id order), 3
    assert recs["rank"].tolist() == [1, 2, 3]
    rebuy = ItemKNN(self_similarity=5.0).fit(data).recommend(["g"], k=1)
    classic = ItemKNN(self_similarity=0.0).fit(data).recommend(["g"], k=1)
    assert rebuy["item_id"].tolist() == ["beer"] and classic["item_id"].tolist() == ["crisps"]


def test_item_similarity_matches_brute_force() -> None:
    import scipy.sparse as sp

    rng = np.random.default_rng(1)
    dense = (rng.random((40, 12)) < 0.3) * rng.random((40, 12))
    dense[:, 0] = dense[:, 1]  # item 0 and 1 identical: cosine 1
    sim = item_similarity(sp.csr_matrix(dense), neighbors=3, shrink=0.5).toarray()
    norms = np.linalg.norm(dense, axis=0)
    full = dense.T @ dense / (np.outer(norms, norms) + 0.5)
    np.fill_diagonal(full, 0.0)
    for j in range(12):
        kept = np.flatnonzero(sim[j])
        assert len(kept) == 3 and np.allclose(sim[j, kept], full[j, kept])
        assert sim[j, kept].min() >= np.sort(full[j])[-3] - 1e-12  # the 3 largest
    assert np.argmax(sim[0]) == 1


def test_itemknn_recency_decay_prefers_recent_history() -> None:
    rows = [*BASKETS, ("z", "bread", 0), ("z", "beer", 60)]
    recent = ItemKNN(exclude_seen=True, half_life_days=7).fit(_bundle(rows))
    flat = ItemKNN(exclude_seen=True).fit(_bundle(rows))
    assert recent.recommend(["z"], k=1)["item_id"].item() == "crisps"
    scores = flat.recommend(["z"], k=2).set_index("item_id")["score"]
    assert set(scores.index) == {"butter", "crisps"}


@pytest.mark.parametrize("cls", [ALS, BPR])
def test_factor_models_find_planted_groups(cls) -> None:
    data, user_group, item_group = _planted()
    tuned = {"iterations": 15, "regularization": 1.0} if cls is ALS else {"iterations": 200}
    model = cls({**FAST[cls], **tuned, "exclude_seen": True}).fit(data, seed=0)
    recs = model.recommend(sorted(user_group), k=3)
    same = (recs["item_id"].map(item_group) == recs["user_id"].map(user_group)).mean()
    assert same > 0.8  # random lists would be ~1/3 in the user's own group
    assert len(recs) == 3 * len(user_group)


@pytest.mark.parametrize("cls", ["ALS", "BPR"])
def test_factor_models_run_blas_single_threaded_without_a_warning(cls) -> None:
    """implicit warns when BLAS may use several threads. In a fresh process (implicit
    not yet imported, so its BLAS not yet loaded) a fit must not warn; on a one-core
    machine BLAS has one thread anyway and this passes either way."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error', RuntimeWarning)\n"
            "from shopaug.models.rec.mf import ALS, BPR\n"
            "from shopaug.testing import sample_data\n"
            f"{cls}(iterations=2).fit(sample_data(), seed=0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("cls", [ItemKNN, ALS, BPR])
def test_negative_rows_are_ignored(cls) -> None:
    config = FAST.get(cls, {})
    base = _bundle(BASKETS)
    negatives = _synthetic([("h", "butter", 7), ("g", "crisps", 6), ("new", "tea", 2)],
                           event="negative")
    with_neg = _bundle(BASKETS, negatives)
    users = ["a", "g", "h", "new"]
    first = cls(config).fit(base, seed=1).recommend(users, k=4)
    second = cls(config).fit(with_neg, seed=1).recommend(users, k=4)
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize("cls", [ItemKNN, ALS, BPR])
def test_weighted_synthetic_rows_change_the_model(cls) -> None:
    config = FAST.get(cls, {})
    # pseudo-users of h: bread bought with tea, not butter
    pseudo = [(f"h~crop{n}", item, 7) for n in range(4) for item in ("bread", "tea")]
    users = ["a", "h", "nobody"]

    def recs(extra: pd.DataFrame | None, **over) -> pd.DataFrame:
        return cls({**config, **over}).fit(_bundle(BASKETS, extra), seed=2).recommend(users, 5)

    plain = recs(None)
    heavy = recs(_synthetic(pseudo, value=1.0))
    zero = recs(_synthetic(pseudo, value=0.0))
    assert not plain.equals(heavy)
    pd.testing.assert_frame_equal(plain, zero)  # weight 0: no evidence at all
    assert not recs(_synthetic(pseudo, value=0.3)).equals(heavy)
    if cls is ItemKNN:
        ignoring = recs(_synthetic(pseudo, value=0.3), use_weights=False)
        pd.testing.assert_frame_equal(ignoring, heavy)
        h = heavy[heavy["user_id"] == "h"].set_index("item_id")["score"]
        p = plain[plain["user_id"] == "h"].set_index("item_id")["score"]
        assert h["tea"] > p["tea"]


@pytest.mark.parametrize("cls", [ItemKNN, ALS, BPR])
def test_contract_edges(cls) -> None:
    config = FAST.get(cls, {})
    data = sample_data()
    model = cls(config)
    with pytest.raises(ShopAugError):
        model.recommend(["u1"])
    model.fit(data)
    recs = model.recommend(["u1", "u1", "stranger"], k=50)
    assert recs.groupby("user_id").size().to_dict() == {"stranger": 6, "u1": 6}
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == list(range(1, 7))).all()
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    seen = cls({**config, "exclude_seen": True}).fit(data).recommend(["u1"], k=50)
    assert set(seen["item_id"]) == {"i4", "i5"}  # u1 bought i1, i2, i3, i6
    assert seen["rank"].tolist() == [1, 2]
    assert model.recommend([], k=5).empty
