"""Filters for synthetic queries: each removes synthetic rows only, and says why.

Generated queries fail in known ways: they copy the title, repeat each other,
come out in the wrong script or length, or do not match their item at all
(doc2query--, InPars). A filter drops such a query together with its synthetic
judgments and leaves ``report_ = {"removed", "kept", "reasons"}`` behind.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Filter
from shopaug.augment.expand import (
    CatalogScorer,
    UsesEmbeddings,
    char_ngrams,
    has_cjk,
    jaccard,
    normalise_text,
    tokenize,
)
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext


class FilterConfig(ComponentConfig):
    #: filter only rows made by these augmenters (None: every synthetic row)
    augmenters: list[str] | None = None


class QueryFilter(Filter):
    """Decides per synthetic query; a dropped query takes its synthetic judgments along."""

    Config = FilterConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: FilterConfig

    def targets(self, data: ShopData) -> pd.DataFrame:
        """The synthetic queries this filter judges, with their source item (if any)."""
        queries = data.queries
        mask = queries["origin"] == "synthetic"
        if self.config.augmenters is not None:
            mask &= queries["augmenter"].isin(self.config.augmenters)
        out = queries.loc[mask, ["query_id", "text"]].reset_index(drop=True)
        return out.assign(text=out["text"].fillna(""),
                          item_id=out["query_id"].map(source_items(data)))

    def reasons(self, data: ShopData, targets: pd.DataFrame) -> list[str | None]:
        raise NotImplementedError

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        targets = self.targets(data)
        why = self.reasons(data, targets) if len(targets) else []
        drop = {q for q, r in zip(targets["query_id"], why, strict=True) if r}
        self.report_ = {"removed": len(drop), "kept": len(targets) - len(drop),
                        "reasons": _counts(r for r in why if r)}
        return drop_queries(data, drop)


def _counts(reasons: Iterable[str]) -> dict[str, int]:
    return {str(k): int(v) for k, v in pd.Series(list(reasons), dtype=object)
            .value_counts().sort_index().items()}


def source_items(data: ShopData) -> dict[str, str]:
    """Synthetic query -> the item of its best synthetic judgment (the item it came from)."""
    judged = data.judgments
    judged = judged[judged["origin"] == "synthetic"]
    best = judged.sort_values(["query_id", "gain", "item_id"], ascending=[True, False, True])
    best = best.drop_duplicates("query_id")
    return dict(zip(best["query_id"], best["item_id"], strict=True))


def drop_queries(data: ShopData, query_ids: set[str]) -> ShopData:
    """``data`` without those synthetic queries and their synthetic judgments."""
    if not query_ids:
        return data
    queries, judged = data.queries, data.judgments
    gone_q = (queries["origin"] == "synthetic") & queries["query_id"].isin(query_ids)
    gone_j = (judged["origin"] == "synthetic") & judged["query_id"].isin(query_ids)
    return data.replace(queries=queries[~gone_q], judgments=judged[~gone_j])


def _titles(data: ShopData) -> dict[str, str]:
    items = data.items
    return dict(zip(items["item_id"], items["title"], strict=True))


class CopyFilterConfig(FilterConfig):
    #: token Jaccard with the title at or above which a query is a copy
    max_overlap: float = Field(0.9, ge=0, le=1)
    #: also drop queries found verbatim inside the title
    drop_contained: bool = True


class CopyFilter(QueryFilter):
    """Drop queries that copy their item's title (they teach nothing but string match)."""

    name = "copy_title"
    Config = CopyFilterConfig
    config: CopyFilterConfig

    def reasons(self, data: ShopData, targets: pd.DataFrame) -> list[str | None]:
        titles = _titles(data)
        out: list[str | None] = []
        for text, item in zip(targets["text"], targets["item_id"], strict=True):
            title = titles.get(item) if isinstance(item, str) else None
            q, t = normalise_text(text), normalise_text(title)
            if title is None or not q:
                out.append(None)
            elif q == t:
                out.append("equal_title")
            elif self.config.drop_contained and (q in t if has_cjk(q) else f" {q} " in f" {t} "):
                out.append("contained_in_title")
            elif jaccard(set(tokenize(q)), set(tokenize(t))) >= self.config.max_overlap:
                out.append("token_overlap")
            else:
                out.append(None)
        return out


