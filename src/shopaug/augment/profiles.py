"""User profiles (KAR / LLMRec style): a short taste description and weighted interests.

Built strictly from the interactions in the bundle the augmenter is given, which in
a pipeline is the training side of a split; ``cutoff`` additionally drops every
interaction at or after a timestamp before any prompt is built. Only real, positive
interactions count (no synthetic rows, no sampled negatives).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter, record_seed
from shopaug.augment.enrich import (
    blank,
    clean_value,
    is_grounded,
    limit_words,
    provenance_record,
    source_text,
    template_examples,
    to_json,
    with_schema,
)
from shopaug.augment.expand import has_cjk, normalise_text
from shopaug.augment.queries import Language, LLMStageConfig, save_errors
from shopaug.data.bundle import ShopData
from shopaug.llm import PromptTemplate, errors_table, generate_structured
from shopaug.models.rec.base import positives

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

TEMPLATE = "user_profile"


# -- histories, shared with interaction_simulation -----------------------------------
def training_history(data: ShopData, cutoff: dt.datetime | None = None) -> pd.DataFrame:
    """Real positive interactions before ``cutoff``, newest first per user."""
    inter = positives(data.interactions)
    inter = inter[inter["origin"] == "real"]
    if cutoff is not None:
        inter = inter[inter["timestamp"] < pd.Timestamp(cutoff)]
    # newest first; among equal timestamps the later row first (a basket's order)
    return (inter.assign(_row=np.arange(len(inter)))
            .sort_values(["user_id", "timestamp", "_row"], ascending=[True, False, False])
            .drop(columns="_row").reset_index(drop=True))


def recent_items(history: pd.DataFrame, limit: int) -> pd.Series:
    """Per user: distinct item ids, most recent purchase first, at most ``limit``."""
    distinct = history.drop_duplicates(["user_id", "item_id"])
    return distinct.groupby("user_id", sort=True)["item_id"].agg(lambda s: list(s)[:limit])


def title_of(items: pd.DataFrame, chars: int) -> dict[str, str]:
    titles = items.drop_duplicates("item_id").set_index("item_id")["title"]
    return {k: " ".join(str(v).split())[:chars] for k, v in titles.items()}


def language_of(texts: list[str], language: str) -> str:
    """The configured language, or for "auto" the script most of the texts are in."""
    if language != "auto":
        return language
    return "zh" if 2 * sum(has_cjk(t) for t in texts) > len(texts) else "en"


# -- the augmenter --------------------------------------------------------------
class UserProfilesConfig(LLMStageConfig):
    max_tokens: int = Field(128, ge=8)
    max_users: int | None = Field(None, ge=1)
    #: which users a max_users budget goes to: id order, or the shortest histories first
    prefer: Literal["order", "sparse"] = "order"
    #: users with fewer distinct items get no profile
    min_history: int = Field(1, ge=1)
    #: most recent distinct items shown to the model
    max_history_items: int = Field(10, ge=1, le=50)
    profile_words: int = Field(30, ge=5, le=120)
    max_interests: int = Field(3, ge=1, le=5)
    #: drop interactions at or after this time before building prompts
    cutoff: dt.datetime | None = None
    #: replace profiles the users table already has
    overwrite: bool = False
    #: prompt language; "auto" picks Chinese when most history titles are Chinese
    language: Language = "auto"
    title_chars: int = Field(60, ge=10)


class UserProfiles(Augmenter):
    """An LLM-written profile text and weighted interests per user, from their history.

    Writes ``users.profile_text`` and ``users.interests`` (JSON: interest name ->
    ``{"weight", "grounded"}`` plus ``"_provenance"``); users missing from the users
    table get a row (they are real users, so the row is real). A user whose
    ``profile_text`` is already filled keeps it unless ``overwrite``. ``report_`` counts
    users asked, profiled, failed, skipped for a short history and skipped for having a
    profile already.
    """

    name = "user_profiles"
    Config = UserProfilesConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}
    config: UserProfilesConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        self.errors_ = errors_table([], self.name)
        self.report_ = {"users": 0, "profiled": 0, "failed": 0, "short_history": 0,
                        "had_profile": 0}
        history = training_history(data, cfg.cutoff)
        if history.empty:
            return data
        users = data.users
        counts = history.groupby("user_id")["item_id"].nunique()
        chosen = counts[counts >= cfg.min_history].index.tolist()
        self.report_["short_history"] = int((counts < cfg.min_history).sum())
        if not cfg.overwrite and "profile_text" in users.columns:
            has = set(users.loc[~users["profile_text"].map(blank), "user_id"])
            self.report_["had_profile"] = sum(u in has for u in chosen)
            chosen = [u for u in chosen if u not in has]
        if cfg.max_users and cfg.prefer == "sparse":
            chosen = sorted(chosen, key=lambda u: (counts[u], u))[: cfg.max_users]
        chosen = sorted(chosen[: cfg.max_users]) if cfg.max_users else chosen
        self.report_["users"] = len(chosen)
        if not chosen:
            return data
        recent = recent_items(history[history["user_id"].isin(set(chosen))],
                              cfg.max_history_items)
        titles = title_of(data.items, cfg.title_chars)
        category = self._categories(data.items, history)
        templates: dict[str, tuple[PromptTemplate, list]] = {}
        requests, sources = [], {}
        for user in chosen:
            shown = [titles.get(i, str(i)) for i in recent[user]]
            fields: dict[str, Any] = {"recent_purchases": shown}
            if user in category:
                fields["purchases_by_category"] = category[user]
            lang = language_of(shown, cfg.language)
            if lang not in templates:
                templates[lang] = self._template(lang)
            template, examples = templates[lang]
            sources[user] = source_text(fields)
            requests.append(template.request(
                fields, examples, sampling=cfg.sampling(), request_id=user,
                seed=record_seed(ctx.seed, self.name, user), words=cfg.profile_words,
                k=cfg.max_interests))
        results = generate_structured(ctx.llm, requests, stage=self.name, retries=cfg.retries)
        self.errors_ = save_errors(results, self.name, ctx)
        ok = [r for r in results if r.ok]
        self.report_["failed"] = len(results) - len(ok)
        self.report_["profiled"] = len(ok)
        if not ok:
            return data
        model = ctx.llm.engine.model_id
        profiles = {}
        for r in ok:
            user = r.request.request_id
            text = clean_value(r.value["profile"])
            interests = self._interests(r.value["interests"], sources[user])
            interests["_provenance"] = provenance_record(self, ctx, model, r.request.template)
            profiles[user] = (limit_words(text, cfg.profile_words) if text else None,
                              to_json(interests))
        return data.replace(users=self._write(users, profiles))

    def _template(self, lang: str) -> tuple[PromptTemplate, list]:
        base = PromptTemplate.load(TEMPLATE, lang)
        schema = copy.deepcopy(base.schema or {})
        schema["properties"]["interests"]["maxItems"] = self.config.max_interests
        return with_schema(base, schema), template_examples(TEMPLATE, lang)

    @staticmethod
    def _categories(items: pd.DataFrame, history: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Per user: purchases by category, the five largest (empty without categories)."""
        if "category" not in items.columns:
            return {}
        cats = history["item_id"].map(items.drop_duplicates("item_id")
                                      .set_index("item_id")["category"])
        known = history.assign(category=cats)[~cats.map(blank)]
        counts = known.groupby(["user_id", "category"]).size().reset_index(name="n")
        counts = counts.sort_values(["user_id", "n", "category"], ascending=[True, False, True])
        top = counts.groupby("user_id").head(5)
        return {str(u): {str(c): int(n) for c, n in zip(g["category"], g["n"], strict=True)}
                for u, g in top.groupby("user_id")}

    def _interests(self, answer: list[Mapping[str, Any]], source: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        seen: set[str] = set()
        ranked = sorted(answer, key=lambda x: -float(x["weight"]))
        for entry in ranked:
            name = clean_value(entry["name"])
            if name is None or normalise_text(name) in seen or name.startswith("_"):
                continue
            seen.add(normalise_text(name))
            # clipped here, not rejected by the schema: a grammar cannot bound numbers,
            # and SmolLM2 wrote "weight": 4 in ~10% of answers
            out[name] = {"weight": round(min(max(float(entry["weight"]), 0.0), 1.0), 4),
                         "grounded": is_grounded(name, source)}
            if len(seen) == self.config.max_interests:
                break
        return out

    @staticmethod
    def _write(users: pd.DataFrame, profiles: Mapping[str, tuple[str | None, str]]
               ) -> pd.DataFrame:
        missing = sorted(set(profiles) - set(users["user_id"]))
        if missing:  # real users the table did not list: give them (real) rows
            users = pd.concat([users, pd.DataFrame({"user_id": missing, "origin": "real"})],
                              ignore_index=True)
        users = users.copy()
        for col in ("profile_text", "interests"):
            if col not in users.columns:
                users[col] = None
            users[col] = users[col].astype(object)
        rows = users["user_id"].map(lambda u: u in profiles).to_numpy()
        picked = users.loc[rows, "user_id"]
        users.loc[rows, "profile_text"] = [profiles[u][0] for u in picked]
        users.loc[rows, "interests"] = [profiles[u][1] for u in picked]
        return users

