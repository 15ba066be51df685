"""Amazon Reviews 2023 (McAuley lab, amazon-reviews-2023.github.io), one category.

Reads a reviews JSONL (rating, title, text, images, asin, parent_asin, user_id,
timestamp in epoch milliseconds, helpful_vote, verified_purchase) and an item
metadata JSONL (main_category, title, average_rating, rating_number, features,
description, price, images, videos, store, categories, details, parent_asin,
bought_together), optionally gzipped. Items are keyed by ``parent_asin``; every
review becomes a ``rating`` interaction and its user a row of ``users``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from shopaug.data.io import ROW
from shopaug.data.loaders.base import LoadContext, Loader, LoaderConfig
from shopaug.data.problems import Problem

SUFFIXES = (".jsonl", ".jsonl.gz")
KEPT = ("asin", "helpful_vote", "verified_purchase")


class AmazonReviewsConfig(LoaderConfig):
    #: the reviews file (relative to the data directory, or absolute); found if unset
    reviews_file: str | None = None
    #: the metadata file, e.g. meta_All_Beauty.jsonl.gz; found if unset
    meta_file: str | None = None
    #: drop reviews rated below this (counted as cleaning)
    min_rating: float | None = None


def parse_price(value: object) -> float | None:
    """12.99, "12.99", "$1,299.00" -> float; "None", null, "from 5 to 9" -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return None if pd.isna(value) else float(value)
    text = re.sub(r"[$,\s]", "", str(value))
    return float(text) if re.fullmatch(r"\d+(\.\d+)?", text) else None


def _list(value: object) -> list:
    return [v for v in value if v is not None and str(v).strip()] if isinstance(
        value, list | tuple) else []


def _item(rec: dict) -> dict:
    description = rec.get("description")
    if isinstance(description, list | tuple):
        description = "\n".join(str(d).strip() for d in _list(description)) or None
    categories = _list(rec.get("categories"))
    main = rec.get("main_category")
    category = main if isinstance(main, str) and main.strip() else (
        str(categories[-1]) if categories else None)
    attrs: dict[str, object] = dict(rec["details"]) if isinstance(rec.get("details"),
                                                                   dict) else {}
    if features := _list(rec.get("features")):
        attrs["features"] = features
    if categories:
        attrs["categories"] = categories
    price = parse_price(rec.get("price"))
    raw_price = rec.get("price")
    if price is None and isinstance(raw_price, str) and raw_price.strip() not in ("", "None"):
        attrs["price_text"] = raw_price  # kept as given rather than lost
    store = rec.get("store")
    return {"item_id": rec.get("item_id"), "title": rec.get("title"),
            "description": description, "category": category,
            "brand": store if isinstance(store, str) and store.strip() else None,
            "price": price, ROW: rec[ROW],
            "attributes": json.dumps(attrs, ensure_ascii=False, sort_keys=True, default=str)
            if attrs else None}


class AmazonReviewsLoader(Loader):
    """Amazon Reviews 2023: item metadata, users and their rating interactions."""

    name = "amazon_reviews"
    Config = AmazonReviewsConfig

    def _files(self, ctx: LoadContext) -> tuple[Path | None, Path | None]:
        config: AmazonReviewsConfig = ctx.config  # type: ignore[assignment]
        base = ctx.path if ctx.path.is_dir() else ctx.path.parent

        def given(name: str | None) -> Path | None:
            return None if name is None else (base / name if not Path(name).is_absolute()
                                              else Path(name))

        reviews, meta = given(config.reviews_file), given(config.meta_file)
        if reviews and meta:
            return reviews, meta
        if not ctx.path.is_dir():
            ctx.problems.append(Problem(
                str(ctx.path), "directory not found" if not ctx.path.exists() else
                "not a directory", "a directory with a reviews and a meta_*.jsonl(.gz) file",
                "point the data path at that directory, or set reviews_file and meta_file",
                kind="missing_file", fatal=True))
            return None, None
        found = sorted(p for p in ctx.path.iterdir() if p.name.lower().endswith(SUFFIXES))
        metas = [p for p in found if "meta" in p.name.lower()]
        others = [p for p in found if p not in metas]
        for role, current, candidates in (("meta", meta, metas), ("reviews", reviews, others)):
            if current is None and len(candidates) != 1:
                ctx.problems.append(Problem(
                    str(ctx.path), f"{len(candidates)} candidate {role} files "
                    f"{[p.name for p in candidates]}", f"exactly one {role} .jsonl(.gz) file "
                    "(the meta file's name contains 'meta')",
                    f"set {role}_file to the file to use", kind="missing_file", fatal=True))
        meta = meta or (metas[0] if len(metas) == 1 else None)
        reviews = reviews or (others[0] if len(others) == 1 else None)
        return (reviews, meta) if reviews and meta else (None, None)

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        config: AmazonReviewsConfig = ctx.config  # type: ignore[assignment]
        reviews_path, meta_path = self._files(ctx)
        if reviews_path is None or meta_path is None:
            return {}
        meta = ctx.read("items", meta_path, required=("parent_asin", "title"),
                            rename={"parent_asin": "item_id"})
        reviews = ctx.read("interactions", reviews_path,
                               required=("user_id", "parent_asin", "timestamp", "rating"),
                               rename={"parent_asin": "item_id", "rating": "value"})
        raw: dict[str, pd.DataFrame] = {}
        if meta is not None:
            ctx.sources["items"] = {**ctx.sources["items"], "brand": "store",
                                    "category": "main_category"}
            raw["items"] = pd.DataFrame([_item(r) for r in meta.to_dict("records")],
                                        columns=["item_id", "title", "description", "category",
                                                 "brand", "price", "attributes", ROW])
        if reviews is None:
            return raw
        if config.min_rating is not None:
            low = pd.to_numeric(reviews["value"], errors="coerce") < config.min_rating
            ctx.cleaned(f"reviews rated below {config.min_rating:g}", int(low.sum()))
            reviews = reviews[~low]
        extra = {"title": "review_title", "text": "review_text"}
        cols = ["user_id", "item_id", "timestamp", "value", *KEPT, *extra, ROW]
        interactions = reviews[[c for c in cols if c in reviews.columns]].rename(columns=extra)
        interactions.insert(3, "event", "rating")
        raw["interactions"] = interactions.reset_index(drop=True)
        users = reviews[["user_id", ROW]]
        users = users[users["user_id"].notna() & users["user_id"].astype("str").str.strip().ne("")]
        raw["users"] = users.drop_duplicates("user_id").reset_index(drop=True)
        ctx.labels["users"] = reviews_path.name
        ctx.sources["users"] = dict(ctx.sources["interactions"])
        return raw
