"""Compare arms of an experiment: every model trained on real data only (the
baseline arm) and on each augmented variant, scored on the same groups (test users or
test queries) over several seeds.

Input: a long frame with one row per (model, arm, seed, slice, group) and one
column per metric. Output rows follow the report model: ``results`` (mean and 95%
bootstrap interval per model, arm, slice and metric) and ``lift`` (paired difference
arm minus baseline with its interval, a paired randomisation test, the sign test and
Holm-adjusted p-values over the headline family).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopaug.evaluate.stats import (
    bootstrap_mean,
    holm,
    paired_difference,
    permutation_p,
    sign_test_p,
)

BASELINE = "baseline"
KEYS = ["model", "arm", "seed", "slice", "group"]


def compare_arms(per_group: pd.DataFrame, metrics: list[str], baseline: str = BASELINE,
                 n_boot: int = 2000, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """``{"results": [...], "lift": [...]}`` (see the module docstring)."""
    missing = [c for c in [*KEYS, *metrics] if c not in per_group.columns]
    if missing:
        raise KeyError(f"per-group results lack columns {missing}")
    results: list[dict[str, Any]] = []
    for (model, arm, slice_), frame in per_group.groupby(["model", "arm", "slice"],
                                                          sort=False):
        for metric in metrics:
            interval = bootstrap_mean(frame[metric], n_boot, seed, units=frame["group"])
            results.append({"model": model, "arm": arm, "slice": slice_, "metric": metric,
                            "mean": interval.mean, "lo": interval.lo, "hi": interval.hi,
                            "n": interval.n})
    indexed = per_group.set_index(["model", "arm", "slice", "seed", "group"]).sort_index()
    lift: list[dict[str, Any]] = []
    for (model, arm, slice_), _ in per_group.groupby(["model", "arm", "slice"], sort=False):
        if arm == baseline or (model, baseline, slice_) not in indexed.index.droplevel(
                ["seed", "group"]):
            continue
        a = indexed.loc[(model, arm, slice_)]
        b = indexed.loc[(model, baseline, slice_)]
        for metric in metrics:
            d = paired_difference(a[metric], b[metric], n_boot, seed)
            base_mean = float(b[metric].mean())
            lift.append({
                "model": model, "arm": arm, "baseline": baseline, "slice": slice_,
                "metric": metric, "mean": d.mean, "lo": d.lo, "hi": d.hi, "n": d.n,
                "excludes_zero": d.excludes_zero,
                "relative": d.mean / base_mean if base_mean else None,
                "p": permutation_p(a[metric], b[metric], seed=seed),
                "sign_test_p": sign_test_p(a[metric], b[metric]),
            })
    _holm_headline(lift, metrics[0] if metrics else None)
    return {"results": results, "lift": lift}


def _holm_headline(lift: list[dict[str, Any]], metric: str | None) -> None:
    """Adjust the p-values of the headline family (primary metric, slice ``all``, every
    model and arm) for multiple comparisons; other rows get ``p_holm`` None."""
    family = [row for row in lift if row["metric"] == metric and row["slice"] == "all"]
    for row, adjusted in zip(family, holm([r["p"] for r in family]), strict=True):
        row["p_holm"] = adjusted
    for row in lift:
        row.setdefault("p_holm", None)


def verdict(row: dict[str, Any]) -> str:
    """Plain words for one lift row."""
    if not row.get("excludes_zero"):
        return "no significant difference"
    return "significant gain" if row["mean"] > 0 else "significant loss"
