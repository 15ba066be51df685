"""LLM-as-a-judge: graded relevance labels for unlabelled (query, item) pairs.

The judge sees the query and the product as one JSON object, the meaning of each
grade of the scale, and one real labelled example per grade from the training
side. Its confidence becomes the label's quality score, so downstream training
can weight or filter the labels. `judge_agreement` and `judge_cost` measure what
a judge is worth against human labels.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field

from shopaug.augment.base import Augmenter, record_seed
from shopaug.augment.expand import unjudged_candidates
from shopaug.augment.queries import (
    Language,
    LLMStageConfig,
    item_fields,
    pick_language,
    save_errors,
    scale_of,
)
from shopaug.data.bundle import ShopData
from shopaug.data.grades import GradeScale, gains_to_grades, get_scale
from shopaug.llm import PromptTemplate, errors_table, generate_structured

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

JudgeScale = Literal["1-4", "esci", "0-3"]
TEMPLATE = "relevance_judge"


def scale_labels(scale: GradeScale) -> list[str]:
    """The short labels of a scale, best first (E S C I, not EXACT ...)."""
    labels = [k for k in scale.gains if len(k) <= 2 or scale.name == "wands"]
    return sorted(labels, key=lambda k: -scale.gains[k])


def grade_text(language: str, scale: str) -> str:
    """Meaning of each grade, from the template file (so it is versioned with it)."""
    from shopaug.llm import prompts

    path = Path(prompts.__file__).parent / f"{TEMPLATE}.{language}.yaml"
    meanings = yaml.safe_load(path.read_text(encoding="utf-8"))["grades"][scale]
    return "\n".join(f'"{k}": {v}' for k, v in meanings.items())


def pair_fields(query: str, item: Mapping[str, Any]) -> dict[str, Any]:
    return {"query": query, "product": item_fields(item)}


class LLMJudgeConfig(LLMStageConfig):
    #: the judge's grade scale; None: the bundle's (1-4 when that is not judgeable)
    scale: JudgeScale | None = None
    #: "candidates": real queries x their BM25 top unjudged items; "synthetic_unjudged":
    #: the same for synthetic queries
    pairs: Literal["synthetic_unjudged", "candidates"] = "candidates"
    per_query: int = Field(5, ge=1)
    max_pairs: int | None = Field(None, ge=1)
    language: Language = "auto"
    #: few-shot examples, at most one per grade, from the real judgments
    n_examples: int = Field(4, ge=0, le=8)
    min_confidence: float = Field(0.0, ge=0, le=1)
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(48, ge=8)
    top_p: float = Field(1.0, gt=0, le=1)  # a judge decodes greedily


class LLMJudge(Augmenter):
    """Graded synthetic judgments with quality score = the judge's confidence."""

    name = "llm_judge"
    Config = LLMJudgeConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: LLMJudgeConfig

    def judge_scale(self, data: ShopData) -> GradeScale:
        if self.config.scale:
            return get_scale(self.config.scale)
        own = data.grade_scale
        return get_scale(own if own in ("1-4", "esci", "0-3") else "1-4")

    def candidate_pairs(self, data: ShopData) -> pd.DataFrame:
        """(query_id, text, item_id): each query's BM25 top items that have no judgment."""
        cfg = self.config
        queries = data.queries
        origin = "real" if cfg.pairs == "candidates" else "synthetic"
        queries = queries[queries["origin"] == origin]
        out = unjudged_candidates(data, queries, cfg.per_query)
        return out.head(cfg.max_pairs) if cfg.max_pairs else out

    def examples(self, data: ShopData, scale: GradeScale, seed: int) -> list[tuple]:
        """One real judged pair per grade (best grade first), picked by the run seed."""
        judged = data.judgments
        judged = judged[judged["origin"] == "real"]
        queries = data.queries.set_index("query_id")["text"]
        items = {r["item_id"]: r for r in data.items.to_dict("records")}
        judged = judged[judged["query_id"].isin(queries.index) & judged["item_id"].isin(items)]
        if judged.empty or self.config.n_examples == 0:
            return []
        judged = judged.sort_values(["query_id", "item_id"])
        judged = judged.assign(label=gains_to_grades(judged["gain"].to_numpy(), scale))
        rng = np.random.default_rng(record_seed(seed, self.name, "examples"))
        out = []
        for label in scale_labels(scale):
            pool = judged[judged["label"] == label]
            if len(pool):
                row = pool.iloc[int(rng.integers(len(pool)))]
                fields = pair_fields(queries[row["query_id"]], items[row["item_id"]])
                out.append((fields, {"grade": label, "confidence": 0.9}))
        return out[: self.config.n_examples]

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        self.errors_ = errors_table([], self.name)
        pairs = self.candidate_pairs(data)
        if pairs.empty:
            return data
        judged = self.judge_pairs(data, pairs, ctx)
        judged = judged[judged["confidence"] >= self.config.min_confidence]
        if judged.empty:
            return data
        scale, own = self.judge_scale(data), scale_of(data)
        grade = (judged["label"] if own.name == scale.name
                 else gains_to_grades(judged["gain"].to_numpy(), own))
        rows = pd.DataFrame({"query_id": judged["query_id"], "item_id": judged["item_id"],
                             "grade": list(grade), "gain": judged["gain"]})
        out = self.provenance(rows, ctx, llm_model=ctx.llm.engine.model_id,
                              quality_score=judged["confidence"].to_numpy())
        out["prompt_id"] = judged["prompt_id"].to_numpy()
        return data.append("judgments", out.reset_index(drop=True))

    def judge_pairs(self, data: ShopData, pairs: pd.DataFrame, ctx: RunContext) -> pd.DataFrame:
        """Judge the given (query_id, text, item_id) pairs; few-shot examples come from
        ``data``'s real judgments. Returns query_id, item_id, label, gain, confidence and
        prompt_id for every pair that got a valid answer (failures are in ``errors_``)."""
        cfg = self.config
        scale = self.judge_scale(data)
        labels = scale_labels(scale)
        examples = self.examples(data, scale, ctx.seed)
        sampling = cfg.sampling()
        items = {r["item_id"]: r for r in data.items.to_dict("records")}
        templates: dict[str, tuple[PromptTemplate, str]] = {}
        requests, pair_of = [], {}
        for qid, text, item_id in pairs[["query_id", "text", "item_id"]].itertuples(index=False):
            lang = pick_language(cfg.language, text + str(items[item_id]["title"]))
            if lang not in templates:
                base = PromptTemplate.load(TEMPLATE, lang)
                schema = copy.deepcopy(base.schema)
                schema["properties"]["grade"]["enum"] = labels
                templates[lang] = (dataclasses.replace(base, schema=schema),
                                   grade_text(lang, scale.name))
            template, grades = templates[lang]
            rid = f"{qid}|{item_id}"
            pair_of[rid] = (qid, item_id)
            requests.append(template.request(
                pair_fields(text, items[item_id]), examples, sampling=sampling,
                request_id=rid, seed=record_seed(ctx.seed, self.name, rid), grades=grades))
        results = generate_structured(ctx.llm, requests, stage=self.name, retries=cfg.retries)
        self.errors_ = save_errors(results, self.name, ctx)
        ok = [r for r in results if r.ok]
        columns = ["query_id", "item_id", "label", "gain", "confidence", "prompt_id"]
        if not ok:
            return pd.DataFrame(columns=columns)
        qids, iids = zip(*(pair_of[r.request.request_id] for r in ok), strict=True)
        label = [r.value["grade"] for r in ok]
        return pd.DataFrame({
            "query_id": qids, "item_id": iids, "label": label,
            "gain": [scale.gains[g] for g in label],
            # clipped, not a failed label: a confidence of 5 still says "sure"
            "confidence": [min(max(float(r.value["confidence"]), 0.0), 1.0) for r in ok],
            "prompt_id": [r.request.template for r in ok]})


