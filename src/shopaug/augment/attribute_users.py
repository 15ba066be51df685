"""Attribute pseudo-users: product content injected into collaborative filtering.

Every attribute value shared by several products (a title word such as "lantern",
or an enriched value such as "material: glass") becomes a pseudo-user who "bought"
each of those products, with a small weight. Collaborative models then see items
that share content as co-bought: an item nobody has bought yet gets a factor (ALS)
or neighbours (item-kNN) from its attributes alone, which is what cold-start and
long-tail products lack. Pseudo-users follow docs/design/recommendation.md: ids
``attr~<value>``, a ``users`` row each, origin synthetic.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from shopaug.augment.base import Augmenter
from shopaug.augment.expand import normalise_text
from shopaug.components import ComponentConfig
from shopaug.data.bundle import ShopData

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext

#: words that say nothing about what a product is
STOPWORDS = frozenset({
    "a", "an", "and", "the", "of", "for", "with", "in", "on", "to", "by", "set", "pack", "x",
    "pcs", "piece", "pieces", "size", "small", "large", "mini", "big", "new", "assorted",
    "colour", "color", "design"})


def _title_values(items: pd.DataFrame, min_chars: int) -> pd.DataFrame:
    words = items["title"].map(normalise_text).str.split()
    rows = words.explode().dropna()
    rows = rows[(rows.str.len() >= min_chars) & ~rows.isin(STOPWORDS) & ~rows.str.fullmatch(r"\d+")]
    return pd.DataFrame(
        {"item_id": items.loc[rows.index, "item_id"].to_numpy(), "value": "word:" + rows.to_numpy()}
    )


def _attribute_values(items: pd.DataFrame, grounded_only: bool) -> pd.DataFrame:
    if "attributes" not in items.columns:
        return pd.DataFrame(columns=["item_id", "value"])
    out = []
    for item_id, raw in zip(items["item_id"], items["attributes"], strict=True):
        try:
            attrs = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        if not isinstance(attrs, dict):
            continue
        for key, val in attrs.items():
            grounded = True
            if isinstance(val, dict):
                grounded = bool(val.get("grounded", True))
                val = val.get("value")
            if key.startswith("_") or not val or (grounded_only and not grounded):
                continue
            text = normalise_text(val)
            if text:
                out.append((item_id, f"{key}:{text}"))
    return pd.DataFrame(out, columns=["item_id", "value"])


class AttributeUsersConfig(ComponentConfig):
    #: title words, enriched attribute values (from item_enrichment), or both
    source: Literal["title", "attributes", "both"] = "both"
    #: only attribute values the enrichment found in the product text
    grounded_only: bool = False
    #: values shared by fewer items link nothing; by more, they say little
    min_items: int = Field(2, ge=2)
    max_items: int = Field(100, ge=2)
    min_chars: int = Field(3, ge=1)
    #: training weight of each pseudo-purchase (real purchases weigh 1)
    weight: float = Field(0.2, gt=0, le=1)


class AttributeUsers(Augmenter):
    """One weighted pseudo-user per shared attribute value."""

    name = "attribute_users"
    Config = AttributeUsersConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {"items": ("title",)}

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        cfg = self.config
        self.check_inputs(data)
        items = data.items.drop_duplicates("item_id")
        parts = []
        if cfg.source in ("title", "both"):
            parts.append(_title_values(items, cfg.min_chars))
        if cfg.source in ("attributes", "both"):
            parts.append(_attribute_values(items, cfg.grounded_only))
        pairs = pd.concat(parts, ignore_index=True).drop_duplicates()
        size = pairs.groupby("value")["item_id"].transform("size")
        pairs = pairs[(size >= cfg.min_items) & (size <= cfg.max_items)]
        self.report_ = {"values": int(pairs["value"].nunique()), "rows": len(pairs)}
        if pairs.empty or data.interactions.empty:
            return data
        pairs = pairs.sort_values(["value", "item_id"], kind="stable")
        # Inside the training window, at its start: never after a cut, and the oldest
        # events, so recency-weighted models discount them further.
        start = data.interactions["timestamp"].min()
        users = "attr~" + pairs["value"].map(lambda v: re.sub(r"\s+", "_", v))
        rows = pd.DataFrame(
            {
                "user_id": users.to_numpy(),
                "item_id": pairs["item_id"].to_numpy(),
                "timestamp": start,
                "event": "attribute",
                "value": np.full(len(pairs), cfg.weight),
            }
        )
        new_users = pd.DataFrame({"user_id": users.drop_duplicates().to_numpy()})
        known = set(data.users["user_id"])
        new_users = new_users[~new_users["user_id"].isin(known)]
        out = data.append("interactions", self.provenance(rows, ctx))
        if len(new_users):
            out = out.append("users", self.provenance(new_users, ctx))
        return out
