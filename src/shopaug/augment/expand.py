"""Retrieval-based label expansion, plus the small text and retrieval helpers that the
augmenters and quality filters share (normalisation, CJK-aware tokens, BM25, embeddings).

`LabelPropagation` copies a real judgment to near-duplicate queries and items: a
query phrased almost the same way, or a product listed twice, is almost surely
judged the same, and the similarity is a fair confidence for the copied label.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

#: texts -> one embedding row per text
Embedder = Callable[[Sequence[str]], np.ndarray]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
_TOKEN_RE = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")


def has_cjk(text: object) -> bool:
    return bool(_CJK_RE.search(str(text)))


def normalise_text(text: object) -> str:
    """Lower case, NFKC, punctuation as spaces, single spaces: the form duplicates share."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return re.sub(r"[\W_]+", " ", text).strip()


def tokenize(text: object) -> list[str]:
    """Words for Latin script; characters and character bigrams for Chinese (no segmenter
    needed, and bigrams keep most of the word-level precision)."""
    out: list[str] = []
    for run in _TOKEN_RE.findall(normalise_text(text)):
        if _CJK_RE.match(run):
            out += list(run) + [run[i:i + 2] for i in range(len(run) - 1)]
        else:
            out.append(run)
    return out


def char_ngrams(text: object, n: int = 3) -> set[str]:
    norm = normalise_text(text)
    return {norm[i:i + n] for i in range(max(len(norm) - n + 1, 1))} if norm else set()


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


class BM25Index:
    """Okapi BM25 over a fixed list of documents, numpy only (postings per term)."""

    def __init__(self, docs: Iterable[str], k1: float = 1.5, b: float = 0.75) -> None:
        toks = [tokenize(d) for d in docs]
        self.n = len(toks)
        self.k1 = k1
        lengths = np.array([len(t) for t in toks], dtype=float)
        avgdl = float(lengths.mean()) if self.n and lengths.mean() > 0 else 1.0
        self._norm = k1 * (1 - b + b * lengths / avgdl)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for i, doc in enumerate(toks):
            for term, tf in Counter(doc).items():
                idx, tfs = postings.setdefault(term, ([], []))
                idx.append(i)
                tfs.append(tf)
        self._post = {t: (np.array(i), np.array(f, dtype=float)) for t, (i, f) in postings.items()}

    def idf(self, term: str) -> float:
        df = len(self._post[term][0]) if term in self._post else 0
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 of ``query`` against every document."""
        out = np.zeros(self.n)
        for term in set(tokenize(query)):
            if term in self._post:
                idx, tf = self._post[term]
                out[idx] += self.idf(term) * tf * (self.k1 + 1) / (tf + self._norm[idx])
        return out

    def ideal(self, query: str) -> float:
        """The score of a document of average length holding each query term once: divides
        a score into a [0, ~1] match fraction (unknown terms count as unmatched rare ones)."""
        return sum(self.idf(t) for t in set(tokenize(query)))

    def top(self, query: str, k: int, exclude: Iterable[int] = ()) -> np.ndarray:
        """Indices of the ``k`` best documents with a positive score (ties by index)."""
        scores = self.scores(query)
        scores[list(exclude)] = 0.0
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:  # only what can make the cut (all ties at the k-th score kept)
            kth = np.partition(scores[hits], len(hits) - k)[len(hits) - k]
            hits = hits[scores[hits] >= kth]
        order = np.lexsort((hits, -scores[hits]))
        return hits[order[:k]]


def unjudged_candidates(data: ShopData, queries: pd.DataFrame, per_query: int,
                        index: BM25Index | None = None) -> pd.DataFrame:
    """(query_id, text, item_id): each query's BM25 top catalog items with no judgment."""
    from shopaug.models.search.base import item_text

    items = data.items.reset_index(drop=True)
    if queries.empty or items.empty:
        return pd.DataFrame(columns=["query_id", "text", "item_id"])
    index = index or BM25Index(item_text(items))
    position = {v: i for i, v in enumerate(items["item_id"])}
    judged = data.judgments.groupby("query_id")["item_id"].agg(set).to_dict()
    ids = items["item_id"].to_numpy()
    rows = []
    for qid, text in zip(queries["query_id"], queries["text"], strict=True):
        skip = [position[i] for i in judged.get(qid, ()) if i in position]
        rows += [(qid, text, ids[j]) for j in index.top(text, per_query, exclude=skip)]
    return pd.DataFrame(rows, columns=["query_id", "text", "item_id"])


def default_embedder(texts: Sequence[str]) -> np.ndarray:
    """Packaged MiniLM embeddings, each distinct text encoded once per process: filters,
    teachers and benchmark seeds embed the same catalog again and again."""
    from shopaug.models.search.encoder import cached_encode, load_encoder, minilm_path

    model = load_encoder()
    return cached_encode(list(texts), f"{minilm_path()}|{model.max_seq_length}", model)


