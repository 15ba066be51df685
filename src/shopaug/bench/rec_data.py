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
        alone = _merge(train, spec["name"], base, out)
        merged = _merge(merged, spec["name"], base, out)
        report.append({"augmenter": spec["name"], "seconds": time.perf_counter() - start,
                       "synthetic_interactions": int(
                           (alone.interactions["origin"] == "synthetic").sum()),
                       "columns": " ".join(changed_columns(train, alone)),
                       "report": json.dumps(getattr(component, "report_", {}) or {},
                                            default=str)})
    return merged, pd.DataFrame(report)


#: the tables whose columns an augmenter can fill (enriched attributes, profiles), by key
_KEYED = {"items": "item_id", "users": "user_id"}


def changed_columns(real: ShopData, augmented: ShopData) -> list[str]:
    """``table.column`` for every item or user column that ``augmented`` adds to the real
    data or changes for a real row."""
    changed = []
    for table, key in _KEYED.items():
        before = getattr(real, table).drop_duplicates(key).set_index(key)
        after = getattr(augmented, table).drop_duplicates(key).set_index(key)
        after = after[after.index.isin(before.index)]
        for col in after.columns:
            new = after[col]
            if col not in before.columns:
                if new.notna().any():
                    changed.append(f"{table}.{col}")
                continue
            old = before[col].reindex(new.index)
            both_null = new.isna() & old.isna()
            if (~both_null & (new.astype(str) != old.astype(str))).any():
                changed.append(f"{table}.{col}")
    return changed


def restrict(augmented: ShopData, real: ShopData, augmenters: list[str] | None,
             columns: dict[str, list[str]]) -> ShopData:
    """The augmented data as if only ``augmenters`` had run (None: all of them): the
    others' synthetic rows are dropped and the columns they filled (``columns``:
    augmenter -> ``table.column``, as ``augment`` reports them) get their real values
    back. A column two augmenters filled goes back if either is left out. Users the
    others made up (pseudo-users) go too."""
    if augmenters is None:
        return augmented
    data = augmented.keep_augmenters(augmenters).keep_augmenters(augmenters, "users")
    for name, cols in columns.items():
        if name in augmenters:
            continue
        for table_col in cols:
            table, col = table_col.split(".", 1)
            key, frame = _KEYED[table], getattr(data, table)
            if col not in frame.columns:
                continue
            original = getattr(real, table)
            if col in original.columns:
                values = original.drop_duplicates(key).set_index(key)[col]
                frame = frame.assign(**{col: frame[key].map(values)})
            else:
                frame = frame.drop(columns=col)
            data = data.replace(**{table: frame})
    return data
