"""A purchase-probability model: LightGBM over (user, item) feature rows.

Trained on `interaction_features` rows of the training data (features from the
history before the last ``label_days``, labels from that window), optionally plus
synthetic feature rows from a tabular synthesizer fitted on them
(``use_synthetic``): the experiment is AUC / log loss of real-only vs
real + synthetic rows on a held-out period (``evaluate``). As a recommender it
scores each user's candidates (the most popular items plus the user's own
history) with features from the whole training history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.rec_features import (
    CATEGORICAL,
    FEATURES,
    HistoryFeatures,
    interaction_features,
)
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.data.split import Split
from shopaug.errors import ShopAugError
from shopaug.models.rec.base import Recommender, positives


class PurchaseConfig(ComponentConfig):
    num_leaves: int = Field(31, ge=2)
    n_estimators: int = Field(200, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    min_child_samples: int = Field(20, ge=1)
    #: sampled non-bought items per bought one, uniform or by popularity
    negatives_per_positive: int = Field(4, ge=1)
    negatives: Literal["uniform", "popularity"] = "uniform"
    #: the last N days of the training data are the label window
    label_days: float = Field(30.0, gt=0)
    #: also train on synthetic feature rows from a synthesizer fitted on the real ones
    use_synthetic: bool = False
    synthesizer: Literal["copula", "tvae"] = "copula"
    #: absolute number of synthetic rows; when unset, ``synthetic_ratio`` x the real rows
    synthetic_rows: int | None = Field(None, ge=1)
    synthetic_ratio: float = Field(1.0, gt=0, le=20)
    synthetic_weight: float = Field(1.0, gt=0)
    tvae_epochs: int = Field(100, ge=1)
    #: recommend: the N most popular items are every user's candidates (plus history)
    candidates: int = Field(100, ge=1)
    exclude_seen: bool = False
    #: LightGBM (and TVAE) threads
    threads: int = Field(1, ge=1)


def roc_auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count half)."""
    from scipy.stats import rankdata

    label = np.asarray(label).astype(bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(label: np.ndarray, prob: np.ndarray) -> float:
    p = np.clip(np.asarray(prob, dtype=float), 1e-15, 1 - 1e-15)
    y = np.asarray(label, dtype=float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")


class PurchaseModel(Recommender):
    """P(user buys item in the next period) from user, item and pair features.

    The run seed (``fit(train, seed)``) seeds the negative sampling, the synthesizer
    and LightGBM, as for every recommender.
    """

    name = "purchase_model"
    Config = PurchaseConfig
    config: PurchaseConfig

    def fit(self, train: ShopData, seed: int = 0) -> PurchaseModel:
        cfg = self.config
        self.seed_ = seed
        frame = self.feature_rows(train, seed=seed)
        self.real_rows_, self.synthetic_rows_ = len(frame), 0
        self.categories_ = {c: sorted(frame[c].dropna().astype(str).unique()) for c in CATEGORICAL}
        if cfg.use_synthetic and frame["label"].nunique() == 2:
            frame = pd.concat([frame, self._synthetic(frame, seed)], ignore_index=True)
            self.synthetic_rows_ = len(frame) - self.real_rows_
        labels = frame["label"].to_numpy(dtype=int)
        self.booster_: Any = None
        self.base_rate_ = float(labels.mean()) if len(labels) else 0.0
        if len(np.unique(labels)) == 2:
            import lightgbm as lgb

            params = {"objective": "binary", "num_leaves": cfg.num_leaves,
                      "learning_rate": cfg.learning_rate,
                      "min_data_in_leaf": cfg.min_child_samples, "num_threads": cfg.threads,
                      "seed": seed, "deterministic": True, "force_col_wise": True,
                      "verbose": -1}
            dataset = lgb.Dataset(self._matrix(frame), labels,
                                  weight=frame["weight"].to_numpy(dtype=float),
                                  categorical_feature=list(CATEGORICAL), free_raw_data=True)
            self.booster_ = lgb.train(params, dataset, num_boost_round=cfg.n_estimators)
        # recommending: features of the whole training history, stated at its end
        pos = positives(train.interactions)
        self.history_ = HistoryFeatures(pos, train.items)
        buyers = pos.groupby("item_id")["user_id"].nunique().rename("n").reset_index()
        self.popular_ = buyers.sort_values(["n", "item_id"], ascending=[False, True],
                                           kind="stable")["item_id"].head(cfg.candidates)
        self.seen_ = pos.groupby("user_id")["item_id"].agg(lambda s: sorted(set(s)))
        return self

    def feature_rows(self, data: ShopData,
                     targets: ShopData | pd.DataFrame | None = None,
                     seed: int | None = None) -> pd.DataFrame:
        """`interaction_features` rows with this model's negative sampling settings."""
        cfg = self.config
        seed = getattr(self, "seed_", 0) if seed is None else seed
        return interaction_features(data, cfg.negatives_per_positive, seed, targets=targets,
                                    label_days=cfg.label_days, negatives=cfg.negatives)

    def _synthetic(self, frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        from shopaug.augment.tabular import make_synthesizer

        cfg = self.config
        columns = [*FEATURES, "label"]
        synth = make_synthesizer(cfg.synthesizer, seed=seed, epochs=cfg.tvae_epochs)
        if cfg.synthesizer == "tvae":
            synth.threads = cfg.threads  # type: ignore[attr-defined]
        n = cfg.synthetic_rows or max(1, math.ceil(cfg.synthetic_ratio * len(frame)))
        fake = synth.fit(frame[columns]).sample(n, seed=seed)
        return fake.assign(user_id=None, item_id=None, weight=cfg.synthetic_weight)

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=frame.index)
        for col in FEATURES:
            if col in CATEGORICAL:
                out[col] = pd.Categorical(frame[col].astype("object"),
                                          categories=self.categories_[col])
            else:
                out[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Purchase probability per row of an `interaction_features`-shaped frame."""
        if not hasattr(self, "base_rate_"):
            raise ShopAugError("call fit() before predict_proba()")
        if self.booster_ is None:
            return np.full(len(frame), self.base_rate_)
        return np.asarray(self.booster_.predict(self._matrix(frame)), dtype=float)

    def evaluate(self, test: pd.DataFrame | Split) -> dict[str, float]:
        """AUC and log loss on labelled rows, or on a split (features from its train
        side, labels from its test side, negatives sampled as in training)."""
        if isinstance(test, Split):
            test = self.feature_rows(test.train, targets=test.test)
        prob = self.predict_proba(test)
        label = test["label"].to_numpy(dtype=int)
        return {"auc": roc_auc(label, prob), "log_loss": log_loss(label, prob), "rows": len(test)}

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        if not hasattr(self, "history_"):
            raise ShopAugError("call fit() before recommend()")
        users = list(dict.fromkeys(user_ids))
        popular = self.popular_.tolist()
        pairs = pd.DataFrame(
            [(u, i) for u in users
             for i in dict.fromkeys([*popular, *self.seen_.get(u, [])])],
            columns=["user_id", "item_id"])
        if self.config.exclude_seen and len(pairs):
            seen = pd.MultiIndex.from_frame(self.history_.pairs[["user_id", "item_id"]])
            pairs = pairs[~pd.MultiIndex.from_frame(pairs).isin(seen)]
        if pairs.empty:
            return pd.DataFrame({"user_id": pd.Series(dtype="str"),
                                 "item_id": pd.Series(dtype="str"),
                                 "rank": pd.Series(dtype="int64"),
                                 "score": pd.Series(dtype="float64")})
        scored = pairs.assign(score=self.predict_proba(self.history_.features(pairs)))
        # ties broken by item id so the order is deterministic
        scored = scored.sort_values(["user_id", "score", "item_id"],
                                    ascending=[True, False, True], kind="stable")
        top = scored.groupby("user_id", sort=False).head(k)
        top = top.assign(rank=top.groupby("user_id", sort=False).cumcount() + 1)
        order = pd.Series(range(len(users)), index=users)
        top = top.sort_values("user_id", key=lambda s: s.map(order), kind="stable")
        return top[["user_id", "item_id", "rank", "score"]].reset_index(drop=True)