def judge_agreement(predicted: pd.Series, human: pd.Series,
                    scale: str | GradeScale) -> dict[str, Any]:
    """Accuracy, quadratic weighted kappa and confusion matrix of judge vs human labels.

    The two Series are aligned on their index; labels off the scale are counted in
    ``n_invalid`` and left out. Rows of the matrix are human labels, columns the
    judge's, both ordered from worst to best grade.
    """
    scale = get_scale(scale) if isinstance(scale, str) else scale
    labels = scale_labels(scale)[::-1]
    human, predicted = human.align(predicted, join="inner")
    h, p = scale.gain_of(human), scale.gain_of(predicted)
    valid = (h.notna() & p.notna()).to_numpy()
    where = {label: i for i, label in enumerate(labels)}
    hi = [where[g] for g in gains_to_grades(h.to_numpy()[valid], scale)]
    pi = [where[g] for g in gains_to_grades(p.to_numpy()[valid], scale)]
    k = len(labels)
    matrix = np.zeros((k, k))
    np.add.at(matrix, (np.array(hi, dtype=int), np.array(pi, dtype=int)), 1)
    n = int(matrix.sum())
    accuracy = float(np.trace(matrix) / n) if n else float("nan")
    i, j = np.indices((k, k))
    weights = (i - j) ** 2 / max(k - 1, 1) ** 2
    expected = np.outer(matrix.sum(1), matrix.sum(0)) / n if n else matrix
    denom = float((weights * expected).sum())
    kappa = 1 - float((weights * matrix).sum()) / denom if denom > 0 else float("nan")
    return {"n": n, "n_invalid": int((~valid).sum()), "accuracy": accuracy,
            "kappa_quadratic": kappa, "labels": labels,
            "confusion": {"rows": "human", "columns": "predicted", "labels": labels,
                          "matrix": matrix.astype(int).tolist()}}


def judge_cost(ledger_stage_usage: Any, n_labels: int) -> float:
    """Cost per 1000 labels from a ledger stage's usage (a ``Usage`` or its dict)."""
    cost = (ledger_stage_usage["cost"] if isinstance(ledger_stage_usage, Mapping)
            else ledger_stage_usage.cost)
    return float(cost) / n_labels * 1000 if n_labels else float("nan")
