"""Tabular synthesizers (copula, TVAE, SDV wrapper), feature rows and `tabular_synthesis`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shopaug.augment.rec_features import FEATURES, interaction_features, item_categories
from shopaug.augment.tabular import (
    GaussianCopulaSynthesizer,
    SDVSynthesizer,
    TabularSynthesis,
    ks_fidelity,
    user_features,
)
from shopaug.errors import ShopAugError
from shopaug.pipeline.runner import RunContext
from shopaug.testing import check_component, sample_data


def known(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Normal, log-normal correlated with it (rho 0.8 on the log scale), Poisson counts,
    a skewed categorical, booleans, timestamps and a column with 20% missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({
        "x": x,
        "y": np.exp(0.8 * x + 0.6 * rng.normal(size=n)),
        "k": rng.poisson(3, size=n),
        "c": pd.Series(rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1], size=n), dtype="str"),
        "flag": rng.random(n) < 0.3,
        "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="h"),
        "gap": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(2.0, size=n)),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], size=n)),
    })


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return known()


@pytest.fixture(scope="module")
def copula_sample(real) -> pd.DataFrame:
    return GaussianCopulaSynthesizer().fit(real).sample(2000, seed=1)


def test_copula_keeps_columns_and_dtypes(real, copula_sample):
    assert list(copula_sample.columns) == list(real.columns)
    assert copula_sample.dtypes.equals(real.dtypes)
    assert len(copula_sample) == 2000
    assert copula_sample["t"].between(real["t"].min(), real["t"].max()).all()
    assert set(copula_sample["size"].cat.categories) == {"L", "M", "S"}


def test_copula_preserves_marginals(real, copula_sample):
    ks = ks_fidelity(real, copula_sample)
    assert set(ks) == {"x", "y", "k", "t", "gap"}
    assert max(ks.values()) < 0.06, ks
    # a clearly different distribution is caught by the same measure
    assert ks_fidelity(real, real.assign(x=real["x"] + 1.0))["x"] > 0.3


def test_copula_preserves_a_strong_correlation(real, copula_sample):
    true = np.corrcoef(real["x"], np.log(real["y"]))[0, 1]
    fake = np.corrcoef(copula_sample["x"], np.log(copula_sample["y"]))[0, 1]
    assert true > 0.7
    assert abs(fake - true) < 0.08


def test_copula_preserves_categorical_frequencies_and_missingness(real, copula_sample):
    want = real["c"].value_counts(normalize=True)
    got = copula_sample["c"].value_counts(normalize=True).reindex(want.index, fill_value=0)
    assert (got - want).abs().max() < 0.03
    assert abs(copula_sample["flag"].mean() - real["flag"].mean()) < 0.03
    assert abs(copula_sample["gap"].isna().mean() - 0.2) < 0.03
    assert set(copula_sample["c"]) <= {"a", "b", "c"}


def test_copula_is_deterministic(real):
    first = GaussianCopulaSynthesizer().fit(real).sample(300, seed=7)
    again = GaussianCopulaSynthesizer().fit(real).sample(300, seed=7)
    other = GaussianCopulaSynthesizer().fit(real).sample(300, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_copula_rejects_an_empty_table():
    with pytest.raises(ShopAugError, match="empty"):
        GaussianCopulaSynthesizer().fit(pd.DataFrame({"x": []}))


def test_tvae_runs_with_correct_dtypes_and_is_deterministic(real):
    torch = pytest.importorskip("torch")
    from shopaug.augment.tvae import TVAESynthesizer

    torch.set_num_threads(1)
    small = real.head(400)
    fake = TVAESynthesizer(epochs=2, threads=1).fit(small).sample(200, seed=3)
    assert fake.dtypes.equals(small.dtypes)
    assert set(fake["c"]) <= {"a", "b", "c"}
    assert set(fake["size"].dropna()) <= {"S", "M", "L"}
    assert fake["k"].between(small["k"].min(), small["k"].max()).all()
    assert fake["t"].between(small["t"].min(), small["t"].max()).all()
    again = TVAESynthesizer(epochs=2, threads=1).fit(small).sample(200, seed=3)
    pd.testing.assert_frame_equal(fake, again)
    state = torch.random.get_rng_state()
    TVAESynthesizer(epochs=1).fit(small.head(50))
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


def test_sdv_missing_gives_a_clear_error(monkeypatch, real):
    monkeypatch.setitem(sys.modules, "sdv", None)  # importing sdv now fails
    monkeypatch.setitem(sys.modules, "sdv.single_table", None)
    with pytest.raises(ShopAugError, match=r"pip install shopaug\[sdv\]") as err:
        SDVSynthesizer().fit(real)
    assert "Business Source License" in str(err.value)
    with pytest.raises(ShopAugError, match="sdv"):
        TabularSynthesis(method="sdv").run(sample_data(), ctx())


def ctx(seed: int = 0) -> RunContext:
    return RunContext(seed=seed, run_dir=Path("."), progress=False)


# -- feature rows ----------------------------------------------------------------------
def test_item_categories_fall_back_to_the_titles_last_word():
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["mugs", None, " "],
                          "title": ["x", "WHITE HANGING T-LIGHT HOLDER", "RED HEART."]})
    assert item_categories(items).to_dict() == {"a": "mugs", "b": "holder", "c": "heart"}


def test_user_features_describe_the_history():
    data = sample_data()
    feats = user_features(data.interactions, data.items).set_index("user_id")
    u1 = feats.loc["u1"]
    assert u1["history_length"] == 4 and u1["baskets"] == 3
    assert u1["mean_basket_size"] == pytest.approx(4 / 3)
    assert u1["mean_price"] == pytest.approx(np.mean([4.5, 12.0, 49.99, 3.1]))
    assert u1["fav_category"] == "kitchen" and u1["fav_category_share"] == 0.5
    assert feats.loc["u3", "recency_days"] == 0.0  # the last purchase of the data
    assert feats.loc["u4", "recency_days"] == pytest.approx(7.0)  # a week before it
    assert feats["first_purchase"].dtype.kind == "M"


def test_interaction_features_label_only_the_window_and_never_leak_it():
    data = sample_data()
    rows = interaction_features(data, negatives_per_positive=3, seed=0, label_days=30)
    inter = data.interactions
    cut = inter["timestamp"].max() - pd.Timedelta(days=30)
    window = inter[inter["timestamp"] >= cut]
    pos = rows[rows["label"] == 1]
    assert set(zip(pos["user_id"], pos["item_id"], strict=True)) == set(
        zip(window["user_id"], window["item_id"], strict=True))
    neg = rows[rows["label"] == 0]
    assert len(neg) and not set(zip(neg["user_id"], neg["item_id"], strict=True)) & set(
        zip(pos["user_id"], pos["item_id"], strict=True))
    # u1 bought i6 only inside the window: the history must not know it
    assert rows.set_index(["user_id", "item_id"]).loc[("u1", "i6"), "p_bought_before"] == 0
    assert rows.set_index(["user_id", "item_id"]).loc[("u1", "i6"), "i_popularity"] == 0
    assert list(rows.columns) == ["user_id", "item_id", *FEATURES, "label", "weight"]
    again = interaction_features(data, negatives_per_positive=3, seed=0, label_days=30)
    pd.testing.assert_frame_equal(rows, again)


def test_interaction_features_with_explicit_targets():
    data = sample_data()
    test = pd.DataFrame({"user_id": ["u1", "u9"], "item_id": ["i1", "i2"],
                         "timestamp": pd.Timestamp("2024-06-01")})
    rows = interaction_features(data, negatives_per_positive=2, seed=1, targets=test)
    pos = rows[rows["label"] == 1].set_index("user_id")
    assert pos.loc["u1", "p_bought_before"] == 1  # the whole data is the history now
    assert pd.isna(pos.loc["u9", "u_history_length"])  # unknown user: missing, no error


# -- the augmenter ---------------------------------------------------------------------
def test_tabular_synthesis_passes_the_kit():
    passed = check_component(TabularSynthesis, config={"rows": 5})
    assert {"no_input_mutation", "same_seed_same_output", "empty_input_ok"} <= set(passed)


def test_tabular_synthesis_adds_pseudo_users():
    data = sample_data()
    out = TabularSynthesis(ratio=2.0).run(data, ctx())
    users = out.users
    fake = users[users["origin"] == "synthetic"]
    assert len(fake) == 8  # 2 x the 4 real users with history
    assert fake["user_id"].is_unique and not set(fake["user_id"]) & set(data.users["user_id"])
    assert (fake["augmenter"] == "tabular_synthesis").all() and (fake["seed"] == 0).all()
    assert fake["history_length"].notna().all()
    assert set(fake["fav_category"]) <= set(data.items["category"])
    assert out.interactions.equals(data.interactions)
    real_users = users[users["origin"] == "real"]
    assert real_users["history_length"].isna().all()  # real rows are left as they were


@pytest.mark.parametrize("module", ["shopaug.augment.tabular", "shopaug.augment.tvae"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
