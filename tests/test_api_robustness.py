"""The Python API under misuse, as found by a notebook-style QA pass: each case is a
ShopAugError that says what to fix, or a correct result, never a KeyError from deep
inside pandas, a metric above 1, or a deleted directory."""

from __future__ import annotations

import pandas as pd
import pytest

import shopaug
from shopaug import ShopData
from shopaug.errors import (
    ArtifactError,
    ConfigError,
    DataValidationError,
    RegistryError,
    SchemaError,
)

ITEMS = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["Mug", "Cup", "Jar"]})
EVENTS = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2"], "item_id": ["a", "b", "a", "c"],
                       "timestamp": pd.to_datetime(["2024-01-01", "2024-01-03", "2024-01-02",
                                                    "2024-01-06"])})


def test_a_wrong_value_in_a_frame_names_its_row():
    with pytest.raises(DataValidationError, match=r"row 1, column 'price': not a number"):
        ShopData(items=ITEMS.assign(price=["cheap", 1, 2]))


@pytest.mark.parametrize("tables, message", [
    ({"items": pd.DataFrame({"item_id": ["a", None], "title": ["Mug", "Cup"]})},
     "'items': 1 row.s. with no item_id .rows \\[2\\]"),
    ({"items": ITEMS.assign(title=["Mug", "", "Jar"])}, "with no title"),
    ({"items": ITEMS, "interactions": EVENTS.assign(timestamp=pd.NaT)}, "with no timestamp"),
])
def test_rows_without_an_id_title_or_time_are_refused(tables, message):
    with pytest.raises(SchemaError, match=message):
        ShopData(**tables)


def test_attributes_given_as_dicts_become_json_text(tmp_path):
    data = ShopData(items=ITEMS.assign(attributes=[{"colour": "red"}, None, '{"size": 2}']))
    assert data.items["attributes"].iloc[0] == '{"colour": "red"}'
    again = ShopData.load(data.save(tmp_path / "bundle"))
    assert again.fingerprint() == data.fingerprint()


def test_judgments_of_another_scale_do_not_mix_in():
    queries = pd.DataFrame({"query_id": ["q1"], "text": ["mug"]})
    ones = ShopData(items=ITEMS, queries=queries, grade_scale="1-4", judgments=pd.DataFrame(
        {"query_id": ["q1"], "item_id": ["a"], "grade": ["4"]}))
    esci = ShopData(items=ITEMS, queries=queries, grade_scale="esci", judgments=pd.DataFrame(
        {"query_id": ["q1"], "item_id": ["b"], "grade": ["E"]}))
    with pytest.raises(SchemaError, match=r"grades \['E'\] are not on this bundle's '1-4'"):
        ones.append("judgments", esci.judgments)


def test_save_never_replaces_a_directory_or_file_that_is_not_a_bundle(tmp_path):
    data = ShopData(items=ITEMS)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="holds other files"):
        data.save(mine)
    with pytest.raises(ArtifactError, match="it is a file"):
        data.save(mine / "notes.txt")
    assert (mine / "notes.txt").read_text() == "keep me"
    data.save(tmp_path / "bundle")
    data.save(tmp_path / "bundle")  # a saved bundle is replaced as a whole
    assert ShopData.load(tmp_path / "bundle").counts()["items"] == 3


def test_a_damaged_bundle_says_so(tmp_path):
    path = ShopData(items=ITEMS).save(tmp_path / "bundle")
    (path / "users.parquet").unlink()
    with pytest.raises(ArtifactError, match="damaged ShopData"):
        ShopData.load(path)
    (path / "shopdata.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="damaged ShopData"):
        ShopData.load(path)


def test_duplicates_cannot_push_a_metric_above_one():
    from shopaug.evaluate.ranking import per_group_metrics

    truth = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "a"], "gain": [1.0, 1.0]})
    ranked = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "a", "b"], "rank": [1, 2, 3]})
    row = per_group_metrics(ranked, truth, ks=(2,)).iloc[0]
    assert row["recall@2"] == 1.0 and row["map@2"] == 1.0 and row["ndcg@2"] == 1.0
    assert row["precision@2"] == 0.5  # the duplicate still took a slot
    with pytest.raises(ConfigError, match="ks must be positive"):
        per_group_metrics(ranked, truth, ks=(0,))


