"""LambdaMART (LightGBM lambdarank) over features from the other search models: the
usual production shape, and a way to see which signal synthetic data improves."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.search.base import SearchModel, item_text
from shopaug.models.search.biencoder import BiEncoder
from shopaug.models.search.lexical import (
    BM25,
    BM25Doc2Query,
    bm25_negatives,
    synthetic_expansions,
    tokenize,
)

log = logging.getLogger(__name__)

#: an optional column on judgments (at fit) and candidates (at score) with an
#: LLM judge's relevance estimate, used as one more feature
JUDGE_COLUMN = "judge_score"


class LambdaMARTConfig(ComponentConfig):
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 5
    #: train on synthetic queries (and synthetic judgments) too, when present
    use_synthetic: bool = True
    #: with use_synthetic: also train on synthetic query groups (False: synthetic data
    #: only feeds the doc2query features)
    synthetic_rows: bool = True
    #: BM25 hard negatives (label 0) added per synthetic query that has one label only
    negatives_per_synthetic: int = 10
    #: the pool of BM25 top items the negatives are drawn from
    negative_pool: int = 30
    #: weight of a synthetic query group's rows against a real one's (1: equal). There
    #: are ~20 synthetic groups per real one in the search bench, yet equal is best on
    #: validation splits of the CrowdFlower dev file: 0.03 / 0.3 / 3 / 10 gave -0.025* /
    #: -0.017* / -0.000 / -0.008 (scripts/search_ablation_ltr_synthetic_weight.json)
    synthetic_weight: float = Field(1.0, gt=0)
    biencoder_zero_shot: bool = True
    #: fine-tune a bi-encoder for one more feature (slow). Its cosine on the training
    #: rows is in-sample. A cross-fitted version (fold encoders, their mean on new
    #: queries) did not help either: -0.0045 n.s. on validation splits of the CrowdFlower
    #: dev file, and a feature from an encoder fine-tuned on the synthetic pairs alone
    #: -0.0026 for ltr_augmented (scripts/search_ablation.py --validation; code in
    #: commit fb16c27)
    biencoder_fine_tune: bool = False
    with_description: bool = True
    #: LightGBM threads; torch threads of the bi-encoders (None: torch's default)
    n_jobs: int = 1
    threads: int | None = None


def _labels(gain: pd.Series) -> np.ndarray:
    """Integer relevance levels 0..3 from gains in [0, 1]."""
    return np.rint(gain.clip(0, 1).to_numpy(dtype=float) * 3).astype(int)


class LambdaMART(SearchModel):
    """Learning to rank over BM25, doc2query, embedding and overlap features."""

    name = "ltr"
    Config = LambdaMARTConfig

    def fit(self, train: ShopData, seed: int = 0) -> LambdaMART:
        from lightgbm import LGBMRanker

        cfg = self.config
        start = time.perf_counter()
        groups = self._training_rows(train, seed)
        if not len(groups):
            raise ShopAugError(
                "learning to rank needs judged queries to train on and the training data "
                "has none. Fix: use a split with judgments, or the bm25 model")
        self._fit_features(train, seed)
        queries = train.queries[["query_id", "text"]].drop_duplicates("query_id")
        feats = self._features(queries, groups)
        synthetic_q = set(train.queries.loc[train.queries["origin"] == "synthetic", "query_id"])
        if "bm25_doc2query" in feats:
            # A synthetic query sits inside its own item's expanded text: hide that
            # in-sample score rather than teach the model to trust it.
            own = groups["query_id"].isin(synthetic_q).to_numpy()
            for col in ("bm25_doc2query", "cos_doc2query"):
                if col in feats:
                    feats.loc[own, col] = np.nan
        self.feature_names_ = list(feats.columns)
        sizes = groups.groupby("query_id", sort=False).size().to_numpy()
        self.ranker_ = LGBMRanker(
            objective="lambdarank", n_estimators=cfg.n_estimators,
            learning_rate=cfg.learning_rate, num_leaves=cfg.num_leaves,
            min_child_samples=cfg.min_child_samples, random_state=seed, deterministic=True,
            force_row_wise=True, n_jobs=cfg.n_jobs, verbose=-1)
        weight = np.where(groups["query_id"].isin(synthetic_q), cfg.synthetic_weight, 1.0)
        self.ranker_.fit(feats, _labels(groups["gain"]), group=sizes,
                         sample_weight=None if cfg.synthetic_weight == 1.0 else weight)
        self.n_groups_, self.n_rows_ = len(sizes), len(groups)
        self.fit_seconds_ = time.perf_counter() - start
        log.info("ltr: %d groups, %d rows, features %s, fit in %.1fs", self.n_groups_,
                 self.n_rows_, self.feature_names_, self.fit_seconds_)
        return self

    def _training_rows(self, train: ShopData, seed: int) -> pd.DataFrame:
        """(query_id, item_id, gain[, judge_score]) rows, grouped by query (contiguous)."""
        cfg = self.config
        judg, queries = train.judgments, train.queries
        judg = judg[judg["query_id"].isin(queries["query_id"])
                    & judg["item_id"].isin(train.items["item_id"]) & judg["gain"].notna()]
        if not (cfg.use_synthetic and cfg.synthetic_rows):
            judg = judg[judg["origin"] == "real"]
        # Real judgments win over synthetic ones for the same pair.
        judg = judg.sort_values("origin", key=lambda s: s != "real", kind="stable")
        cols = ["query_id", "item_id", "gain", *([JUDGE_COLUMN] if JUDGE_COLUMN in judg else [])]
        rows = judg.drop_duplicates(["query_id", "item_id"])[cols]
        # A doc2query group holds one positive: BM25 guesses fill in its negatives. Groups
        # a teacher has graded already hold their own contrasts and get none.
        sizes = rows["query_id"].value_counts()
        synth = queries[(queries["origin"] == "synthetic")
                        & queries["query_id"].isin(sizes.index[sizes == 1])]
        if cfg.use_synthetic and len(synth) and cfg.negatives_per_synthetic > 0:
            bm25 = BM25(with_description=cfg.with_description).fit(train, seed)
            neg = bm25_negatives(bm25, synth, rows, cfg.negatives_per_synthetic, seed,
                                 cfg.negative_pool)
            rows = pd.concat([rows, neg.assign(gain=0.0)], ignore_index=True)
        return rows.sort_values(["query_id", "item_id"], kind="stable").reset_index(drop=True)

    def _fit_features(self, train: ShopData, seed: int) -> None:
        cfg = self.config
        self.bm25_ = BM25(with_description=cfg.with_description).fit(train, seed)
        self.d2q_ = None
        if cfg.use_synthetic and len(synthetic_expansions(train)):
            self.d2q_ = BM25Doc2Query(with_description=cfg.with_description).fit(train, seed)
        self.encoders_: dict[str, BiEncoder] = {}
        if cfg.biencoder_zero_shot:
            self.encoders_["cos_zero_shot"] = BiEncoder(
                fine_tune=False, with_description=cfg.with_description, threads=cfg.threads,
                keep_expansions=self.d2q_ is not None).fit(train, seed)
        if cfg.biencoder_fine_tune:
            self.encoders_["cos_fine_tuned"] = BiEncoder(
                fine_tune=True, use_synthetic=cfg.use_synthetic,
                with_description=cfg.with_description, threads=cfg.threads).fit(train, seed)
        items = train.items.drop_duplicates("item_id").set_index("item_id")
        self.title_tokens_ = items["title"].fillna("").map(lambda t: frozenset(tokenize(t)))
        self.text_len_ = item_text(items.reset_index(), cfg.with_description).map(
            lambda t: len(tokenize(t))).set_axis(items.index)
        self.uses_judge_ = JUDGE_COLUMN in train.judgments.columns

    def _features(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
        cands = candidates.reset_index(drop=True)
        feats = pd.DataFrame(index=cands.index)
        bm25 = self.bm25_.score(queries, cands)
        by_query = bm25.groupby(cands["query_id"])
        feats["bm25"] = bm25
        feats["bm25_rank"] = by_query.rank(ascending=False, method="min")
        top = by_query.transform("max")
        feats["bm25_norm"] = (bm25 / top.where(top > 0)).fillna(0.0)
        if self.d2q_ is not None:
            feats["bm25_doc2query"] = self.d2q_.score(queries, cands)
        for name, encoder in self.encoders_.items():
            feats[name] = encoder.score(queries, cands)
        if self.d2q_ is not None and "cos_zero_shot" in self.encoders_:
            # dense doc2query: how close the query is to what was written for the item
            feats["cos_doc2query"] = self.encoders_["cos_zero_shot"].expansion_scores(
                queries, cands)
        texts = queries.drop_duplicates("query_id").set_index("query_id")["text"]
        q_tokens = cands["query_id"].map(texts.map(lambda t: frozenset(tokenize(t))))
        t_tokens = cands["item_id"].map(self.title_tokens_)
        feats["title_jaccard"] = [
            len(q & t) / len(q | t) if isinstance(q, frozenset) and isinstance(t, frozenset)
            and (q | t) else 0.0 for q, t in zip(q_tokens, t_tokens, strict=True)]
        feats["query_len"] = q_tokens.map(lambda q: len(q) if isinstance(q, frozenset) else 0)
        feats["item_len"] = cands["item_id"].map(self.text_len_).fillna(0).astype(float)
        if self.uses_judge_:
            feats[JUDGE_COLUMN] = (pd.to_numeric(cands[JUDGE_COLUMN], errors="coerce")
                                   if JUDGE_COLUMN in cands else np.nan)
        return feats.astype(float)

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        if not hasattr(self, "ranker_"):
            raise ShopAugError("call fit() before score()")
        if not len(candidates):
            return pd.Series(np.zeros(0), index=candidates.index, dtype=float)
        feats = self._features(queries, candidates)[self.feature_names_]
        return pd.Series(self.ranker_.predict(feats), index=candidates.index, dtype=float)

    def feature_importances(self) -> pd.Series:
        """Total gain per feature: which signal the ranker leans on."""
        gains = self.ranker_.booster_.feature_importance("gain")
        return pd.Series(gains, index=self.feature_names_).sort_values(ascending=False)
