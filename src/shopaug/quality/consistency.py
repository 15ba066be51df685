"""Consistency: does generated content agree with the product it is about?

Three cheap, model-free measures: a BM25-style lexical relevance score of synthetic
(query, item) pairs next to real ones, the share of generated attribute values whose
words occur in the product's own text (title, description, category, brand), and the
judge's confidence on synthetic judgments.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd

from shopaug.data.bundle import ShopData
from shopaug.quality._common import (
    Section,
    binned,
    by_origin,
    generated_attributes,
    rng_for,
    sample,
    tokens,
)

#: catalog documents used to estimate IDF and average length, and pairs scored per group
IDF_SAMPLE = 20_000
PAIR_SAMPLE = 3_000
SCORE_EDGES = [0.0, 1e-9, 0.2, 0.4, 0.6, 0.8, 1.0 - 1e-9]
SCORE_LABELS = ["0", "0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1", "1"]
CONF_EDGES = [round(0.1 * i, 1) for i in range(10)]
CONF_LABELS = [f"{lo:.1f}-{lo + 0.1:.1f}" for lo in CONF_EDGES]
STOPWORDS = frozenset({"a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "or",
                       "by", "at", "is", "it"})
_HTML = re.compile(r"<[^>]+>")


def stem(word: str) -> str:
    """Plural endings off, so "mugs" is grounded by "mug"."""
    if len(word) > 3 and word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def item_texts(items: pd.DataFrame, skip_description: set[str] | None = None) -> dict[str, str]:
    """Item -> title, brand, category and description as one text (HTML tags removed);
    the description is left out for items in ``skip_description``."""
    skip = skip_description or set()
    items = items.drop_duplicates("item_id")
    out = {}
    for row in items.to_dict("records"):
        parts = [row.get(c) for c in ("title", "brand", "category")]
        if str(row["item_id"]) not in skip:
            parts.append(row.get("description"))
        out[str(row["item_id"])] = _HTML.sub(" ", " ".join(p for p in parts if isinstance(p, str)))
    return out


class LexicalScorer:
    """BM25 of a query against one item, divided by the score of a perfect match, so
    scores sit in [0, 1]: the share of the query's (IDF-weighted) words the item has."""

    def __init__(self, texts: dict[str, str], rng: np.random.Generator, k1: float = 1.5,
                 b: float = 0.75) -> None:
        self.texts, self.k1, self.b = texts, k1, b
        docs = [tokens(t) for t in sample(list(texts.values()), IDF_SAMPLE, rng)]
        self.n = max(len(docs), 1)
        self.df = Counter(tok for d in docs for tok in set(d))
        self.avgdl = float(np.mean([len(d) for d in docs])) if docs else 1.0
        self._cache: dict[str, tuple[Counter, int]] = {}

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def score(self, query: str, item_id: str) -> float:
        if item_id not in self._cache:
            toks = tokens(self.texts.get(item_id, ""))
            self._cache[item_id] = (Counter(toks), len(toks))
        tf, dl = self._cache[item_id]
        terms = set(tokens(query))
        ideal = sum(self.idf(t) for t in terms)
        if not ideal:
            return 0.0
        norm = self.k1 * (1 - self.b + self.b * dl / max(self.avgdl, 1e-9))
        got = sum(self.idf(t) * tf[t] * (self.k1 + 1) / (tf[t] + norm) for t in terms if tf[t])
        return float(min(got / ideal, 1.0))


def consistency_section(data: ShopData, *, seed: int = 0) -> Section:
    section = Section()
    relevance(data, section, seed)
    grounding(data, section)
    confidence(data, section)
    return section


