"""Rewrites of real queries that inherit the real query's judgments.

A shopper's query has many phrasings: more specific, broader, or the same need
in other words. The LLM writes ``specialise`` / ``generalise`` / ``paraphrase``
rewrites; ``attribute_expand`` needs no LLM: it appends an attribute value that
one of the query's relevant items really has (brand, category, an attribute),
so it never invents a fact about the catalog.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter, record_seed, synthetic_id
from shopaug.augment.expand import has_cjk, normalise_text, tokenize
from shopaug.augment.queries import (
    Language,
    LLMStageConfig,
    clean_strings,
    embedded_strings,
    item_fields,
    pick_language,
    save_errors,
)
from shopaug.data.bundle import ShopData
from shopaug.llm import PromptTemplate, errors_table, generate_structured
from shopaug.quality.consistency import STOPWORDS
from shopaug.quality.diversity import word_ngrams

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

RewriteKind = Literal["specialise", "generalise", "paraphrase", "attribute_expand"]
LLM_KINDS = ("specialise", "generalise", "paraphrase")
DERIVED = ["query_id", "text", "source_id", "quality_score", "llm_model", "prompt_id"]


def derived_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Derived queries, one per (source, normalised text), first one wins."""
    df = pd.DataFrame(rows, columns=[*DERIVED, "value"])
    if df.empty:
        return df
    df["norm"] = df["text"].map(normalise_text)
    df = df.drop_duplicates(["source_id", "norm"]).drop_duplicates("query_id")
    return df.drop(columns="norm").reset_index(drop=True)


def emit_derived(aug: Augmenter, data: ShopData, ctx: RunContext, derived: pd.DataFrame,
                 judgments: pd.DataFrame | None = None) -> ShopData:
    """Append derived queries and copies of their source's real judgments (same grade and
    gain, the derived query's quality score); ``judgments`` overrides the copies."""
    if derived.empty:
        return data
    if judgments is None:
        judgments = inherited(derived, data)
    derived = derived[derived["query_id"].isin(set(judgments["query_id"]))]
    if derived.empty:
        return data
    derived = derived.reset_index(drop=True)
    queries = aug.provenance(derived[["query_id", "text"]], ctx,
                             llm_model=derived["llm_model"], prompt_id=derived["prompt_id"],
                             quality_score=derived["quality_score"].to_numpy(dtype=float))
    judgments = judgments.reset_index(drop=True)
    copies = aug.provenance(judgments[["query_id", "item_id", "grade", "gain"]], ctx,
                            llm_model=judgments["llm_model"], prompt_id=judgments["prompt_id"],
                            quality_score=judgments["quality_score"].to_numpy(dtype=float))
    return data.append("queries", queries).append("judgments", copies)


def inherited(derived: pd.DataFrame, data: ShopData) -> pd.DataFrame:
    """Each derived query joined with its source query's real judgments."""
    judged = data.judgments
    src = judged[judged["origin"] == "real"][["query_id", "item_id", "grade", "gain"]]
    return derived.merge(src.rename(columns={"query_id": "source_id"}), on="source_id")


def attribute_values(row: dict[str, Any], fields: list[str], max_words: int) -> list[str]:
    """Short attribute values an item really has, in a stable order."""
    values: list[str] = []
    for col in fields:
        raw = row.get(col)
        if not isinstance(raw, str) or not raw.strip():
            continue
        if col == "attributes":
            try:
                parsed = json.loads(raw)
            except ValueError:
                continue
            for v in (parsed.values() if isinstance(parsed, dict) else ()):
                for x in v if isinstance(v, list) else [v]:
                    if isinstance(x, str | int | float) and not isinstance(x, bool):
                        values.append(str(x))
        elif col == "category":
            parts = [p.strip() for p in raw.replace("»", ">").replace("|", ">").split(">")]
            values += [p for p in parts[-1:] if p]
        else:
            values.append(raw.strip())
    short = [v.strip() for v in values if v.strip() and len(v.split()) <= max_words
             and len(v) <= 40]
    return list(dict.fromkeys(short))


