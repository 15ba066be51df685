"""Item enrichment (KAR / LLMRec style): structured attributes and a short description.

The LLM reads an item (title, description, category, brand, attributes) and fills
in attributes such as product type, material and colour. Whether a value is
*grounded* (its words appear in the product data the model was shown) is decided
here, in code, never taken from the model; everything else is *inferred*. Values
go into ``items.attributes`` as ``{"attr": {"value": ..., "grounded": bool}}`` with
the augmenter's provenance under ``"_provenance"``: items are enriched in place,
never duplicated, and real attribute values are never overwritten.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
import yaml
from pydantic import Field, field_validator

from shopaug.augment.base import Augmenter, record_seed
from shopaug.augment.expand import has_cjk, normalise_text
from shopaug.augment.queries import (
    Language,
    LLMStageConfig,
    item_fields,
    pick_language,
    save_errors,
)
from shopaug.data.bundle import ShopData
from shopaug.llm import PromptTemplate, errors_table, generate_structured

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

TEMPLATE = "item_attributes"
ATTRIBUTES = ("category", "product_type", "material", "colour", "style", "audience",
              "occasion")
#: names real data often uses for the same attribute; a real value under any of them wins
ALIASES = {"colour": ("color", "颜色"), "material": ("材质", "面料"), "category": ("类目",),
           "style": ("风格",), "audience": ("gender", "适用人群")}
#: answers that mean "no value"
_EMPTY = {"", "unknown", "none", "n a", "na", "null", "not specified", "not applicable",
          "未知", "无", "不详"}
_STOP = {"a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "or", "by", "at"}
_LATIN = re.compile(r"[a-z0-9]+")
_HAN = re.compile(r"[\u3400-\u9fff]+")


# -- helpers shared by the recommendation LLM augmenters ----------------------------
def template_examples(name: str, language: str) -> list[tuple[dict[str, Any], Any]]:
    """The hand-written few-shot examples of a packaged template (its ``examples`` key)."""
    from shopaug.llm import prompts

    path = Path(prompts.__file__).parent / f"{name}.{language}.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(ex["input"], ex["answer"]) for ex in spec.get("examples") or []]


def template_extra(name: str, language: str, key: str) -> str:
    from shopaug.llm import prompts

    path = Path(prompts.__file__).parent / f"{name}.{language}.yaml"
    return str(yaml.safe_load(path.read_text(encoding="utf-8")).get(key) or "")


def with_schema(template: PromptTemplate, schema: dict[str, Any]) -> PromptTemplate:
    return dataclasses.replace(template, schema=schema)


def blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def clean_value(value: object) -> str | None:
    """A collapsed string, or None for empty or "unknown"-like answers."""
    if not isinstance(value, str):
        return None
    text = re.sub(r"\s+", " ", value).strip(" .;,")
    return None if normalise_text(text) in _EMPTY else text


def limit_words(text: str, words: int) -> str:
    """At most ``words`` words; Chinese text (no spaces) gets two characters per word."""
    if has_cjk(text):
        return text[: 2 * words]
    return " ".join(text.split()[:words])


def _stem(word: str) -> str:
    if len(word) > 3 and word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def iter_strings(value: object) -> Iterable[str]:
    """Every string inside nested JSON-like values (dicts, lists), depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from iter_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from iter_strings(v)


def source_text(fields: Mapping[str, Any]) -> str:
    """Every string the model was shown about the record, as one normalised text."""
    return " ".join(normalise_text(unicodedata.normalize("NFKC", s)) for s in iter_strings(fields))


def is_grounded(value: str, source: str) -> bool:
    """True when every content word of ``value`` occurs in ``source`` (a normalised text):
    Latin words compared after dropping stop words and plural endings, runs of Chinese
    characters as substrings."""
    norm = normalise_text(value)
    words = {_stem(w) for w in _LATIN.findall(norm) if w not in _STOP}
    han = _HAN.findall(norm)
    if not words and not han:
        return False
    known = {_stem(w) for w in _LATIN.findall(source)}
    return words <= known and all(run in source for run in han)


