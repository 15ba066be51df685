"""export_models and ServingState without a full experiment: a search task whose best
model reranks BM25 candidates, and the profile / cold-user paths of recommendations."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from shopaug.models.rec.base import Recommender
from shopaug.models.rec.itemknn import ItemKNN
from shopaug.models.rec.popularity import Popularity
from shopaug.models.search.lexical import BM25, RandomRanker
from shopaug.serve.export import export_models
from shopaug.serve.state import load_serving
from shopaug.testing import sample_data


def _summary(metric: str, scores: dict[tuple[str, str], float]) -> dict:
    return {"primary_metric": metric, "results": [
        {"model": m, "arm": a, "slice": "all", "metric": metric, "mean": v}
        for (m, a), v in scores.items()]}


class ProfileContent(Recommender):
    """Stands in for the content model (no embedding model needed): it knows one
    profile-only user and ranks items by a fixed order."""

    name = "content"

    def fit(self, train, seed: int = 0) -> ProfileContent:
        self.item_ids_ = train.items["item_id"].astype(str).to_numpy()
        self.item_emb_ = np.eye(len(self.item_ids_))
        self.user_vec_ = {"u5": np.ones(len(self.item_ids_))}
        return self

    def recommend(self, user_ids, k: int = 10) -> pd.DataFrame:
        top = self.item_ids_[::-1][:k]
        return pd.DataFrame({"user_id": str(user_ids[0]), "item_id": top,
                             "rank": np.arange(1, len(top) + 1),
                             "score": np.linspace(1, 0.5, len(top))})

    def item_vectors(self, item_ids) -> np.ndarray:
        where = pd.Index(self.item_ids_).get_indexer(list(item_ids))
        return np.stack([self.item_emb_[i] if i >= 0 else np.zeros(len(self.item_ids_))
                         for i in where])


def test_search_export_reranks_bm25_candidates(tmp_path):
    data = sample_data()
    fitted = {("random", "baseline"): (RandomRanker().fit(data), data),
              ("bm25", "baseline"): (BM25().fit(data), data)}
    card = export_models(tmp_path / "serving", config=SimpleNamespace(task="search"),
                         fitted=fitted, data=data,
                         summary=_summary("ndcg@10", {("random", "baseline"): 0.9,
                                                      ("bm25", "baseline"): 0.5}))
    assert card["best"]["model"] == "random" and "candidates.pkl" in card["files"]
    state = load_serving(tmp_path)
    assert state.task == "search"
    result = state.search("mug", 5)
    # the reranker only sees BM25's matches, in its own order
    assert result["model"] == "random" and [i["item_id"] for i in result["items"]] == ["i1"]
    assert state.search("nothing matches this", 5)["items"] == []


def test_rec_paths_history_profile_cold_and_unknown(tmp_path):
    data = sample_data()
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4", "u5", "u6"],
                          "profile_text": [None, None, None, None, "loves glass jars", None]})
    data = data.replace(users=users)
    knn, pop, content = ItemKNN().fit(data), Popularity().fit(data), ProfileContent().fit(data)
    fitted = {("itemknn", "baseline"): (knn, data), ("popularity", "baseline"): (pop, data),
              ("content", "baseline"): (content, data)}
    export_models(tmp_path / "serving", config=SimpleNamespace(task="rec"), fitted=fitted,
                  data=data, summary=_summary("recall@10", {("itemknn", "baseline"): 0.4,
                                                           ("popularity", "baseline"): 0.3,
                                                           ("content", "baseline"): 0.2}))
    manifest = json.loads((tmp_path / "serving" / "manifest.json").read_text())
    assert manifest["best"] == {"model": "itemknn", "arm": "baseline", "metric": "recall@10",
                                "value": 0.4, "baseline_value": 0.4}
    state = load_serving(tmp_path)
    assert set(state.precomputed) == {"u1", "u2", "u3", "u4"}

    known = state.recommend("u1", 3)
    assert (known["source"], known["reason"], known["model"]) == ("model", "history", "itemknn")
    assert [i["item_id"] for i in known["items"]] == knn.recommend(["u1"], 3)[
        "item_id"].tolist()

    profile = state.recommend("u5", 2)
    assert (profile["source"], profile["reason"], profile["model"]) == (
        "fallback", "profile", "content")
    assert [i["item_id"] for i in profile["items"]] == ["i6", "i5"]

    cold = state.recommend("u6", 2)
    assert (cold["source"], cold["reason"]) == ("fallback", "cold_user")
    unknown = state.recommend("stranger", 2)
    assert (unknown["source"], unknown["reason"], unknown["model"]) == (
        "fallback", "unknown_user", "popularity")
    assert [i["item_id"] for i in unknown["items"]] == pop.recommend(["x"], 2)[
        "item_id"].tolist()


@pytest.mark.parametrize("k", [1, 3])
def test_similar_uses_content_when_there_is_no_itemknn(tmp_path, k):
    data = sample_data()
    content = ProfileContent().fit(data)
    fitted = {("popularity", "baseline"): (Popularity().fit(data), data),
              ("content", "baseline"): (content, data)}
    export_models(tmp_path / "serving", config=SimpleNamespace(task="rec"), fitted=fitted,
                  data=data, summary=_summary("recall@10", {("popularity", "baseline"): 0.3}))
    state = load_serving(tmp_path)
    body = state.similar("i1", k)
    assert body["method"] == "content" and len(body["items"]) == k
    assert "i1" not in {i["item_id"] for i in body["items"]}


def test_a_failed_export_is_reported_not_raised(tmp_path):
    from shopaug.errors import ArtifactError

    data = sample_data()
    model = Popularity().fit(data)
    model.unpicklable_ = lambda: None  # pickle cannot store a lambda
    card = export_models(tmp_path / "serving", config=SimpleNamespace(task="rec"),
                         fitted={("popularity", "baseline"): (model, data)}, data=data,
                         summary=_summary("recall@10", {("popularity", "baseline"): 0.3}))
    assert card["exported"] is False and "pickle" in card["reason"].lower()
    assert not (tmp_path / "serving" / "manifest.json").exists()
    with pytest.raises(ArtifactError, match="export: false"):
        load_serving(tmp_path)


def test_an_augmented_arm_is_served_only_when_its_lift_is_significant(tmp_path):
    data = sample_data()
    pop = Popularity().fit(data)
    fitted = {("popularity", "baseline"): (pop, data), ("popularity", "aug"): (pop, data)}
    summary = _summary("recall@10", {("popularity", "baseline"): 0.30,
                                     ("popularity", "aug"): 0.31})
    lift = {"model": "popularity", "arm": "aug", "slice": "all", "metric": "recall@10",
            "mean": 0.01, "excludes_zero": False}
    noise = export_models(tmp_path / "a", config=SimpleNamespace(task="rec"), fitted=fitted,
                          data=data, summary={**summary, "lift": [lift]})
    assert noise["best"]["arm"] == "baseline"
    real = export_models(tmp_path / "b", config=SimpleNamespace(task="rec"), fitted=fitted,
                         data=data, summary={**summary, "lift": [{**lift,
                                                                  "excludes_zero": True}]})
    assert real["best"]["arm"] == "aug"
