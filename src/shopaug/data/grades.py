"""Graded relevance: every supported scale maps onto one gain in [0, 1].

Gains are what ranking metrics consume, so a 1..4 CrowdFlower grade, an ESCI
label and a click all mean the same thing downstream.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shopaug.errors import ConfigError


def grade_keys(grades: pd.Series) -> pd.Series:
    """Grades as scale labels: trimmed, upper case, "4.0" (read from CSV) as "4"."""
    keys = grades.astype("str").str.strip().str.upper()
    return keys.str.replace(r"\.0+$", "", regex=True)


@dataclass(frozen=True)
class GradeScale:
    name: str
    gains: dict[str, float]
    doc: str

    def gain_of(self, grades: pd.Series) -> pd.Series:
        """Map raw grades (any dtype) to gains; unknown grades become NaN."""
        return grade_keys(grades).map(self.gains).astype("float64")

    @property
    def labels(self) -> list[str]:
        return list(self.gains)


def _numeric(lo: int, hi: int) -> dict[str, float]:
    return {str(g): (g - lo) / (hi - lo) for g in range(lo, hi + 1)}


SCALES: dict[str, GradeScale] = {
    s.name: s
    for s in (
        GradeScale("1-4", _numeric(1, 4), "CrowdFlower style: 1 irrelevant .. 4 perfect"),
        GradeScale("0-3", _numeric(0, 3), "TREC style: 0 irrelevant .. 3 perfect"),
        GradeScale("0-4", _numeric(0, 4), "0 irrelevant .. 4 perfect"),
        # Gains of the Amazon KDD Cup 2022 ESCI task.
        GradeScale(
            "esci",
            {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0,
             "EXACT": 1.0, "SUBSTITUTE": 0.1, "COMPLEMENT": 0.01, "IRRELEVANT": 0.0},
            "Amazon ESCI: Exact, Substitute, Complement, Irrelevant",
        ),
        GradeScale(
            "wands",
            {"EXACT": 1.0, "PARTIAL": 0.5, "IRRELEVANT": 0.0},
            "Wayfair WANDS: Exact, Partial, Irrelevant",
        ),
        GradeScale(
            "binary",
            {"0": 0.0, "1": 1.0, "FALSE": 0.0, "TRUE": 1.0, "NO": 0.0, "YES": 1.0,
             "CLICK": 1.0, "NOCLICK": 0.0},
            "clicks or binary labels",
        ),
    )
}
#: every label some scale has
_KNOWN: frozenset[str] = frozenset().union(*(s.gains for s in SCALES.values()))


def get_scale(name: str) -> GradeScale:
    try:
        return SCALES[name]
    except KeyError:
        raise ConfigError(
            f"unknown grade scale {name!r}; choose one of {sorted(SCALES)}"
        ) from None


def infer_scale(grades: Iterable[object]) -> GradeScale:
    """Pick the narrowest scale that covers every observed grade."""
    values = pd.Series([g for g in grades if pd.notna(g)], dtype=object)
    raw = dict(zip(grade_keys(values), values.astype("str"), strict=True))
    seen = set(raw)
    # Without a 0 grade, a numeric scale most likely starts at 1.
    numeric = ("0-3", "0-4") if "0" in seen else ("1-4", "0-4")
    for name in ("binary", *numeric, "esci", "wands"):
        if seen and seen <= set(SCALES[name].gains):
            return SCALES[name]
    odd = sorted(raw[g] for g in seen - _KNOWN)
    hint = f" ({odd[:5]} fit no scale)" if odd else ""
    raise ConfigError(
        f"cannot tell the grade scale from the values {sorted(raw.values())[:10]}{hint}; "
        f"set grade_scale to one of {sorted(SCALES)}"
    )


def infer_scale_of_most(grades: pd.Series, share: float = 0.5) -> GradeScale | None:
    """The scale of the grades that fit some scale, when they are at least ``share`` of
    all: stray values ("7" among 0..3) then become row problems that quarantine
    can set aside, instead of stopping the whole load."""
    fits = grade_keys(grades).isin(_KNOWN)
    if not len(fits) or fits.mean() < share:
        return None
    try:
        return infer_scale(grades[fits.to_numpy()].unique())
    except ConfigError:
        return None


def gains_to_grades(gains: np.ndarray, scale: GradeScale) -> list[str]:
    """Nearest grade label on ``scale`` for each gain (for synthetic labels)."""
    labels = [k for k in scale.gains if len(k) <= 2 or scale.name == "wands"]
    values = np.array([scale.gains[k] for k in labels])
    idx = np.abs(np.asarray(gains, dtype=float)[:, None] - values[None, :]).argmin(axis=1)
    return [labels[i] for i in idx]
