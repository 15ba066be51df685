"""Leakage: did anything of the test side reach the synthetic rows or the prompts?

Synthetic queries are compared with test queries (normalised exact match, and near
duplicates by character-3-gram Jaccard), synthetic judgments and interactions with
test ones, and the prompts sent to the LLM are searched for test query texts and, per
user, for titles of items the user bought only on the test side. Every count is a
check whose default threshold is 0.

A prompt legitimately holds catalog text (the catalog is shared by both sides of a
split, and a title may contain a test query's words), so JSON strings in a prompt that
are catalog text (an item's title, brand, category, description or attribute) are not
searched for test queries, except under a key naming queries, nor are the catalog
pieces of a product written as one line of text (``title; key: value``); and titles
under a ``candidates`` key (what a train-fitted recommender proposed) or in few-shot
examples (only the request's own record, the prompt's last JSON object, is searched)
are not held against a user.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from shopaug.augment.enrich import iter_strings
from shopaug.augment.expand import jaccard, normalise_text
from shopaug.data.bundle import ShopData
from shopaug.llm.structured import json_objects
from shopaug.quality._common import (
    Section,
    by_origin,
    fmt_int,
    make_check,
    parse_json_object,
    phrase_weight,
    positive_rows,
    tokens,
)

SECTION = "leakage"
#: a phrase must be at least this long (words; a CJK character counts half) to be searched
MIN_PHRASE = 2.0
#: characters of a title searched for (prompts may cut long titles)
TITLE_CHARS = 40
_HTML = re.compile(r"<[^>]+>")


def _grams(norm: str, n: int = 3) -> set[str]:
    """``char_ngrams`` of an already normalised text (normalising is the slow part)."""
    return {norm[i:i + n] for i in range(max(len(norm) - n + 1, 1))} if norm else set()


# -- near duplicates ---------------------------------------------------------------------
def near_duplicates(queries: Sequence[str], targets: Sequence[str], threshold: float
                    ) -> dict[int, tuple[int, float]]:
    """Query index -> (target index, Jaccard) of its most similar target (both lists
    already normalised, see ``normalise_text``) whose
    character-3-gram Jaccard is at least ``threshold``. Prefix filtering (rare grams
    first) keeps this far from all-pairs: two sets that similar must share one of the
    first ``|x| - ceil(t|x|) + 1`` grams of each."""
    q_sets = [_grams(t) for t in queries]
    t_sets = [_grams(t) for t in targets]
    freq = Counter(g for s in (*q_sets, *t_sets) for g in s)

    def prefix(grams: set[str]) -> list[str]:
        ordered = sorted(grams, key=lambda g: (freq[g], g))
        return ordered[: len(ordered) - math.ceil(threshold * len(ordered) - 1e-9) + 1]

    index: dict[str, list[int]] = defaultdict(list)
    for ti, grams in enumerate(t_sets):
        for g in prefix(grams):
            index[g].append(ti)
    sizes = [len(g) for g in t_sets]
    out: dict[int, tuple[int, float]] = {}
    done: dict[str, tuple[int, float] | None] = {}  # repeated texts are matched once
    for qi, grams in enumerate(q_sets):
        if not grams:
            continue
        if queries[qi] not in done:
            # sets that similar have sizes within a factor t of each other
            lo, hi = threshold * len(grams) - 1e-9, len(grams) / threshold + 1e-9
            candidates = {ti for g in prefix(grams) for ti in index.get(g, ())
                          if lo <= sizes[ti] <= hi}
            best = max(((jaccard(grams, t_sets[ti]), -ti) for ti in candidates), default=None)
            done[queries[qi]] = ((-best[1], best[0]) if best is not None and best[0] >= threshold
                                 else None)
        if done[queries[qi]] is not None:
            out[qi] = done[queries[qi]]
    return out


# -- prompt text --------------------------------------------------------------------------
def prompt_segments(text: str) -> list[tuple[int, tuple[str, ...], str]]:
    """(object number, key path, text) pieces of a prompt: every string inside the n-th
    JSON object with the keys above it, and the free text between objects (number -1)."""
    out: list[tuple[int, tuple[str, ...], str]] = []
    def walk(value: Any, number: int, path: tuple[str, ...]) -> None:
        if isinstance(value, str):
            out.append((number, path, value))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, number, (*path, str(k)))
        elif isinstance(value, list):
            for v in value:
                walk(v, number, path)

    start = 0
    for number, (i, end, value) in enumerate(json_objects(text)):
        out.append((-1, (), text[start:i]))
        walk(value, number, ())
        start = end
    out.append((-1, (), text[start:]))
    return [seg for seg in out if seg[2].strip()]


def own_record(segments: list[tuple[int, tuple[str, ...], str]]
               ) -> list[tuple[int, tuple[str, ...], str]]:
    """The pieces of the request's own record: the last JSON object (the templates put
    few-shot examples first, the record last); all free text when there is no object."""
    last = max((n for n, _, _ in segments), default=-1)
    return [seg for seg in segments if seg[0] == last]


class PhraseMatcher:
    """Finds phrases (token sequences) inside token lists, on token boundaries."""

    def __init__(self, phrases: Iterable[tuple[Sequence[str], str]]) -> None:
        self.table: dict[str, str] = {}
        for toks, label in phrases:
            if toks:
                self.table.setdefault("\x1f".join(toks), label)
        self.lengths = sorted({k.count("\x1f") + 1 for k in self.table})
        self.first = {k.split("\x1f", 1)[0] for k in self.table}

    def find(self, toks: Sequence[str]) -> set[str]:
        found = set()
        for i, tok in enumerate(toks):
            if tok not in self.first:
                continue
            for n in self.lengths:
                if i + n > len(toks):
                    break
                label = self.table.get("\x1f".join(toks[i:i + n]))
                if label is not None:
                    found.add(label)
        return found


class CatalogText:
    """Normalised catalog strings; a prompt string counts as catalog text when it is one
    of them or (for longer strings) the beginning of one (prompts cut long fields)."""

    PREFIX = 16

    def __init__(self, frames: Iterable[pd.DataFrame]) -> None:
        self.exact: set[str] = set()
        self.prefix: dict[str, list[str]] = defaultdict(list)
        for items in frames:
            for col in ("title", "brand", "category", "description"):
                if col in items.columns:
                    for v in items[col].dropna().astype(str).tolist():
                        self._add(_HTML.sub(" ", v))
            if "attributes" in items.columns:
                for raw in items["attributes"].dropna().tolist():
                    for v in iter_strings(parse_json_object(raw)):
                        self._add(v)

    def _add(self, text: str) -> None:
        norm = normalise_text(text)
        if norm and norm not in self.exact:
            self.exact.add(norm)
            if len(norm) >= self.PREFIX:
                self.prefix[norm[: self.PREFIX]].append(norm)

    def __contains__(self, text: str) -> bool:
        norm = normalise_text(text)
        if norm in self.exact:
            return True
        return len(norm) >= self.PREFIX and any(
            full.startswith(norm) for full in self.prefix.get(norm[: self.PREFIX], ()))


def _share(count: int, rows) -> float:
    """``count`` as a share of the synthetic rows (0 when there are none)."""
    return count / len(rows) if len(rows) else 0.0


def _searchable(toks: list[str]) -> bool:
    return phrase_weight(toks) >= MIN_PHRASE


def title_phrase(title: object) -> list[str]:
    """The tokens of a title's first characters (a word cut in half is dropped)."""
    norm = normalise_text(title)
    cut = norm[:TITLE_CHARS]
    toks = tokens(cut)
    if len(norm) > TITLE_CHARS and toks and tokens(norm)[: len(toks)][-1:] != toks[-1:]:
        toks = toks[:-1]
    return toks


