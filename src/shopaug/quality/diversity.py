"""Diversity: is the generated text varied, and how much of the catalog does it reach?

distinct-n (unique n-grams over all n-grams), self-BLEU (how much each text repeats
the others; lower is more diverse) and embedding dispersion (mean pairwise cosine
distance) are computed on equal-size seeded samples of real and generated text, since
all three depend on how many texts are measured.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from shopaug.augment.expand import normalise_text
from shopaug.data.bundle import ShopData
from shopaug.quality._common import (
    Section,
    binned,
    by_origin,
    enriched_items,
    generated_attributes,
    generated_profiles,
    int_labels,
    positive_rows,
    rng_for,
    sample,
    tokens,
)

Embed = Callable[[list[str]], np.ndarray]
#: texts per side for distinct-n, and for the quadratic self-BLEU and dispersion
DISTINCT_SAMPLE = 5_000
PAIRWISE_SAMPLE = 300
PER_ITEM_EDGES = [1, 2, 3, 4, 5, 6, 11]


def distinct_n(docs: Sequence[Sequence[str]], n: int) -> float | None:
    """Unique n-grams over all n-grams of the texts (None when there is none)."""
    grams = [tuple(d[i:i + n]) for d in docs for i in range(len(d) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def word_ngrams(doc: Sequence[str], n: int) -> Counter:
    """Counts of the n-token tuples of a tokenised text."""
    return Counter(tuple(doc[i:i + n]) for i in range(len(doc) - n + 1))


def self_bleu(docs: Sequence[Sequence[str]], max_n: int = 4, eps: float = 0.1) -> float | None:
    """Mean BLEU of each text against all the others as references.

    BLEU-4 with clipped n-gram precision, brevity penalty against the closest reference
    length, and Chen & Cherry's smoothing 1 (a zero match count becomes ``eps``); a text
    shorter than 4 tokens uses the orders it has, so two-word queries still score.
    """
    docs = [list(d) for d in docs if len(d)]
    if len(docs) < 2:
        return None
    grams = [[word_ngrams(d, n) for n in range(1, max_n + 1)] for d in docs]
    # per order: n-gram -> (highest count, text holding it, second highest count), so the
    # clip count "over every other text" is one lookup
    best: list[dict[tuple, tuple[int, int, int]]] = [{} for _ in range(max_n)]
    for j, per_order in enumerate(grams):
        for n, counts in enumerate(per_order):
            table = best[n]
            for gram, c in counts.items():
                b1, owner, b2 = table.get(gram, (0, -1, 0))
                if c > b1:
                    table[gram] = (c, j, b1)
                elif c > b2:
                    table[gram] = (b1, owner, c)
    lengths = np.array([len(d) for d in docs])
    scores = []
    for j, doc in enumerate(docs):
        orders = min(max_n, len(doc))
        log_p = 0.0
        for n in range(orders):
            counts = grams[j][n]
            matched = 0
            for gram, c in counts.items():
                b1, owner, b2 = best[n][gram]
                matched += min(c, b2 if owner == j else b1)
            log_p += math.log(max(matched, eps) / sum(counts.values())) / orders
        others = np.delete(lengths, j)
        ref = int(others[np.lexsort((others, np.abs(others - len(doc))))[0]])
        brevity = 1.0 if len(doc) > ref else math.exp(1 - ref / len(doc))
        scores.append(brevity * math.exp(log_p))
    return float(np.mean(scores))


def hashed_trigrams(texts: Sequence[str], dim: int = 4096) -> np.ndarray:
    """Dependency-free embedding: hashed character-3-gram counts (crc32, so stable
    across processes, unlike ``hash``)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        padded = f"  {normalise_text(text)}  "
        for i in range(len(padded) - 2):
            out[row, zlib.crc32(padded[i:i + 3].encode("utf-8")) % dim] += 1
    return out


def dispersion(texts: Sequence[str], embed: Embed | None = None) -> float | None:
    """Mean pairwise cosine distance of the texts' embeddings."""
    if len(texts) < 2:
        return None
    emb = np.asarray((embed or hashed_trigrams)(list(texts)), dtype=np.float64)
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sims = emb @ emb.T
    n = len(texts)
    return float(1 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))


