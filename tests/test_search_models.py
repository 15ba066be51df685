"""Search models on a tiny hand-made catalog: the conformance checks of
``shopaug.testing`` written out (its runner has no search_model kind yet), plus one
behavioural check per model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError, ShopAugError
from shopaug.evaluate.ranking import per_group_metrics
from shopaug.models.search.biencoder import BiEncoder, distinct_batches, training_pairs
from shopaug.models.search.lexical import (
    BM25,
    BM25Doc2Query,
    RandomRanker,
    bm25_negatives,
    synthetic_expansions,
    tokenize,
)
from shopaug.models.search.ltr import LambdaMART

ITEMS = [
    ("i01", "White ceramic mug", "kitchen", "Large coffee mug, dishwasher safe"),
    ("i02", "Glass tea cup", "kitchen", "Clear glass cup with saucer"),
    ("i03", "Stainless steel travel mug", "kitchen", "Keeps coffee hot for hours"),
    ("i04", "Garden gnome", "garden", "Resin gnome figure with red hat"),
    ("i05", "Red heart cushion", "home", "Soft cushion for the sofa"),
    ("i06", "Blue denim jacket", "fashion", "Classic jeans jacket"),
    ("i07", "纯棉T恤 男款", "fashion", "纯棉 短袖"),
    ("i08", "陶瓷咖啡杯", "kitchen", "白色 陶瓷 杯子"),
    ("i09", "不锈钢保温杯", "kitchen", None),
    ("i10", "Wooden cutting board", "kitchen", "Oak chopping board"),
    ("i11", "Leather wallet", "fashion", "Brown leather card wallet"),
    ("i12", "Scented candle jar", "home", "Vanilla candle in a glass jar"),
]
REAL = {
    "q1": ("coffee mug", {"i01": 4, "i03": 3, "i02": 2, "i04": 1, "i10": 1, "i12": 1}),
    "q2": ("tea cup", {"i02": 4, "i01": 2, "i08": 2, "i05": 1, "i11": 1}),
    "q3": ("denim jacket", {"i06": 4, "i07": 2, "i11": 1, "i05": 1}),
    "q4": ("咖啡杯", {"i08": 4, "i01": 3, "i09": 2, "i07": 1}),
    "q5": ("garden decoration", {"i04": 4, "i05": 2, "i12": 2, "i10": 1}),
    "q6": ("cutting board", {"i10": 4, "i11": 1, "i03": 1, "i04": 1}),
}
# (query id, text, item, grade, quality): LLM-written queries for one item each
SYNTHETIC = [
    ("s1", "insulated thermos bottle", "i09", "4", 0.9),
    ("s2", "lumberjack style outerwear", "i06", "4", 0.2),
    ("s3", "chopping block for kitchen", "i10", "4", 0.8),
    ("s4", "mug for espresso", "i01", "4", None),
]


def make_data() -> ShopData:
    items = pd.DataFrame(ITEMS, columns=["item_id", "title", "category", "description"])
    queries = [{"query_id": q, "text": t, "origin": "real"} for q, (t, _) in REAL.items()]
    judgments = [{"query_id": q, "item_id": i, "grade": str(g), "origin": "real"}
                 for q, (_, grades) in REAL.items() for i, g in grades.items()]
    for qid, text, item, grade, quality in SYNTHETIC:
        prov = {"origin": "synthetic", "augmenter": "test", "quality_score": quality}
        queries.append({"query_id": qid, "text": text, **prov})
        judgments.append({"query_id": qid, "item_id": item, "grade": grade, **prov})
    # an LLM-judge pseudo-label on a real query (fractional gain)
    judgments.append({"query_id": "q1", "item_id": "i08", "grade": "3",
                      "origin": "synthetic", "augmenter": "judge", "quality_score": 0.7})
    return ShopData(items=items, queries=pd.DataFrame(queries),
                    judgments=pd.DataFrame(judgments), grade_scale="1-4")


@pytest.fixture(scope="module")
def data() -> ShopData:
    return make_data()


def real_candidates(data: ShopData) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    judg = data.judgments[data.judgments["origin"] == "real"]
    queries = data.queries[data.queries["origin"] == "real"][["query_id", "text"]]
    return queries, judg[["query_id", "item_id"]], judg[["query_id", "item_id", "gain"]]


def ask(text: str, items: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.DataFrame({"query_id": ["x"], "text": [text]}),
            pd.DataFrame({"query_id": "x", "item_id": items}))


FAST = {
    "random": (RandomRanker, {}),
    "bm25": (BM25, {}),
    "bm25_doc2query": (BM25Doc2Query, {"min_quality": 0.5, "repeat": 2}),
    "biencoder_zero_shot": (BiEncoder, {"fine_tune": False, "threads": 1}),
    "ltr": (LambdaMART, {"n_estimators": 20, "threads": 1}),
}


@pytest.mark.parametrize("key", list(FAST))
def test_conformance(key: str, data: ShopData) -> None:
    cls, config = FAST[key]
    assert cls.kind == "search_model" and cls.name != "component"
    model = cls(config)
    spec = json.loads(json.dumps(model.to_dict()))
    assert cls.from_dict(spec).config == model.config
    assert cls.from_dict(yaml.safe_load(yaml.safe_dump(spec))).config == model.config
    with pytest.raises(ConfigError):
        cls({**config, "surely_not_a_key": 1})
    with pytest.raises(ShopAugError):
        cls(config).score(*ask("mug", ["i01"]))  # not fitted

    queries, candidates, _ = real_candidates(data)
    before = data.fingerprint()
    first = model.fit(data, seed=0).rank(queries, candidates)
    assert data.fingerprint() == before
    assert list(first.columns) == ["query_id", "item_id", "rank", "score"]
    merged = first.merge(candidates, on=["query_id", "item_id"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and len(first) == len(candidates)
    for _, group in first.groupby("query_id"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
    assert np.isfinite(first["score"]).all()

    second = cls(config).fit(data, seed=0).rank(queries, candidates)
    pd.testing.assert_frame_equal(first, second, check_exact=False, rtol=1e-5)

    empty = model.rank(queries, candidates.head(0))
    assert empty.empty and list(empty.columns) == ["query_id", "item_id", "rank", "score"]


@pytest.mark.parametrize("key", ["random", "bm25", "bm25_doc2query", "biencoder_zero_shot"])
def test_fits_on_a_bundle_without_queries(key: str, data: ShopData) -> None:
    cls, config = FAST[key]
    ranked = cls(config).fit(ShopData(items=data.items)).rank(*ask("mug", ["i01", "i04"]))
    assert sorted(ranked["rank"]) == [1, 2]


def test_ltr_without_judgments_is_a_clear_error(data: ShopData) -> None:
    with pytest.raises(ShopAugError, match="judged queries"):
        LambdaMART(biencoder_zero_shot=False).fit(ShopData(items=data.items))


def test_tokenize_is_language_agnostic() -> None:
    assert tokenize("T恤 男款, Ｃａｆé-au_lait 42") == ["t", "恤", "男", "款", "café", "au",
                                                     "lait", "42"]


def test_random_depends_on_seed_not_on_order(data: ShopData) -> None:
    queries, candidates, _ = real_candidates(data)
    a = RandomRanker().fit(data, 1).score(queries, candidates)
    b = RandomRanker().fit(data, 1).score(queries, candidates.iloc[::-1])
    assert np.allclose(a.to_numpy(), b.sort_index().to_numpy())
    assert not np.allclose(a, RandomRanker().fit(data, 2).score(queries, candidates))


def test_bm25_ranks_exact_title_first(data: ShopData) -> None:
    ranked = BM25().fit(data).rank(*ask("Blue denim jacket", [i for i, *_ in ITEMS]))
    assert ranked.iloc[0]["item_id"] == "i06"
    ranked = BM25().fit(data).rank(*ask("保温杯", ["i01", "i08", "i09"]))
    assert ranked.iloc[0]["item_id"] == "i09"


def test_doc2query_matches_through_synthetic_queries(data: ShopData) -> None:
    question = ask("thermos", ["i01", "i03", "i09"])
    plain = BM25().fit(data).rank(*question)
    assert plain.iloc[0]["item_id"] != "i09" and (plain["score"] == 0).all()
    expanded = BM25Doc2Query().fit(data).rank(*question)
    assert expanded.iloc[0]["item_id"] == "i09" and expanded.iloc[0]["score"] > 0


def test_doc2query_quality_filter_and_no_synthetic(data: ShopData) -> None:
    question = ask("lumberjack", ["i05", "i06"])
    assert BM25Doc2Query().fit(data).score(*question).iloc[1] > 0
    assert BM25Doc2Query(min_quality=0.5).fit(data).score(*question).iloc[1] == 0
    exp = synthetic_expansions(data)
    assert set(exp["item_id"]) == {"i01", "i06", "i09", "i10"}  # not the judge label on q1
    real = data.real()
    queries, candidates, _ = real_candidates(data)
    pd.testing.assert_frame_equal(BM25().fit(real).rank(queries, candidates),
                                  BM25Doc2Query().fit(real).rank(queries, candidates))


def test_bm25_negatives_exclude_positives(data: ShopData) -> None:
    bm25 = BM25().fit(data)
    synth = data.queries[data.queries["origin"] == "synthetic"]
    positives = data.judgments[["query_id", "item_id"]]
    neg = bm25_negatives(bm25, synth, positives, 3, seed=0)
    assert neg.groupby("query_id").size().eq(3).all() and len(neg) == 3 * len(synth)
    assert neg.merge(positives, on=["query_id", "item_id"]).empty
    pd.testing.assert_frame_equal(neg, bm25_negatives(bm25, synth, positives, 3, seed=0))


def test_training_pairs_and_distinct_batches(data: ShopData) -> None:
    pairs = training_pairs(data)
    assert len(pairs) == len(data.judgments) and pairs["query"].notna().all()
    assert set(training_pairs(data, use_synthetic=False)["origin"]) == {"real"}
    assert len(training_pairs(data, max_pairs=5, max_synthetic_pairs=0, seed=3)) == 5
    batches = distinct_batches(pairs, batch_size=4, seed=0)
    for batch in batches:
        assert 1 < len(batch) <= 4
        assert pairs.loc[batch, "query"].is_unique and pairs.loc[batch, "item"].is_unique


def test_biencoder_zero_shot_understands_meaning(data: ShopData) -> None:
    model = BiEncoder(fine_tune=False, threads=1).fit(data)
    ranked = model.rank(*ask("coffee cup", ["i04", "i01"]))
    assert ranked["item_id"].tolist() == ["i01", "i04"]


def test_biencoder_trained_on_the_same_pairs_is_reused(data: ShopData) -> None:
    first = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data, seed=5)
    # a teacher and the real-only variant: same pairs, same settings, one fine-tune
    again = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data.real(), seed=5)
    assert again.model_ is first.model_ and again.n_train_pairs_ == first.n_train_pairs_
    other_seed = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data, seed=6)
    augmented = BiEncoder(batch_size=4, threads=1).fit(data, seed=5)
    assert other_seed.model_ is not first.model_ and augmented.model_ is not first.model_
    queries, candidates, _ = real_candidates(data)
    np.testing.assert_allclose(again.score(queries, candidates),
                               first.score(queries, candidates), rtol=1e-6)


def test_biencoder_continues_from_its_real_only_twin(data: ShopData, monkeypatch) -> None:
    from shopaug.models.search import biencoder

    real = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data, seed=9)
    before = [p.detach().clone() for p in real.model_.parameters()]
    trained_from = []
    train = BiEncoder._train

    def spy(self, path, pairs, seed, base=None):
        trained_from.append((set(pairs["origin"]), base))
        return train(self, path, pairs, seed, base)

    monkeypatch.setattr(BiEncoder, "_train", spy)
    cont = BiEncoder(batch_size=4, threads=1, continue_from_real=True).fit(data, seed=9)
    # one fine-tune only, on the synthetic pairs alone, starting from the twin's encoder
    assert len(trained_from) == 1 and "real" not in trained_from[0][0]
    assert trained_from[0][1] is real.model_
    n_real = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data, seed=9)
    assert cont.n_train_pairs_ > n_real.n_train_pairs_ > 0
    # the twin is untouched, and the continued encoder is another model
    for p, b in zip(real.model_.parameters(), before, strict=True):
        assert torch_equal(p, b)
    queries, candidates, _ = real_candidates(data)
    assert not np.allclose(cont.score(queries, candidates), real.score(queries, candidates))
    # mixed and continued training are different encoders, never confused in a cache
    mixed = BiEncoder(batch_size=4, threads=1).fit(data, seed=9)
    assert mixed.frozen_key_ != cont.frozen_key_ != real.frozen_key_
    assert len(biencoder._TRAINED) <= biencoder._TRAINED_MAX


def test_biencoder_synthetic_first_ends_on_the_real_pairs(data: ShopData, monkeypatch) -> None:
    stages = []
    train = BiEncoder._train

    def spy(self, path, pairs, seed, base=None):
        model = train(self, path, pairs, seed, base)
        stages.append((set(pairs["origin"]), base, model))
        return model

    monkeypatch.setattr(BiEncoder, "_train", spy)
    first = BiEncoder(batch_size=4, threads=1, synthetic_first=True).fit(data, seed=11)
    # synthetic alone from the packaged encoder, then real alone from that encoder
    assert [origins for origins, _, _ in stages] == [{"synthetic"}, {"real"}]
    assert stages[0][1] is None and stages[1][1] is stages[0][2]
    assert first.model_ is stages[1][2]
    # the real stage is not the real-only twin's fine-tune: another cache key
    real = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data, seed=11)
    assert real.frozen_key_ != first.frozen_key_
    assert first.n_train_pairs_ > real.n_train_pairs_ > 0
    with pytest.raises(ValueError, match="two training orders"):
        BiEncoder(synthetic_first=True, continue_from_real=True)


def test_biencoder_synthetic_from_keeps_the_named_augmenters_pairs(data: ShopData) -> None:
    def synthetic_pairs(**config) -> pd.DataFrame:
        pairs = BiEncoder(**config)._pairs(data, seed=0, use_synthetic=True)
        return pairs[pairs["origin"] != "real"]

    made_by = data.judgments.set_index(["query_id", "item_id"])["augmenter"]
    only_test = synthetic_pairs(synthetic_from=["test"])
    assert set(only_test["query_id"]) == {"s1", "s2", "s3", "s4"}
    assert set(made_by.loc[list(zip(only_test["query_id"], only_test["item_id"],
                                    strict=True))]) == {"test"}
    assert len(synthetic_pairs()) == len(only_test) + 1  # the judge's pair on q1
    assert synthetic_pairs(synthetic_from=[]).empty
    real = BiEncoder()._pairs(data, seed=0, use_synthetic=False)
    pd.testing.assert_frame_equal(
        BiEncoder(synthetic_from=[])._pairs(data, seed=0, use_synthetic=True), real)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_a_fine_tuned_biencoder_is_loaded_from_its_cache_dir(data: ShopData, tmp_path,
                                                             monkeypatch) -> None:
    from shopaug.models.search import biencoder

    first = BiEncoder(batch_size=4, threads=1, cache_dir=str(tmp_path)).fit(data, seed=7)
    saved = [d for d in tmp_path.iterdir() if not d.name.startswith(".")]
    assert len(saved) == 1 and (saved[0] / "shopaug_training.json").is_file()
    biencoder._TRAINED.clear()  # a new process: only the disk cache remains

    def no_training(*args, **kwargs):
        raise AssertionError("trained again instead of loading the cached encoder")

    monkeypatch.setattr(BiEncoder, "_train", no_training)
    again = BiEncoder(batch_size=4, threads=1, cache_dir=str(tmp_path)).fit(data, seed=7)
    assert again.n_train_pairs_ == first.n_train_pairs_ > 0
    queries, candidates, _ = real_candidates(data)
    np.testing.assert_allclose(again.score(queries, candidates),
                               first.score(queries, candidates), rtol=1e-5, atol=1e-6)
    # other pairs are another model: trained, not loaded
    with pytest.raises(AssertionError, match="trained again"):
        BiEncoder(batch_size=4, threads=1, cache_dir=str(tmp_path)).fit(data, seed=8)


@pytest.mark.parametrize("config", [{}, {"loss": "cosine", "use_synthetic": False,
                                     "max_pairs": 12}])
def test_biencoder_fine_tunes(config: dict, data: ShopData) -> None:
    queries, candidates, _ = real_candidates(data)
    model = BiEncoder(batch_size=4, threads=1, **config).fit(data, seed=0)
    assert model.n_train_pairs_ > 0
    ranked = model.rank(queries, candidates)
    assert len(ranked) == len(candidates)
    assert ranked.groupby("query_id")["rank"].apply(lambda r: sorted(r) == list(
        range(1, len(r) + 1))).all()
    again = BiEncoder(batch_size=4, threads=1, **config).fit(data, seed=0).rank(queries,
                                                                               candidates)
    pd.testing.assert_frame_equal(ranked, again, check_exact=False, rtol=1e-4)


def test_ltr_beats_random_on_training_queries(data: ShopData) -> None:
    queries, candidates, truth = real_candidates(data)
    ltr = LambdaMART(min_child_samples=2, threads=1).fit(data, seed=0)

    def ndcg(model) -> float:
        ranked = model.rank(queries, candidates)
        return per_group_metrics(ranked, truth, (10,), group="query_id")["ndcg@10"].mean()

    chance = np.mean([ndcg(RandomRanker().fit(data, seed)) for seed in range(5)])
    assert ndcg(ltr) > chance
    assert {"bm25", "bm25_doc2query", "cos_zero_shot", "title_jaccard"} <= set(
        ltr.feature_names_)
    assert ltr.feature_importances().index.isin(ltr.feature_names_).all()


def test_ltr_synthetic_groups_and_judge_feature(data: ShopData) -> None:
    real_only = LambdaMART(use_synthetic=False, biencoder_zero_shot=False,
                           n_estimators=10).fit(data)
    with_synth = LambdaMART(biencoder_zero_shot=False, negatives_per_synthetic=3,
                            n_estimators=10).fit(data)
    assert "bm25_doc2query" not in real_only.feature_names_
    assert with_synth.n_groups_ == real_only.n_groups_ + len(SYNTHETIC)
    assert with_synth.n_rows_ == real_only.n_rows_ + 1 + len(SYNTHETIC) * (1 + 3)
    # a synthetic query a teacher has graded holds its own contrasts: no BM25 guesses
    graded = data.append("judgments", pd.DataFrame(
        [{"query_id": "s1", "item_id": "i03", "grade": "2", "origin": "synthetic",
          "augmenter": "teacher_labels"}]))
    with_teacher = LambdaMART(biencoder_zero_shot=False, negatives_per_synthetic=3,
                              n_estimators=10).fit(graded)
    assert with_teacher.n_rows_ == with_synth.n_rows_ + 1 - 3
    judg = data.judgments.assign(judge_score=np.linspace(0, 1, len(data.judgments)))
    judged = LambdaMART(biencoder_zero_shot=False, n_estimators=10).fit(
        data.replace(judgments=judg))
    assert "judge_score" in judged.feature_names_
    queries, candidates, _ = real_candidates(data)
    assert len(judged.rank(queries, candidates)) == len(candidates)  # column absent: NaN


def test_ltr_weighs_synthetic_query_groups_apart(data: ShopData, monkeypatch) -> None:
    import lightgbm

    seen: list = []
    fit = lightgbm.LGBMRanker.fit

    def spy(self, X, y, **kwargs):
        seen.append((kwargs.get("sample_weight"), kwargs["group"]))
        return fit(self, X, y, **kwargs)

    monkeypatch.setattr(lightgbm.LGBMRanker, "fit", spy)
    kwargs = {"biencoder_zero_shot": False, "negatives_per_synthetic": 3, "n_estimators": 10}
    equal = LambdaMART(**kwargs).fit(data)
    light = LambdaMART(synthetic_weight=0.25, **kwargs).fit(data)
    assert seen[0][0] is None
    weight, sizes = seen[1]
    # every row of a synthetic query's group weighs 0.25; a real query's group (even
    # with a judge's pseudo-label in it) weighs 1
    per_group = np.split(weight, np.cumsum(sizes)[:-1])
    assert sorted({float(g[0]) for g in per_group}) == [0.25, 1.0]
    assert all(len(set(g)) == 1 for g in per_group)
    assert sum(g[0] == 0.25 for g in per_group) == len(SYNTHETIC)
    assert float(weight.sum()) == light.n_rows_ - 0.75 * len(SYNTHETIC) * (1 + 3)
    queries, candidates, _ = real_candidates(data)
    assert not np.allclose(equal.score(queries, candidates), light.score(queries, candidates))


@pytest.mark.slow
def test_crossencoder_trains_and_ranks(data: ShopData) -> None:
    from shopaug.models.search.crossencoder import CrossEncoderRanker

    queries, candidates, _ = real_candidates(data)
    before = data.fingerprint()
    model = CrossEncoderRanker(batch_size=8, threads=1).fit(data, seed=0)
    assert data.fingerprint() == before
    assert model.n_train_pairs_ == len(data.judgments) + 3 * len(SYNTHETIC)
    ranked = model.rank(queries, candidates)
    assert len(ranked) == len(candidates) and np.isfinite(ranked["score"]).all()
    again = CrossEncoderRanker(batch_size=8, threads=1).fit(data, seed=0).rank(queries,
                                                                               candidates)
    pd.testing.assert_frame_equal(ranked, again, check_exact=False, rtol=1e-4)
    assert model.rank(queries, candidates.head(0)).empty
    with pytest.raises(ShopAugError, match="judged"):
        CrossEncoderRanker().fit(ShopData(items=data.items))
    with pytest.raises(ConfigError):
        CrossEncoderRanker(surely_not_a_key=1)
    with pytest.raises(ConfigError, match="batch_size"):
        CrossEncoderRanker(batch_size=64, max_seq_length=32)
    spec = json.loads(json.dumps(CrossEncoderRanker(loss="mse").to_dict()))
    assert CrossEncoderRanker.from_dict(spec).config.loss == "mse"


def test_pair_caps_apply_to_real_and_synthetic_pairs_separately(data: ShopData) -> None:
    n_real = int((data.judgments["origin"] == "real").sum())
    n_synthetic = int((data.judgments["origin"] == "synthetic").sum())
    assert n_real > 5 and n_synthetic > 2
    # the synthetic pairs come on top of the capped real ones, never instead of them
    capped = training_pairs(data, max_pairs=5, max_synthetic_pairs=2, seed=1)
    assert (capped["origin"] == "real").sum() == 5 and (capped["origin"] != "real").sum() == 2
    # the real sample is the same whether or not synthetic pairs are present
    only_real = training_pairs(data, use_synthetic=False, max_pairs=5, seed=1)
    pd.testing.assert_frame_equal(capped[capped["origin"] == "real"].reset_index(drop=True),
                                  only_real)
    positives = training_pairs(data, min_gain=0.5)
    assert len(positives) and (positives["gain"] >= 0.5).all()


def test_hard_negatives_are_near_misses_of_the_same_query(data: ShopData) -> None:
    from shopaug.models.search.biencoder import with_hard_negatives

    title = dict(zip(data.items["item_id"], data.items["title"], strict=True))
    pairs = training_pairs(data, use_synthetic=False, min_gain=0.5)
    out = with_hard_negatives(pairs, data, use_synthetic=False, max_gain=0.34, seed=0)
    assert len(out) == len(pairs)
    for query_id, item, negative in zip(out["query_id"], out["item"], out["negative"],
                                        strict=True):
        grades = REAL[query_id][1]
        low = {i for i, g in grades.items() if g <= 2}  # grades 1-2: gain <= 0.34
        high = {i for i, g in grades.items() if g >= 3}
        assert negative != item
        assert any(negative.startswith(title[i]) for i in low)  # the same query's grade 1-2
        assert not any(negative.startswith(title[i]) for i in high)
    # a synthetic query with no low grade gets a random item that is not its positive
    synthetic = training_pairs(data, min_gain=0.5)
    mixed = with_hard_negatives(synthetic, data, use_synthetic=True, max_gain=0.34, seed=0)
    s1 = mixed[mixed["query_id"] == "s1"].iloc[0]
    assert s1["negative"] != s1["item"]


def test_biencoder_fine_tunes_with_hard_negatives(data: ShopData) -> None:
    plain = BiEncoder(batch_size=4, threads=1, use_synthetic=False).fit(data, seed=3)
    hard = BiEncoder(batch_size=4, threads=1, use_synthetic=False,
                     hard_negatives=True).fit(data, seed=3)
    assert hard.model_ is not plain.model_  # another training set: another model
    assert hard.n_train_pairs_ > 0
    queries, candidates, _ = real_candidates(data)
    ranked = hard.rank(queries, candidates)
    assert len(ranked) == len(candidates)
    # the negatives change what is learned, not only the cache key
    assert not np.allclose(hard.score(queries, candidates), plain.score(queries, candidates))


def test_biencoder_dense_doc2query_expansion(data: ShopData) -> None:
    # "thermos" is far from the Chinese title of i09 but close to its synthetic query
    question = ask("thermos flask", ["i09", "i04", "i05"])
    plain = BiEncoder(fine_tune=False, threads=1).fit(data).score(*question)
    expanded_model = BiEncoder(fine_tune=False, threads=1, expansion_weight=1.0).fit(data)
    expanded = expanded_model.score(*question)
    best = expanded_model.expansion_scores(*question)
    assert best.iloc[0] > 0.5 and best.iloc[1:].isna().all()  # only i09 has expansions
    np.testing.assert_allclose(expanded.iloc[0], plain.iloc[0] + best.iloc[0], rtol=1e-5)
    np.testing.assert_allclose(expanded.iloc[1:], 2 * plain.iloc[1:], rtol=1e-5)
    assert expanded.iloc[0] - expanded.iloc[1:].max() > plain.iloc[0] - plain.iloc[1:].max()
    real = BiEncoder(fine_tune=False, threads=1, expansion_weight=1.0).fit(data.real())
    assert real.expansion_scores(*question).isna().all()


def test_ltr_dense_doc2query_feature_hidden_in_sample(data: ShopData) -> None:
    ltr = LambdaMART(min_child_samples=2, threads=1, n_estimators=10).fit(data)
    assert "cos_doc2query" in ltr.feature_names_
    real_only = LambdaMART(use_synthetic=False, min_child_samples=2, threads=1,
                           n_estimators=10).fit(data)
    assert "cos_doc2query" not in real_only.feature_names_
    features_only = LambdaMART(synthetic_rows=False, threads=1, n_estimators=10).fit(data)
    assert features_only.n_groups_ == real_only.n_groups_
    assert "cos_doc2query" in features_only.feature_names_


def test_max_synthetic_pairs_caps_only_synthetic(data: ShopData) -> None:
    n_real = int((data.judgments["origin"] == "real").sum())
    pairs = training_pairs(data, max_synthetic_pairs=2, seed=0)
    assert (pairs["origin"] == "real").sum() == n_real
    assert (pairs["origin"] != "real").sum() == 2


def test_cached_encode_survives_eviction(monkeypatch) -> None:
    from shopaug.models.search import encoder

    class Fake:
        def encode(self, texts, **_):
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

        def get_sentence_embedding_dimension(self) -> int:
            return 2

    monkeypatch.setattr(encoder, "_CACHE", {})
    monkeypatch.setattr(encoder, "_CACHE_MAX", 3)
    encoder.cached_encode(["a", "bb"], "k", Fake())
    out = encoder.cached_encode(["a", "ccc", "dddd"], "k", Fake())  # forces a clear
    assert out[:, 0].tolist() == [1, 3, 4]


def test_synthetic_cap_can_prefer_items_no_real_pair_teaches(data: ShopData) -> None:
    # among real positives (gain >= 0.5) only i09's synthetic query "s1" is for an item
    # no real pair teaches; a random cap of 1 picks the others too, unjudged-first never
    def picked(seed: int, first: bool) -> str:
        pairs = training_pairs(data, max_synthetic_pairs=1, seed=seed, min_gain=0.5,
                               unjudged_first=first)
        return pairs.loc[pairs["origin"] != "real", "query_id"].item()

    assert {picked(seed, True) for seed in range(8)} == {"s1"}
    assert len({picked(seed, False) for seed in range(8)}) > 1
    # the real pairs are the same either way
    real = [training_pairs(data, max_pairs=5, max_synthetic_pairs=1, seed=2, unjudged_first=f)
            for f in (True, False)]
    pd.testing.assert_frame_equal(*(r[r["origin"] == "real"] for r in real))


def test_encoder_digest_covers_only_what_training_reads(data: ShopData) -> None:
    pairs = training_pairs(data, min_gain=0.5)
    noisy = pairs.assign(gain=pairs["gain"] + 1e-12)  # a teacher's last-bit noise
    regraded = pairs.assign(gain=pairs["gain"] * 0.9)
    mnrl, cosine = BiEncoder(threads=1), BiEncoder(threads=1, loss="cosine")
    assert mnrl._digest("m", pairs, 0) == mnrl._digest("m", noisy, 0)  # gains unread
    assert mnrl._digest("m", pairs, 0) == mnrl._digest("m", regraded, 0)
    assert cosine._digest("m", pairs, 0) == cosine._digest("m", noisy, 0)
    assert cosine._digest("m", pairs, 0) != cosine._digest("m", regraded, 0)
    assert mnrl._digest("m", pairs, 0) != mnrl._digest("m", pairs.iloc[1:], 0)