# -- the section ---------------------------------------------------------------------------
def leakage_section(data: ShopData, *, test: ShopData | None, prompts: list[dict] | None,
                    thresholds: Any) -> Section:
    section = Section()
    if test is None:
        section.note("Leakage", "no test data given: leakage was not measured")
        return section
    query_overlap(data, test, thresholds, section)
    row_overlap(data, test, thresholds, section)
    if prompts is None:
        section.note("Prompt audit", "no prompts given: the prompts were not audited")
    else:
        prompt_audit(data, test, prompts, thresholds, section)
    return section


def query_overlap(data: ShopData, test: ShopData, thresholds: Any, section: Section) -> None:
    _, synthetic = by_origin(data.queries)
    texts = synthetic["text"].fillna("").astype(str).tolist()
    test_texts = sorted({normalise_text(t) for t in test.queries["text"].dropna()} - {""})
    test_set = set(test_texts)
    norms = [normalise_text(t) for t in texts]
    exact = [i for i, n in enumerate(norms) if n and n in test_set]
    rest = [i for i in range(len(texts)) if norms[i] not in test_set]
    t = thresholds.near_duplicate_jaccard
    near = near_duplicates([norms[i] for i in rest], test_texts, t) if test_texts else {}
    n = fmt_int(len(texts))
    section.add(make_check(SECTION, "test_query_exact_share", _share(len(exact), texts),
                           thresholds,
                           f"{len(exact):,} of {n} synthetic queries equal a test query "
                           "(normalised)"))
    section.add(make_check(SECTION, "test_query_near_duplicate_share",
                           _share(len(near), texts), thresholds,
                           f"{len(near):,} of {n} synthetic queries are near duplicates of a "
                           f"test query (char-3-gram Jaccard >= {t:g}, exact copies not counted)"))
    examples = [[texts[i], norms[i], 1.0] for i in exact[:5]]
    examples += [[texts[rest[qi]], test_texts[ti], j] for qi, (ti, j) in list(near.items())[:5]]
    if examples:
        section.table("Synthetic queries that copy test queries",
                      ["synthetic query", "test query (normalised)", "Jaccard"], examples[:10])


