"""Lexical baselines: a seeded random ranker, BM25 over the catalog, and BM25 over
items expanded with their synthetic queries (doc2query), the cheapest way to use
LLM-generated queries."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.search.base import SearchModel, item_text

# CJK ideographs, kana and hangul have no spaces between words: each character is a
# token, everything else splits on non-word characters. No stemming or stop words,
# so the tokenizer works the same for every language.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TOKEN = re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])[^\W_])+")


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens, one token per CJK character."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", str(text)).lower())


def _aligned(queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
    """The query text of each candidate row ('' for unknown query ids)."""
    texts = queries.drop_duplicates("query_id").set_index("query_id")["text"]
    return candidates["query_id"].map(texts).fillna("").astype(str)


def _stable_uniform(keys: pd.Series) -> np.ndarray:
    """A uniform [0, 1) number per string that depends on nothing but the string."""
    hashed = pd.util.hash_array(keys.astype(str).to_numpy(dtype=object),
                                hash_key="shopaug-random-0")
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class RandomConfig(ComponentConfig):
    pass


class RandomRanker(SearchModel):
    """The floor every model must clear: scores hash (seed, query, item)."""

    name = "random"
    Config = RandomConfig

    def fit(self, train: ShopData, seed: int = 0) -> RandomRanker:
        self.seed_ = int(seed)
        return self

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        if not hasattr(self, "seed_"):
            raise ShopAugError("call fit() before score()")
        keys = (f"{self.seed_}|" + candidates["query_id"].astype(str) + "|"
                + candidates["item_id"].astype(str))
        return pd.Series(_stable_uniform(keys), index=candidates.index, dtype=float)


class BM25Config(ComponentConfig):
    k1: float = 1.5
    b: float = 0.75
    #: index the description too (titles alone are short and precise)
    with_description: bool = True


class BM25(SearchModel):
    """Okapi BM25 (bm25s, Lucene variant) over each item's text."""

    name = "bm25"
    Config = BM25Config

    def _documents(self, train: ShopData) -> tuple[pd.Series, pd.Series]:
        items = train.items.drop_duplicates("item_id")
        return items["item_id"].astype(str), item_text(items, self.config.with_description)

    def fit(self, train: ShopData, seed: int = 0) -> BM25:
        ids, texts = self._documents(train)
        self._index(ids, texts)
        return self

    def _index(self, ids: pd.Series, texts: Iterable[str]) -> None:
        import bm25s

        self.item_ids_ = ids.reset_index(drop=True)
        self.position_ = pd.Series(np.arange(len(ids)), index=pd.Index(self.item_ids_))
        corpus = [tokenize(t) for t in texts]
        self.bm25_ = None
        if any(corpus):
            self.bm25_ = bm25s.BM25(k1=self.config.k1, b=self.config.b)
            self.bm25_.index(corpus, show_progress=False)

    def query_scores(self, text: str) -> np.ndarray:
        """BM25 score of every indexed item (in ``item_ids_`` order) for one query."""
        if not hasattr(self, "item_ids_"):
            raise ShopAugError("call fit() before score()")
        if self.bm25_ is None:
            return np.zeros(len(self.item_ids_), dtype=np.float32)
        ids = self.bm25_.get_tokens_ids(tokenize(text))
        if not ids:
            return np.zeros(len(self.item_ids_), dtype=np.float32)
        return np.asarray(self.bm25_.get_scores_from_ids(ids), dtype=np.float32)

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        if not hasattr(self, "item_ids_"):
            raise ShopAugError("call fit() before score()")
        out = np.zeros(len(candidates), dtype=np.float64)
        if not len(candidates):
            return pd.Series(out, index=candidates.index)
        texts = _aligned(queries, candidates).to_numpy()
        position = candidates["item_id"].astype(str).map(self.position_).to_numpy(dtype=float)
        known = ~np.isnan(position)
        position = np.nan_to_num(position).astype(np.int64)
        # One sparse score vector per distinct query text, then a lookup per candidate.
        for text, rows in pd.Series(np.arange(len(texts))).groupby(texts).groups.items():
            rows = np.asarray(rows)
            rows = rows[known[rows]]
            if len(rows):
                out[rows] = self.query_scores(text)[position[rows]]
        return pd.Series(out, index=candidates.index)

    def top_items(self, text: str, k: int) -> list[str]:
        """The ``k`` best-scoring item ids for ``text`` (ties by item id), matches only."""
        scores = self.query_scores(text)
        order = np.lexsort((self.item_ids_.to_numpy(), -scores))
        order = order[scores[order] > 0][:k]
        return self.item_ids_.to_numpy()[order].tolist()


