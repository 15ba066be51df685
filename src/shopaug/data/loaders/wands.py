"""Wayfair ANnotation DataSet (WANDS, github.com/wayfair/WANDS, ``dataset/`` folder).

Reads a directory with ``product.csv``, ``query.csv`` and ``label.csv``, which are
TAB-separated despite their names. product.csv: product_id, product_name,
product_class, category hierarchy, product_description, product_features
("key:value|key:value"), rating_count, average_rating, review_count. query.csv:
query_id, query, query_class. label.csv: id, query_id, product_id, label
(Exact / Partial / Irrelevant), graded on the ``wands`` scale.
"""

from __future__ import annotations

import json
import math

import pandas as pd

from shopaug.data.io import ROW
from shopaug.data.loaders.base import LoadContext, Loader, LoaderConfig
from shopaug.data.problems import Problem

FILES = {"items": "product.csv", "queries": "query.csv", "judgments": "label.csv"}
SOURCE = "https://github.com/wayfair/WANDS/tree/main/dataset"
RATINGS = ("rating_count", "average_rating", "review_count")


class WandsConfig(LoaderConfig):
    grade_scale: str | None = "wands"


def parse_features(text: object) -> tuple[dict[str, str], list[str]]:
    """``"a:1|b:x"`` -> ({"a": "1", "b": "x"}, []); segments without a colon are returned
    apart so nothing is lost."""
    pairs: dict[str, str] = {}
    other: list[str] = []
    if not isinstance(text, str):
        return pairs, other
    for segment in text.split("|"):
        key, sep, value = segment.partition(":")
        if sep and key.strip():
            pairs[key.strip()] = value.strip()
        elif segment.strip():
            other.append(segment.strip())
    return pairs, other


def _number(value: object) -> float | int | None:
    try:
        x = float(str(value).strip())
    except ValueError:
        return None
    if math.isnan(x):
        return None
    return int(x) if x.is_integer() else x


def _attributes(row: dict[str, object]) -> str | None:
    attrs: dict[str, object] = {}
    hierarchy = row.get("category hierarchy")
    if isinstance(hierarchy, str) and hierarchy.strip():
        attrs["category_hierarchy"] = [p.strip() for p in hierarchy.split("/") if p.strip()]
    features, other = parse_features(row.get("product_features"))
    if features:
        attrs["product_features"] = features
    if other:
        attrs["product_features_unparsed"] = other
    for name in RATINGS:
        raw = row.get(name)
        number = _number(raw) if raw is not None else None
        if number is not None:
            attrs[name] = number
        elif isinstance(raw, str) and raw.strip():
            attrs[name] = raw.strip()  # kept as given rather than lost
    return json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else None


class WandsLoader(Loader):
    """Wayfair WANDS: products, queries and Exact/Partial/Irrelevant labels."""

    name = "wands"
    Config = WandsConfig

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        if not ctx.require_directory("WANDS product.csv, query.csv and label.csv"):
            return {}
        missing = [f for f in FILES.values() if not (ctx.path / f).is_file()]
        for name in missing:
            ctx.problems.append(Problem(
                name, f"WANDS file {name} not found in {ctx.path}",
                "the three WANDS files product.csv, query.csv and label.csv (tab-separated)",
                f"download the whole dataset folder from {SOURCE}; the directory has "
                f"{sorted(p.name for p in ctx.path.iterdir())}",
                kind="missing_file", fatal=True,
            ))
        if missing:
            return {}
        products = ctx.read("items", ctx.path / FILES["items"], sep="\t",
                                required=("product_id", "product_name"),
                                rename={"product_id": "item_id", "product_name": "title",
                                        "product_description": "description",
                                        "product_class": "category"})
        queries = ctx.read("queries", ctx.path / FILES["queries"], sep="\t",
                               required=("query_id", "query"), rename={"query": "text"})
        labels = ctx.read("judgments", ctx.path / FILES["judgments"], sep="\t",
                              required=("query_id", "product_id", "label"),
                              rename={"product_id": "item_id", "label": "grade"})
        raw: dict[str, pd.DataFrame] = {}
        if products is not None:
            out = products[[c for c in ("item_id", "title", "description", "category", ROW)
                             if c in products.columns]].copy()
            out["attributes"] = [_attributes(r) for r in products.to_dict("records")]
            raw["items"] = out
        if queries is not None:
            raw["queries"] = queries[[c for c in ("query_id", "text", "query_class", ROW)
                                      if c in queries.columns]]
        if labels is not None:
            raw["judgments"] = labels[["query_id", "item_id", "grade", ROW]]
        return raw
