"""A content recommender: users and items meet in one embedding space.

Items are embedded from their text (title, category, description and, when an
enrichment augmenter has run, their attribute values); a user is the recency-
weighted mean of the items they bought, blended with the embedding of their
profile text when one exists. Because it needs no interactions for an item, it is
the model that can recommend cold-start products, and the one that item
enrichment and user profiles feed. ``max_item_buyers: 0`` turns it into a "new
arrivals for you" list: never-sold items only, closest to the user's taste first.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ShopAugError
from shopaug.models.rec.base import Recommender, positives, top_k_per_row, weights

log = logging.getLogger(__name__)

def attribute_text(value: object, grounded_only: bool = False) -> str:
    """The values of an ``attributes`` JSON object as words ("colour: red ..."); with
    ``grounded_only``, values an enrichment flagged as inferred are left out."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ""
    try:
        attrs = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return ""
    if not isinstance(attrs, dict):
        return ""
    parts = []
    for key, val in attrs.items():
        if key.startswith("_"):
            continue
        if isinstance(val, dict):
            if grounded_only and not val.get("grounded", True):
                continue
            val = val.get("value")
        if isinstance(val, list):
            val = ", ".join(map(str, val))
        if val not in (None, ""):
            parts.append(f"{key}: {val}")
    return "; ".join(parts)


def rec_item_text(items: pd.DataFrame, use_attributes: bool = True,
                  grounded_only: bool = False) -> pd.Series:
    parts = [items["title"].fillna("").astype(str)]
    for col in ("category", "brand", "description"):
        if col in items.columns:
            parts.append(items[col].fillna("").astype(str))
    if use_attributes and "attributes" in items.columns:
        parts.append(items["attributes"].map(lambda v: attribute_text(v, grounded_only)))
    text = parts[0]
    for part in parts[1:]:
        text = text.str.cat(part, sep=". ")
    return text.str.replace(r"(\.\s*)+$", "", regex=True).str.replace(r"\s+", " ", regex=True)


def embed_texts(texts: Sequence[str], threads: int | None = None) -> np.ndarray:
    """Unit MiniLM embeddings, each text encoded at most once per process."""
    from shopaug.models.search.biencoder import quiet_transformers, torch_threads
    from shopaug.models.search.encoder import cached_encode, load_encoder, minilm_path

    path = str(minilm_path())
    with quiet_transformers():
        model = load_encoder(path)
    with torch_threads(threads):
        return cached_encode(list(texts), f"{path}|default", model)


class ContentConfig(ComponentConfig):
    #: read enriched attribute values (from item_enrichment) as item text
    use_attributes: bool = True
    #: only attribute values found in the item's own text (a small LLM's inferred ones
    #: are often wrong: "category: food" for a hot water bottle)
    grounded_only: bool = False
    #: None: attribute values are appended to the item text. A number w: the item vector
    #: is unit(emb(text) + w * emb(attribute values)), so enriching only some items (the
    #: coldest) moves them less far from the others, whose text the shoppers' tastes are
    #: made of
    attribute_weight: float | None = Field(None, ge=0.0)
    #: blend in the embedding of users.profile_text (from user_profiles) when present
    profile_weight: float = Field(0.5, ge=0.0)
    #: the user's most recent N purchased items make up their taste
    history_items: int = Field(50, ge=1)
    #: a purchase's weight halves every N days before the user's last one
    half_life_days: float = Field(60.0, gt=0)
    #: adds w * log-popularity (scaled to [0, 1]) so equally close items favour sellers
    popularity_weight: float = Field(0.1, ge=0.0)
    exclude_seen: bool = False
    #: recommend only items with at most this many real buyers in the training data
    #: (0: never-sold items, a "new arrivals for you" list)
    max_item_buyers: int | None = Field(None, ge=0)
    threads: int | None = None


