"""Shared pieces of the quality report: tokens, checks, tables, plots, distances, and
where generated content hides in a bundle (synthetic rows, enriched items, profiles)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shopaug.augment.expand import normalise_text

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
_CJK_RE = re.compile(f"[{_CJK}]")
#: free-text columns: never compared as categories
TEXT_COLUMNS = frozenset({"title", "description", "text", "profile_text", "attributes",
                          "interests"})


def tokens(text: object) -> list[str]:
    """Lower-cased words; Chinese (CJK) text one token per character (no segmenter)."""
    return _TOKEN_RE.findall(normalise_text(text))


def phrase_weight(toks: Sequence[str]) -> float:
    """Length in words with a CJK character counting half (4 characters ~ 2 words)."""
    cjk = sum(1 for t in toks if _CJK_RE.fullmatch(t))
    return len(toks) - cjk + cjk / 2


# -- checks and sections ------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One pass/fail test of the report; ``name`` is also its threshold's config key."""

    section: str
    name: str
    value: float
    threshold: float
    op: str
    passed: bool
    detail: str

    @property
    def key(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {"section": self.section, "name": self.name, "value": cell(self.value),
                "threshold": cell(self.threshold), "op": self.op, "passed": self.passed,
                "detail": self.detail}


def make_check(section: str, name: str, value: float, thresholds: Any, detail: str,
               op: str = "<=") -> Check | None:
    """A check against ``thresholds.<name>``; None when that threshold is None (off)."""
    threshold = getattr(thresholds, name)
    if threshold is None:
        return None
    value = float(value)
    passed = value <= threshold if op == "<=" else value >= threshold
    return Check(section, name, value, float(threshold), op, bool(passed), detail)


@dataclass
class Section:
    tables: list[dict[str, Any]] = field(default_factory=list)
    plots: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              note: str | None = None) -> None:
        self.tables.append({"title": title, "columns": list(columns),
                            "rows": [[cell(v) for v in row] for row in rows], "note": note})

    def note(self, title: str, message: str) -> None:
        """A one-row table saying why something was not measured."""
        self.table(title, ["note"], [[message]])

    def plot(self, title: str, kind: str, x_label: str, labels: Sequence[str],
             series: Mapping[str, Sequence[float]], y_label: str = "share") -> None:
        if not labels or not series:
            return
        clean = {k: [round(float(x), 6) for x in v] for k, v in series.items()}
        assert all(len(v) == len(labels) for v in clean.values()), title
        self.plots.append({"title": title, "kind": kind, "x_label": x_label, "y_label": y_label,
                           "labels": [str(x) for x in labels], "series": clean})

    def add(self, check: Check | None) -> None:
        if check is not None:
            self.checks.append(check)

    def to_dict(self) -> dict[str, Any]:
        return {"tables": self.tables, "plots": self.plots}


def cell(value: Any) -> Any:
    """A JSON-able table cell: numpy scalars unwrapped, NaN as null, floats rounded."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else round(float(value), 6)
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


# -- distributions ------------------------------------------------------------------
def shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    return counts / total if total > 0 else counts


def binned(values: Iterable[float], edges: Sequence[float]) -> np.ndarray:
    """Shares per bin ``[edges[i], edges[i+1])``; the last bin is open-ended and values
    below the first edge fall in the first bin."""
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
    values = values[np.isfinite(values)]
    idx = np.clip(np.searchsorted(np.asarray(edges, float), values, side="right") - 1,
                  0, len(edges) - 1)
    return shares(np.bincount(idx, minlength=len(edges)))


def int_labels(edges: Sequence[int]) -> list[str]:
    """Labels of integer bins: "3", "6-10", and "21+" for the last."""
    out = []
    for i, lo in enumerate(edges):
        if i == len(edges) - 1:
            out.append(f"{lo}+")
        else:
            hi = edges[i + 1] - 1
            out.append(str(lo) if hi == lo else f"{lo}-{hi}")
    return out


def tv_distance(p: Mapping[str, float] | np.ndarray, q: Mapping[str, float] | np.ndarray
                ) -> float:
    """Total variation distance of two distributions (0 same, 1 disjoint)."""
    if isinstance(p, Mapping) and isinstance(q, Mapping):
        keys = set(p) | set(q)
        return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)
    return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (largest gap between the two CDFs)."""
    a = np.sort(np.asarray(a, float)[np.isfinite(a)])
    b = np.sort(np.asarray(b, float)[np.isfinite(b)])
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def value_shares(values: pd.Series) -> dict[str, float]:
    counts = values.dropna().astype(str).value_counts()
    total = counts.sum()
    return {str(k): float(v) / total for k, v in counts.items()} if total else {}