class DedupFilterConfig(FilterConfig):
    #: char 3-gram Jaccard at or above which two queries of one item are near duplicates
    near_threshold: float = Field(0.9, ge=0, le=1)
    #: a query repeating one of another item: drop it, or move its judgments to the first
    across_items: Literal["drop", "merge"] = "merge"


class DedupFilter(QueryFilter):
    """Exact duplicates (per item and across items) and near duplicates per item."""

    name = "dedup"
    Config = DedupFilterConfig
    config: DedupFilterConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        targets = self.targets(data)
        target_ids = set(targets["query_id"])
        first: dict[str, str] = {}  # normalised text -> the query that has it first
        grams_of: dict[str, list[set[str]]] = {}  # item -> 3-grams of its kept queries
        positives = data.judgments[data.judgments["gain"] > 0]
        items_of = positives.groupby("query_id")["item_id"].agg(list).to_dict()
        moved, why = {}, {}
        queries = data.queries
        queries = pd.concat([queries[queries["origin"] == "real"],  # a synthetic copy of a
                             queries[queries["origin"] != "real"]])  # real query is the dup
        for qid, text in zip(queries["query_id"], queries["text"], strict=True):
            norm, items = normalise_text(text), items_of.get(qid, [])
            grams = char_ngrams(norm)
            owner = first.get(norm)
            if qid in target_ids and owner is not None:
                same = set(items) & set(items_of.get(owner, []))
                why[qid] = "duplicate_same_item" if same else "duplicate_across_items"
                if not same and self.config.across_items == "merge":
                    moved[qid] = owner
                continue
            if qid in target_ids and any(jaccard(grams, g) >= self.config.near_threshold
                                         for item in items for g in grams_of.get(item, [])):
                why[qid] = "near_duplicate_same_item"
                continue
            first.setdefault(norm, qid)
            for item in items:
                grams_of.setdefault(item, []).append(grams)
        self.report_ = {"removed": len(why), "kept": len(targets) - len(why),
                        "reasons": _counts(why.values()), "merged_queries": len(moved)}
        return drop_queries(self._merge(data, moved), set(why))

    @staticmethod
    def _merge(data: ShopData, moved: dict[str, str]) -> ShopData:
        """Re-point synthetic judgments of cross-item duplicates to the query kept."""
        if not moved:
            return data
        judged = data.judgments
        movable = (judged["origin"] == "synthetic") & judged["query_id"].isin(moved)
        extra = judged[movable].assign(query_id=judged.loc[movable, "query_id"].map(moved))
        have = set(zip(judged["query_id"], judged["item_id"], strict=True))
        extra = extra[[p not in have for p in zip(extra["query_id"], extra["item_id"],
                                                  strict=True)]]
        extra = extra.drop_duplicates(["query_id", "item_id"])
        return data.replace(judgments=pd.concat([judged[~movable], extra], ignore_index=True))


class LanguageFilterConfig(FilterConfig):
    min_chars: int = Field(2, ge=0)
    #: words; a Chinese character counts as half a word
    max_words: int = Field(12, ge=1)


class LanguageFilter(QueryFilter):
    """Drop empty output, output in another script than the title, too short or too long."""

    name = "language"
    Config = LanguageFilterConfig
    config: LanguageFilterConfig

    def reasons(self, data: ShopData, targets: pd.DataFrame) -> list[str | None]:
        titles = _titles(data)
        out: list[str | None] = []
        for text, item in zip(targets["text"], targets["item_id"], strict=True):
            norm = normalise_text(text)
            title = titles.get(item) if isinstance(item, str) else None
            cjk = sum(1 for t in tokenize(norm) if len(t) == 1 and has_cjk(t))
            words = len([t for t in tokenize(norm) if not has_cjk(t)]) + math.ceil(cjk / 2)
            if not norm:
                out.append("empty")
            elif title is not None and has_cjk(title) != has_cjk(norm):
                out.append("script_mismatch")
            elif len(norm.replace(" ", "")) < self.config.min_chars:
                out.append("too_short")
            elif words > self.config.max_words:
                out.append("too_long")
            else:
                out.append(None)
        return out


class _EmbeddingFilter(UsesEmbeddings, QueryFilter):
    """A filter that may embed text; tests pass a cheap ``embed`` function."""



class ConsistencyFilterConfig(FilterConfig):
    scorer: Literal["bm25", "biencoder"] = "bm25"
    #: share of synthetic (query, item) pairs kept, best scores first
    keep_fraction: float = Field(0.7, ge=0, le=1)
    #: synthetic judgments at or above this gain are the pairs scored
    positive_min_gain: float = Field(0.5, ge=0, le=1)


