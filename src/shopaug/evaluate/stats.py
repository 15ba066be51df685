"""Statistics for comparing variants: bootstrap intervals and paired differences.

Groups (queries or users) are resampled, not rows, and the same resample is used
for both variants of a pair, so the interval of a difference reflects that the
two variants were measured on the same groups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def to_dict(self) -> dict:
        return {**asdict(self), "excludes_zero": self.excludes_zero}


def bootstrap_mean(values: np.ndarray | pd.Series, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> Interval:
    values = np.asarray(values, dtype=float)
    if not len(values):
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(values.mean()), float(lo), float(hi), len(values))


def paired_difference(a: pd.Series, b: pd.Series, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> Interval:
    """Interval of mean(a - b) over the groups both series share (index = group id,
    e.g. (seed, query_id))."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return bootstrap_mean((both["a"] - both["b"]).to_numpy(), n_boot, seed, alpha)


def sign_test_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided exact sign test p-value of a vs b over shared groups (ties dropped)."""
    from math import comb

    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    diff = both["a"] - both["b"]
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * p))


def permutation_p(a: pd.Series, b: pd.Series, n_perm: int = 5000, seed: int = 0) -> float:
    """Two-sided paired randomisation test of mean(a - b) = 0 over shared groups: flip
    the sign of each group's difference at random. Unlike the sign test it weighs how
    large each difference is; ties (both zero) add nothing either way."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    diff = (both["a"] - both["b"]).to_numpy(dtype=float)
    if not len(diff) or not np.any(diff):
        return 1.0
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_perm, len(diff)))
    null = np.abs((signs * diff).mean(axis=1))
    # the observed assignment counts as one of the permutations (never p = 0)
    return float((1 + np.sum(null >= observed - 1e-12)) / (n_perm + 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given): the family-wise error
    stays at alpha however many arms and models are compared."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