def embed_unit(embed: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Embeddings with unit rows whatever the embedder returns."""
    if not len(texts):
        return np.zeros((0, 1), dtype=np.float32)
    emb = np.asarray(embed(list(texts)), dtype=np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


class CatalogScorer:
    """Scores of queries against the whole catalog: BM25 or bi-encoder cosine."""

    def __init__(self, data: ShopData, method: str, embed: Embedder) -> None:
        from shopaug.models.search.base import item_text

        items = data.items.reset_index(drop=True)
        self.position = {v: i for i, v in enumerate(items["item_id"])}
        texts = item_text(items)
        self.method, self.embed = method, embed
        self.index = BM25Index(texts) if method == "bm25" else None
        self.items = embed_unit(embed, texts.tolist()) if method != "bm25" else None

    def scores(self, texts: list[str]) -> Iterable[np.ndarray]:
        if self.index is not None:
            yield from (self.index.scores(t) for t in texts)
            return
        queries = embed_unit(self.embed, texts)
        for start in range(0, len(texts), 256):
            yield from queries[start:start + 256] @ self.items.T

    def match(self, text: str, scores: np.ndarray, pos: int) -> float:
        """A [0, 1] score of one item: BM25 match fraction, or clipped cosine."""
        if self.index is not None:
            return float(min(scores[pos] / max(self.index.ideal(text), 1e-9), 1.0))
        return float(np.clip(scores[pos], 0, 1))


def similar_pairs(a: np.ndarray, b: np.ndarray, threshold: float,
                  block: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row of a, row of b, cosine) for every pair at or above ``threshold``, in blocks
    so a large catalog never needs its full similarity matrix."""
    rows, cols, sims = [], [], []
    for start in range(0, len(a), block):
        sim = a[start:start + block] @ b.T
        i, j = np.nonzero(sim >= threshold)
        rows.append(i + start)
        cols.append(j)
        sims.append(sim[i, j])
    if not rows:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims).astype(float)


class UsesEmbeddings:
    """Mixin for components that embed text; tests pass a cheap ``embed`` function."""

    def __init__(self, config: Any = None, *, embed: Embedder | None = None,
                 **overrides: Any) -> None:
        super().__init__(config, **overrides)  # type: ignore[call-arg]
        self.embed = embed or default_embedder


class LabelPropagationConfig(ComponentConfig):
    #: cosine at or above which two query texts count as the same need
    query_threshold: float = Field(0.9, ge=0, le=1)
    #: cosine at or above which two item titles count as the same product
    item_threshold: float = Field(0.95, ge=0, le=1)
    propagate_queries: bool = True
    propagate_items: bool = True


class LabelPropagation(UsesEmbeddings, Augmenter):
    """Copy each real judgment to near-duplicate queries and items (quality = cosine)."""

    name = "label_propagation"
    Config = LabelPropagationConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: LabelPropagationConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        judged = data.judgments
        real = judged[judged["origin"] == "real"]
        if real.empty:
            return data
        found = []
        if cfg.propagate_queries:
            queries = data.queries.reset_index(drop=True)
            found.append(self._spread(real, "query_id", queries["query_id"],
                                      queries["text"].fillna("").tolist(),
                                      cfg.query_threshold))
        if cfg.propagate_items:
            items = data.items.reset_index(drop=True)
            found.append(self._spread(real, "item_id", items["item_id"],
                                      items["title"].tolist(), cfg.item_threshold))
        rows = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
        if rows.empty:
            return data
        have = set(zip(judged["query_id"], judged["item_id"], strict=True))
        rows = rows[[p not in have for p in zip(rows["query_id"], rows["item_id"],
                                                 strict=True)]]
        # One label per new pair: the most similar source wins (then the higher gain).
        rows = rows.sort_values(["query_id", "item_id", "sim", "gain"],
                                ascending=[True, True, False, False], kind="stable")
        rows = rows.drop_duplicates(["query_id", "item_id"]).reset_index(drop=True)
        out = self.provenance(rows[["query_id", "item_id", "grade", "gain"]], ctx,
                              quality_score=rows["sim"].clip(0, 1).to_numpy())
        return data.append("judgments", out)

    def _spread(self, real: pd.DataFrame, key: str, ids: pd.Series, texts: list[str],
                threshold: float) -> pd.DataFrame:
        """Judgments re-targeted from each judged id to its near-duplicate ids."""
        position = {v: i for i, v in enumerate(ids)}
        sources = sorted({v for v in real[key] if v in position})
        if not sources or len(ids) < 2:
            return pd.DataFrame(columns=["query_id", "item_id", "grade", "gain", "sim"])
        emb = embed_unit(self.embed, texts)
        src_rows = np.array([position[v] for v in sources])
        i, j, sim = similar_pairs(emb[src_rows], emb, threshold)
        keep = src_rows[i] != j
        pairs = pd.DataFrame({key: np.array(sources)[i[keep]],
                              "target": ids.to_numpy()[j[keep]], "sim": sim[keep]})
        merged = real[["query_id", "item_id", "grade", "gain"]].merge(pairs, on=key)
        return merged.drop(columns=[key]).rename(columns={"target": key})
