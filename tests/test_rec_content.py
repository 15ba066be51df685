"""The content recommender: text embeddings meet purchase histories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shopaug.data.bundle import ShopData
from shopaug.models.rec.content import ContentRecommender, attribute_text, rec_item_text
from shopaug.testing import check_component, sample_data


def test_conformance() -> None:
    report = check_component(ContentRecommender, sample_data(), {"threads": 1})
    assert "same_seed_same_output" in report


def test_attribute_text_reads_enriched_values_only() -> None:
    attrs = {"colour": {"value": "red", "grounded": True}, "material": "wool",
             "style": {"value": ["casual", "warm"]}, "_provenance": {"augmenter": "x"}}
    assert attribute_text(json.dumps(attrs)) == "colour: red; material: wool; style: casual, warm"
    assert attribute_text(None) == "" and attribute_text("not json") == ""
    items = pd.DataFrame({"title": ["Scarf"], "attributes": [json.dumps(attrs)]})
    assert "colour: red" in rec_item_text(items).iloc[0]
    assert "colour" not in rec_item_text(items, use_attributes=False).iloc[0]


def test_grounded_only_drops_the_values_an_enrichment_inferred() -> None:
    attrs = {"colour": {"value": "pink", "grounded": True},
             "category": {"value": "food", "grounded": False}, "size": "60cm"}
    text = attribute_text(json.dumps(attrs), grounded_only=True)
    assert "colour: pink" in text and "size: 60cm" in text and "food" not in text
    assert "category: food" in attribute_text(json.dumps(attrs))
    items = pd.DataFrame({"title": ["Pink skull charm"], "attributes": [json.dumps(attrs)]})
    assert "food" not in rec_item_text(items, grounded_only=True).iloc[0]


def _shop() -> ShopData:
    titles = {"m1": "White ceramic coffee mug", "m2": "Blue ceramic tea cup",
              "m3": "Espresso cup set porcelain", "g1": "Garden gnome statue",
              "g2": "Garden lawn mower", "g3": "Garden hose reel"}
    items = pd.DataFrame({"item_id": list(titles), "title": list(titles.values())})
    day = pd.Timestamp("2024-01-01")
    rows = [("u_kitchen", "m1", 0), ("u_kitchen", "m2", 1), ("u_garden", "g1", 0),
            ("u_garden", "g2", 1), ("u_other", "g1", 2), ("u_other", "g2", 3)]
    inter = pd.DataFrame([{"user_id": u, "item_id": i, "timestamp": day + pd.Timedelta(days=d),
                           "value": 1.0} for u, i, d in rows])
    return ShopData(items=items, interactions=inter)


def test_recommends_by_meaning_including_items_nobody_bought() -> None:
    model = ContentRecommender(threads=1, popularity_weight=0.0, exclude_seen=True).fit(_shop())
    recs = model.recommend(["u_kitchen", "u_garden"], k=1).set_index("user_id")["item_id"]
    assert recs["u_kitchen"] == "m3"  # never bought by anyone: cold, but a cup
    assert recs["u_garden"] == "g3"


def test_new_arrivals_only_recommends_items_with_few_enough_buyers() -> None:
    data = _shop()  # m3 and g3 were never bought; g1 and g2 by two users each
    never = ContentRecommender(threads=1, max_item_buyers=0).fit(data)
    recs = never.recommend(["u_kitchen", "u_garden", "stranger"], k=5)
    assert set(recs["item_id"]) == {"m3", "g3"}
    assert recs.groupby("user_id").size().eq(2).all()  # k is capped at the allowed items
    top = recs[recs["rank"] == 1].set_index("user_id")["item_id"]
    assert top["u_kitchen"] == "m3" and top["u_garden"] == "g3"
    # synthetic buyers do not make an item "sold": the threshold counts real ones
    synthetic = data.interactions.iloc[:1].assign(item_id="m3", origin="synthetic")
    shop = data.append("interactions", synthetic)
    assert "m3" in set(ContentRecommender(threads=1, max_item_buyers=0).fit(shop)
                       .recommend(["u_kitchen"], k=2)["item_id"])
    one = ContentRecommender(threads=1, max_item_buyers=1).fit(data)
    assert set(one.recommend(["u_kitchen"], k=6)["item_id"]) == {"m1", "m2", "m3", "g3"}


def test_unknown_user_gets_the_popularity_prior_and_profiles_steer() -> None:
    data = _shop()
    model = ContentRecommender(threads=1).fit(data)
    top = model.recommend(["stranger"], k=2)["item_id"].tolist()
    assert set(top) == {"g1", "g2"}  # the two best sellers
    users = pd.DataFrame({"user_id": ["stranger"], "profile_text": ["loves coffee and tea"]})
    profiled = ContentRecommender(threads=1, popularity_weight=0.0).fit(
        data.replace(users=users))
    assert profiled.recommend(["stranger"], k=1)["item_id"].iloc[0].startswith("m")


@pytest.mark.parametrize("value", [0.0, 5.0])
def test_synthetic_weight_moves_the_taste(value: float) -> None:
    data = _shop()
    synth = pd.DataFrame({"user_id": ["u_other"] * 2, "item_id": ["m1", "m2"],
                          "timestamp": pd.Timestamp("2024-01-04"), "value": value,
                          "origin": "synthetic", "augmenter": "t"})
    model = ContentRecommender(threads=1, popularity_weight=0.0, exclude_seen=True).fit(
        data.append("interactions", synth))
    top = model.recommend(["u_other"], k=1)["item_id"].iloc[0]
    assert top.startswith("g" if value == 0.0 else "m")
    vec = model.item_vectors(["m1", "nope"])
    assert np.isclose(np.linalg.norm(vec[0]), 1.0, atol=1e-4) and not vec[1].any()


def test_attribute_weight_blends_the_values_in_and_bounds_how_far_an_item_moves() -> None:
    from shopaug.models.rec.content import embed_texts

    attrs = json.dumps({"colour": {"value": "red", "grounded": True}})
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["Wool scarf", "Tea cup"],
                          "attributes": [attrs, None]})
    data = ShopData(items=items)
    raw, values, joined = embed_texts(["Wool scarf", "colour: red",
                                       "Wool scarf. colour: red", "Tea cup"], threads=1)[:3]
    vectors = {}
    for weight in (None, 0.0, 0.2, 5.0):
        model = ContentRecommender(threads=1, attribute_weight=weight).fit(data)
        vectors[weight] = model.item_vectors(["a", "b"])
        assert np.allclose(np.linalg.norm(vectors[weight], axis=1), 1, atol=1e-5)
    assert np.allclose(vectors[None][0], joined, atol=1e-5)  # appended to the text
    assert np.allclose(vectors[0.0][0], raw, atol=1e-5)
    expected = (raw + 0.2 * values) / np.linalg.norm(raw + 0.2 * values)
    assert np.allclose(vectors[0.2][0], expected, atol=1e-5)
    # the more weight, the closer to the values; an item without values never moves
    assert raw @ vectors[0.2][0] > raw @ vectors[5.0][0]
    assert values @ vectors[5.0][0] > values @ vectors[0.2][0]
    for weight in (0.0, 0.2, 5.0):
        assert np.allclose(vectors[weight][1], vectors[0.0][1], atol=1e-6)
