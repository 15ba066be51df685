"""CrowdFlower "Search Results Relevance" (Kaggle, 2015) ``train.csv``.

Columns: id, query, product_title, product_description, median_relevance (1..4),
relevance_variance. The file has no product or query ids, so they are derived:
items are distinct (title, description) pairs, ``item_id = "cf-" + sha1(title
+ "\\x1f" + description)[:12]``; queries are distinct normalised texts,
``query_id = "q-" + sha1(text)[:10]``. Grades are on the ``1-4`` scale.
"""

from __future__ import annotations

import hashlib
import unicodedata

import pandas as pd

from shopaug.data.io import ROW
from shopaug.data.loaders.base import LoadContext, Loader, LoaderConfig
from shopaug.data.problems import Problem

FILE = "train.csv"


class CrowdFlowerConfig(LoaderConfig):
    grade_scale: str | None = "1-4"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def item_id(title: object, description: object) -> str:
    key = f"{_text(title)}\x1f{_text(description)}"
    return "cf-" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]


def normalise_query(text: object) -> str:
    """NFKC, lower case, surrounding and repeated whitespace removed."""
    return " ".join(unicodedata.normalize("NFKC", _text(text)).lower().split())


def query_id(text: object) -> str | None:
    norm = normalise_query(text)
    return "q-" + hashlib.sha1(norm.encode("utf-8")).hexdigest()[:10] if norm else None


class CrowdFlowerLoader(Loader):
    """CrowdFlower search relevance: queries x product titles with 1..4 grades."""

    name = "crowdflower"
    Config = CrowdFlowerConfig

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        path = ctx.path / FILE if ctx.path.is_dir() else ctx.path
        if not path.is_file():
            ctx.problems.append(Problem(
                path.name, f"file not found: {path}",
                f"the CrowdFlower {FILE} (or a directory containing it)",
                "point the data path at train.csv from the Kaggle competition "
                "'crowdflower-search-relevance' (test.csv has no grades)",
                kind="missing_file", fatal=True))
            return {}
        df = ctx.read("judgments", path, sep=",",
                          required=("id", "query", "product_title", "product_description",
                                    "median_relevance"),
                          rename={"median_relevance": "grade"})
        if df is None:
            return {}
        label = path.name
        src = ctx.sources.get("judgments", {})
        df = df.copy()
        df["item_id"] = [item_id(t, d) for t, d in
                         zip(df["product_title"], df["product_description"], strict=True)]
        df["query_id"] = [query_id(q) for q in df["query"]]

        items = df.drop_duplicates("item_id")[["item_id", "product_title",
                                               "product_description", ROW]]
        items = items.rename(columns={"product_title": "title",
                                      "product_description": "description"})
        ctx.labels["items"] = label
        ctx.sources["items"] = {"title": src.get("product_title", "product_title"),
                                "description": src.get("product_description",
                                                       "product_description")}

        queries = df[df["query_id"].notna()].drop_duplicates("query_id")
        queries = queries[["query_id", "query", ROW]].rename(columns={"query": "text"})
        ctx.labels["queries"] = label
        ctx.sources["queries"] = {"text": src.get("query", "query")}

        cols = ["query_id", "item_id", "grade", ROW]
        if "relevance_variance" in df.columns:
            cols.insert(3, "relevance_variance")
            df = self._variance(ctx, df, label)
        judgments = df[cols]
        dup = judgments["query_id"].notna() & judgments.duplicated(["query_id", "item_id"])
        ctx.cleaned("duplicate judged pairs (same query and product; first kept)",
                    int(dup.sum()))
        # A blank query is reported (as an empty query) against its row in train.csv.
        ctx.sources["judgments"] = {**src, "query_id": src.get("query", "query"),
                                    "item_id": src.get("product_title", "product_title")}
        return {"items": items.reset_index(drop=True), "queries": queries.reset_index(drop=True),
                "judgments": judgments[~dup].reset_index(drop=True)}

    @staticmethod
    def _variance(ctx: LoadContext, df: pd.DataFrame, label: str) -> pd.DataFrame:
        """relevance_variance as numbers; rows with a bad one are reported and set aside."""
        raw = df["relevance_variance"]
        out = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & raw.astype("str").str.strip().ne("") & out.isna()
        for row, value in zip(df.loc[bad, ROW].tolist(), raw[bad].tolist(), strict=True):
            ctx.problems.append(Problem(
                label, "relevance_variance is not a number", "a number such as 0.471",
                "correct or remove the value", row=int(row), column="relevance_variance",
                value=str(value), kind="bad_number"))
        return df[~bad].assign(relevance_variance=out[~bad])