def text_sets(data: ShopData) -> dict[str, tuple[list[str], list[str]]]:
    """Kind of text -> (real texts, generated texts)."""
    real_q, syn_q = by_origin(data.queries)
    out = {"queries": (real_q["text"].dropna().astype(str).tolist(),
                       syn_q["text"].dropna().astype(str).tolist())}
    users = data.users
    profiles = generated_profiles(users)
    if len(profiles):
        real = users.loc[~users["user_id"].astype(str).isin(set(profiles["user_id"]))
                         & users["profile_text"].notna(), "profile_text"]
        out["user profiles"] = (real.astype(str).tolist(), profiles["text"].tolist())
    attrs = generated_attributes(data.items)
    described = attrs[attrs["attribute"] == "description"]
    if len(described):
        items = data.items
        real = (items.loc[~items["item_id"].isin(set(described["item_id"])), "description"]
                if "description" in items.columns else pd.Series(dtype=object))
        out["item descriptions"] = (real.dropna().astype(str).tolist(),
                                    described["value"].tolist())
    return out


def diversity_section(data: ShopData, *, embed: Embed | None = None, seed: int = 0) -> Section:
    section = Section()
    rng = rng_for(seed, "diversity")
    rows = []
    for kind, (real, generated) in text_sets(data).items():
        if not generated:
            continue
        n_distinct = min(len(generated), len(real) or len(generated), DISTINCT_SAMPLE)
        n_pair = min(n_distinct, PAIRWISE_SAMPLE)
        for origin, texts in (("real", real), ("synthetic", generated)):
            if not texts:
                continue
            small = sample(texts, n_distinct, rng)
            docs = [tokens(t) for t in small]
            pair = sample(small, n_pair, rng)
            norms = [normalise_text(t) for t in texts]
            rows.append([kind, origin, len(texts), 1 - len(set(norms)) / len(norms),
                         distinct_n(docs, 1), distinct_n(docs, 2),
                         self_bleu([tokens(t) for t in pair]), dispersion(pair, embed)])
    if rows:
        section.table(
            "Text diversity", ["texts", "origin", "n", "duplicate share", "distinct-1",
                               "distinct-2", "self-BLEU-4", "embedding dispersion"], rows,
            f"distinct-n on equal-size samples of real and synthetic text (at most "
            f"{DISTINCT_SAMPLE:,}); self-BLEU (lower = more diverse) and dispersion (mean "
            f"pairwise cosine distance, higher = more diverse) on at most {PAIRWISE_SAMPLE}")
    else:
        section.note("Text diversity", "no generated text (queries, profiles, descriptions)")
    coverage(data, section)
    return section


def coverage(data: ShopData, section: Section) -> None:
    """Share of catalog items that synthetic rows touch, next to what real rows touch."""
    all_items = set(data.items["item_id"].astype(str))
    if not all_items:
        section.note("Catalog coverage", "the bundle has no items")
        return
    judged = data.judgments
    judged = judged.assign(item_id=judged["item_id"].astype(str))
    syn_queries = set(by_origin(data.queries)[1]["query_id"])
    real_j, syn_j = by_origin(judged[judged["gain"] > 0])
    real_i, syn_i = by_origin(positive_rows(data.interactions))
    enriched = enriched_items(data.items)
    kinds = {
        "synthetic query": (set(real_j["item_id"]),
                            set(syn_j.loc[syn_j["query_id"].isin(syn_queries), "item_id"])),
        "synthetic judgment": (set(real_j["item_id"]), set(syn_j["item_id"])),
        "synthetic interaction": (set(real_i["item_id"].astype(str)),
                                  set(syn_i["item_id"].astype(str))),
        "enrichment": (set(), enriched),
    }
    union = set().union(*(s for _, s in kinds.values()))
    kinds["any synthetic row"] = (set().union(*(r for r, _ in kinds.values())), union)
    rows = []
    for kind, (real, synthetic) in kinds.items():
        r, s = len(real & all_items), len(synthetic & all_items)
        rows.append([kind, s, s / len(all_items), r, r / len(all_items)])
    section.table("Catalog coverage: items with at least one ...",
                  ["kind", "items (synthetic)", "share (synthetic)", "items (real)",
                   "share (real)"], rows,
                  f"of {len(all_items):,} catalog items; real = items with a real judged "
                  "query / real interaction")
    section.plot("Catalog coverage", "bar", "items with at least one", [r[0] for r in rows],
                 {"real": [r[4] for r in rows], "synthetic": [r[2] for r in rows]})
    if len(syn_j):
        per_item = {
            "real": real_j.groupby("item_id")["query_id"].nunique().to_numpy(float),
            "synthetic": syn_j.groupby("item_id")["query_id"].nunique().to_numpy(float)}
        section.plot("Relevant queries per covered item", "hist", "queries",
                     int_labels(PER_ITEM_EDGES),
                     {k: binned(v, PER_ITEM_EDGES) for k, v in per_item.items() if len(v)})
