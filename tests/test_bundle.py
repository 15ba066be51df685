from __future__ import annotations

import pandas as pd
import pytest

from shopaug import ShopData
from shopaug.data.schema import PROVENANCE_NAMES
from shopaug.errors import SchemaError
from shopaug.testing import sample_data


def test_accessors_are_copies_that_never_change_the_bundle(sample):
    before = sample.fingerprint()
    items = sample.items
    items.loc[0, "title"] = "changed"
    items["new"] = 1
    assert sample.items.loc[0, "title"] == "White ceramic mug"
    assert "new" not in sample.items.columns
    assert sample.fingerprint() == before


def test_bundle_attributes_cannot_be_set(sample):
    with pytest.raises(AttributeError, match="immutable"):
        sample.grade_scale = "esci"


def test_every_row_has_provenance_and_real_by_default(sample):
    for name, df in sample.tables().items():
        assert set(PROVENANCE_NAMES) <= set(df.columns), name
        assert (df["origin"] == "real").all()


def test_missing_required_column_names_missing_and_present():
    with pytest.raises(SchemaError) as err:
        ShopData(items=pd.DataFrame({"item_id": ["a"], "name": ["x"]}))
    assert "['title']" in str(err.value) and "'name'" in str(err.value)


def test_unknown_origin_is_rejected():
    items = pd.DataFrame({"item_id": ["a"], "title": ["x"], "origin": ["made-up"]})
    with pytest.raises(SchemaError, match="origin"):
        ShopData(items=items)


def test_append_synthetic_rows_keeps_them_apart(sample):
    synthetic = pd.DataFrame({
        "query_id": ["s1"], "text": ["white mug 350ml"], "origin": ["synthetic"],
        "augmenter": ["doc2query"], "seed": [3], "quality_score": [0.8],
    })
    more = sample.append("queries", synthetic)
    assert more.counts()["queries"] == sample.counts()["queries"] + 1
    assert more.origin_counts()["queries"] == {"real": 4, "synthetic": 1}
    assert more.synthetic().queries["text"].tolist() == ["white mug 350ml"]
    assert more.real().fingerprint() == sample.fingerprint()


def test_judgment_grades_map_to_gains(sample):
    gains = dict(zip(sample.judgments["grade"], sample.judgments["gain"], strict=False))
    assert gains == {"4": 1.0, "2": pytest.approx(1 / 3)}
    assert sample.grade_scale == "1-4"


def test_fingerprint_changes_with_content(sample):
    other = sample.replace(items=sample.items.assign(price=1.0))
    assert other.fingerprint() != sample.fingerprint()


def test_save_load_round_trip(sample, tmp_path):
    sample.save(tmp_path / "bundle")
    again = ShopData.load(tmp_path / "bundle")
    assert again.fingerprint() == sample.fingerprint()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_load_refuses_other_schema_major(sample, tmp_path):
    import json

    sample.save(tmp_path / "bundle")
    meta = tmp_path / "bundle" / "shopdata.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "schema_version": "9.0"}))
    with pytest.raises(SchemaError, match=r"schema version 9\.0"):
        ShopData.load(tmp_path / "bundle")


def test_repr_shows_counts(sample):
    assert "items=6" in repr(sample)


def test_blank_origin_means_real():
    items = pd.DataFrame({"item_id": ["a", "b"], "title": ["x", "y"],
                          "origin": [None, "synthetic"]})
    assert ShopData(items=items).items["origin"].tolist() == ["real", "synthetic"]


def test_keep_augmenters_keeps_real_rows_and_the_named_synthetic_ones() -> None:
    data = sample_data()
    syn = data.interactions.iloc[:2].assign(origin="synthetic", augmenter=["a", "b"])
    data = data.append("interactions", syn)
    n_real = int((data.interactions["origin"] == "real").sum())
    assert data.keep_augmenters(None) is data
    assert len(data.keep_augmenters([]).interactions) == n_real
    kept = data.keep_augmenters(["b"]).interactions
    assert len(kept) == n_real + 1 and set(kept["augmenter"].dropna()) >= {"b"}
    assert "a" not in set(kept.loc[kept["origin"] == "synthetic", "augmenter"])


def _filled(data: ShopData) -> ShopData:
    """``data`` after two augmenters wrote into its real rows: "tagger" adds a column
    and changes a title, "retitler" changes the same title again."""
    items = data.items
    tagged = data.replace(items=items.assign(
        tags=["mug"] + [None] * (len(items) - 1),
        title=["Tagged mug", *items["title"].iloc[1:]])).record_fills(data, "tagger")
    items = tagged.items
    return tagged.replace(items=items.assign(
        title=["Retitled mug", *items["title"].iloc[1:]])).record_fills(tagged, "retitler")


def test_as_if_only_puts_back_what_the_left_out_augmenters_wrote_into_rows(tmp_path):
    data = sample_data()
    filled = _filled(data)
    assert [(f.augmenter, f.column, f.created) for f in filled.fills] == [
        ("tagger", "title", False), ("tagger", "tags", True), ("retitler", "title", False)]
    assert filled.fingerprint() != ShopData(**filled.tables()).fingerprint()

    none = filled.as_if_only([])
    pd.testing.assert_frame_equal(none.items, data.items)  # the new column goes too
    assert none.fills == ()
    only_tagger = filled.as_if_only(["tagger"])
    assert only_tagger.items["title"].iloc[0] == "Tagged mug"
    assert only_tagger.items["tags"].iloc[0] == "mug"
    # the later augmenter's value sat on the left-out one's: the real value comes back
    assert filled.as_if_only(["retitler"]).items["title"].iloc[0] == data.items["title"][0]
    assert filled.as_if_only(None) is filled
    assert filled.as_if_only(["tagger", "retitler"]).items.equals(filled.items)

    loaded = ShopData.load(filled.save(tmp_path / "saved"))
    assert loaded.fingerprint() == filled.fingerprint()
    pd.testing.assert_frame_equal(loaded.as_if_only([]).items, data.items)


def test_row_operations_keep_the_fills_and_an_unchanged_bundle_records_none():
    data = sample_data()
    filled = _filled(data)
    synthetic = filled.items.iloc[:1].assign(item_id="new", origin="synthetic",
                                             augmenter="maker")
    grown = filled.append("items", synthetic)
    assert len(grown.fills) == 3 and len(grown.select("real").fills) == 3
    # an augmenter that only adds rows fills nothing
    assert grown.record_fills(filled, "maker").fills == filled.fills
    assert "new" in set(grown.as_if_only(["maker"]).items["item_id"])
    assert "new" not in set(grown.as_if_only(["tagger"]).items["item_id"])
    assert data.record_fills(data, "noop") is data