class BM25Doc2QueryConfig(BM25Config):
    #: skip synthetic judgments (or queries) whose quality_score is below this;
    #: unscored rows are kept
    min_quality: float = 0.0
    #: how many times each synthetic query is appended (term-frequency weight)
    repeat: int = 1


def synthetic_expansions(train: ShopData, min_quality: float = 0.0) -> pd.DataFrame:
    """(item_id, text) of synthetic queries linked to items by synthetic judgments
    with gain > 0; ordered so the expansion is deterministic."""
    judg = train.judgments
    judg = judg[(judg["origin"] == "synthetic") & (judg["gain"] > 0)]
    queries = train.queries
    queries = queries[queries["origin"] == "synthetic"]
    pairs = judg[["query_id", "item_id", "quality_score"]].merge(
        queries[["query_id", "text", "quality_score"]].rename(
            columns={"quality_score": "query_quality"}), on="query_id")
    quality = pairs["quality_score"].fillna(pairs["query_quality"])
    pairs = pairs[~(quality < min_quality)]
    pairs = pairs.drop_duplicates(["query_id", "item_id"])
    return pairs.sort_values(["item_id", "query_id"])[["item_id", "text"]].reset_index(drop=True)


class BM25Doc2Query(BM25):
    """BM25 whose documents also contain the synthetic queries written for them, so
    vocabulary the shopper uses but the catalog lacks can still match."""

    name = "bm25_doc2query"
    Config = BM25Doc2QueryConfig

    def fit(self, train: ShopData, seed: int = 0) -> BM25Doc2Query:
        ids, texts = self._documents(train)
        exp = synthetic_expansions(train, self.config.min_quality)
        joined = exp.groupby("item_id")["text"].agg(" ".join).to_dict()
        extra = ids.map(lambda i: joined.get(i, ""))
        if self.config.repeat > 1:
            extra = extra.map(lambda t: " ".join([t] * self.config.repeat) if t else t)
        self.n_expansions_ = len(exp)
        self._index(ids, (texts.reset_index(drop=True) + " " + extra.reset_index(drop=True))
                    .str.strip())
        return self


def bm25_negatives(bm25: BM25, queries: pd.DataFrame, positives: pd.DataFrame, n: int,
                   seed: int, pool: int = 30) -> pd.DataFrame:
    """(query_id, item_id) hard negatives: ``n`` items sampled from each query's BM25
    top ``pool`` over the whole catalog, its positives excluded. Used to give synthetic
    queries (one positive each) something to be ranked against."""
    if n <= 0 or not len(queries):
        return pd.DataFrame({"query_id": pd.Series(dtype=str), "item_id": pd.Series(dtype=str)})
    known = positives.groupby("query_id")["item_id"].agg(set)
    all_ids = bm25.item_ids_.to_numpy()
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str]] = []
    for qid, text in queries[["query_id", "text"]].sort_values("query_id").itertuples(
            index=False):
        exclude = known.get(qid, set())
        top = [i for i in bm25.top_items(text, pool + len(exclude)) if i not in exclude][:pool]
        if len(top) < n:  # too few lexical matches: fill with random catalog items
            rest = np.setdiff1d(all_ids, np.array([*top, *exclude], dtype=object))
            top += rng.permutation(rest)[: n - len(top)].tolist()
        picked = rng.choice(len(top), size=min(n, len(top)), replace=False)
        rows += [(qid, top[i]) for i in sorted(picked)]
    return pd.DataFrame(rows, columns=["query_id", "item_id"])