def row_overlap(data: ShopData, test: ShopData, thresholds: Any, section: Section) -> None:
    text = {q: normalise_text(t) for q, t in zip(data.queries["query_id"], data.queries["text"],
                                                 strict=True)}
    test_text = {q: normalise_text(t) for q, t in zip(test.queries["query_id"],
                                                      test.queries["text"], strict=True)}
    tj = test.judgments
    test_pairs = {(test_text.get(q, ""), str(i)) for q, i in zip(tj["query_id"], tj["item_id"],
                                                                 strict=True)}
    _, sj = by_origin(data.judgments)
    hits = sum((text.get(q, ""), str(i)) in test_pairs
               for q, i in zip(sj["query_id"], sj["item_id"], strict=True))
    section.add(make_check(SECTION, "test_judgment_overlap_share", _share(hits, sj), thresholds,
                           f"{hits:,} of {len(sj):,} synthetic judgments are a test judgment "
                           "(same normalised query text and item)"))
    def pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
        return list(zip(frame["user_id"].astype(str).tolist(),
                        frame["item_id"].astype(str).tolist(), strict=True))

    real, synthetic = by_origin(positive_rows(data.interactions))
    # a pair the training data already has (a repeat purchase) tells nothing about the test
    test_inter = set(pairs(positive_rows(test.interactions))) - set(pairs(real))
    syn_pairs = pairs(synthetic)
    hits = sum(p in test_inter for p in syn_pairs)
    section.add(make_check(SECTION, "test_interaction_overlap_share", _share(hits, syn_pairs),
                           thresholds,
                           f"{hits:,} of {len(syn_pairs):,} synthetic positive interactions are "
                           "a test (user, item) pair the training data does not have"))


def _test_only_titles(data: ShopData, test: ShopData) -> dict[str, PhraseMatcher]:
    """User -> matcher of the titles of items the user has only on the test side."""
    ti = positive_rows(test.interactions)
    if ti.empty:
        return {}
    real, _ = by_origin(data.interactions)
    train = real.groupby(real["user_id"].astype(str))["item_id"].agg(
        lambda s: set(s.astype(str))).to_dict()
    titles: dict[str, str] = {}
    for frame in (data.items, test.items):
        titles.update(zip(frame["item_id"].astype(str), frame["title"].astype(str), strict=True))
    out = {}
    for user, items in ti.groupby(ti["user_id"].astype(str))["item_id"]:
        seen = train.get(user, set())
        own = {tuple(title_phrase(titles[i])) for i in seen if i in titles}
        phrases = []
        for item in sorted(set(items.astype(str)) - seen):
            toks = title_phrase(titles.get(item, ""))
            if _searchable(toks) and tuple(toks) not in own:
                phrases.append((toks, item))
        if phrases:
            out[user] = PhraseMatcher(phrases)
    return out


