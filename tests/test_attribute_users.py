"""Attribute pseudo-users: shared title words and enriched values as weighted pseudo-buyers."""

from __future__ import annotations

import json

import pandas as pd

from shopaug.augment.attribute_users import AttributeUsers
from shopaug.data.bundle import ShopData
from shopaug.models.rec.itemknn import ItemKNN
from shopaug.pipeline.runner import RunContext
from shopaug.testing import check_component, sample_data


def _shop() -> ShopData:
    items = pd.DataFrame({
        "item_id": ["a", "b", "c", "d"],
        "title": ["WHITE HEART LANTERN", "RED HEART LANTERN", "Garden hose", "Blue mug"],
        "attributes": [None, None, None,
                       json.dumps({"material": {"value": "ceramic", "grounded": False}})],
    })
    day = pd.Timestamp("2024-01-01")
    inter = pd.DataFrame({"user_id": ["u1", "u2", "u2"], "item_id": ["a", "c", "d"],
                          "timestamp": [day, day, day + pd.Timedelta(days=1)]})
    return ShopData(items=items, interactions=inter)


def _run(data: ShopData, tmp_path, **config) -> ShopData:
    return AttributeUsers(**config).run(data, RunContext(seed=0, run_dir=tmp_path))


def test_conformance() -> None:
    check_component(AttributeUsers, sample_data(), {"min_items": 2})


def test_shared_words_become_weighted_pseudo_users(tmp_path) -> None:
    out = _run(_shop(), tmp_path, source="title", weight=0.3)
    syn = out.interactions[out.interactions["origin"] == "synthetic"]
    # "heart" and "lantern" are shared by a and b; "white", "red", "garden" are not shared
    assert set(syn["user_id"]) == {"attr~word:heart", "attr~word:lantern"}
    assert set(syn["item_id"]) == {"a", "b"} and (syn["value"] == 0.3).all()
    assert (syn["timestamp"] == _shop().interactions["timestamp"].min()).all()
    assert set(syn["user_id"]) <= set(out.users["user_id"])
    assert (out.users.loc[out.users["user_id"].str.startswith("attr~"), "origin"]
            == "synthetic").all()


def test_cold_item_gets_neighbours_through_its_words(tmp_path) -> None:
    data = _shop()
    plain = ItemKNN().fit(data).recommend(["u1"], k=4)
    augmented = ItemKNN().fit(_run(data, tmp_path, source="title")).recommend(["u1"], k=4)
    score = lambda recs, item: recs.set_index("item_id")["score"].get(item, 0.0)  # noqa: E731
    assert score(plain, "b") <= 0 < score(augmented, "b")  # b was never bought


def test_enriched_values_and_grounded_only(tmp_path) -> None:
    data = _shop()
    items = data.items.copy()
    items.loc[items["item_id"] == "c", "attributes"] = json.dumps(
        {"material": {"value": "Ceramic", "grounded": True}})
    data = data.replace(items=items)
    both = _run(data, tmp_path, source="attributes")
    assert set(both.synthetic().interactions["user_id"]) == {"attr~material:ceramic"}
    grounded = _run(data, tmp_path, source="attributes", grounded_only=True)
    assert grounded.synthetic().interactions.empty  # only c's value is grounded: no pair
