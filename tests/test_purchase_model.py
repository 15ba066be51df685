"""The LightGBM purchase-probability model over (user, item) feature rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopaug.data.bundle import ShopData
from shopaug.data.split import split
from shopaug.models.rec.purchase import PurchaseModel, log_loss, roc_auc
from shopaug.testing import check_component

pytest.importorskip("lightgbm")
SMALL = {"n_estimators": 40, "num_leaves": 8, "min_child_samples": 5, "threads": 1}


def planted(n_users: int = 80, seed: int = 0) -> ShopData:
    """Shoppers with a favourite category who mostly rebuy their own few staples:
    a purchase is predictable from history (bought before, category affinity)."""
    rng = np.random.default_rng(seed)
    n_items, cats = 40, ["mugs", "toys", "lamps", "bags"]
    items = pd.DataFrame({"item_id": [f"i{j:02d}" for j in range(n_items)],
                          "title": [f"item {j}" for j in range(n_items)],
                          "category": [cats[j % 4] for j in range(n_items)],
                          "price": rng.uniform(1, 20, n_items).round(2)})
    rows = []
    for u in range(n_users):
        fav = [j for j in range(n_items) if j % 4 == u % 4]
        staples = rng.choice(fav, size=3, replace=False)
        for b, day in enumerate(range(int(rng.integers(0, 8)), 120, 8)):
            for _ in range(3):
                j = rng.choice(staples) if rng.random() < 0.85 else rng.integers(n_items)
                rows.append((f"u{u:02d}", f"i{j:02d}", pd.Timestamp("2024-01-01")
                             + pd.Timedelta(days=day), f"b{u}-{b}"))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "session_id"])
    inter = inter.drop_duplicates(["user_id", "item_id", "session_id"]).assign(
        event="purchase", value=1.0)
    return ShopData(items=items, interactions=inter)


@pytest.fixture(scope="module")
def parts():
    return split(planted(), "temporal", test_days=20)


def test_auc_is_well_above_chance_on_planted_data(parts):
    model = PurchaseModel(SMALL).fit(parts.train, seed=0)
    result = model.evaluate(parts)
    assert set(result) >= {"auc", "log_loss"}
    assert result["auc"] > 0.78, result
    # log loss beats a constant at the test base rate
    rows = model.feature_rows(parts.train, targets=parts.test)
    constant = log_loss(rows["label"], np.full(len(rows), rows["label"].mean()))
    assert 0 < result["log_loss"] < constant


def test_evaluate_takes_labelled_rows_and_is_deterministic(parts):
    model = PurchaseModel(SMALL).fit(parts.train, seed=3)
    rows = model.feature_rows(parts.train, targets=parts.test)
    first = model.evaluate(rows)
    again = PurchaseModel(SMALL).fit(parts.train, seed=3).evaluate(rows)
    assert first == again
    prob = model.predict_proba(rows)
    assert prob.shape == (len(rows),) and ((prob > 0) & (prob < 1)).all()


def test_training_with_synthetic_feature_rows(parts):
    real = PurchaseModel(SMALL).fit(parts.train)
    mixed = PurchaseModel({**SMALL, "use_synthetic": True, "synthetic_ratio": 0.5}).fit(
        parts.train)
    assert mixed.synthetic_rows_ == int(np.ceil(0.5 * real.real_rows_))
    assert mixed.real_rows_ == real.real_rows_
    assert mixed.evaluate(parts)["auc"] > 0.7


def test_recommend_scores_popular_and_own_items(parts):
    model = PurchaseModel(SMALL).fit(parts.train)
    recs = model.recommend(["u01", "u02", "stranger"], k=5)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert recs.groupby("user_id").size().to_dict() == {"u01": 5, "u02": 5, "stranger": 5}
    assert recs["user_id"].drop_duplicates().tolist() == ["u01", "u02", "stranger"]
    # a loyal shopper's top pick is one of their own staples
    inter = parts.train.interactions
    own = set(inter.loc[inter["user_id"] == "u01", "item_id"])
    assert recs.loc[recs["user_id"] == "u01", "item_id"].iloc[0] in own


def test_roc_auc_and_log_loss_by_hand():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5  # ties count half
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))


def test_purchase_model_passes_the_kit():
    passed = check_component(PurchaseModel, config=SMALL)
    assert {"no_input_mutation", "same_seed_same_output", "empty_input_ok"} <= set(passed)
