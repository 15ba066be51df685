"""Loaders of published data sets (ESCI, WANDS, CrowdFlower, Amazon Reviews 2023),
tested on small hand-written fixtures in the published file formats."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import shopaug
from shopaug.data.loaders.amazon_reviews import parse_price
from shopaug.data.loaders.wands import parse_features

DATA = Path(__file__).parent / "data"
ESCI, WANDS, CF, AMAZON = (DATA / n for n in ("esci", "wands", "crowdflower", "amazon_reviews"))
EXAMPLES = "shopping_queries_dataset_examples.parquet"
PRODUCTS = "shopping_queries_dataset_products.parquet"


def grades(data: shopaug.ShopData) -> dict[tuple[str, str], tuple[str, float]]:
    j = data.judgments
    return {(q, i): (g, round(x, 4)) for q, i, g, x in
            zip(j["query_id"], j["item_id"], j["grade"], j["gain"], strict=True)}


def load_error(path: Path, fmt: str, **options: object) -> str:
    with pytest.raises(shopaug.DataValidationError) as info:
        shopaug.load(path, format=fmt, **options)
    return str(info.value)


def all_real(data: shopaug.ShopData) -> bool:
    return all(set(df["origin"]) <= {"real"} for df in data.tables().values())


# -- ESCI ---------------------------------------------------------------------------------
def test_esci_default_us_small_version() -> None:
    result = shopaug.load(ESCI, format="esci")
    data, report = result.data, result.report
    assert data.counts() == {"items": 4, "users": 0, "interactions": 0, "queries": 2,
                             "judgments": 4}
    assert report.cleaning == {"products of other locales (not 'us')": 3,
                               "examples of other locales (not 'us')": 2,
                               "examples not in the small version": 1}
    assert grades(data) == {("0", "B001"): ("E", 1.0), ("0", "B002"): ("S", 0.1),
                            ("0", "B003"): ("I", 0.0), ("1", "B004"): ("C", 0.01)}
    assert data.grade_scale == report.grade_scale == "esci"
    queries = data.queries.set_index("query_id")
    assert queries.loc["0", "text"] == "wireless mouse"
    assert queries["esci_split"].to_dict() == {"0": "train", "1": "test"}
    items = data.items.set_index("item_id")
    assert items.loc["B001", "title"] == "Logitech M185 Wireless Mouse"
    assert items.loc["B001", "brand"] == "Logitech"
    assert json.loads(items.loc["B001", "attributes"]) == {
        "color": "Grey", "bullet_points": ["Plug-and-play", "One-year battery life"]}
    assert pd.isna(items.loc["B002", "attributes"])
    assert all_real(data)


def test_esci_japanese_locale_keeps_its_own_products() -> None:
    data = shopaug.load(ESCI, format="esci", locale="jp").data
    assert sorted(data.items["item_id"]) == ["B001", "J001"]
    assert data.items.set_index("item_id").loc["J001", "title"] == "象印 保温杯 不锈钢 480ml"
    assert data.queries["text"].tolist() == ["保温杯 不锈钢"]
    assert grades(data) == {("2", "J001"): ("E", 1.0)}


def test_esci_large_version_and_split_selection() -> None:
    large = shopaug.load(ESCI, format="esci", version="large")
    assert large.data.counts()["judgments"] == 5
    assert "examples not in the large version" not in large.report.cleaning
    assert grades(large.data)[("1", "B001")] == ("I", 0.0)
    test_only = shopaug.load(ESCI, format="esci", splits=["test"])
    assert test_only.data.queries["query_id"].tolist() == ["1"]
    assert grades(test_only.data) == {("1", "B004"): ("C", 0.01)}
    assert test_only.report.cleaning["examples of other splits (not ['test'])"] == 3


def test_esci_missing_products_file(tmp_path: Path) -> None:
    shutil.copy(ESCI / EXAMPLES, tmp_path)
    message = load_error(tmp_path, "esci")
    assert f"{PRODUCTS}: file not found" in message
    assert EXAMPLES not in message


def test_esci_missing_column_names_missing_and_present(tmp_path: Path) -> None:
    shutil.copy(ESCI / PRODUCTS, tmp_path)
    examples = pd.read_parquet(ESCI / EXAMPLES).drop(columns=["esci_label"])
    examples.to_parquet(tmp_path / EXAMPLES)
    message = load_error(tmp_path, "esci")
    assert "missing required column(s) ['esci_label']" in message
    assert "the file has ['example_id', 'query', 'query_id', 'product_id'" in message


def test_esci_bad_label_is_reported_with_row_and_can_be_quarantined(tmp_path: Path) -> None:
    shutil.copy(ESCI / PRODUCTS, tmp_path)
    examples = pd.read_parquet(ESCI / EXAMPLES)
    examples.loc[1, "esci_label"] = "X"
    examples.to_parquet(tmp_path / EXAMPLES)
    message = load_error(tmp_path, "esci")
    assert f"{EXAMPLES} row 2, column 'esci_label': grade not on the 'esci' scale" in message
    assert "(got 'X')" in message
    result = shopaug.load(tmp_path, format="esci", on_bad_rows="quarantine",
                          quarantine_dir=str(tmp_path / "q"))
    assert ("0", "B002") not in grades(result.data)
    assert result.data.counts()["judgments"] == 3
    assert result.report.quarantined == {"judgments": 1}
    bad = pd.read_csv(tmp_path / "q" / "judgments.quarantine.csv")
    assert bad["grade"].tolist() == ["X"] and "not on the 'esci' scale" in bad["_reason"][0]


# -- WANDS --------------------------------------------------------------------------------
def test_wands_fixture() -> None:
    result = shopaug.load(WANDS, format="wands")
    data = result.data
    assert data.counts() == {"items": 3, "users": 0, "interactions": 0, "queries": 3,
                             "judgments": 4}
    assert grades(data) == {("0", "2"): ("Irrelevant", 0.0), ("2", "0"): ("Exact", 1.0),
                            ("2", "1"): ("Irrelevant", 0.0), ("1", "2"): ("Partial", 0.5)}
    assert result.report.grade_scale == "wands" and result.report.cleaning == {}
    items = data.items.set_index("item_id")
    assert items.loc["0", "title"] == "solid wood platform bed"
    assert items.loc["0", "category"] == "Beds"
    assert json.loads(items.loc["0", "attributes"]) == {
        "category_hierarchy": ["Furniture", "Bedroom Furniture", "Beds & Headboards", "Beds"],
        "product_features": {"overallwidth-sidetoside": "64.7",
                             "dsprimaryproductstyle": "modern", "bedsize": "queen"},
        "rating_count": 15, "average_rating": 4.5, "review_count": 15,
    }
    slow_cooker = json.loads(items.loc["1", "attributes"])
    assert slow_cooker["product_features_unparsed"] == ["handmade"]
    queries = data.queries.set_index("query_id")
    assert queries.loc["1", "text"] == "smart coffee table"
    assert queries.loc["1", "query_class"] == "Coffee & Cocktail Tables"
    assert all_real(data)


def test_wands_feature_parsing() -> None:
    assert parse_features("a:1|b:x:y| |loose") == ({"a": "1", "b": "x:y"}, ["loose"])
    assert parse_features(None) == ({}, [])


def test_wands_without_label_file_names_it(tmp_path: Path) -> None:
    shutil.copy(WANDS / "query.csv", tmp_path)
    shutil.copy(WANDS / "product.csv", tmp_path)
    message = load_error(tmp_path, "wands")
    assert "WANDS file label.csv not found" in message
    assert "product.csv not found" not in message
    assert "github.com/wayfair/WANDS" in message


def test_wands_missing_column_and_bad_label(tmp_path: Path) -> None:
    for name in ("product.csv", "query.csv"):
        shutil.copy(WANDS / name, tmp_path)
    (tmp_path / "label.csv").write_text("id\tquery_id\tproduct_id\trelevance\n0\t0\t2\tExact\n")
    message = load_error(tmp_path, "wands")
    assert "label.csv: missing required column(s) ['label']" in message
    assert "the file has ['id', 'query_id', 'product_id', 'relevance']" in message

    (tmp_path / "label.csv").write_text(
        "id\tquery_id\tproduct_id\tlabel\n0\t0\t2\tExact\n1\t2\t0\tMaybe\n")
    message = load_error(tmp_path, "wands")
    assert "label.csv row 2, column 'label': grade not on the 'wands' scale" in message
    assert "(got 'Maybe')" in message


def test_wands_label_for_unknown_product_is_reported(tmp_path: Path) -> None:
    for name in ("product.csv", "query.csv"):
        shutil.copy(WANDS / name, tmp_path)
    (tmp_path / "label.csv").write_text(
        "id\tquery_id\tproduct_id\tlabel\n0\t0\t2\tExact\n1\t0\t99\tPartial\n")
    message = load_error(tmp_path, "wands")
    assert "label.csv row 2, column 'product_id': unknown item_id (not in product.csv)" in message


# -- CrowdFlower ----------------------------------------------------------------------------
def cf_item(title: str, description: str = "") -> str:
    return "cf-" + hashlib.sha1(f"{title}\x1f{description}".encode()).hexdigest()[:12]


def cf_query(text: str) -> str:
    return "q-" + hashlib.sha1(text.encode()).hexdigest()[:10]


@pytest.mark.parametrize("path", [CF / "train.csv", CF])
def test_crowdflower_fixture(path: Path) -> None:
    result = shopaug.load(path, format="crowdflower")
    data = result.data
    assert data.counts() == {"items": 4, "users": 0, "interactions": 0, "queries": 3,
                             "judgments": 5}
    assert result.report.cleaning == {
        "duplicate judged pairs (same query and product; first kept)": 1}
    rack = cf_item("Oak 6-Bottle Wall Wine Rack, Walnut", 'Holds six bottles. 12" x 8".')
    bucket = cf_item("Stainless Steel Ice Bucket")
    tv = cf_item('40" LED HDTV 1080p', "<ul><li>Full HD</li>\n<li>3 HDMI ports</li></ul>")
    cup = cf_item("不锈钢 保温杯 500ml", "双层真空 保温 12 小时")
    assert sorted(data.items["item_id"]) == sorted([rack, bucket, tv, cup])
    assert dict(zip(data.queries["query_id"], data.queries["text"], strict=True)) == {
        cf_query("wine rack"): "wine rack", cf_query("led tv"): "led tv",
        cf_query("保温杯"): "保温杯"}
    # "Wine Rack " (row 3) normalises to the pair of row 1: the first grade (4) is kept.
    assert grades(data) == {
        (cf_query("wine rack"), rack): ("4", 1.0),
        (cf_query("wine rack"), bucket): ("2", 0.3333),
        (cf_query("led tv"), tv): ("4", 1.0),
        (cf_query("保温杯"), cup): ("4", 1.0),
        (cf_query("led tv"), bucket): ("1", 0.0),
    }
    variance = dict(zip(data.judgments["item_id"] + data.judgments["query_id"],
                        data.judgments["relevance_variance"], strict=True))
    assert variance[bucket + cf_query("wine rack")] == pytest.approx(0.471)
    assert data.grade_scale == "1-4"
    assert all_real(data)


def test_crowdflower_missing_file(tmp_path: Path) -> None:
    message = load_error(tmp_path, "crowdflower")
    assert "train.csv: file not found" in message


def test_crowdflower_missing_column(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "id,query,product_title,product_description,relevance_variance\n1,mug,Mug,,0.0\n")
    message = load_error(tmp_path / "train.csv", "crowdflower")
    assert "missing required column(s) ['median_relevance']" in message
    assert ("the file has ['id', 'query', 'product_title', 'product_description', "
            "'relevance_variance']") in message


def test_crowdflower_bad_rows_point_at_train_csv_data_rows(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text(
        "id,query,product_title,product_description,median_relevance,relevance_variance\n"
        '1,mug,Red mug,"two\nlines",4,0.0\n'
        "2,mug,Blue mug,,5,0.0\n"
        "3,mug,,no title,3,0.0\n", encoding="utf-8")
    message = load_error(tmp_path, "crowdflower")
    assert "train.csv row 2, column 'median_relevance': grade not on the '1-4' scale" in message
    assert "(got '5')" in message
    assert "train.csv row 3, column 'product_title': empty value" in message


# -- Amazon Reviews 2023 ------------------------------------------------------------------
def test_amazon_reviews_fixture() -> None:
    result = shopaug.load(AMAZON, format="amazon_reviews")
    data = result.data
    assert data.counts() == {"items": 4, "users": 3, "interactions": 5, "queries": 0,
                             "judgments": 0}
    items = data.items.set_index("item_id")
    assert items.loc["B076WQZGPM", "price"] == 9.99
    assert pd.isna(items.loc["B01CUPMQZE", "price"])  # "None"
    assert pd.isna(items.loc["B0CHINA001", "price"])  # null
    assert items.loc["B076WQZGPM", "description"] == "Deep cleans pores.\nRinse with warm water."
    assert items.loc["B076WQZGPM", "brand"] == "Yes To"
    assert items.loc["B076WQZGPM", "category"] == "All Beauty"
    assert items.loc["B0CHINA001", "category"] == "Hand Care"  # no main_category
    assert items.loc["B0CHINA001", "title"] == "玫瑰精油 护手霜 50g"
    attrs = json.loads(items.loc["B076WQZGPM", "attributes"])
    assert attrs["Item Form"] == "Gel"
    assert attrs["features"] == ["Gentle enough for daily use", "Charcoal and tomato extract"]
    assert json.loads(items.loc["B0SPONGE01", "attributes"])["price_text"] == "from 5.99 to 9.99"
    inter = data.interactions
    assert set(inter["event"]) == {"rating"}
    assert inter["value"].tolist() == [5.0, 4.0, 2.0, 5.0, 1.0]
    assert inter["timestamp"].iloc[0] == pd.Timestamp("2020-05-05 14:08:48.923")
    assert inter["item_id"].iloc[3] == "B0CHINA001"
    assert inter["review_text"].iloc[3] == "味道很香，吸收快。"
    assert sorted(data.users["user_id"]) == sorted(set(inter["user_id"]))
    assert all_real(data)


def test_amazon_reviews_min_rating_and_gzipped_named_files(tmp_path: Path) -> None:
    for name in ("All_Beauty.jsonl", "meta_All_Beauty.jsonl"):
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress((AMAZON / name).read_bytes()))
    result = shopaug.load(tmp_path, format="amazon_reviews", min_rating=3)
    assert result.report.cleaning == {"reviews rated below 3": 2}
    assert result.data.interactions["value"].tolist() == [5.0, 4.0, 5.0]
    assert result.data.counts()["users"] == 2
    named = shopaug.load(tmp_path, format="amazon_reviews",
                         reviews_file="All_Beauty.jsonl.gz",
                         meta_file=str(tmp_path / "meta_All_Beauty.jsonl.gz"))
    assert named.data.counts()["interactions"] == 5


def test_parse_price() -> None:
    assert parse_price(12) == 12.0
    assert parse_price("$1,299.00") == 1299.0
    assert parse_price("None") is None and parse_price(None) is None
    assert parse_price("from 5 to 9") is None


def test_amazon_reviews_missing_meta_file(tmp_path: Path) -> None:
    shutil.copy(AMAZON / "All_Beauty.jsonl", tmp_path)
    message = load_error(tmp_path, "amazon_reviews")
    assert "0 candidate meta files []" in message
    assert "set meta_file" in message


def test_amazon_reviews_missing_column(tmp_path: Path) -> None:
    shutil.copy(AMAZON / "meta_All_Beauty.jsonl", tmp_path)
    lines = (AMAZON / "All_Beauty.jsonl").read_text().splitlines()
    records = [{k: v for k, v in json.loads(line).items() if k != "user_id"} for line in lines]
    (tmp_path / "All_Beauty.jsonl").write_text("\n".join(map(json.dumps, records)))
    message = load_error(tmp_path, "amazon_reviews")
    assert "All_Beauty.jsonl: missing required column(s) ['user_id']" in message
    assert "'parent_asin'" in message and "'rating'" in message


def test_amazon_reviews_orphans_and_bad_ratings_are_reported(tmp_path: Path) -> None:
    shutil.copy(AMAZON / "meta_All_Beauty.jsonl", tmp_path)
    extra = [{"rating": 4.0, "parent_asin": "B0MISSING0", "user_id": "U1",
              "timestamp": 1672531200000},
             {"rating": "great", "parent_asin": "B0SPONGE01", "user_id": "U2",
              "timestamp": 1672531200000}]
    text = (AMAZON / "All_Beauty.jsonl").read_text() + "\n".join(map(json.dumps, extra))
    (tmp_path / "All_Beauty.jsonl").write_text(text)
    message = load_error(tmp_path, "amazon_reviews")
    assert ("All_Beauty.jsonl row 6, column 'parent_asin': unknown item_id "
            "(not in meta_All_Beauty.jsonl)") in message
    assert "All_Beauty.jsonl row 7, column 'rating': not a number" in message
