"""Statistics for comparing variants: bootstrap intervals and paired differences.

Groups (queries or users) are resampled, not rows, and the same resample is used
for both variants of a pair, so the interval of a difference reflects that the
two variants were measured on the same groups.

A group measured under several seeds is still one group: the rec bench's temporal
split puts every test user in every seed, and the search bench's random query splits
put a query in the test side of one to all seeds. Treating each (seed, group) row as
independent evidence narrows the interval by up to the square root of the number of
seeds. So the unit resampled (and sign-flipped, and counted by the sign test) is the
group: every row of a series indexed by ``seed`` and something else belongs to the
unit named by the something else, and ``bootstrap_mean`` takes ``units`` for the same.
A ``window`` level (the rec bench's rolling origin) is dropped the same way: a customer
tested in several periods is one customer.
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


def units_of(index: pd.Index) -> np.ndarray | None:
    """The independent unit of each row of a ``([window,] seed, group...)`` index: the
    group; None (every row its own unit) for an index without a ``seed`` level."""
    if not isinstance(index, pd.MultiIndex) or "seed" not in index.names:
        return None
    rest = index.droplevel([n for n in ("window", "seed") if n in index.names])
    return pd.factorize(rest if isinstance(rest, pd.MultiIndex) else rest.to_numpy())[0]


def _unit_sums(values: np.ndarray, units: np.ndarray | pd.Series | None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: the sum of its values and how many rows it has."""
    if units is None:
        return values, np.ones(len(values))
    codes = pd.factorize(np.asarray(units))[0]
    if len(codes) != len(values):
        raise ValueError(f"{len(codes)} unit labels for {len(values)} values")
    return (np.bincount(codes, weights=values), np.bincount(codes).astype(float))


def bootstrap_mean(values: np.ndarray | pd.Series, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05, units: np.ndarray | pd.Series | None = None
                   ) -> Interval:
    """Mean of ``values`` with a percentile interval from resampling whole units (one
    label per value; None: each value is a unit). The mean stays the mean of all rows;
    ``n`` counts units."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    sums, counts = _unit_sums(values, units)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    # ratio estimator: units with more rows weigh more, as they do in the mean
    means = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Interval(float(values.mean()), float(lo), float(hi), len(sums))


def paired_difference(a: pd.Series, b: pd.Series, n_boot: int = 2000, seed: int = 0,
                      alpha: float = 0.05) -> Interval:
    """Interval of mean(a - b) over the groups both series share (index = group id,
    e.g. (seed, query_id): then queries are the resampled unit)."""
    both = _shared(a, b)
    return bootstrap_mean((both["a"] - both["b"]).to_numpy(), n_boot, seed, alpha,
                          units_of(both.index))


def _shared(a: pd.Series, b: pd.Series) -> pd.DataFrame:
    return pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()


def _unit_differences(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Per unit (see ``units_of``), the sum of its differences a - b."""
    both = _shared(a, b)
    return _unit_sums((both["a"] - both["b"]).to_numpy(dtype=float), units_of(both.index))[0]


def sign_test_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided exact sign test p-value of a vs b over shared units, each unit's sign
    that of its summed difference (ties dropped)."""
    from math import comb

    diff = _unit_differences(a, b)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    p = sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * p))


def permutation_p(a: pd.Series, b: pd.Series, n_perm: int = 5000, seed: int = 0) -> float:
    """Two-sided paired randomisation test of mean(a - b) = 0 over shared groups: flip
    the sign of each unit's difference at random (all seeds of a unit together). Unlike
    the sign test it weighs how large each difference is; ties (both zero) add nothing
    either way."""
    diff = _unit_differences(a, b)
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
