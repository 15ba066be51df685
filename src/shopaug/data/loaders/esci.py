"""Amazon "Shopping Queries Dataset" (ESCI, KDD Cup 2022, amazon-science/esci-data).

Reads a directory holding ``shopping_queries_dataset_examples.parquet`` (example_id,
query, query_id, product_id, product_locale, esci_label, small_version,
large_version, split) and ``shopping_queries_dataset_products.parquet``
(product_id, product_title, product_description, product_bullet_point,
product_brand, product_color, product_locale). Judgments keep the E/S/C/I labels
as grades on the ``esci`` scale; the ESCI ``split`` is kept as ``esci_split``.
"""

from __future__ import annotations

import json
from typing import Literal

import pandas as pd

from shopaug.data.io import ROW
from shopaug.data.loaders.base import LoadContext, Loader, LoaderConfig

EXAMPLES = "shopping_queries_dataset_examples.parquet"
PRODUCTS = "shopping_queries_dataset_products.parquet"


class EsciConfig(LoaderConfig):
    grade_scale: str | None = "esci"
    #: product_locale to keep: 'us', 'es' or 'jp'
    locale: str = "us"
    #: 'small' keeps rows with small_version == 1 (the Task 1 subset); 'large' all of them
    version: Literal["small", "large"] = "small"
    #: values of the ``split`` column to keep ('train', 'test'); None keeps all
    splits: list[str] | None = None


def _attributes(color: object, bullets: object) -> str | None:
    attrs: dict[str, object] = {}
    if isinstance(color, str) and color.strip():
        attrs["color"] = color.strip()
    if isinstance(bullets, str):
        points = [b.strip() for b in bullets.splitlines() if b.strip()]
        if points:
            attrs["bullet_points"] = points
    return json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else None


class EsciLoader(Loader):
    """Amazon ESCI: queries, products and E/S/C/I judgments of one locale."""

    name = "esci"
    Config = EsciConfig

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        config: EsciConfig = ctx.config  # type: ignore[assignment]
        if not ctx.require_directory(f"{EXAMPLES} and {PRODUCTS}"):
            return {}
        version_col = f"{config.version}_version"
        examples = ctx.read("judgments", ctx.path / EXAMPLES,
            required=("query_id", "query", "product_id", "esci_label", "product_locale",
                      version_col, *(("split",) if config.splits is not None else ())),
            rename={"query": "text", "product_id": "item_id", "esci_label": "grade"},
        )
        products = ctx.read("items", ctx.path / PRODUCTS,
            required=("product_id", "product_title", "product_locale"),
            rename={"product_id": "item_id", "product_title": "title",
                    "product_description": "description", "product_brand": "brand"},
        )
        raw: dict[str, pd.DataFrame] = {}
        if products is not None:
            raw["items"] = self._items(ctx, products, config.locale)
        if examples is not None:
            examples = self._filter(ctx, examples, config, version_col)
            raw["queries"], raw["judgments"] = self._queries_and_judgments(ctx, examples)
        return raw

    @staticmethod
    def _filter(ctx: LoadContext, df: pd.DataFrame, config: EsciConfig,
                version_col: str) -> pd.DataFrame:
        keep = df["product_locale"].astype("str").str.strip() == config.locale
        ctx.cleaned(f"examples of other locales (not {config.locale!r})", int((~keep).sum()))
        df = df[keep]
        keep = pd.to_numeric(df[version_col], errors="coerce") == 1
        ctx.cleaned(f"examples not in the {config.version} version", int((~keep).sum()))
        df = df[keep]
        if config.splits is not None:
            keep = df["split"].astype("str").str.strip().isin(config.splits)
            ctx.cleaned(f"examples of other splits (not {config.splits})", int((~keep).sum()))
            df = df[keep]
        return df

    @staticmethod
    def _queries_and_judgments(ctx: LoadContext,
                               df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        label = ctx.labels["judgments"]
        src = ctx.sources.get("judgments", {})
        cols = ["query_id", "text", *(["split"] if "split" in df.columns else []), ROW]
        queries = df[cols].rename(columns={"split": "esci_split"})
        # One row per distinct query; a query_id with two texts stays twice and is
        # then reported as a duplicate by the shared validation.
        queries = queries.drop_duplicates([c for c in queries.columns if c != ROW])
        ctx.labels["queries"] = label
        ctx.sources["queries"] = {"query_id": src.get("query_id", "query_id"),
                                  "text": src.get("text", "query")}
        judgments = df[["query_id", "item_id", "grade", ROW]]
        judgments = judgments
        return queries.reset_index(drop=True), judgments.reset_index(drop=True)

    @staticmethod
    def _items(ctx: LoadContext, df: pd.DataFrame, locale: str) -> pd.DataFrame:
        keep = df["product_locale"].astype("str").str.strip() == locale
        ctx.cleaned(f"products of other locales (not {locale!r})", int((~keep).sum()))
        df = df[keep]
        color = df["product_color"] if "product_color" in df.columns else pd.Series(
            None, index=df.index, dtype="object")
        bullets = df["product_bullet_point"] if "product_bullet_point" in df.columns else (
            pd.Series(None, index=df.index, dtype="object"))
        out = df[[c for c in ("item_id", "title", "description", "brand", ROW)
                  if c in df.columns]].copy()
        out["attributes"] = [_attributes(c, b) for c, b in
                             zip(color.tolist(), bullets.tolist(), strict=True)]
        return out.reset_index(drop=True)
