"""Generated rows next to the real rows they came from, for people to read.

A reader trusts synthetic data after seeing it beside its source: the product
title and its real queries next to the generated queries, the real purchase
history next to the generated profile or simulated purchases.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from shopaug.data.bundle import ShopData


def _titles(data: ShopData) -> pd.Series:
    items = data.items
    return items.drop_duplicates("item_id").set_index("item_id")["title"].astype(str)


def _history(real: pd.DataFrame, user: str, titles: pd.Series, n: int = 5) -> list[str]:
    rows = real[real["user_id"] == user].sort_values("timestamp")
    return [titles.get(i, i) for i in rows["item_id"].drop_duplicates().tail(n)]


def collect_samples(augmented: ShopData, n: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``n`` samples per augmenter and table (see the report model's SAMPLE)."""
    out: list[dict[str, Any]] = []
    titles = _titles(augmented)
    out += _query_samples(augmented, titles, n, seed)
    out += _item_samples(augmented, titles, n, seed)
    out += _user_samples(augmented, titles, n, seed)
    out += _interaction_samples(augmented, titles, n, seed)
    return out


def _query_samples(data: ShopData, titles: pd.Series, n: int, seed: int) -> list[dict]:
    queries, judgments = data.queries, data.judgments
    syn = queries[queries["origin"] == "synthetic"]
    if not len(syn):
        return []
    text = queries.set_index("query_id")["text"].astype(str)
    j = judgments.assign(text=judgments["query_id"].map(text))
    syn_j = j[j["query_id"].isin(set(syn["query_id"]))]
    real_j = j[j["origin"] == "real"]
    out = []
    for augmenter, frame in syn_j.groupby(syn_j["augmenter"].fillna("?"), sort=True):
        items = pd.Series(frame["item_id"].unique())
        for item in items.sample(min(n, len(items)), random_state=seed):
            real_q = real_j.loc[(real_j["item_id"] == item) & (real_j["gain"] > 0), "text"]
            out.append({"augmenter": augmenter, "table": "queries",
                        "source": {"label": f"item {item}", "text": titles.get(item, item)},
                        "generated": frame.loc[frame["item_id"] == item, "text"]
                        .drop_duplicates().head(8).tolist(),
                        "real": real_q.drop_duplicates().head(5).tolist()})
    return out


def _made_by(value: object) -> str | None:
    """The augmenter named in a JSON column's ``_provenance`` (rows that stay real but
    got generated fields: enriched items, profiled users)."""
    if not isinstance(value, str) or "_provenance" not in value:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    prov = parsed.get("_provenance") if isinstance(parsed, dict) else None
    return str(prov.get("augmenter", "?")) if isinstance(prov, dict) else None


def _generated_fields(value: str) -> str:
    parsed = json.loads(value)
    parts = []
    for key, entry in parsed.items():
        if key.startswith("_"):
            continue
        shown = entry.get("value", entry) if isinstance(entry, dict) else entry
        mark = "" if not isinstance(entry, dict) or entry.get("grounded", True) else " (inferred)"
        parts.append(f"{key}: {shown}{mark}")
    return "; ".join(parts)


def _item_samples(data: ShopData, titles: pd.Series, n: int, seed: int) -> list[dict]:
    items = data.items
    if "attributes" not in items.columns:
        return []
    made = items.assign(made_by=items["attributes"].map(_made_by))
    made = made[made["made_by"].notna()]
    out = []
    for augmenter, frame in made.groupby("made_by", sort=True):
        for _, row in frame.sample(min(n, len(frame)), random_state=seed).iterrows():
            source = " | ".join(str(row[c]) for c in ("title", "category", "description")
                                if c in row and pd.notna(row[c]) and str(row[c]))
            out.append({"augmenter": augmenter, "table": "items",
                        "source": {"label": f"item {row['item_id']}", "text": source},
                        "generated": [_generated_fields(row["attributes"])], "real": []})
    return out


def _user_samples(data: ShopData, titles: pd.Series, n: int, seed: int) -> list[dict]:
    users = data.users
    if "profile_text" not in users.columns:
        return []
    if "interests" not in users.columns:
        return []
    made = users.assign(made_by=users["interests"].map(_made_by))
    made = made[made["made_by"].notna() & made["profile_text"].notna()]
    real = data.interactions[data.interactions["origin"] == "real"]
    out = []
    for augmenter, frame in made.groupby("made_by", sort=True):
        for _, row in frame.sample(min(n, len(frame)), random_state=seed).iterrows():
            out.append({"augmenter": augmenter, "table": "users",
                        "source": {"label": f"user {row['user_id']}",
                                   "text": "recent purchases"},
                        "generated": [str(row["profile_text"])],
                        "real": _history(real, row["user_id"], titles)})
    return out


def _interaction_samples(data: ShopData, titles: pd.Series, n: int, seed: int) -> list[dict]:
    inter = data.interactions
    real = inter[inter["origin"] == "real"]
    syn = inter[inter["origin"] == "synthetic"]
    real_users = set(real["user_id"])
    out = []
    for augmenter, frame in syn.groupby(syn["augmenter"].fillna("?"), sort=True):
        users = pd.Series(frame["user_id"].unique())
        for user in users.sample(min(n, len(users)), random_state=seed):
            rows = frame[frame["user_id"] == user].sort_values("timestamp")
            generated = [titles.get(i, i) for i in rows["item_id"].head(8)]
            known = user in real_users
            out.append({"augmenter": augmenter, "table": "interactions",
                        "source": {"label": f"user {user}",
                                   "text": "real history" if known else
                                   "a synthetic user (no real history)"},
                        "generated": generated,
                        "real": _history(real, user, titles) if known else []})
    return out
