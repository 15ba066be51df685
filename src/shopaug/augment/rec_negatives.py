"""Labels for recommenders: sampled negatives and a teacher's pseudo-positives.

`negative_sampling` adds ``event="negative"`` rows (value 0) next to each real
positive, for pointwise and pairwise learners (BPR, LightGBM); models that only
use positives drop them through ``shopaug.models.rec.base.positives``.
`rec_teacher_labels` trains a registered recommender on the data and gives users
with short histories its top unseen items as down-weighted synthetic positives
(knowledge distillation for cold users). Both follow docs/design/recommendation.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug import registry
from shopaug.augment.base import Augmenter, synthetic_id
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.models.rec.base import positives

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

#: rejection-sampling rounds before a slot that keeps hitting a positive is dropped
_ROUNDS = 20


def catalog(data: ShopData) -> np.ndarray:
    """Sorted ids of every item the data knows (catalog plus any interacted item)."""
    ids = set(data.items["item_id"]) | set(data.interactions["item_id"])
    return np.array(sorted(ids), dtype=object)


def popularity_probs(items: np.ndarray, interactions: pd.DataFrame, alpha: float = 1.0,
                     smoothing: float = 0.0) -> np.ndarray:
    """Sampling probability per item: (distinct buyers + smoothing) ** alpha."""
    buyers = positives(interactions).groupby("item_id")["user_id"].nunique()
    counts = pd.Series(items).map(buyers).fillna(0).to_numpy(dtype=float) + smoothing
    weight = counts ** alpha
    total = weight.sum()
    return weight / total if total > 0 else np.full(len(items), 1 / max(len(items), 1))


def sample_unseen(owners: np.ndarray, n_per: int, forbidden: np.ndarray, n_items: int,
                  rng: np.random.Generator, probs: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``n_per`` item codes per owner (an integer user code) that avoid ``forbidden``
    (sorted keys ``user_code * n_items + item_code``); returns (slot owner index, item
    code) for the slots that succeeded, vectorised rejection sampling."""
    slot = np.repeat(np.arange(len(owners)), n_per)
    if not len(slot) or n_items == 0:
        return slot[:0], slot[:0]
    items = rng.choice(n_items, size=len(slot), p=probs)
    keys = owners[slot].astype(np.int64) * n_items
    for _ in range(_ROUNDS):
        bad = np.isin(keys + items, forbidden)
        if not bad.any():
            break
        items[bad] = rng.choice(n_items, size=int(bad.sum()), p=probs)
    ok = ~np.isin(keys + items, forbidden)
    return slot[ok], items[ok]


def _codes(values: pd.Series, ids: np.ndarray) -> np.ndarray:
    return pd.Index(ids).get_indexer(values)


def _pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    return np.unique(users.astype(np.int64) * n_items + items)


# -- negative sampling -------------------------------------------------------------
class NegativeSamplingConfig(ComponentConfig):
    #: uniform over the catalog, proportional to popularity, or a recommender's top
    #: unseen items ("hard")
    strategy: Literal["uniform", "popularity", "hard"] = "uniform"
    per_positive: int = Field(4, ge=1, le=100)
    #: popularity strategy: probability ~ buyers ** alpha (0.75 as in word2vec flattens it)
    alpha: float = Field(1.0, ge=0)
    #: hard strategy: the registered recommender whose high scorers are the negatives
    hard_from: str = "popularity"
    hard_config: dict[str, Any] = Field(default_factory=dict)
    #: hard strategy: candidates asked per user (the user's positives are removed)
    hard_depth: int = Field(50, ge=1)
    #: negatives for real positives only, or for synthetic positives too
    positives_from: Literal["real", "all"] = "real"


