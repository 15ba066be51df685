"""Splitters: one ShopData -> train / test (/ valid) without leakage.

Every split checks itself when built (:meth:`Split.check_no_leakage`): no test
interaction, query or judgment is reachable from the training side, and the
splitter's own rule holds (e.g. every training event precedes the cut). The
catalog (items) and user table are shared: they are side information that a
real system has before any test event, and cold-start models need it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from shopaug.components import Component, ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError, LeakageError, SchemaError


@dataclass(frozen=True)
class Split:
    train: ShopData
    test: ShopData
    valid: ShopData | None = None
    kind: str = ""
    cut: pd.Timestamp | None = None
    cold_items: frozenset[str] = frozenset()
    cold_users: frozenset[str] = frozenset()
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check_no_leakage()

    def sizes(self) -> dict[str, dict[str, int]]:
        parts = {"train": self.train, "test": self.test}
        if self.valid is not None:
            parts["valid"] = self.valid
        return {name: part.counts() for name, part in parts.items()}

    def report(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "cut": None if self.cut is None else str(self.cut),
            "sizes": self.sizes(), "cold_items": len(self.cold_items),
            "cold_users": len(self.cold_users), **self.notes,
        }

    def check_no_leakage(self) -> None:
        """Raise :class:`LeakageError` if test information is reachable from train."""
        train_sides = [self.train] + ([self.valid] if self.valid is not None else [])
        test = self.test
        for side in train_sides:
            _no_shared_rows(side.interactions, test.interactions,
                            ["user_id", "item_id", "timestamp", "session_id"], "interactions")
            shared_q = set(side.queries["query_id"]) & set(test.queries["query_id"])
            if shared_q:
                raise LeakageError(f"{len(shared_q)} test queries are also in train, e.g. "
                                   f"{sorted(shared_q)[:3]}")
            _no_shared_rows(side.judgments, test.judgments, ["query_id", "item_id"], "judgments")
        if self.cut is not None and self.kind in ("temporal", "cold_start"):
            for side in train_sides:
                late = side.interactions["timestamp"] >= self.cut
                if late.any():
                    raise LeakageError(f"{int(late.sum())} training interactions are at or "
                                       f"after the cut {self.cut}")
        if self.cold_items:
            seen = set(self.train.interactions["item_id"]) & self.cold_items
            if seen:
                raise LeakageError(f"cold-start items {sorted(seen)[:3]} have training "
                                   "interactions")
        if self.cold_users:
            seen = set(self.train.interactions["user_id"]) & self.cold_users
            if seen:
                raise LeakageError(f"cold-start users {sorted(seen)[:3]} have training "
                                   "interactions")


def _no_shared_rows(train: pd.DataFrame, test: pd.DataFrame, keys: list[str], what: str) -> None:
    keys = [k for k in keys if k in train.columns and k in test.columns]
    if not len(train) or not len(test) or not keys:
        return
    both = train[keys].drop_duplicates().merge(test[keys].drop_duplicates(), on=keys)
    if len(both):
        raise LeakageError(f"{len(both)} test {what} rows also appear in train, e.g. "
                           f"{both.head(2).to_dict('records')}")


class SplitterConfig(ComponentConfig):
    pass


class Splitter(Component):
    kind = "splitter"
    Config = SplitterConfig

    def split(self, data: ShopData, seed: int = 0) -> Split:
        raise NotImplementedError

    @staticmethod
    def _need_interactions(data: ShopData, who: str) -> pd.DataFrame:
        inter = data.interactions
        if not len(inter):
            raise SchemaError(f"the {who} split needs interactions, and the data has none. Fix: "
                              "load interactions, or use the by_query split for search data")
        return inter


class _CutConfig(SplitterConfig):
    #: explicit cut time; events at or after it are test
    cut: dt.datetime | None = None
    #: or: the last N days of the data are test
    test_days: float | None = 30.0
    #: interactions in the N days before the cut become the validation set
    valid_days: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _one_rule(self) -> _CutConfig:
        if self.cut is None and self.test_days is None:
            raise ValueError("set either cut or test_days")
        if self.test_days is not None and self.test_days <= 0:
            raise ValueError("test_days must be positive")
        return self


def _resolve_cut(inter: pd.DataFrame, config: _CutConfig) -> pd.Timestamp:
    if config.cut is not None:
        cut = pd.Timestamp(config.cut)
        if cut.tzinfo is not None:  # timestamps are naive UTC (loaders convert zones)
            cut = cut.tz_convert("UTC").tz_localize(None)
    else:
        cut = inter["timestamp"].max() - pd.Timedelta(days=config.test_days or 0)
    lo, hi = inter["timestamp"].min(), inter["timestamp"].max()
    if not lo < cut <= hi:
        raise ConfigError(f"the cut {cut} leaves no training or no test interactions (data "
                          f"spans {lo} .. {hi}). Fix: choose a cut inside that range")
    return cut


def _cut_parts(data: ShopData, config: _CutConfig) -> tuple[pd.Timestamp, dict[str, ShopData]]:
    inter = data.interactions
    cut = _resolve_cut(inter, config)
    valid_from = cut - pd.Timedelta(days=config.valid_days)
    before = inter["timestamp"] < cut
    parts = {"train": inter[inter["timestamp"] < valid_from], "test": inter[~before]}
    if not len(parts["train"]):
        raise ConfigError(f"valid_days {config.valid_days:g} before the cut {cut} leaves no "
                          "training interactions. Fix: fewer valid_days, or a later cut")
    if config.valid_days > 0:
        parts["valid"] = inter[before & (inter["timestamp"] >= valid_from)]
    # Search tables carry no time: they stay on the training side.
    empty = {"queries": data.queries.iloc[:0], "judgments": data.judgments.iloc[:0]}
    return cut, {
        name: data.replace(interactions=rows, **({} if name == "train" else empty))
        for name, rows in parts.items()
    }


class TemporalSplit(Splitter):
    """Global time cut: everything before the cut trains, everything after tests."""

    name = "temporal"
    Config = _CutConfig

    def split(self, data: ShopData, seed: int = 0) -> Split:
        inter = self._need_interactions(data, "temporal")
        cut, parts = _cut_parts(data, self.config)
        train_inter = parts["train"].interactions
        test_inter = parts["test"].interactions
        cold_items = frozenset(set(test_inter["item_id"]) - set(inter.loc[
            inter["timestamp"] < cut, "item_id"]))
        cold_users = frozenset(set(test_inter["user_id"]) - set(train_inter["user_id"]))
        return Split(parts["train"], parts["test"], parts.get("valid"), kind=self.name,
                     cut=cut, cold_items=cold_items - set(train_inter["item_id"]),
                     cold_users=cold_users)


class ColdStartConfig(_CutConfig):
    holdout: Literal["items", "users", "both"] = "items"


class ColdStartSplit(Splitter):
    """Test only on items (or users) first seen after the cut: the cold-start case."""

    name = "cold_start"
    Config = ColdStartConfig

    def split(self, data: ShopData, seed: int = 0) -> Split:
        inter = self._need_interactions(data, "cold_start")
        cut, parts = _cut_parts(data, self.config)
        before = inter[inter["timestamp"] < cut]
        test = parts["test"].interactions
        hold = self.config.holdout
        cold_items = frozenset(set(test["item_id"]) - set(before["item_id"]))
        cold_users = frozenset(set(test["user_id"]) - set(before["user_id"]))
        mask = pd.Series(False, index=test.index)
        if hold in ("items", "both"):
            mask |= test["item_id"].isin(cold_items)
        if hold in ("users", "both"):
            mask |= test["user_id"].isin(cold_users)
        test_part = parts["test"].replace(interactions=test[mask])
        return Split(parts["train"], test_part, parts.get("valid"), kind=self.name, cut=cut,
                     cold_items=cold_items if hold != "users" else frozenset(),
                     cold_users=cold_users if hold != "items" else frozenset(),
                     notes={"holdout": hold, "warm_test_rows_dropped": int((~mask).sum())})


def basket_ids(interactions: pd.DataFrame) -> pd.Series:
    """A basket per row: its session_id, else its timestamp (one purchase moment)."""
    stamps = interactions["timestamp"].astype("str")
    if "session_id" not in interactions.columns:
        return stamps
    return interactions["session_id"].fillna(stamps)


class LeaveLastBasketConfig(SplitterConfig):
    #: users with fewer baskets stay wholly in train
    min_baskets: int = 2


class LeaveLastBasketSplit(Splitter):
    """Each user's last basket (session) is test; earlier baskets train.

    Note: other users' later purchases stay in train (no global time cut), the
    usual next-basket protocol; use ``temporal`` for a strictly causal split.
    """

    name = "leave_last_basket"
    Config = LeaveLastBasketConfig

    def split(self, data: ShopData, seed: int = 0) -> Split:
        inter = self._need_interactions(data, "leave_last_basket")
        keyed = inter.assign(_basket=basket_ids(inter))
        starts = keyed.groupby(["user_id", "_basket"], sort=False)["timestamp"].min()
        starts = starts.reset_index().sort_values(["user_id", "timestamp", "_basket"])
        n_baskets = starts.groupby("user_id")["_basket"].transform("size")
        last = starts[(n_baskets >= self.config.min_baskets)].groupby("user_id").tail(1)
        if last.empty:
            raise ConfigError(f"leave_last_basket: no user has {self.config.min_baskets} "
                              "baskets, so the test side would be empty. Fix: lower "
                              "min_baskets, or use the temporal split")
        is_test = keyed.set_index(["user_id", "_basket"]).index.isin(
            last.set_index(["user_id", "_basket"]).index)
        train_inter, test_inter = inter[~is_test], inter[is_test]
        # A basket that started before the user's last one but ends after its start
        # would leak; require every training event to precede the test basket.
        start_of_test = last.set_index("user_id")["timestamp"]
        late = train_inter["timestamp"] > train_inter["user_id"].map(start_of_test)
        if late.any():
            raise LeakageError(f"{int(late.sum())} training events are later than their user's "
                               "test basket (overlapping baskets); use the temporal split")
        empty = {"queries": data.queries.iloc[:0], "judgments": data.judgments.iloc[:0]}
        train = data.replace(interactions=train_inter)
        test = data.replace(interactions=test_inter, **empty)
        cold_items = frozenset(set(test_inter["item_id"]) - set(train_inter["item_id"]))
        return Split(train, test, kind=self.name, cold_items=cold_items,
                     notes={"test_users": int(test_inter["user_id"].nunique()),
                            "users_below_min_baskets": int(
                                starts["user_id"].nunique() - last["user_id"].nunique())})


class QuerySplitConfig(SplitterConfig):
    test_fraction: float = 0.3
    valid_fraction: float = 0.0

    @model_validator(mode="after")
    def _fractions(self) -> QuerySplitConfig:
        if not 0 < self.test_fraction < 1 or not 0 <= self.valid_fraction < 1 or (
                self.test_fraction + self.valid_fraction >= 1):
            raise ValueError("need 0 < test_fraction, 0 <= valid_fraction, and their sum < 1")
        return self


def normalise_query(text: pd.Series) -> pd.Series:
    return text.str.lower().str.replace(r"\s+", " ", regex=True).str.strip()


class QuerySplit(Splitter):
    """Split search data by query, never by row: all judgments of a query stay together,
    and queries with the same normalised text land on the same side."""

    name = "by_query"
    Config = QuerySplitConfig

    def split(self, data: ShopData, seed: int = 0) -> Split:
        queries = data.queries
        if not len(queries):
            raise SchemaError(
                "the by_query split needs queries and judgments. Fix: load a search data set "
                "(native queries/judgments, crowdflower, esci, wands)")
        groups = normalise_query(queries["text"])
        unique = np.sort(groups.unique())
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(unique))
        n_test = max(1, round(self.config.test_fraction * len(unique)))
        n_valid = round(self.config.valid_fraction * len(unique))
        if n_test + n_valid >= len(unique):
            raise ConfigError(f"only {len(unique)} distinct queries: too few to split")
        side = np.empty(len(unique), dtype=object)
        side[order[:n_test]] = "test"
        side[order[n_test:n_test + n_valid]] = "valid"
        side[order[n_test + n_valid:]] = "train"
        query_side = groups.map(dict(zip(unique, side, strict=True)))
        judgments = data.judgments
        parts = {}
        for name in ("train", "test", "valid"):
            ids = queries.loc[query_side == name, "query_id"]
            extra = {} if name == "train" else {"interactions": data.interactions.iloc[:0]}
            parts[name] = data.replace(queries=queries[queries["query_id"].isin(ids)],
                                       judgments=judgments[judgments["query_id"].isin(ids)],
                                       **extra)
        train_texts = set(groups[query_side == "train"])
        test_texts = set(groups[query_side == "test"])
        if train_texts & test_texts:  # cannot happen by construction; checked all the same
            raise LeakageError("a normalised query text is on both sides of the split")
        judged_train = set(parts["train"].judgments["item_id"])
        test_items = set(parts["test"].judgments["item_id"])
        return Split(parts["train"], parts["test"], parts["valid"] if n_valid else None,
                     kind=self.name, cold_items=frozenset(),
                     notes={"test_items_without_train_judgments": len(test_items - judged_train)})


def split(data: ShopData, kind: str = "temporal", seed: int = 0, **config: Any) -> Split:
    """Split ``data`` with a registered splitter.

    >>> from shopaug.datasets import demo_path
    >>> from shopaug.data.loaders import load
    >>> parts = split(load(demo_path(), format="online_retail").data, "temporal", test_days=30)
    >>> parts.report()["kind"]
    'temporal'
    """
    from shopaug import registry

    splitter = registry.create("splitter", kind, config)
    assert isinstance(splitter, Splitter)
    return splitter.split(data, seed=seed)
