"""The search model contract: ``fit(train)`` then ``rank(queries, candidates)``.

``train`` holds the catalog, the training queries and their judgments, real and
(for augmented variants) synthetic, told apart by ``origin``. ``rank`` scores
the candidate items of each query: the judged pool in reranking benchmarks
(CrowdFlower, ESCI, WANDS), or the whole catalog (``catalog_candidates``).
"""

from __future__ import annotations

import pandas as pd

from shopaug.components import Component, ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError

RANK_COLUMNS = ("query_id", "item_id", "rank", "score")


class SearchModel(Component):
    kind = "search_model"
    Config = ComponentConfig

    def fit(self, train: ShopData, seed: int = 0) -> SearchModel:
        raise NotImplementedError

    def score(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.Series:
        """Scores aligned with ``candidates`` (columns query_id, item_id); ``queries`` has
        query_id and text. Higher is more relevant."""
        raise NotImplementedError

    def rank(self, queries: pd.DataFrame, candidates: pd.DataFrame) -> pd.DataFrame:
        """Candidates ordered per query: columns query_id, item_id, rank (1 = best), score.
        Ties are broken by item id so rankings are deterministic."""
        if not isinstance(candidates, pd.DataFrame):
            raise ConfigError("rank needs a candidates frame (query_id, item_id); for the "
                              "whole catalog use catalog_candidates(queries, train.items)")
        unknown = set(candidates["query_id"]) - set(queries["query_id"])
        if unknown:
            raise ConfigError(f"{len(unknown)} candidate query ids have no query text, e.g. "
                              f"{sorted(map(str, unknown))[:3]}")
        scores = self.score(queries, candidates)
        out = candidates[["query_id", "item_id"]].assign(score=scores.to_numpy(dtype=float))
        out = out.sort_values(["query_id", "score", "item_id"], ascending=[True, False, True],
                              kind="stable")
        out["rank"] = out.groupby("query_id").cumcount() + 1
        return out[list(RANK_COLUMNS)].reset_index(drop=True)


def catalog_candidates(queries: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Every catalog item as a candidate of every query (query_id, item_id)."""
    return queries[["query_id"]].merge(items[["item_id"]].drop_duplicates(), how="cross")


def item_text(items: pd.DataFrame, with_description: bool = True) -> pd.Series:
    """The text a model reads for an item: title, brand, category, description."""
    parts = [items["title"].fillna("")]
    for col in ("brand", "category") + (("description",) if with_description else ()):
        if col in items.columns:
            parts.append(items[col].fillna("").astype(str))
    text = parts[0]
    for part in parts[1:]:
        text = text.str.cat(part, sep=" ")
    return text.str.replace(r"<[^>]+>", " ", regex=True).str.replace(r"\s+", " ", regex=True
                                                                      ).str.strip()
