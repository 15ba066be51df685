"""Paired statistics resample the unit of evidence (a query, a user), not (seed, unit)
rows: the rec bench scores every test user under every seed."""

import numpy as np
import pandas as pd
import pytest

from shopaug.evaluate.stats import (
    bootstrap_mean,
    paired_difference,
    permutation_p,
    sign_test_p,
    units_of,
)


def _scores(seeds: int, users: int = 60, lift: float = 0.02) -> tuple[pd.Series, pd.Series]:
    """The same per-user scores repeated under every seed, as a deterministic model gives."""
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, users)
    better = base + lift + rng.normal(0, 0.1, users)
    index = pd.MultiIndex.from_product([range(seeds), [f"u{i}" for i in range(users)]],
                                       names=["seed", "user_id"])
    return (pd.Series(np.tile(better, seeds), index=index),
            pd.Series(np.tile(base, seeds), index=index))


def test_a_unit_repeated_under_every_seed_adds_no_evidence():
    one = paired_difference(*_scores(seeds=1))
    three = paired_difference(*_scores(seeds=3))
    assert (three.mean, three.lo, three.hi, three.n) == pytest.approx(
        (one.mean, one.lo, one.hi, one.n))
    assert three.n == 60
    assert permutation_p(*_scores(seeds=3)) == pytest.approx(permutation_p(*_scores(seeds=1)))
    assert sign_test_p(*_scores(seeds=3)) == pytest.approx(sign_test_p(*_scores(seeds=1)))


def test_rows_as_units_would_overstate_the_evidence():
    a, b = _scores(seeds=3)
    clustered = paired_difference(a, b)
    flat = paired_difference(a.reset_index(drop=True), b.reset_index(drop=True))
    assert flat.n == 180
    assert (clustered.hi - clustered.lo) > 1.5 * (flat.hi - flat.lo)
    assert permutation_p(a, b) > permutation_p(a.reset_index(drop=True),
                                               b.reset_index(drop=True))


def test_units_with_more_rows_weigh_more_and_the_mean_is_the_row_mean():
    values = np.array([1.0, 1.0, 1.0, 0.0])
    interval = bootstrap_mean(values, n_boot=500, units=["q1", "q1", "q1", "q2"])
    assert interval.mean == 0.75 and interval.n == 2
    # resamples: q1 twice (1.0), q2 twice (0.0), or one of each (3 of 4 rows are ones)
    assert interval.lo == 0.0 and interval.hi == 1.0
    with pytest.raises(ValueError, match="3 unit labels for 4 values"):
        bootstrap_mean(values, units=["q1", "q1", "q2"])


def test_only_a_seed_level_makes_rows_share_a_unit():
    plain = pd.MultiIndex.from_tuples([("a", 1), ("a", 2)], names=["slice", "user_id"])
    assert units_of(plain) is None
    assert units_of(pd.Index(["q1", "q2"])) is None
    seeded = pd.MultiIndex.from_tuples([(0, "q1"), (1, "q1"), (1, "q2")],
                                       names=["seed", "query_id"])
    assert units_of(seeded).tolist() == [0, 0, 1]
    # the rec bench's rolling origin: a customer tested in two windows is one customer
    windowed = pd.MultiIndex.from_tuples([(0, 0, "u1"), (1, 0, "u1"), (1, 1, "u2")],
                                         names=["window", "seed", "user_id"])
    assert units_of(windowed).tolist() == [0, 0, 1]
    a = pd.Series([1.0, 1.0, 0.0], index=windowed)
    assert paired_difference(a, a * 0).n == 2
