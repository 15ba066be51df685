"""Are the LLM's simulated purchases better than its candidate list, and does asking
twice (candidates reversed) remove the position bias?

`interaction_simulation` shows a sparse user up to 10 candidates from a base
recommender and keeps the LLM's picks as weighted synthetic purchases. This script
runs it as ``bench rec`` does (same users, seed and prompts, so a bench's LLM cache
answers them) and scores the picks against what the users really bought in the
following period: the share of picked positives later bought, against the base
recommender's own top picks (as many per user as the LLM picked) and against a random
candidate; plus where in the shown list the positives sat. ``--orders 2`` asks a
second time with the candidates reversed and keeps the picks both answers make.

``--period validation`` (default) scores on the last 30 days before the bench's test
month and never reads the test month.

    SHOPAUG_CACHE_DIR=... python scripts/rec_simulation_precision.py \\
        ../shared/data/online_retail/online_retail.parquet --orders 1 --orders 2
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from shopaug.augment.simulate import InteractionSimulation
from shopaug.bench.rec import DEFAULT_AUGMENT
from shopaug.cli import parse_option
from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.evaluate.stats import bootstrap_mean, paired_difference
from shopaug.llm.config import LLMConfig
from shopaug.pipeline.runner import RunContext


def score(aug: InteractionSimulation, data, bought: set[tuple[str, str]]) -> dict:
    """Per-user precision of the LLM's positives and negatives and of the baselines."""
    synthetic = data.synthetic().interactions.astype({"user_id": str, "item_id": str})
    picked = synthetic[synthetic["event"] != "negative"].groupby("user_id")["item_id"].agg(list)
    rejected = synthetic[synthetic["event"] == "negative"].groupby("user_id")["item_id"].agg(
        list)
    rows, positions = [], Counter()
    for user, ranked in aug.candidates_.items():
        hit = [(user, item) in bought for item in ranked]
        pos = picked.get(user, [])
        row = {"user_id": user, "random": sum(hit) / len(hit)}
        if pos:
            row["llm"] = sum((user, i) in bought for i in pos) / len(pos)
            row["base_top"] = sum(hit[: len(pos)]) / len(pos)
            shown = aug.shown_[user]
            positions.update(shown.index(i) + 1 for i in pos)
        neg = rejected.get(user, [])
        if neg:
            row["llm_negatives"] = sum((user, i) in bought for i in neg) / len(neg)
        rows.append(row)
    return {"frame": pd.DataFrame(rows).set_index("user_id"), "positions": positions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--format", default="online_retail")
    parser.add_argument("--period", choices=["validation", "test"], default="validation")
    parser.add_argument("--orders", type=int, action="append", choices=[1, 2])
    parser.add_argument("--max-users", type=int, default=None,
                        help="users asked (default: the bench's setting, 200)")
    parser.add_argument("--out", default="rec-simulation-precision")
    parser.add_argument("--llm", action="append", default=[], metavar="KEY=VALUE",
                        type=parse_option, help="llm option, e.g. model=qwen2.5-coder-1.5b")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    parts = split(load(args.data, format=args.format).data, "temporal", seed=0, test_days=30)
    if args.period == "validation":
        parts = split(parts.train, "temporal", seed=0, test_days=30)
    test = parts.test.interactions.astype({"user_id": str, "item_id": str})
    bought = set(zip(test["user_id"], test["item_id"], strict=True))
    returning = set(test["user_id"])
    config = next(s["config"] for s in DEFAULT_AUGMENT if s["name"] == "interaction_simulation")
    if args.max_users:
        config = {**config, "max_users": args.max_users}
    ctx = RunContext(seed=0, run_dir=Path(args.out), progress=True,
                     llm_config=LLMConfig(**dict(args.llm)))
    for orders in args.orders or [1, 2]:
        aug = InteractionSimulation(**config, orders=orders)
        out = aug.run(parts.train, ctx)
        result = score(aug, out, bought)
        frame = result["frame"]
        print(f"\norders {orders}: {aug.report_}")
        for who, users in (("all asked", frame.index),
                           ("returning in the period", frame.index.intersection(
                               list(returning)))):
            part = frame.loc[users]
            print(f"  {who} ({len(part)} users):")
            for col in ("llm", "base_top", "random", "llm_negatives"):
                values = part[col].dropna() if col in part else pd.Series(dtype=float)
                if len(values):
                    iv = bootstrap_mean(values.to_numpy(), 2000, 0)
                    print(f"    {col:<14} {iv.mean:.4f} [{iv.lo:.4f}, {iv.hi:.4f}] "
                          f"({len(values)} users)")
            if "llm" in part:
                for base in ("base_top", "random"):
                    d = paired_difference(part["llm"], part[base], 2000)
                    star = "*" if d.excludes_zero else ""
                    print(f"    llm - {base:<9} {d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]{star}")
        total = sum(result["positions"].values())
        print("  positives by shown position: " + " ".join(
            f"{p}:{result['positions'][p] / total:.2f}" for p in sorted(result["positions"])))


if __name__ == "__main__":
    main()