def parse_attributes(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if blank(value):
        return {}
    try:
        parsed = json.loads(str(value))
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _made_by_llm(value: object) -> bool:
    return isinstance(value, dict) and "grounded" in value


def _has_real(attrs: Mapping[str, Any], name: str) -> bool:
    keys = (name, *ALIASES.get(name, ()))
    return any(k in attrs and not blank(attrs[k]) and not _made_by_llm(attrs[k]) for k in keys)


def provenance_record(aug: Augmenter, ctx: RunContext, model: str, prompt_id: str
                      ) -> dict[str, Any]:
    """Provenance stored inside a JSON column (for rows that stay real)."""
    return {"augmenter": aug.name, "augmenter_version": aug.version,
            "config_hash": aug.config_hash(), "llm_model": model, "prompt_id": prompt_id,
            "seed": ctx.seed}


def to_json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- the augmenter --------------------------------------------------------------
class ItemEnrichmentConfig(LLMStageConfig):
    max_tokens: int = Field(160, ge=8)
    temperature: float = Field(0.3, ge=0)
    #: attributes asked for, a subset of ATTRIBUTES, in this order
    attributes: tuple[str, ...] = ATTRIBUTES
    #: words of the short description asked for; 0 asks for none
    description_words: int = Field(20, ge=0, le=80)
    #: write the description into an item's empty `description` column
    fill_description: bool = False
    #: only items that lack a value for at least one of the attributes and were not
    #: enriched before
    only_missing: bool = True
    max_items: int | None = Field(None, ge=1)
    #: which items a max_items budget goes to: catalog order, or the items with the
    #: fewest real interactions first (cold and long-tail items need the help most)
    prefer: Literal["order", "sparse"] = "order"
    #: prompt language; "auto" picks Chinese for titles with CJK characters
    language: Language = "auto"
    description_chars: int = Field(200, ge=0)

    @field_validator("attributes")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(ATTRIBUTES))
        if unknown or not value:
            raise ValueError(f"attributes must be a non-empty subset of {list(ATTRIBUTES)}; "
                             f"unknown: {unknown}")
        return tuple(dict.fromkeys(value))