class ConsistencyFilter(_EmbeddingFilter):
    """doc2query--: keep the best-scoring share of synthetic (query, item) pairs and write
    the score into quality_score. ``report_`` counts pairs; a query that loses all of its
    scored pairs goes too (``removed_queries``)."""

    name = "consistency"
    Config = ConsistencyFilterConfig
    config: ConsistencyFilterConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        targets = self.targets(data)
        judged = data.judgments
        pairs = judged[(judged["origin"] == "synthetic") & (judged["gain"] >= cfg.positive_min_gain)
                       & judged["query_id"].isin(set(targets["query_id"]))]
        self.report_ = {"removed": 0, "kept": len(pairs), "reasons": {}, "removed_queries": 0}
        if pairs.empty:
            return data
        retrieval = CatalogScorer(data, "bm25" if cfg.scorer == "bm25" else "embedding", self.embed)
        text = dict(zip(targets["query_id"], targets["text"], strict=True))
        values = np.zeros(len(pairs))
        groups = pairs.reset_index(drop=True).groupby("query_id").indices
        item_ids = pairs["item_id"].to_numpy()
        qids = list(groups)
        for qid, scores in zip(qids, retrieval.scores([text[q] for q in qids]), strict=True):
            for row in groups[qid]:
                pos = retrieval.position.get(item_ids[row])
                values[row] = retrieval.match(text[qid], scores, pos) if pos is not None else 0
        score = pd.Series(values, index=pairs.index)
        ranked = pairs.assign(score=score).sort_values(["score", "query_id", "item_id"],
                                                       ascending=[False, True, True])
        n_keep = math.ceil(cfg.keep_fraction * len(ranked))
        dropped = ranked.index[n_keep:]
        kept = score.drop(index=dropped)
        judged = judged.copy()
        judged.loc[kept.index, "quality_score"] = kept
        judged = judged.drop(index=dropped)
        # A query that lost every scored pair goes, with the rest of its synthetic judgments.
        orphans = set(pairs["query_id"]) - set(pairs.loc[kept.index, "query_id"])
        best = kept.groupby(pairs.loc[kept.index, "query_id"]).max()
        queries = data.queries
        mine = queries["query_id"].isin(best.index) & (queries["origin"] == "synthetic")
        queries.loc[mine, "quality_score"] = queries.loc[mine, "query_id"].map(best).to_numpy()
        self.report_ = {"removed": len(dropped), "kept": n_keep,
                        "reasons": {"low_consistency": len(dropped)} if len(dropped) else {},
                        "removed_queries": len(orphans)}
        return drop_queries(data.replace(queries=queries, judgments=judged), orphans)


class RoundTripConfig(FilterConfig):
    #: the source item must be among this many best catalog items for the query
    k: int = Field(20, ge=1)
    method: Literal["bm25", "embedding"] = "bm25"


class RoundTripFilter(_EmbeddingFilter):
    """Keep a query only if searching the catalog with it finds its source item."""

    name = "round_trip"
    Config = RoundTripConfig
    config: RoundTripConfig

    def reasons(self, data: ShopData, targets: pd.DataFrame) -> list[str | None]:
        retrieval = CatalogScorer(data, self.config.method, self.embed)
        out: list[str | None] = []
        for item, scores in zip(targets["item_id"], retrieval.scores(targets["text"].tolist()),
                                strict=True):
            pos = retrieval.position.get(item) if isinstance(item, str) else None
            if pos is None:
                out.append(None)
                continue
            s = scores[pos]
            rank = 1 + int((scores > s).sum()) + int((scores[:pos] == s).sum())
            found = s > 0 and rank <= self.config.k
            out.append(None if found else "source_not_in_top_k")
        return out


def filter_report(filters: Iterable[Filter]) -> pd.DataFrame:
    """One row per filter and reason: how many rows it removed and kept, and why."""
    rows = []
    for f in filters:
        report = getattr(f, "report_", None) or {}
        reasons = report.get("reasons") or {"none": 0}
        for reason, count in reasons.items():
            rows.append({"filter": f.name, "reason": reason, "count": int(count),
                         "removed": report.get("removed", 0), "kept": report.get("kept", 0)})
    return pd.DataFrame(rows, columns=["filter", "reason", "count", "removed", "kept"])
