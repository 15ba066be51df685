"""The rec bench's augmentation step: each augmenter runs once on the training side
(an LLM stage on the part of it its budget targets), and the outputs are merged into
one augmented training set; a variant can then train on some augmenters' output only.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pandas as pd

from shopaug import registry
from shopaug.data.bundle import ShopData

log = logging.getLogger("shopaug.bench.rec")

def _target(train: ShopData, spec: dict[str, Any]) -> ShopData:
    """The part of the training data an LLM stage should spend its budget on."""
    target = spec.get("target") or {}
    limit = int(target.get("max", 0)) or None
    inter = train.interactions[train.interactions["origin"] == "real"]
    if target.get("items") == "cold_and_tail":
        counts = inter.groupby("item_id").size()
        items = train.items.assign(n=train.items["item_id"].map(counts).fillna(0))
        chosen = items.sort_values(["n", "item_id"], kind="stable").head(limit)["item_id"]
        return train.replace(items=train.items[train.items["item_id"].isin(chosen)],
                             interactions=inter[inter["item_id"].isin(chosen)])
    if target.get("users") == "sparse":
        counts = inter.groupby("user_id").size().sort_values(kind="stable")
        chosen = counts.index[:limit] if limit else counts.index
        users = train.users[train.users["user_id"].isin(chosen)]
        return train.replace(users=users, interactions=inter[inter["user_id"].isin(chosen)])
    return train


def _merge(train: ShopData, name: str, base: ShopData, out: ShopData) -> ShopData:
    """Fold one augmenter's output (run on ``base``) into ``train``: new synthetic
    interactions and users are appended, changed item attributes and user profiles
    are taken over."""
    syn = out.interactions[out.interactions["origin"] == "synthetic"]
    syn = syn[~syn.index.isin(base.interactions.index)] if len(base.interactions) else syn
    merged = train.append("interactions", syn) if len(syn) else train
    users, new_users = merged.users, out.users
    known = set(users["user_id"])
    added = new_users[~new_users["user_id"].isin(known)]
    for col in ("profile_text", "interests"):
        if col in new_users.columns:
            values = new_users.set_index("user_id")[col].dropna()
            if len(values):
                if col not in users.columns:
                    users = users.assign(**{col: None})
                users = users.assign(**{col: users["user_id"].map(values).where(
                    users["user_id"].isin(values.index), users[col])})
    if len(added):
        users = pd.concat([users, added], ignore_index=True)
    items = merged.items
    if "attributes" in out.items.columns:
        attrs = out.items.set_index("item_id")["attributes"].dropna()
        before = (base.items.set_index("item_id")["attributes"].dropna()
                  if "attributes" in base.items.columns else pd.Series(dtype=object))
        changed = attrs[~attrs.index.isin(before.index) | (attrs != before.reindex(attrs.index))]
        if len(changed):
            if "attributes" not in items.columns:
                items = items.assign(attributes=None)
            items = items.assign(attributes=items["item_id"].map(changed).where(
                items["item_id"].isin(changed.index), items["attributes"]))
    log.info("augmenter %s: %d synthetic interactions, %d new users", name, len(syn),
             len(added))
    return merged.replace(users=users, items=items)


def augment(train: ShopData, specs: list[dict[str, Any]], ctx
            ) -> tuple[ShopData, pd.DataFrame]:
    """(all augmenters' output merged into ``train``, one report row per augmenter with
    its synthetic interactions and the ``table.column``s it filled)."""
    report = []
    merged = train
    for spec in specs:
        start = time.perf_counter()
        component = registry.create("augmenter", spec["name"], spec.get("config", {}))
        base = _target(train, spec)
        out = component.run(base, ctx)
        before = merged
        merged = _merge(merged, spec["name"], base, out).record_fills(before, spec["name"])
        added = (merged.origin_counts()["interactions"]["synthetic"]
                 - before.origin_counts()["interactions"]["synthetic"])
        report.append({"augmenter": spec["name"], "seconds": time.perf_counter() - start,
                       "synthetic_interactions": added,
                       "columns": " ".join(f"{f.table}.{f.column}"
                                           for f in merged.fills[len(before.fills):]),
                       "report": json.dumps(getattr(component, "report_", {}) or {},
                                            default=str)})
    return merged, pd.DataFrame(report)