@pytest.mark.parametrize("model", ["popularity", "itemknn", "content"])
def test_every_recommender_checks_its_request(model):
    from shopaug import registry

    fitted = registry.create("recommender", model).fit(ShopData(items=ITEMS,
                                                                interactions=EVENTS))
    for user_ids, k, message in [("u1", 2, "one string"), (["u1"], 0, "at least 1"),
                                 (["u1"], 2.5, "at least 1"), (["u1"], "5", "at least 1")]:
        with pytest.raises(ConfigError, match=message):
            fitted.recommend(user_ids, k)
    assert len(fitted.recommend(["u1"], k=2)) == 2


def test_a_plugin_recommender_gets_the_same_checks():
    from shopaug.models.rec.base import Recommender

    class Mine(Recommender):
        name = "mine"

        def recommend(self, user_ids, k=10):
            return pd.DataFrame({"user_id": list(user_ids), "k": k})

    with pytest.raises(ConfigError, match="at least 1"):
        Mine().recommend(["u1"], -1)
    assert Mine().recommend(["u1"], 3)["k"].tolist() == [3]


def test_splits_without_sessions_or_with_edge_settings():
    data = ShopData(items=ITEMS, interactions=EVENTS)  # no session_id column
    parts = shopaug.split(data, "leave_last_basket")
    assert len(parts.test.interactions) == 2  # each user's last purchase moment
    with pytest.raises(ConfigError, match="no user has 5 baskets"):
        shopaug.split(data, "leave_last_basket", min_baskets=5)
    zoned = shopaug.split(data, "temporal", cut="2024-01-05T01:00:00+01:00")
    assert zoned.cut == pd.Timestamp("2024-01-05 00:00:00")  # naive UTC, like the data
    with pytest.raises(ConfigError, match="leaves no training interactions"):
        shopaug.split(data, "temporal", test_days=1, valid_days=100)
    with pytest.raises(ConfigError, match="valid_days"):
        shopaug.split(data, "temporal", valid_days=-1)


def test_register_checks_what_it_is_given():
    from shopaug import registry
    from shopaug.models.rec.popularity import Popularity

    with pytest.raises(RegistryError, match="not a Component"):
        registry.register("recommender", dict)
    with pytest.raises(RegistryError, match="is a recommender, not a splitter"):
        registry.register("splitter", Popularity, name="pop")

    class Loose(Popularity):
        Config = dict

    with pytest.raises(RegistryError, match=r"must subclass shopaug\.ComponentConfig"):
        registry.register("recommender", Loose, name="loose")


def test_the_readme_experiment_config_reports_a_misspelt_key_as_a_config_error():
    with pytest.raises(ConfigError, match="modelz: unknown key"):
        shopaug.ExperimentConfig.from_dict({"data": {"path": "shopaug:demo"}, "modelz": 1})


def test_search_models_rank_the_whole_catalog_only_when_asked_to():
    from shopaug import registry
    from shopaug.models.search.base import catalog_candidates

    queries = pd.DataFrame({"query_id": ["q1"], "text": ["mug"]})
    data = ShopData(items=ITEMS, queries=queries, grade_scale="1-4", judgments=pd.DataFrame(
        {"query_id": ["q1"], "item_id": ["a"], "grade": ["4"]}))
    bm25 = registry.create("search_model", "bm25").fit(data)
    with pytest.raises(ConfigError, match="catalog_candidates"):
        bm25.rank(queries, None)
    ranked = bm25.rank(queries, catalog_candidates(queries, data.items))
    assert ranked["item_id"].tolist()[0] == "a" and len(ranked) == 3
    orphan = pd.DataFrame({"query_id": ["q2"], "item_id": ["a"]})
    with pytest.raises(ConfigError, match="no query text"):
        bm25.rank(queries, orphan)


def test_whitespace_titles_bad_k_and_an_empty_test_side_are_named():
    from shopaug import registry
    from shopaug.evaluate.rec import evaluate_recommender
    from shopaug.llm import PromptTemplate

    with pytest.raises(SchemaError, match="with no title"):
        ShopData(items=ITEMS.assign(title=["Mug", "   ", "Jar"]))
    with pytest.raises(ConfigError, match="k must be at least 1"):
        PromptTemplate.load("search_queries", "en").request({"title": "mug"}, [], k=-1)
    data = ShopData(items=ITEMS, interactions=EVENTS)
    parts = shopaug.split(data, "temporal", test_days=1)
    empty = parts.test.replace(interactions=parts.test.interactions.iloc[:0])
    split = type(parts)(parts.train, empty, kind=parts.kind)
    model = registry.create("recommender", "popularity").fit(parts.train)
    with pytest.raises(ConfigError, match="no positive interactions"):
        evaluate_recommender(model, parts.train, split, [10])
