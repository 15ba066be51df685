"""Simulated first buyers for never-sold items (ColdLLM's embedding funnel)."""

from __future__ import annotations

import pandas as pd

from shopaug.augment.attribute_users import AttributeUsers
from shopaug.augment.cold_items import ColdItemSimulation
from shopaug.data.bundle import ShopData
from shopaug.models.rec.itemknn import ItemKNN
from shopaug.pipeline.runner import RunContext
from shopaug.quality.decontaminate import decontaminate
from shopaug.testing import check_component, sample_data

DAY = pd.Timestamp("2024-01-01")


def _shop(extra: list[tuple[str, str, int]] = ()) -> ShopData:
    titles = {"m1": "White ceramic coffee mug", "m2": "Blue ceramic tea cup",
              "m3": "Espresso cup set porcelain", "g1": "Garden gnome statue",
              "g2": "Garden lawn mower", "g3": "Garden hose reel"}
    items = pd.DataFrame({"item_id": list(titles), "title": list(titles.values())})
    rows = [("u_kitchen", "m1", 0), ("u_kitchen", "m2", 1), ("u_garden", "g1", 0),
            ("u_garden", "g2", 1), ("u_other", "g1", 2), ("u_other", "g2", 3), *extra]
    inter = pd.DataFrame([{"user_id": u, "item_id": i, "timestamp": DAY + pd.Timedelta(days=d)}
                          for u, i, d in rows])
    return ShopData(items=items, interactions=inter)


def _run(data: ShopData, tmp_path, **config) -> ShopData:
    return ColdItemSimulation(threads=1, **config).run(data, RunContext(seed=0, run_dir=tmp_path))


def _synthetic(data: ShopData) -> pd.DataFrame:
    return data.interactions[data.interactions["origin"] == "synthetic"]


def test_conformance() -> None:
    check_component(ColdItemSimulation, sample_data(), {"threads": 1, "n_users": 2})


def test_never_sold_items_get_the_buyers_whose_taste_is_closest(tmp_path) -> None:
    data = _shop()
    aug = ColdItemSimulation(threads=1, n_users=1, weight=0.4, activity_weight=0.0)
    out = aug.run(data, RunContext(seed=0, run_dir=tmp_path))
    syn = _synthetic(out).set_index("item_id")
    assert sorted(syn.index) == ["g3", "m3"]  # bought items are left alone
    assert syn.at["m3", "user_id"] == "u_kitchen"
    assert syn.at["g3", "user_id"] in {"u_garden", "u_other"}
    assert (syn["value"] == 0.4).all() and (syn["event"] == "simulated").all()
    assert (syn["timestamp"] == data.interactions["timestamp"].max()).all()
    assert (syn["augmenter"] == "cold_item_simulation").all()
    assert aug.report_ == {"cold_items": 2, "items": 2, "rows": 2}
    # the real rows are untouched
    pd.testing.assert_frame_equal(out.interactions[out.interactions["origin"] == "real"]
                                  [data.interactions.columns].reset_index(drop=True),
                                  data.interactions.reset_index(drop=True), check_dtype=False)


def test_max_buyers_widens_cold_and_n_users_caps_buyers(tmp_path) -> None:
    syn = _synthetic(_run(_shop(), tmp_path, max_buyers=1, n_users=2))
    # m1 and m2 have one buyer each, g1 and g2 two
    assert set(syn["item_id"]) == {"m1", "m2", "m3", "g3"}
    assert syn.groupby("item_id").size().max() == 2
    assert not syn.duplicated(["user_id", "item_id"]).any()


def test_the_activity_prior_favours_shoppers_who_bought_much_lately(tmp_path) -> None:
    busy = [("u_other", "m1", 4), ("u_other", "m2", 5), ("u_other", "g2", 6)]
    syn = _synthetic(_run(_shop(busy), tmp_path, n_users=1, activity_weight=10.0))
    assert set(syn["user_id"]) == {"u_other"}


def test_pseudo_users_are_never_simulated_buyers(tmp_path) -> None:
    ctx = RunContext(seed=0, run_dir=tmp_path)
    with_pseudo = AttributeUsers(source="title").run(_shop(), ctx)
    assert with_pseudo.interactions["user_id"].str.startswith("attr~").any()
    syn = _synthetic(_run(with_pseudo, tmp_path, n_users=3))
    syn = syn[syn["augmenter"] == "cold_item_simulation"]
    assert set(syn["user_id"]) <= {"u_kitchen", "u_garden", "u_other"}


def test_collaborative_models_can_then_recommend_the_cold_item(tmp_path) -> None:
    data = _shop()
    plain = ItemKNN().fit(data).recommend(["u_kitchen"], k=6)
    augmented = ItemKNN().fit(_run(data, tmp_path, n_users=1, activity_weight=0.0))
    recs = augmented.recommend(["u_kitchen"], k=6)
    score = lambda r: r.set_index("item_id")["score"].get("m3", 0.0)  # noqa: E731
    assert score(plain) <= 0 < score(recs)


def test_decontamination_can_keep_predicted_test_purchases(tmp_path) -> None:
    out = _run(_shop(), tmp_path, n_users=1, activity_weight=0.0)
    test = ShopData(items=_shop().items, interactions=pd.DataFrame(
        {"user_id": ["u_kitchen"], "item_id": ["m3"], "timestamp": [DAY + pd.Timedelta(days=9)]}))
    dropped, report = decontaminate(out, test)
    assert report["interactions"] == 1
    assert not ((dropped.interactions["user_id"] == "u_kitchen")
                & (dropped.interactions["item_id"] == "m3")).any()
    kept, report = decontaminate(out, test, interactions=False)
    assert report["interactions_kept"] == 1 and report["interactions"] == 0
    assert len(kept.interactions) == len(out.interactions)