def relevance(data: ShopData, section: Section, seed: int) -> None:
    judged = data.judgments
    real, synthetic = by_origin(judged)
    if synthetic.empty:
        section.note("Query-item relevance", "no synthetic judgments")
        return
    rng = rng_for(seed, "consistency")
    scorer = LexicalScorer(item_texts(data.items), rng)
    text = dict(zip(data.queries["query_id"], data.queries["text"].fillna(""), strict=True))
    groups = {"real relevant": real[real["gain"] >= 0.5],
              "real not relevant": real[real["gain"] < 0.5]}
    for augmenter, frame in synthetic.groupby(synthetic["augmenter"].fillna("(unknown)")):
        groups[f"synthetic relevant ({augmenter})"] = frame[frame["gain"] >= 0.5]
    groups["synthetic relevant"] = synthetic[synthetic["gain"] >= 0.5]
    rows, scores = [], {}
    for name, frame in groups.items():
        pairs = sample(list(zip(frame["query_id"], frame["item_id"].astype(str), strict=True)),
                       PAIR_SAMPLE, rng)
        values = np.array([scorer.score(text.get(q, ""), i) for q, i in pairs], float)
        if not len(values):
            continue
        scores[name] = values
        rows.append([name, len(frame), float(values.mean()), float(np.median(values)),
                     float((values == 0).mean())])
    section.table("Lexical query-item relevance", ["pairs", "n", "mean score", "median score",
                                                   "share with no word in common"], rows,
                  "score = BM25 of the query on the item text / BM25 of a perfect match "
                  f"(IDF from the catalog); at most {PAIR_SAMPLE:,} pairs scored per row")
    names = {"real": "real relevant", "synthetic": "synthetic relevant",
             "real not relevant": "real not relevant"}
    series = {k: binned(scores[v], SCORE_EDGES) for k, v in names.items() if v in scores}
    section.plot("Lexical relevance of relevant (query, item) pairs", "hist", "score",
                 SCORE_LABELS, series)


def _content(text: str) -> list[str]:
    return [stem(t) for t in tokens(text) if t not in STOPWORDS]


def grounding(data: ShopData, section: Section) -> None:
    attrs = generated_attributes(data.items)
    if attrs.empty:
        section.note("Grounded attribute values", "no generated attribute values")
        return
    items = data.items
    # a description the augmenter wrote into the description column cannot ground itself
    described = attrs[attrs["attribute"] == "description"]
    own = (dict(zip(items["item_id"].astype(str), items["description"], strict=True))
           if "description" in items.columns else {})
    self_made = {i for i, v in zip(described["item_id"], described["value"], strict=True)
                 if isinstance(own.get(i), str) and own[i].strip() == v.strip()}
    product = {i: set(_content(t)) for i, t in item_texts(
        items[items["item_id"].astype(str).isin(set(attrs["item_id"]))], self_made).items()}
    found, recall = [], []
    for item_id, value in zip(attrs["item_id"], attrs["value"], strict=True):
        words = _content(value)
        known = product.get(item_id, set())
        hits = sum(w in known for w in words)
        found.append(bool(words) and hits == len(words))
        recall.append(hits / len(words) if words else np.nan)
    attrs = attrs.assign(grounded=found, recall=recall)
    rows = []
    for name, frame in attrs.groupby("attribute", sort=True):
        rows.append([name, len(frame), float(frame["grounded"].mean()),
                     float(frame["recall"].mean()), float(frame["grounded_flag"].mean())])
    values = attrs[attrs["attribute"] != "description"]
    if len(values):
        rows.append(["all attributes (no description)", len(values),
                     float(values["grounded"].mean()), float(values["recall"].mean()),
                     float(values["grounded_flag"].mean())])
    section.table("Grounded attribute values", ["attribute", "values", "grounded share",
                                                "mean share of words found",
                                                "flagged grounded by the augmenter"], rows,
                  "grounded = every content word of the value occurs in the item's title, "
                  "description, category or brand (Chinese per character)")
    shares = values.groupby("attribute")["grounded"].mean() if len(values) else pd.Series()
    if len(shares):
        section.plot("Grounded share per attribute", "bar", "attribute",
                     [str(k) for k in shares.index], {"synthetic": shares.to_numpy(float)})


def confidence(data: ShopData, section: Section) -> None:
    _, synthetic = by_origin(data.judgments)
    scored = synthetic[synthetic["quality_score"].notna()]
    if scored.empty:
        section.note("Judge confidence", "no synthetic judgment has a quality score")
        return
    rows = []
    for augmenter, frame in scored.groupby(scored["augmenter"].fillna("(unknown)")):
        q = frame["quality_score"].to_numpy(float)
        rows.append([augmenter, len(frame), float(q.mean()), float(np.median(q)),
                     float((q < 0.5).mean())])
    section.table("Confidence of synthetic judgments (quality_score)",
                  ["augmenter", "judgments", "mean", "median", "share below 0.5"], rows)
    section.plot("Confidence of synthetic judgments", "hist", "quality_score", CONF_LABELS,
                 {"synthetic": binned(scored["quality_score"].to_numpy(float), CONF_EDGES)})
