"""Simulated interactions (LLMRec edge augmentation) for users with short histories.

A base recommender, fitted on the real training interactions the augmenter is given,
proposes candidates a user has not bought; the LLM sees the user's purchases and the
numbered candidates and says which they would buy and which not. Answers are
restricted to the candidate numbers (an enum in the schema, so a grammar-constrained
engine cannot even write another number), and the rows follow the recommendation
data conventions: positives weighted ``positive_weight``, negatives ``event="negative"``
with value 0, timestamps at the user's last training event, full provenance.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from shopaug.augment.base import Augmenter, record_seed
from shopaug.augment.enrich import template_examples, with_schema
from shopaug.augment.profiles import language_of, recent_items, title_of, training_history
from shopaug.augment.queries import Language, LLMStageConfig, save_errors
from shopaug.data.bundle import ShopData
from shopaug.llm import PromptTemplate, errors_table, generate_structured
from shopaug.models.rec.base import Recommender

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

TEMPLATE = "interaction_sim"
#: request-id suffix of the second (reversed) ask when ``orders`` is 2
REVERSED = "#reversed"


class InteractionSimulationConfig(LLMStageConfig):
    max_tokens: int = Field(32, ge=8)
    temperature: float = Field(0.3, ge=0)
    max_users: int | None = Field(None, ge=1)
    #: users with at least min_history and at most max_history distinct training items
    min_history: int = Field(1, ge=1)
    max_history: int = Field(5, ge=1, le=50)
    #: candidates shown per user, from the base recommender, bought items left out
    n_candidates: int = Field(10, ge=2, le=30)
    #: at most this many positives and negatives taken from each answer
    n_positive: int = Field(2, ge=1, le=10)
    n_negative: int = Field(2, ge=0, le=10)
    #: training weight (`value`) of a simulated positive
    positive_weight: float = Field(0.5, gt=0, le=1)
    #: registered recommender that proposes the candidates, and its config
    candidates_from: str = "popularity"
    candidates_config: dict[str, Any] = Field(default_factory=dict)
    #: show candidates in a per-user seeded order, not ranked (small models favour the top)
    shuffle: bool = True
    #: 2: ask each user twice, the second time with the candidates in reverse order, and
    #: keep only the picks both answers make (a pick made for its position, not its
    #: product, rarely survives the reversal); twice the LLM calls
    orders: int = Field(1, ge=1, le=2)
    #: "random": no LLM; the first n_positive shown candidates (a seeded shuffle when
    #: ``shuffle``) become positives and the last n_negative negatives. The control
    #: that tells whether the LLM's choices matter, or only its candidates do
    picker: Literal["llm", "random"] = "llm"
    #: drop interactions at or after this time first
    cutoff: dt.datetime | None = None
    #: prompt language; "auto" picks Chinese when most of the user's titles are Chinese
    language: Language = "auto"
    title_chars: int = Field(60, ge=10)

    @model_validator(mode="after")
    def _recommender(self) -> InteractionSimulationConfig:
        from shopaug import registry
        from shopaug.errors import RegistryError

        try:
            registry.create("recommender", self.candidates_from, self.candidates_config)
        except RegistryError as exc:
            raise ValueError(f"candidates_from: {exc}") from None
        if self.min_history > self.max_history:
            raise ValueError("min_history must not exceed max_history")
        if self.picker == "random" and self.orders != 1:
            raise ValueError("picker 'random' asks nobody, so orders must be 1")
        return self


class InteractionSimulation(Augmenter):
    """LLM-chosen positive and negative interactions among a base recommender's candidates.

    ``report_`` counts users asked, answered and failed, rows made, indices dropped
    for being both positive and negative, and (with ``orders: 2``) picks dropped
    because the two orders disagreed. ``candidates_`` keeps each user's candidates in
    the base recommender's order, ``shown_`` in the order first shown.
    """

    name = "interaction_simulation"
    Config = InteractionSimulationConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: InteractionSimulationConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        self.errors_ = errors_table([], self.name)
        self.report_ = {"users": 0, "answered": 0, "failed": 0, "positives": 0,
                        "negatives": 0, "contradictions": 0, "order_disagreements": 0}
        self.candidates_: dict[str, list[str]] = {}
        self.shown_: dict[str, list[str]] = {}
        history = training_history(data, cfg.cutoff)
        if history.empty:
            return data
        counts = history.groupby("user_id")["item_id"].nunique()
        users = counts[(counts >= cfg.min_history) & (counts <= cfg.max_history)].index.tolist()
        users = users[: cfg.max_users] if cfg.max_users else users
        if not users:
            return data
        recs = self._recommender(data, history, ctx.seed).recommend(
            users, k=cfg.n_candidates + cfg.max_history)
        bought = recent_items(history[history["user_id"].isin(set(users))], cfg.max_history)
        titles = title_of(data.items, cfg.title_chars)
        last = history.groupby("user_id").head(1).set_index("user_id")  # newest event
        templates: dict[str, tuple[PromptTemplate, list]] = {}
        requests, asked_as = [], {}
        for user, group in recs.sort_values(["user_id", "rank"]).groupby("user_id", sort=True):
            seen = set(bought[user])
            shown = [i for i in group["item_id"] if i not in seen][: cfg.n_candidates]
            if len(shown) < 2:
                continue
            self.candidates_[str(user)] = shown
            seed = record_seed(ctx.seed, self.name, str(user))
            if cfg.shuffle:
                shown = [shown[i] for i in np.random.default_rng(seed).permutation(len(shown))]
            self.shown_[str(user)] = shown
            if cfg.picker == "random":
                continue
            fields = {"purchased": [titles.get(i, str(i)) for i in bought[user]]}
            lang = language_of(fields["purchased"], cfg.language)  # the shopper's language
            if (lang, len(shown)) not in templates:
                templates[lang, len(shown)] = self._template(lang, len(shown))
            template, examples = templates[lang, len(shown)]
            for reversed_ in (False, True)[: cfg.orders]:
                request_id = f"{user}{REVERSED}" if reversed_ else str(user)
                asked_as[request_id] = (str(user), reversed_)
                order = shown[::-1] if reversed_ else shown
                asked = {**fields, "candidates": {str(n): titles.get(i, str(i))
                                                  for n, i in enumerate(order, 1)}}
                requests.append(template.request(
                    asked, examples, sampling=cfg.sampling(), request_id=request_id,
                    seed=seed, n_positive=cfg.n_positive, n_negative=cfg.n_negative))
        if cfg.picker == "random":
            self.report_["users"] = len(self.shown_)
            picks = {user: (shown[: cfg.n_positive],
                            shown[max(cfg.n_positive, len(shown) - cfg.n_negative):],
                            None) for user, shown in self.shown_.items()}
        else:
            self.report_["users"] = len(requests) // cfg.orders
            if not requests:
                return data
            results = generate_structured(ctx.llm, requests, stage=self.name,
                                          retries=cfg.retries)
            self.errors_ = save_errors(results, self.name, ctx)
            picks = self._picks(results, asked_as)
        self.report_["answered"] = len(picks)
        self.report_["failed"] = self.report_["users"] - len(picks)
        rows = []
        for user, (pos, neg, template_id) in picks.items():
            for items, event, value in ((pos, None, cfg.positive_weight), (neg, "negative", 0.0)):
                for item in items:
                    rows.append({"user_id": user, "item_id": item,
                                 "timestamp": last.at[user, "timestamp"],
                                 "event": event or last.at[user, "event"],
                                 "value": value, "prompt_id": template_id})
        if not rows:
            return data
        made = pd.DataFrame(rows)
        made["event"] = made["event"].fillna("purchase")
        self.report_["positives"] = int((made["event"] != "negative").sum())
        self.report_["negatives"] = int((made["event"] == "negative").sum())
        llm_model = ctx.llm.engine.model_id if cfg.picker == "llm" else None
        out = self.provenance(made.drop(columns="prompt_id"), ctx, llm_model=llm_model)
        out["prompt_id"] = made["prompt_id"].to_numpy()
        return data.append("interactions", out)

    def _picks(self, results: list, asked_as: dict[str, tuple[str, bool]]
               ) -> dict[str, tuple[list[str], list[str], str | None]]:
        """Per answered user: positive items, negative items and the template id. With
        two orders a user counts as answered only when both answers are valid, and an
        item is kept only when both answers put it on the same side."""
        cfg = self.config
        answers: dict[str, list[tuple[list[str], list[str]]]] = {}
        template_of = {}
        for r in results:
            if not r.ok:
                continue
            user, reversed_ = asked_as[r.request.request_id]
            shown = self.shown_[user][::-1] if reversed_ else self.shown_[user]
            pos = list(dict.fromkeys(r.value["positives"]))
            neg = list(dict.fromkeys(r.value.get("negatives", [])))
            both = set(pos) & set(neg)  # contradictory: trust neither
            self.report_["contradictions"] += len(both)
            answers.setdefault(user, []).append(
                ([shown[n - 1] for n in pos if n not in both][: cfg.n_positive],
                 [shown[n - 1] for n in neg if n not in both][: cfg.n_negative]))
            template_of[user] = r.request.template
        picks = {}
        for user, pairs in answers.items():
            if len(pairs) < cfg.orders:
                continue
            pos, neg = pairs[0]
            for other_pos, other_neg in pairs[1:]:
                kept_pos = [i for i in pos if i in other_pos]
                kept_neg = [i for i in neg if i in other_neg]
                self.report_["order_disagreements"] += (
                    len(pos) + len(other_pos) - 2 * len(kept_pos)
                    + len(neg) + len(other_neg) - 2 * len(kept_neg))
                pos, neg = kept_pos, kept_neg
            picks[user] = (pos, neg, template_of[user])
        return picks

    def _recommender(self, data: ShopData, history: pd.DataFrame, seed: int) -> Recommender:
        from shopaug import registry

        model = registry.create("recommender", self.config.candidates_from,
                                self.config.candidates_config)
        assert isinstance(model, Recommender)
        return model.fit(data.replace(interactions=history), seed=seed)

    def _template(self, lang: str, n: int) -> tuple[PromptTemplate, list]:
        """Answers restricted to the numbers 1..n: an enum a grammar can enforce."""
        cfg = self.config
        base = PromptTemplate.load(TEMPLATE, lang)
        schema = copy.deepcopy(base.schema or {})
        for key, limit in (("positives", cfg.n_positive), ("negatives", cfg.n_negative)):
            schema["properties"][key]["items"]["enum"] = list(range(1, n + 1))
            schema["properties"][key]["maxItems"] = limit
        if cfg.n_negative == 0:
            del schema["properties"]["negatives"]
            schema["required"] = ["positives"]
        return with_schema(base, schema), template_examples(TEMPLATE, lang)