class QueryRewritesConfig(LLMStageConfig):
    kinds: list[RewriteKind] = Field(
        default_factory=lambda: ["specialise", "generalise", "paraphrase", "attribute_expand"],
        min_length=1)
    #: LLM rewrites asked per query and kind
    n_per_kind: int = Field(2, ge=1, le=5)
    language: Language = "auto"
    max_queries: int | None = Field(None, ge=1)
    #: judgments at or above this gain make an item "relevant" (product shown, attributes)
    relevant_min_gain: float = Field(0.66, ge=0, le=1)
    #: an LLM rewrite must share a word with the query or the product shown: small models
    #: otherwise echo the prompt's own examples ("t-shirt" for "coffee mug")
    require_overlap: bool = True
    #: a longer LLM rewrite is dropped: small models copy product text or run on
    #: ("title: Oakley items are available for US sales only. We will ..."). Words are
    #: split at spaces, so unspaced Chinese counts as one (the schema caps 80 characters)
    max_words: int = Field(8, ge=1)
    llm_quality: float = Field(0.8, ge=0, le=1)
    attribute_quality: float = Field(1.0, ge=0, le=1)
    attribute_fields: list[Literal["brand", "category", "attributes"]] = Field(
        default_factory=lambda: ["brand", "category", "attributes"])
    max_attribute_words: int = Field(4, ge=1)


class QueryRewrites(Augmenter):
    """Specialised, generalised, paraphrased and attribute-expanded real queries."""

    name = "query_rewrites"
    Config = QueryRewritesConfig
    config: QueryRewritesConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        judged = data.judgments
        judged = judged[judged["origin"] == "real"]
        queries = data.queries  # a query without judgments has nothing to pass on
        queries = queries[(queries["origin"] == "real")
                          & queries["query_id"].isin(set(judged["query_id"]))]
        if cfg.max_queries is not None:
            queries = queries.head(cfg.max_queries)
        self.errors_ = errors_table([], self.name)
        if queries.empty:
            return data
        judged = judged[judged["gain"] >= cfg.relevant_min_gain]
        judged = judged.sort_values(["query_id", "gain", "item_id"],
                                    ascending=[True, False, True])
        relevant = judged.groupby("query_id", sort=False)["item_id"].agg(list).to_dict()
        items = {r["item_id"]: r for r in data.items.to_dict("records")}
        rows: list[dict[str, Any]] = []
        if any(k in LLM_KINDS for k in cfg.kinds):
            rows += self._llm_rewrites(queries, relevant, items, ctx)
        derived = derived_table(rows)
        judgments = inherited(derived, data) if len(derived) else None
        if "attribute_expand" in cfg.kinds:
            expanded = self._expand(queries, relevant, items, ctx.seed)
            derived = derived_table([*derived.to_dict("records"), *expanded])
            judgments = inherited(derived, data)
            # An expanded query asks for the value: keep the relevant items that have it.
            needs = judgments["value"].notna() & (judgments["gain"] >= cfg.relevant_min_gain)
            has = [_mentions(_item_text(items.get(i, {})), v)
                   for v, i in zip(judgments["value"], judgments["item_id"], strict=True)]
            judgments = judgments[~needs | np.array(has, dtype=bool)]
        return emit_derived(self, data, ctx, derived, judgments)

    def _llm_rewrites(self, queries: pd.DataFrame, relevant: dict[str, list[str]],
                      items: dict[str, dict], ctx: RunContext) -> list[dict[str, Any]]:
        cfg = self.config
        sampling = cfg.sampling()
        requests, sources, templates, echoes = [], {}, {}, {}
        for qid, text in zip(queries["query_id"], queries["text"], strict=True):
            lang = pick_language(cfg.language, text)
            if lang not in templates:
                templates[lang] = PromptTemplate.load("query_rewrite", lang)
                echoes[lang] = instruction_ngrams(templates[lang])
            template = templates[lang]
            top = relevant.get(qid, [])
            fields = item_fields(items[top[0]]) if top and top[0] in items else {}
            seen = tokenize(f"{text} {json.dumps(list(fields.values()), ensure_ascii=False)}")
            # function words do not count: "the final rewording is as requested" shares
            # "the" with nearly every product
            known = {t for t in seen if (len(t) > 1 or has_cjk(t)) and t not in STOPWORDS}
            # the template's wording, unless the query or product uses it too
            parroted = echoes[lang] - set(word_ngrams(seen, 3))
            for kind in (k for k in cfg.kinds if k in LLM_KINDS):
                rid = f"{qid}|{kind}"
                sources[rid] = (qid, text, kind, embedded_strings({**fields, "query": text}),
                                known, parroted)
                requests.append(template.request(
                    fields, sampling=sampling, request_id=rid,
                    seed=record_seed(ctx.seed, self.name, rid), n=cfg.n_per_kind, kind=kind,
                    query=json.dumps(text, ensure_ascii=False)))

        def fresh(rid: str, value: Any) -> list[str]:
            _, text, _, planted, known, parroted = sources[rid]
            source = normalise_text(text)
            return [r for r in clean_strings(value.get("rewrites"), planted)
                    if normalise_text(r) != source
                    and len(normalise_text(r).split()) <= cfg.max_words
                    and not set(word_ngrams(tokenize(r), 3)) & parroted
                    and (not cfg.require_overlap or set(tokenize(r)) & known)]

        def check(request: Any, value: Any) -> None:
            if not fresh(request.request_id, value):
                raise ValueError("no rewrite that differs from the query, shares a word with "
                                 "it or the product and is short, without planted text or "
                                 "the prompt's own wording")

        results = generate_structured(ctx.llm, requests, stage=self.name, retries=cfg.retries,
                                      check=check)
        self.errors_ = save_errors(results, self.name, ctx)
        model = ctx.llm.engine.model_id
        rows = []
        for result in results:
            if result.ok:
                qid, _, kind, *_ = sources[result.request.request_id]
                for text in fresh(result.request.request_id, result.value)[: cfg.n_per_kind]:
                    rows.append({"query_id": synthetic_id("rw", qid, kind, text), "text": text,
                                 "source_id": qid, "quality_score": cfg.llm_quality,
                                 "llm_model": model, "prompt_id": result.request.template,
                                 "value": None})
        return rows

    def _expand(self, queries: pd.DataFrame, relevant: dict[str, list[str]],
                items: dict[str, dict], seed: int) -> list[dict[str, Any]]:
        """Query + one value of a relevant item that the query does not mention yet."""
        cfg = self.config
        rows = []
        for qid, text in zip(queries["query_id"], queries["text"], strict=True):
            values = [v for i in relevant.get(qid, []) if i in items
                      for v in attribute_values(items[i], list(cfg.attribute_fields),
                                                cfg.max_attribute_words)]
            values = [v for v in dict.fromkeys(values)
                      if normalise_text(v) and not _echoes(text, v)]
            if not values:
                continue
            rng = np.random.default_rng(record_seed(seed, self.name, f"{qid}|attribute_expand"))
            value = values[int(rng.integers(len(values)))]
            new = f"{text} {value}"
            rows.append({"query_id": synthetic_id("rw", qid, "attribute_expand", new),
                         "text": new, "source_id": qid, "quality_score": cfg.attribute_quality,
                         "llm_model": None, "prompt_id": None, "value": value})
        return rows