class ContentRecommender(Recommender):
    """Cosine between a user's taste vector and each item's text embedding."""

    name = "content"
    seeded = False  # nothing in fit is random
    Config = ContentConfig

    def fit(self, train: ShopData, seed: int = 0) -> ContentRecommender:
        cfg = self.config
        start = time.perf_counter()
        items = train.items.drop_duplicates("item_id")
        self.item_ids_ = items["item_id"].astype(str).to_numpy()
        self.item_emb_ = self._item_vectors(items)
        index = pd.Index(self.item_ids_)
        inter = positives(train.interactions)
        inter = inter.assign(w=weights(inter), row=index.get_indexer(inter["item_id"]))
        inter = inter[inter["row"] >= 0]
        # popularity prior over real sales: pseudo-users (attribute, sequence) would
        # inflate items with common words
        real = inter[inter["origin"] == "real"]
        pop = np.bincount(real["row"], minlength=len(index)).astype(float)
        logpop = np.log1p(pop)
        self.prior_ = cfg.popularity_weight * logpop / logpop.max() if logpop.max() > 0 \
            else np.zeros(len(index))
        self.user_vec_, self.seen_ = self._user_vectors(train, inter)
        self.allowed_ = None
        if cfg.max_item_buyers is not None:
            buyers = real.groupby("row")["user_id"].nunique().reindex(
                range(len(index)), fill_value=0).to_numpy()
            self.allowed_ = buyers <= cfg.max_item_buyers
        self.fit_seconds_ = time.perf_counter() - start
        log.info("content: %d items, %d users in %.1fs", len(index), len(self.user_vec_),
                 self.fit_seconds_)
        return self

    def _item_vectors(self, items: pd.DataFrame) -> np.ndarray:
        cfg = self.config
        if not len(items):
            return np.zeros((0, 384))
        blend = (cfg.use_attributes and cfg.attribute_weight is not None
                 and "attributes" in items.columns)
        texts = rec_item_text(items, cfg.use_attributes and not blend, cfg.grounded_only)
        emb = embed_texts(texts.tolist(), cfg.threads)
        if not blend:
            return emb
        attrs = items["attributes"].map(lambda v: attribute_text(v, cfg.grounded_only))
        has = (attrs != "").to_numpy()
        if has.any():
            emb = emb.copy()
            emb[has] += cfg.attribute_weight * embed_texts(attrs[has].tolist(), cfg.threads)
            emb[has] /= np.linalg.norm(emb[has], axis=1, keepdims=True).clip(1e-12)
        return emb

    def _user_vectors(self, train: ShopData, inter: pd.DataFrame
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        cfg = self.config
        inter = inter.sort_values(["user_id", "timestamp"], kind="stable")
        seen = inter.groupby("user_id")["row"].agg(lambda r: np.unique(r.to_numpy()))
        inter = inter.groupby("user_id", sort=False).tail(cfg.history_items)
        last = inter.groupby("user_id")["timestamp"].transform("max")
        age_days = (last - inter["timestamp"]).dt.total_seconds() / 86400
        w = inter["w"].to_numpy() * 0.5 ** (age_days.to_numpy() / cfg.half_life_days)
        users = inter["user_id"].astype(str).to_numpy()
        codes, uniques = pd.factorize(users)
        vec = np.zeros((len(uniques), self.item_emb_.shape[1]))
        np.add.at(vec, codes, self.item_emb_[inter["row"].to_numpy()] * w[:, None])
        out = dict(zip(uniques, vec, strict=True))
        profiles = train.users
        if cfg.profile_weight > 0 and "profile_text" in profiles.columns:
            profiles = profiles[profiles["profile_text"].fillna("").str.strip() != ""]
            if len(profiles):
                emb = embed_texts(profiles["profile_text"].astype(str).tolist(), cfg.threads)
                for user, e in zip(profiles["user_id"].astype(str), emb, strict=True):
                    base = out.get(user)
                    base = base / (np.linalg.norm(base) or 1.0) if base is not None else 0.0
                    out[user] = base + cfg.profile_weight * e
        norms = {u: float(np.linalg.norm(v)) for u, v in out.items()}
        return ({u: v / norms[u] for u, v in out.items() if norms[u] > 0},
                {str(u): s for u, s in seen.items()})

    def recommend(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        if not hasattr(self, "item_emb_"):
            raise ShopAugError("call fit() before recommend()")
        users = list(dict.fromkeys(map(str, user_ids)))
        allowed = self.allowed_
        k = min(k, len(self.item_ids_) if allowed is None else int(allowed.sum()))
        if not users or k == 0:
            return pd.DataFrame(columns=["user_id", "item_id", "rank", "score"])
        dim = self.item_emb_.shape[1]
        taste = np.stack([self.user_vec_.get(u, np.zeros(dim)) for u in users])
        scores = taste @ self.item_emb_.T + self.prior_[None, :]  # unknown users: the prior
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        if self.config.exclude_seen:
            for row, user in enumerate(users):
                seen = self.seen_.get(user)
                if seen is not None:
                    scores[row, seen] = -np.inf
        top = top_k_per_row(scores, k)
        return pd.DataFrame({
            "user_id": np.repeat(np.array(users, dtype=object), k),
            "item_id": self.item_ids_[top.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(users)),
            "score": np.take_along_axis(scores, top, axis=1).ravel(),
        }).astype({"user_id": "str", "item_id": "str"})

    def item_vectors(self, item_ids: Sequence[str]) -> np.ndarray:
        """Unit embeddings of the given items (zeros for unknown ones): for similar-item
        lookups and as features of other models."""
        where = pd.Index(self.item_ids_).get_indexer(list(map(str, item_ids)))
        out = np.zeros((len(where), self.item_emb_.shape[1]), dtype=np.float32)
        out[where >= 0] = self.item_emb_[where[where >= 0]]
        return out
