"""Paired difference of one variant between two bench runs on the same split and seeds.

Two runs of ``shopaug bench rec`` (or ``bench search``) with different configs score
the same users (queries) under the same seeds, so a variant's per-user results pair
up: A minus B, with the bench's own statistics (a bootstrap that resamples users or
queries, a user scored under three seeds counting once, and a paired permutation test).
Use it to compare two settings of an augmenter when they cannot be two variants of one
run (an augmenter runs once per bench). ``--variant NAME_A=NAME_B`` pairs two differently
named variants, e.g. one run alone against the twin of an earlier run.

    python scripts/compare_bench_runs.py RUN_A RUN_B --variant hybrid_augmented \\
        [--variant hybrid_real] [--variant mine=hybrid_real] [--metric recall@20] \\
        [--slice all --slice cold_users]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from shopaug.evaluate.stats import paired_difference, permutation_p

KEYS = ("user_id", "query_id")


def per_unit(run: Path) -> pd.DataFrame:
    """A run's per-user (rec) or per-query (search) results."""
    for name in ("per_user.csv", "per_query.csv"):
        if (run / name).exists():
            frame = pd.read_csv(run / name, dtype={k: str for k in KEYS})
            if "user_id" in frame.columns and "window" not in frame.columns:
                frame = frame.assign(window=0)  # a rec run from before rolling origin
            return frame if "slice" in frame.columns else frame.assign(slice="all")
    raise SystemExit(f"{run}: no per_user.csv or per_query.csv (is it a bench output?)")


def compare(a: pd.DataFrame, b: pd.DataFrame, variant: str, metric: str, slice_: str,
            n_boot: int = 2000, variant_b: str | None = None) -> dict:
    """Mean of A and B and the paired difference A - B over the units both scored:
    ``variant`` of A against ``variant_b`` (default: the same name) of B."""
    key = next(k for k in KEYS if k in a.columns)
    series = []
    for frame, run, name in ((a, "A", variant), (b, "B", variant_b or variant)):
        rows = frame[(frame["variant"] == name) & (frame["slice"] == slice_)]
        if rows.empty or metric not in rows.columns:
            raise SystemExit(f"run {run} has no {metric} for {name!r} on {slice_!r}")
        # a rec run with several windows (rolling origin) scores a user once per window
        keys = ["window", "seed", key] if key == "user_id" else ["seed", key]
        series.append(rows.set_index(keys)[metric].sort_index())
    shared = series[0].index.intersection(series[1].index)
    if not len(shared):
        raise SystemExit("the runs share no (seed, user): not the same split, windows and "
                         "seeds")
    d = paired_difference(series[0], series[1], n_boot)
    return {"variant": variant, "slice": slice_, "A": series[0].loc[shared].mean(),
            "B": series[1].loc[shared].mean(), "diff": d.mean, "lo": d.lo, "hi": d.hi,
            "p": permutation_p(series[0], series[1]), "units": d.n,
            "only_in_one": len(series[0]) + len(series[1]) - 2 * len(shared)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--metric", default=None, help="default: recall@20 or ndcg@10")
    parser.add_argument("--slice", action="append", dest="slices")
    args = parser.parse_args(argv)
    a, b = per_unit(args.run_a), per_unit(args.run_b)
    metric = args.metric or ("recall@20" if "user_id" in a.columns else "ndcg@10")
    print(f"{metric}: A = {args.run_a}, B = {args.run_b}")
    for spec in args.variant:
        variant, _, variant_b = spec.partition("=")
        for slice_ in args.slices or ["all"]:
            r = compare(a, b, variant, metric, slice_, variant_b=variant_b or None)
            star = "*" if r["lo"] > 0 or r["hi"] < 0 else ""
            print(f"{spec:<20} {slice_:<11} A {r['A']:.4f}  B {r['B']:.4f}  "
                  f"A - B {r['diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]{star}  "
                  f"p {r['p']:.3f}  ({r['units']} units"
                  + (f", {r['only_in_one']} rows in one run only)" if r["only_in_one"]
                     else ")"))


if __name__ == "__main__":
    main()
