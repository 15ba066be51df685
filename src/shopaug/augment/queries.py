"""Synthetic search queries for catalog items (doc2query / InPars style).

The LLM reads an item and writes the queries a shopper would type to find it;
each becomes a synthetic query judged top-grade for that item. Few-shot
examples come from the bundle's own REAL queries and the items judged relevant
for them; the bundle an augmenter sees is the training side of a split, so a
test query can never reach a prompt.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter, record_seed, synthetic_id
from shopaug.augment.expand import has_cjk, normalise_text
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.data.grades import GradeScale, gains_to_grades, get_scale
from shopaug.llm import (
    ExampleSelector,
    PromptTemplate,
    Sampling,
    errors_table,
    generate_structured,
)

if TYPE_CHECKING:
    from shopaug.llm import StructuredResult
    from shopaug.pipeline.runner import RunContext

log = logging.getLogger(__name__)

Language = Literal["en", "zh", "auto"]
#: item columns shown to the model (attributes as a parsed JSON object)
ITEM_FIELDS = ("title", "brand", "category", "attributes", "description")


# -- helpers shared by the LLM augmenters ---------------------------------------
def scale_of(data: ShopData) -> GradeScale:
    return get_scale(data.grade_scale or "1-4")


def top_grade(scale: GradeScale) -> str:
    return gains_to_grades(np.array([1.0]), scale)[0]


def bottom_grade(scale: GradeScale) -> str:
    return gains_to_grades(np.array([0.0]), scale)[0]


def pick_language(language: str, text: object) -> str:
    if language != "auto":
        return language
    return "zh" if has_cjk(text) else "en"


def item_fields(row: Mapping[str, Any], description_chars: int = 200) -> dict[str, Any]:
    """What the model sees of an item: short, with attributes as an object."""
    out: dict[str, Any] = {}
    for col in ITEM_FIELDS:
        value = row.get(col)
        if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
            continue
        if col == "attributes":
            try:
                value = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                continue
        if col == "description":
            value = re.sub(r"<[^>]+>|\s+", " ", str(value)).strip()[:description_chars]
        out[col] = value
    return out


def embedded_strings(fields: Mapping[str, Any]) -> set[str]:
    """Quoted strings inside JSON-like fragments of free-text fields: a model that answers
    with one of them is obeying text planted in the data, not doing the task."""
    found: set[str] = set()
    for key in ("title", "description", "brand", "category", "query"):
        value = fields.get(key)
        if isinstance(value, str):
            for fragment in re.findall(r"\{[^{}]*\}", value):
                found.update(normalise_text(s) for s in re.findall(r'"([^"]*)"', fragment))
    return found - {""}


def clean_strings(values: object, planted: set[str]) -> list[str]:
    """Non-empty, whitespace-collapsed strings that are not planted text."""
    if not isinstance(values, list):
        return []
    out = [re.sub(r"\s+", " ", v).strip() for v in values if isinstance(v, str)]
    return [v for v in out if v and normalise_text(v) and normalise_text(v) not in planted]


def save_errors(results: list[StructuredResult], stage: str, ctx: RunContext) -> pd.DataFrame:
    """The errors table; written to ``run_dir/errors/<stage>.csv`` when there are any."""
    errors = errors_table(results, stage)
    if len(errors) and getattr(ctx, "run_dir", None):
        path = ctx.run_dir / "errors" / f"{stage}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        errors.to_csv(path, index=False)
        from shopaug.artifacts import published_path

        log.warning("%s: %d of %d requests failed; see %s", stage, len(errors), len(results),
                    published_path(path))
    return errors


class LLMStageConfig(ComponentConfig):
    """Sampling settings every LLM augmenter shares."""

    temperature: float = Field(0.7, ge=0)
    max_tokens: int = Field(64, ge=8)
    top_p: float = Field(0.95, gt=0, le=1)
    retries: int = Field(2, ge=0)
    #: strings that end an answer early. ["\n"] suits one-line JSON answers: a small
    #: model that has gone off the rails after its JSON (about 7% of SmolLM2's query
    #: answers) then stops at once instead of running on to max_tokens
    stop: list[str] = Field(default_factory=list)

    def sampling(self) -> Sampling:
        return Sampling(max_tokens=self.max_tokens, temperature=self.temperature,
                        top_p=self.top_p, stop=tuple(self.stop))


# -- the augmenter --------------------------------------------------------------
class SyntheticQueriesConfig(LLMStageConfig):
    #: queries asked per item
    k: int = Field(3, ge=1, le=8)
    #: prompt language; "auto" picks Chinese for titles with CJK characters
    language: Language = "auto"
    max_items: int | None = Field(None, ge=1)
    #: only items that have no judgment yet (cold items)
    only_unjudged: bool = False
    #: a real judgment with at least this gain makes its item a few-shot example
    example_min_gain: float = Field(0.66, ge=0, le=1)
    #: "fixed": the same examples for every item (prompt-prefix reuse); "similar": nearest
    example_mode: Literal["fixed", "similar"] = "fixed"
    n_examples: int = Field(3, ge=0, le=10)
    description_chars: int = Field(200, ge=0)
    #: independent answers per item (different seeds), merged and deduplicated: small
    #: models tend to give one query per answer whatever k asks for
    samples: int = Field(1, ge=1, le=16)


class SyntheticQueries(Augmenter):
    """LLM-written queries per item, each judged top-grade for its item."""

    name = "synthetic_queries"
    Config = SyntheticQueriesConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: SyntheticQueriesConfig

    shard_by: ClassVar[str | None] = "items"

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        return self.merge(data, [self.run_rows(data, self.select(data), ctx)], ctx)

    def select(self, data: ShopData) -> pd.DataFrame:
        cfg = self.config
        items = data.items
        if cfg.only_unjudged:
            items = items[~items["item_id"].isin(set(data.judgments["item_id"]))]
        if cfg.max_items is not None:
            items = items.head(cfg.max_items)
        return items

    def run_rows(self, data: ShopData, rows: pd.DataFrame, ctx: RunContext) -> dict[str, Any]:
        """Queries and judgments for the items in ``rows``; few-shot examples come from
        the whole of ``data``, so a shard prompts exactly as the full table would."""
        cfg = self.config
        self.errors_ = errors_table([], self.name)
        if rows.empty:
            return {}
        selectors = self._selectors(data, ctx.seed)
        sampling = cfg.sampling()
        templates: dict[str, PromptTemplate] = {}
        requests, fields_of = [], {}
        for row in rows.to_dict("records"):
            item_id = row["item_id"]
            fields = item_fields(row, cfg.description_chars)
            lang = pick_language(cfg.language, row["title"])
            if lang not in templates:
                templates[lang] = PromptTemplate.load("search_queries", lang)
            template = templates[lang]
            selector = selectors.get(lang)
            examples = selector.select(fields) if selector else []
            fields_of[item_id] = fields
            for sample in range(cfg.samples):
                record = item_id if sample == 0 else f"{item_id}#{sample}"
                requests.append(template.request(
                    fields, examples, k=cfg.k, sampling=sampling, request_id=item_id,
                    seed=record_seed(ctx.seed, self.name, record)))

        def check(request: Any, value: Any) -> None:
            if not clean_strings(value.get("queries"), set()):
                raise ValueError("the answer has no non-empty query")
            if not clean_strings(value.get("queries"),
                                 embedded_strings(fields_of[request.request_id])):
                raise ValueError("the answer only repeats text planted in the product data "
                                 "(prompt injection?)")

        results = generate_structured(ctx.llm, requests, stage=self.name,
                                      retries=cfg.retries, check=check)
        self.errors_ = save_errors(results, self.name, ctx)
        rows_out = []
        for result in results:
            if not result.ok:
                continue
            item_id = result.request.request_id
            planted = embedded_strings(fields_of[item_id])
            seen: set[str] = set()
            for text in clean_strings(result.value["queries"], planted):
                norm = normalise_text(text)
                if norm not in seen and len(seen) < cfg.k:
                    seen.add(norm)
                    rows_out.append({"query_id": synthetic_id("sq", item_id, text),
                                     "text": text, "item_id": item_id,
                                     "prompt_id": result.request.template})
        if not rows_out:
            return {}
        return {"made": pd.DataFrame(rows_out).drop_duplicates("query_id"),
                "model": ctx.llm.engine.model_id}

    def merge(self, data: ShopData, pieces: list[dict[str, Any]], ctx: RunContext
              ) -> ShopData:
        pieces = [p for p in pieces if p]
        if not pieces:
            return data
        made = pd.concat([p["made"] for p in pieces], ignore_index=True) \
            .drop_duplicates("query_id")
        model = pieces[0]["model"]
        queries = self.provenance(made[["query_id", "text"]], ctx, llm_model=model)
        queries["prompt_id"] = made["prompt_id"].to_numpy()
        scale = scale_of(data)
        judgments = made[["query_id", "item_id"]].assign(grade=top_grade(scale), gain=1.0)
        judgments = self.provenance(judgments, ctx, llm_model=model)
        judgments["prompt_id"] = made["prompt_id"].to_numpy()
        return data.append("queries", queries).append("judgments", judgments)

    def _selectors(self, data: ShopData, seed: int) -> dict[str, ExampleSelector]:
        """One example pool per prompt language, from real queries and relevant items."""
        cfg = self.config
        if cfg.n_examples == 0:
            return {}
        queries, judged = data.queries, data.judgments
        judged = judged[(judged["origin"] == "real") & (judged["gain"] >= cfg.example_min_gain)]
        real_q = queries[queries["origin"] == "real"][["query_id", "text"]]
        pairs = judged[["query_id", "item_id", "gain"]].merge(real_q, on="query_id")
        items = data.items
        items = items[(items["origin"] == "real") & items["item_id"].isin(set(pairs["item_id"]))]
        if pairs.empty or items.empty:
            log.warning("%s: the data has no real judged queries; prompting with no few-shot "
                        "examples", self.name)
            return {}
        pairs = pairs.sort_values(["item_id", "gain", "text"], ascending=[True, False, True])
        texts = pairs.groupby("item_id", sort=True)["text"].agg(
            lambda s: list(dict.fromkeys(s))[:3])
        examples = [(item_fields(row, cfg.description_chars), {"queries": texts[row["item_id"]]})
                    for row in items.sort_values("item_id").to_dict("records")]
        out = {}
        for lang in ("en", "zh"):
            same = [e for e in examples if has_cjk(e[0]["title"]) == (lang == "zh")]
            out[lang] = ExampleSelector(same or examples, cfg.n_examples, cfg.example_mode,
                                        seed=seed)
        return out