def _mentions(text: str, value: object) -> bool:
    """Whether normalised ``text`` contains ``value`` (as whole words for Latin script)."""
    value = normalise_text(value)
    return value in text if has_cjk(value) else f" {value} " in f" {text} "


def instruction_ngrams(template: PromptTemplate, n: int = 3) -> set[tuple[str, ...]]:
    """Word n-grams of a template's own wording, placeholders left out: a rewrite that
    repeats one ("more specific, adding a detail", "t-shirt men cotton" from an example)
    is echoing the instructions, not rewriting the query."""
    text = re.sub(r"\{[^{}]*\}", " ", f"{template.system}\n{template.user}")
    return set(word_ngrams(tokenize(text), n))


def _echoes(query: str, value: object) -> bool:
    """Whether ``value`` repeats the query: contained in it, or a word sharing its first four
    letters with a query word ("Jackets" for "denim jacket")."""
    words = [w for w in normalise_text(query).split() if len(w) >= 4 and not has_cjk(w)]
    stems = {w[:4] for w in words}
    return _mentions(normalise_text(query), value) or any(
        len(v) >= 4 and v[:4] in stems for v in normalise_text(value).split())


def _item_text(row: dict[str, Any]) -> str:
    return normalise_text(" ".join(str(row.get(c) or "") for c in
                                   ("title", "brand", "category", "attributes", "description")))