def category_plot(section: Section, title: str, x_label: str, real: Mapping[str, float],
                  synthetic: Mapping[str, float], top: int = 15) -> None:
    """Bar plot of the ``top`` categories (by combined share) plus "other"."""
    keys = sorted(set(real) | set(synthetic),
                  key=lambda k: (-(real.get(k, 0.0) + synthetic.get(k, 0.0)), k))
    shown = keys[:top]
    series = {"real": [real.get(k, 0.0) for k in shown],
              "synthetic": [synthetic.get(k, 0.0) for k in shown]}
    if len(keys) > top:
        shown = [*shown, "other"]
        for name in ("real", "synthetic"):
            series[name].append(max(0.0, 1.0 - sum(series[name])))
    section.plot(title, "bar", x_label, shown, series)


def sample(values: Sequence[Any], n: int, rng: np.random.Generator) -> list[Any]:
    """At most ``n`` values, a seeded sample in their original order."""
    values = list(values)
    if len(values) <= n:
        return values
    keep = np.sort(rng.choice(len(values), size=n, replace=False))
    return [values[i] for i in keep]


def rng_for(seed: int, name: str) -> np.random.Generator:
    """A generator per section, so adding a section never changes another's sample."""
    return np.random.default_rng([seed, sum(map(ord, name))])


# -- where generated content lives ----------------------------------------------------
def by_origin(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    synthetic = (df["origin"] == "synthetic").to_numpy()
    return df[~synthetic], df[synthetic]


def parse_json_object(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def enriched_items(items: pd.DataFrame) -> set[str]:
    """Items an LLM enrichment changed in place (their attributes carry ``_provenance``)."""
    if "attributes" not in items.columns:
        return set()
    return {str(i) for i, a in zip(items["item_id"], items["attributes"], strict=True)
            if isinstance(a, str) and "_provenance" in a
            and "_provenance" in parse_json_object(a)}


def generated_attributes(items: pd.DataFrame) -> pd.DataFrame:
    """(item_id, attribute, value, grounded_flag): every LLM-made attribute value, i.e.
    each ``{"value": ..., "grounded": ...}`` entry of ``items.attributes``."""
    rows = []
    if "attributes" in items.columns:
        for item_id, raw in zip(items["item_id"], items["attributes"], strict=True):
            if not isinstance(raw, str) or "grounded" not in raw:
                continue
            for name, val in parse_json_object(raw).items():
                if isinstance(val, dict) and "grounded" in val and isinstance(
                        val.get("value"), str):
                    rows.append((str(item_id), str(name), val["value"], bool(val["grounded"])))
    return pd.DataFrame(rows, columns=["item_id", "attribute", "value", "grounded_flag"])


def generated_profiles(users: pd.DataFrame) -> pd.DataFrame:
    """(user_id, text): profile texts of synthetic users and of users a profile augmenter
    changed (their ``interests`` carry ``_provenance``)."""
    if "profile_text" not in users.columns or users.empty:
        return pd.DataFrame(columns=["user_id", "text"])
    made = (users["origin"] == "synthetic").to_numpy(dtype=bool, copy=True)
    if "interests" in users.columns:
        made |= users["interests"].map(
            lambda v: isinstance(v, str) and "_provenance" in parse_json_object(v)).to_numpy()
    rows = users.loc[made & users["profile_text"].map(lambda v: isinstance(v, str)
                                                     and bool(v.strip())).to_numpy()]
    return pd.DataFrame({"user_id": rows["user_id"].astype(str).to_numpy(),
                         "text": rows["profile_text"].to_numpy()})


def positive_rows(interactions: pd.DataFrame) -> pd.DataFrame:
    """Everything but sampled negatives (the rows that say a user wanted an item)."""
    if "event" not in interactions.columns:
        return interactions
    return interactions[interactions["event"].fillna("") != "negative"]


def synthetic_users(interactions: pd.DataFrame) -> set[str]:
    """Users who appear only in synthetic interactions (simulated or pseudo-users)."""
    real, synthetic = by_origin(interactions)
    return set(synthetic["user_id"].astype(str)) - set(real["user_id"].astype(str))


def fmt_int(n: float) -> str:
    return f"{int(n):,}"