class NegativeSampling(Augmenter):
    """``per_positive`` sampled non-interacted items per positive, as ``event="negative"``
    rows at the positive's timestamp (and basket). A negative is never an item that
    user has a positive for, anywhere in the data."""

    name = "negative_sampling"
    Config = NegativeSamplingConfig
    config: NegativeSamplingConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        inter = data.interactions
        pos = positives(inter)
        anchor = pos if cfg.positives_from == "all" else pos[pos["origin"] == "real"]
        ids = catalog(data)
        if anchor.empty or not len(ids):
            return data
        anchor = anchor.reset_index(drop=True)
        users = np.array(sorted(set(pos["user_id"])), dtype=object)
        user_code = _codes(anchor["user_id"], users)
        forbidden = _pair_keys(_codes(pos["user_id"], users), _codes(pos["item_id"], ids),
                               len(ids))
        rng = np.random.default_rng(ctx.seed)
        probs = None
        if cfg.strategy == "popularity":
            probs = popularity_probs(ids, inter, cfg.alpha)
        if cfg.strategy == "hard":
            slot, item = self._hard(data, anchor, users, user_code, ids, forbidden, rng, ctx)
        else:
            slot, item = sample_unseen(user_code, cfg.per_positive, forbidden, len(ids), rng,
                                       probs)
        src = anchor.iloc[slot]
        out = pd.DataFrame({
            "user_id": src["user_id"].to_numpy(), "item_id": ids[item],
            "timestamp": src["timestamp"].to_numpy(), "event": "negative", "value": 0.0,
            "session_id": src["session_id"].to_numpy() if "session_id" in src.columns
            else None})
        # one row per (positive, negative item): repeated draws add nothing
        out = out.assign(_slot=slot).drop_duplicates(["_slot", "item_id"]).drop(columns="_slot")
        return data.append("interactions", self.provenance(out.reset_index(drop=True), ctx))

    def _hard(self, data: ShopData, anchor: pd.DataFrame, users: np.ndarray,
              user_code: np.ndarray, ids: np.ndarray, forbidden: np.ndarray,
              rng: np.random.Generator, ctx: RunContext) -> tuple[np.ndarray, np.ndarray]:
        """Uniform draws from each user's top unseen candidates of the ``hard_from``
        recommender; users left with no candidate fall back to popularity sampling."""
        cfg = self.config
        model = registry.create("recommender", cfg.hard_from, cfg.hard_config)
        model.fit(data.replace(interactions=positives(data.interactions)),  # type: ignore[attr-defined]
                  seed=ctx.seed)
        recs = model.recommend(list(users), k=cfg.hard_depth)  # type: ignore[attr-defined]
        recs = recs.assign(u=_codes(recs["user_id"], users), i=_codes(recs["item_id"], ids))
        recs = recs[(recs["u"] >= 0) & (recs["i"] >= 0)].sort_values(["u", "rank"], kind="stable")
        recs = recs[~np.isin(recs["u"].to_numpy(np.int64) * len(ids) + recs["i"].to_numpy(),
                             forbidden)].drop_duplicates(["u", "i"])
        cand = recs["i"].to_numpy()
        start = np.searchsorted(recs["u"].to_numpy(), np.arange(len(users)))
        count = np.bincount(recs["u"].to_numpy(), minlength=len(users))
        slot = np.repeat(np.arange(len(anchor)), cfg.per_positive)
        owner = user_code[slot]
        has = count[owner] > 0
        item = np.full(len(slot), -1, dtype=np.int64)
        redo = np.flatnonzero(has)
        for _ in range(_ROUNDS):  # redraw repeats within one positive while others remain
            pick = (rng.random(len(redo)) * count[owner[redo]]).astype(np.int64)
            item[redo] = cand[start[owner[redo]] + pick]
            repeat = pd.Series(slot * len(ids) + item).duplicated().to_numpy() & has
            redo = np.flatnonzero(repeat & (count[owner] > cfg.per_positive - 1))
            if not len(redo):
                break
        lacking = np.flatnonzero(~has)
        if len(lacking):
            probs = popularity_probs(ids, data.interactions, smoothing=1.0)
            sub, fill = sample_unseen(owner[lacking], 1, forbidden, len(ids), rng, probs)
            keep = np.concatenate([np.flatnonzero(has), lacking[sub]])
            item[lacking[sub]] = fill
            keep.sort()
            return slot[keep], item[keep]
        return slot, item


# -- teacher pseudo-labels ----------------------------------------------------------
class RecTeacherLabelsConfig(ComponentConfig):
    #: a registered recommender, e.g. itemknn, als or popularity
    teacher: str = "popularity"
    teacher_config: dict[str, Any] = Field(default_factory=dict)
    per_user: int = Field(3, ge=1, le=100)
    #: only users with at most this many (real) positive interactions get labels
    max_history: int = Field(5, ge=0)
    #: value (training weight) = normalised teacher score x weight
    weight: float = Field(0.5, gt=0, le=1)
    #: also label users of the users table that have no interaction at all
    include_cold: bool = True
    event: str = "purchase"


class RecTeacherLabels(Augmenter):
    """A teacher recommender's top unseen items for short-history users, as synthetic
    positives weighted by the teacher's confidence.

    A score is normalised per user by the user's best candidate score (so the top
    pick gets ``weight``); when a teacher's best score is not positive, 1/rank is used
    instead. Labels get the user's last training timestamp (the end of the data for
    cold users), so they never fall after a split cut.
    """

    name = "rec_teacher_labels"
    Config = RecTeacherLabelsConfig
    config: RecTeacherLabelsConfig

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        pos = positives(data.interactions)
        if pos.empty:
            return data
        real = pos[pos["origin"] == "real"]
        history = real.groupby("user_id").size()
        eligible = set(history[history <= cfg.max_history].index)
        if cfg.include_cold:
            users = data.users
            eligible |= set(users.loc[users["origin"] == "real", "user_id"]) - set(pos["user_id"])
        if not eligible:
            return data
        teacher = registry.create("recommender", cfg.teacher, cfg.teacher_config)
        teacher.fit(data.replace(interactions=pos), seed=ctx.seed)  # type: ignore[attr-defined]
        targets = sorted(eligible)
        recs = teacher.recommend(targets, k=cfg.per_user + cfg.max_history)  # type: ignore[attr-defined]
        if recs.empty:
            return data
        recs = recs.sort_values(["user_id", "rank"], kind="stable")
        best = recs.groupby("user_id")["score"].transform("max").to_numpy(dtype=float)
        score = recs["score"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = np.where(best > 0, np.clip(score / best, 0, 1), 1 / recs["rank"].to_numpy())
        recs = recs.assign(norm=np.nan_to_num(norm))
        seen = pd.MultiIndex.from_frame(pos[["user_id", "item_id"]])
        recs = recs[~pd.MultiIndex.from_frame(recs[["user_id", "item_id"]]).isin(seen)]
        recs = recs[recs["norm"] > 0].groupby("user_id", sort=False).head(cfg.per_user)
        if recs.empty:
            return data
        last = pos.groupby("user_id")["timestamp"].max()
        when = recs["user_id"].map(last).fillna(pos["timestamp"].max())
        out = pd.DataFrame({
            "user_id": recs["user_id"].to_numpy(), "item_id": recs["item_id"].to_numpy(),
            "timestamp": when.to_numpy(), "event": cfg.event,
            "value": recs["norm"].to_numpy() * cfg.weight,
            "session_id": [synthetic_id("teacher", u, ctx.seed) for u in recs["user_id"]]})
        out = self.provenance(out, ctx, quality_score=recs["norm"].to_numpy())
        return data.append("interactions", out)
