"""Labels mined from retrieval: hard negatives and a teacher's soft pseudo-labels.

Rankers learn most from negatives that look relevant: the top lexical or
semantic matches a query has not been judged relevant for. Items whose title
nearly equals a positive's are skipped: they are more likely unlabelled
positives (the same product listed twice) than negatives. `TeacherLabels`
scores unlabelled candidates with a teacher model calibrated on the real
judgments and keeps only the confident calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter
from shopaug.augment.expand import (
    BM25Index,
    Embedder,
    UsesEmbeddings,
    char_ngrams,
    default_embedder,
    embed_unit,
    jaccard,
    unjudged_candidates,
)
from shopaug.augment.queries import bottom_grade, scale_of
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.data.grades import gains_to_grades
from shopaug.models.search.base import item_text

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext


class HardNegativesConfig(ComponentConfig):
    per_query: int = Field(5, ge=1)
    method: Literal["bm25", "embedding", "both"] = "bm25"
    #: candidates looked at per query (and per method)
    depth: int = Field(50, ge=1)
    #: ranks skipped at the top, where unlabelled positives are most likely
    skip_top: int = Field(0, ge=0)
    queries: Literal["all", "real", "synthetic"] = "all"
    #: judgments at or above this gain are positives (their titles are protected)
    positive_min_gain: float = Field(0.5, ge=0, le=1)
    #: char 3-gram Jaccard of titles at or above which an item is a positive's twin
    near_duplicate: float = Field(0.8, ge=0, le=1)
    quality: float = Field(0.5, ge=0, le=1)


class HardNegatives(UsesEmbeddings, Augmenter):
    """Top-ranked unjudged items as lowest-grade synthetic judgments, for every query
    with at least one positive judgment."""

    name = "hard_negatives"
    Config = HardNegativesConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: HardNegativesConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        judged = data.judgments
        positives = judged[judged["gain"] >= cfg.positive_min_gain]
        queries = data.queries
        # Only queries with a known positive: without one, the top hits are as likely
        # unlabelled positives as negatives.
        queries = queries[queries["query_id"].isin(set(positives["query_id"]))]
        if cfg.queries != "all":
            queries = queries[queries["origin"] == cfg.queries]
        items = data.items.reset_index(drop=True)
        if queries.empty or items.empty:
            return data
        texts = item_text(items)
        ids = items["item_id"].to_numpy()
        seen = judged.groupby("query_id")["item_id"].agg(set).to_dict()
        titles = dict(zip(items["item_id"], items["title"], strict=True))
        grams: dict[str, set[str]] = {}  # title 3-grams, made on first use

        def gram(item: str) -> set[str]:
            if item not in grams:
                grams[item] = char_ngrams(titles.get(item, ""))
            return grams[item]

        protected = positives.groupby("query_id")["item_id"].agg(list).to_dict()
        rankings = self._rankings(queries, texts)
        rows = []
        for qid, ranked in zip(queries["query_id"], rankings, strict=True):
            done = seen.get(qid, set())
            twins = [gram(i) for i in protected.get(qid, []) if i in titles]
            picked = 0
            for j in ranked[cfg.skip_top:]:
                item = ids[j]
                if item in done or any(jaccard(gram(item), g) >= cfg.near_duplicate
                                       for g in twins):
                    continue
                rows.append((qid, item))
                picked += 1
                if picked == cfg.per_query:
                    break
        if not rows:
            return data
        scale = scale_of(data)
        out = pd.DataFrame(rows, columns=["query_id", "item_id"]).assign(
            grade=bottom_grade(scale), gain=0.0)
        return data.append("judgments", self.provenance(out, ctx, quality_score=cfg.quality))

    def _rankings(self, queries: pd.DataFrame, texts: pd.Series) -> list[np.ndarray]:
        """Catalog positions per query, best first (reciprocal rank fusion for "both")."""
        cfg = self.config
        depth = max(cfg.depth, cfg.skip_top + cfg.per_query)
        lists: list[list[np.ndarray]] = []
        if cfg.method in ("bm25", "both"):
            index = BM25Index(texts)
            lists.append([index.top(t, depth) for t in queries["text"]])
        if cfg.method in ("embedding", "both"):
            items = embed_unit(self.embed, texts.tolist())
            qs = embed_unit(self.embed, queries["text"].tolist())
            ranked = []
            keep = min(depth, items.shape[0])
            for start in range(0, len(qs), 256):
                sim = qs[start:start + 256] @ items.T
                part = np.argpartition(-sim, keep - 1, axis=1)[:, :keep]
                for row, cand in zip(sim, part, strict=True):
                    ranked.append(cand[np.lexsort((cand, -row[cand]))])
            lists.append(ranked)
        if len(lists) == 1:
            return lists[0]
        fused = []
        for a, b in zip(*lists, strict=True):
            score: dict[int, float] = {}
            for ranking in (a, b):
                for r, j in enumerate(ranking.tolist()):
                    score[j] = score.get(j, 0.0) + 1 / (60 + r)
            fused.append(np.array(sorted(score, key=lambda j: (-score[j], j)), dtype=int))
        return fused


class BlendScorer:
    """Default teacher: BM25 match fraction blended with embedding cosine."""

    def __init__(self, embed: Embedder, embedding_weight: float) -> None:
        self.embed = embed
        self.weight = embedding_weight

    def fit(self, train: ShopData, seed: int = 0) -> BlendScorer:
        items = train.items.reset_index(drop=True)
        texts = item_text(items)
        self._index = BM25Index(texts)
        self._position = {v: i for i, v in enumerate(items["item_id"])}
        self._emb = embed_unit(self.embed, texts.tolist()) if self.weight > 0 else None
        return self

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        text = dict(zip(queries["query_id"], queries["text"], strict=True))
        out = np.zeros(len(candidates))
        groups = candidates.reset_index(drop=True).groupby("query_id").indices
        qids = sorted(groups)
        qemb = (embed_unit(self.embed, [text[q] for q in qids]) if self._emb is not None
                else None)
        for n, qid in enumerate(qids):
            rows = groups[qid]
            pos = np.array([self._position.get(i, -1) for i in
                            candidates["item_id"].to_numpy()[rows]])
            known = pos >= 0
            lexical = self._index.scores(text[qid]) / max(self._index.ideal(text[qid]), 1e-9)
            value = np.zeros(len(rows))
            value[known] = np.minimum(lexical[pos[known]], 1.0)
            if qemb is not None:
                cos = np.zeros(len(rows))
                cos[known] = np.clip(self._emb[pos[known]] @ qemb[n], 0, 1)
                value = (1 - self.weight) * value + self.weight * cos
            out[rows] = value
        return pd.Series(out, index=candidates.index)


def platt(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, iters: int = 50) -> np.ndarray:
    """Logistic calibration (a, b) of scores ``x`` to soft targets ``y`` (Newton steps)."""
    design = np.column_stack([x, np.ones_like(x)])
    w = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(design @ w, -30, 30)))
        grad = design.T @ (p - y) + l2 * w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


class TeacherLabelsConfig(ComponentConfig):
    #: a registered search model as teacher; None: BM25 + embedding blend
    teacher: str | None = None
    teacher_config: dict[str, Any] = Field(default_factory=dict)
    #: weight of the embedding cosine in the default teacher (0: BM25 only)
    embedding_weight: float = Field(0.5, ge=0, le=1)
    #: BM25 candidates scored per query
    per_query: int = Field(10, ge=1)
    #: whose candidates to grade: real queries, synthetic ones (doc2query output) or all
    queries: Literal["real", "synthetic", "all"] = "real"
    #: keep calibrated scores at or above this as soft positives
    min_score: float = Field(0.7, ge=0, le=1)
    #: keep calibrated scores at or below this as soft negatives (None: keep none)
    max_score: float | None = Field(0.1, ge=0, le=1)


class TeacherLabels(Augmenter):
    """Confident teacher scores of unlabelled pairs as soft synthetic judgments."""

    name = "teacher_labels"
    Config = TeacherLabelsConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: TeacherLabelsConfig

    def __init__(self, config: Any = None, *, teacher: Any = None,
                 embed: Embedder | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.teacher = teacher
        self.embed = embed or default_embedder

    def _teacher(self) -> Any:
        if self.teacher is not None:
            return self.teacher
        if self.config.teacher:
            from shopaug import registry

            return registry.create("search_model", self.config.teacher,
                                   self.config.teacher_config)
        return BlendScorer(self.embed, self.config.embedding_weight)

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        queries = data.queries
        if cfg.queries != "all":
            queries = queries[queries["origin"] == cfg.queries]
        real = data.real()
        candidates = unjudged_candidates(data, queries, cfg.per_query)
        if candidates.empty or real.judgments.empty:
            return data
        teacher = self._teacher()
        teacher.fit(real, seed=ctx.seed)
        # Calibrated on the pairs the teacher was fit on: optimistic for a learned teacher,
        # exact for the default (BM25 and a frozen encoder learn nothing from labels).
        known = real.judgments[["query_id", "item_id", "gain"]].reset_index(drop=True)
        x = teacher.score(real.queries, known[["query_id", "item_id"]]).to_numpy(float)
        raw = teacher.score(queries, candidates[["query_id", "item_id"]]).to_numpy(float)
        gain = self._calibrate(x, known["gain"].to_numpy(float), raw)
        keep = gain >= cfg.min_score
        if cfg.max_score is not None:
            keep |= gain <= cfg.max_score
        if not keep.any():
            return data
        gain = gain[keep]
        rows = candidates.loc[keep, ["query_id", "item_id"]].assign(
            grade=gains_to_grades(gain, scale_of(data)), gain=gain)
        return data.append("judgments", self.provenance(
            rows, ctx, quality_score=np.abs(2 * gain - 1)))

    @staticmethod
    def _calibrate(x: np.ndarray, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """Teacher scores mapped to [0, 1] by a Platt fit on the real judgments."""
        mean, std = float(x.mean()), float(x.std()) or 1.0
        if len(x) >= 4 and np.ptp(y) > 0:
            a, b = platt((x - mean) / std, y)
            return 1 / (1 + np.exp(-np.clip(a * (raw - mean) / std + b, -30, 30)))
        if raw.min() >= 0 and raw.max() <= 1:
            return raw
        return 1 / (1 + np.exp(-(raw - mean) / std))