#: a one-line product (``llm.prompts.product_text``) is ``title; key: value; ...``
_FIELD_SEP = "; "
_LABEL = re.compile(r"[:：]\s*")


def _catalog_value(text: str, catalog: CatalogText) -> bool:
    """Whether ``text`` is catalog text, possibly after labels such as ``Product:`` or
    ``description:`` (a title may hold colons itself, so every split point is tried).
    Text labelled as a query is never catalog text."""
    if text in catalog:
        return True
    for match in _LABEL.finditer(text):
        label, rest = text[:match.start()], text[match.end():]
        if "quer" in label.lower() or "搜索" in label:
            return False
        if rest and rest in catalog:
            return True
    return False


def _free_text_to_search(segment: str, catalog: CatalogText) -> list[str]:
    """The pieces of free prompt text that are not catalog text: each line is cut at
    ``; `` and the longest run of pieces that is catalog text (a title may hold ``; ``
    itself) is dropped, from left to right."""
    out = []
    for line in segment.split("\n"):
        pieces, i = line.split(_FIELD_SEP), 0
        while i < len(pieces):
            end = next((j for j in range(len(pieces), i, -1)
                        if _catalog_value(_FIELD_SEP.join(pieces[i:j]), catalog)), None)
            if end is None:
                out.append(pieces[i])
                i += 1
            else:
                i = end
    return out


def prompt_audit(data: ShopData, test: ShopData, prompts: list[dict], thresholds: Any,
                 section: Section) -> None:
    queries = PhraseMatcher((toks, str(text)) for text in test.queries["text"].dropna()
                            for toks in [tokens(text)] if _searchable(toks))
    catalog = CatalogText([data.items, test.items])
    # a real training query shown as a few-shot example is training data, also when a
    # test query is part of it ("heavy yoga mat" holds the test query "yoga mat")
    train = data.queries
    if "origin" in train.columns:
        train = train[train["origin"] == "real"]
    train_queries = {normalise_text(t) for t in train["text"].dropna().astype(str)}
    per_user = _test_only_titles(data, test)
    with_query, with_item, examples = 0, 0, []
    stages: Counter = Counter()
    for prompt in prompts:
        stage, rid = str(prompt.get("stage", "")), str(prompt.get("request_id", ""))
        stages[stage] += 1
        segments = prompt_segments(str(prompt.get("text", "")))
        found = set()
        if queries.table:
            for _, path, seg in segments:
                if path:
                    if not any("quer" in k.lower() for k in path) and seg in catalog:
                        continue
                    if normalise_text(seg) not in train_queries:
                        found |= queries.find(tokens(seg))
                    continue
                for piece in _free_text_to_search(seg, catalog):
                    if normalise_text(piece) not in train_queries:
                        found |= queries.find(tokens(piece))
        if found:
            with_query += 1
            examples.append([stage, rid, "test query", sorted(found)[0]])
        matcher = per_user.get(rid)
        items = set()
        if matcher is not None:
            for _, path, seg in own_record(segments):
                if "candidates" not in path:
                    items |= matcher.find(tokens(seg))
        if items:
            with_item += 1
            examples.append([stage, rid, "test-only item of this user", sorted(items)[0]])
    n = fmt_int(len(prompts))
    section.add(make_check(SECTION, "prompts_with_test_query", with_query, thresholds,
                           f"{with_query:,} of {n} prompts contain a test query text "
                           f"(queries of >= {MIN_PHRASE:g} words or 4 Chinese characters; "
                           "catalog text in a prompt not searched)"))
    section.add(make_check(SECTION, "prompts_with_test_only_items", with_item, thresholds,
                           f"{with_item:,} of {n} prompts hold, in a user's own record, the "
                           "title of an item that user has only in the test data "
                           "(recommended candidates not counted)"))
    section.table("Prompts audited", ["stage", "prompts"], sorted(stages.items()))
    if examples:
        section.table("Prompts holding test data (first 10)",
                      ["stage", "request_id", "found", "what"], examples[:10])