class ItemEnrichment(Augmenter):
    """LLM attributes per item, each flagged grounded or inferred, merged into attributes.

    After a run, ``report_`` counts items asked, enriched and failed (invalid JSON after
    the retries: left unchanged), and values grounded and inferred; ``errors_`` holds
    the failed requests.
    """

    name = "item_enrichment"
    Config = ItemEnrichmentConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: ItemEnrichmentConfig

    shard_by: ClassVar[str | None] = "items"

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        return self.merge(data, [self.run_rows(data, self.select(data), ctx)], ctx)

    def select(self, data: ShopData) -> pd.DataFrame:
        """Items to enrich: with only_missing, those not enriched before that lack a value."""
        cfg = self.config
        items = data.items
        if "attributes" not in items.columns:
            items = items.assign(attributes=None)
        current = [parse_attributes(v) for v in items["attributes"]]
        todo = [i for i, attrs in enumerate(current)
                if not cfg.only_missing or ("_provenance" not in attrs
                and not all(_has_real(attrs, a) for a in cfg.attributes))]
        if cfg.max_items is not None:
            if cfg.prefer == "sparse":
                inter = data.interactions
                counts = inter[inter["origin"] == "real"].groupby("item_id").size()
                sales = items["item_id"].map(counts).fillna(0).to_numpy()
                todo = sorted(todo, key=lambda i: (sales[i], i))
            todo = sorted(todo[: cfg.max_items])
        return items.iloc[todo]

    def run_rows(self, data: ShopData, rows: pd.DataFrame, ctx: RunContext) -> dict[str, Any]:
        """Merged attributes (and descriptions) for the items in ``rows``."""
        cfg = self.config
        self.errors_ = errors_table([], self.name)
        self.report_ = {"items": len(rows), "enriched": 0, "failed": 0, "grounded": 0,
                        "inferred": 0, "descriptions_filled": 0}
        if rows.empty:
            return {"report": self.report_}
        records = rows.to_dict("records")
        templates: dict[str, tuple[PromptTemplate, list, str]] = {}
        requests, sources = [], {}
        for row in records:
            fields = item_fields(row, cfg.description_chars)
            lang = pick_language(cfg.language, row["title"])
            if lang not in templates:
                templates[lang] = self._template(lang)
            template, examples, rule = templates[lang]
            item_id = str(row["item_id"])
            sources[item_id] = source_text(fields)
            requests.append(template.request(
                fields, examples, sampling=cfg.sampling(), request_id=item_id,
                seed=record_seed(ctx.seed, self.name, item_id), keys=", ".join(self._keys()),
                description_rule=rule))
        results = generate_structured(ctx.llm, requests, stage=self.name, retries=cfg.retries)
        self.errors_ = save_errors(results, self.name, ctx)
        model = ctx.llm.engine.model_id
        made = {r.request.request_id: r for r in results if r.ok}
        self.report_["failed"] = len(results) - len(made)
        enriched = []
        for row in records:
            result = made.get(str(row["item_id"]))
            if result is None:
                continue
            merged, description = self._merge(parse_attributes(row["attributes"]),
                                              result.value, sources[result.request.request_id])
            merged["_provenance"] = provenance_record(self, ctx, model, result.request.template)
            enriched.append((str(row["item_id"]), to_json(merged), description))
            self.report_["enriched"] += 1
        return {"report": self.report_, "enriched": enriched}

    def merge(self, data: ShopData, pieces: list[dict[str, Any]], ctx: RunContext
              ) -> ShopData:
        cfg = self.config
        reports = [p["report"] for p in pieces if p]
        keys = ("items", "enriched", "failed", "grounded", "inferred", "descriptions_filled")
        self.report_ = {k: sum(r[k] for r in reports) for k in keys}
        if not self.report_["items"]:
            return data
        out = data.items.copy()
        if "attributes" not in out.columns:
            out["attributes"] = None
        position = {str(item_id): i for i, item_id in enumerate(out["item_id"])}
        attributes = out["attributes"].to_numpy(dtype=object).copy()
        descriptions = (out["description"].to_numpy(dtype=object).copy()
                        if "description" in out.columns else None)
        for piece in pieces:
            for item_id, attrs, description in (piece or {}).get("enriched", []):
                i = position[item_id]
                attributes[i] = attrs
                if cfg.fill_description and description and (
                        descriptions is None or blank(descriptions[i])):
                    if descriptions is None:
                        descriptions = [None] * len(out)
                    descriptions[i] = description
                    self.report_["descriptions_filled"] += 1
        out["attributes"] = attributes
        if descriptions is not None:
            out["description"] = pd.Series(descriptions, index=out.index, dtype=object)
        return data.replace(items=out)

    def _keys(self) -> list[str]:
        return [*self.config.attributes, *(["description"] if self.config.description_words
                                           else [])]

    def _template(self, lang: str) -> tuple[PromptTemplate, list, str]:
        """The template with its schema and examples cut down to the keys asked for."""
        keys = self._keys()
        base = PromptTemplate.load(TEMPLATE, lang)
        schema = copy.deepcopy(base.schema or {})
        schema["properties"] = {k: schema["properties"][k] for k in keys}
        schema["required"] = keys
        # requests carry the schema as canonical (sorted) JSON, so a grammar-constrained
        # engine writes the keys in sorted order: show the examples in that order too
        examples = [(fields, {k: answer.get(k, "") for k in sorted(keys)})
                    for fields, answer in template_examples(TEMPLATE, lang)]
        words = self.config.description_words
        rule = template_extra(TEMPLATE, lang, "description_rule").format(words=words) \
            if words else ""
        return with_schema(base, schema), examples, rule

    def _merge(self, attrs: dict[str, Any], answer: Mapping[str, Any], source: str
               ) -> tuple[dict[str, Any], str | None]:
        merged = dict(attrs)
        for name in self.config.attributes:
            value = clean_value(answer.get(name))
            if value is None or _has_real(attrs, name):
                continue
            grounded = is_grounded(value, source)
            merged[name] = {"value": value, "grounded": grounded}
            self.report_["grounded" if grounded else "inferred"] += 1
        description = clean_value(answer.get("description"))
        if description and self.config.description_words:
            description = limit_words(description, self.config.description_words)
            if not _has_real(attrs, "description"):
                merged["description"] = {"value": description,
                                         "grounded": is_grounded(description, source)}
        return merged, description
