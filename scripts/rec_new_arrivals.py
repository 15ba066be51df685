"""Does item enrichment help rank products nobody has bought yet?

For the test buyers of never-sold items, the content model ranks only the never-sold
catalog items (``max_item_buyers: 0``, no popularity prior: a "new arrivals for you"
list); the script prints recall@k of those purchases with raw item text, with every
enriched attribute value, and with the grounded values only (those found in the
item's own text), plus paired differences against raw text over users.

``--period validation`` splits the training side again (its last 30 days), so that
a choice made here is not made on the bench's test month; ``test`` uses the bench's
own split. Enrichment runs as in ``bench rec`` (the 300 coldest items); ``--llm
model=qwen2.5-coder-1.5b`` enriches with the stronger packaged model instead.

    SHOPAUG_CACHE_DIR=... python scripts/rec_new_arrivals.py \
        ../shared/data/online_retail/online_retail.parquet --period validation
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from shopaug import registry
from shopaug.bench.rec import DEFAULT_AUGMENT, augment
from shopaug.cli import parse_option
from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.evaluate.stats import paired_difference
from shopaug.llm.config import LLMConfig
from shopaug.pipeline.runner import RunContext

KS = (5, 10, 20)


def arrival_recall(data, truth: pd.DataFrame, config: dict) -> dict[int, pd.Series]:
    model = registry.create("recommender", "content", {
        **config, "profile_weight": 0.0, "max_item_buyers": 0, "popularity_weight": 0.0,
    }).fit(data)
    recs = model.recommend(truth["user_id"].unique(), k=max(KS))
    hits = truth.merge(recs, on=["user_id", "item_id"], how="left")
    bought = truth.groupby("user_id").size()
    return {k: (hits["rank"] <= k).groupby(hits["user_id"]).sum() / bought for k in KS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--format", default="online_retail")
    parser.add_argument("--period", choices=["validation", "test"], default="validation")
    parser.add_argument("--out", default="rec-new-arrivals")
    parser.add_argument("--llm", action="append", default=[], metavar="KEY=VALUE",
                        type=parse_option,
                        help="llm option, e.g. model=qwen2.5-coder-1.5b")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    parts = split(load(args.data, format=args.format).data, "temporal", seed=0, test_days=30)
    if args.period == "validation":
        parts = split(parts.train, "temporal", seed=0, test_days=30)
    enrich = [spec for spec in DEFAULT_AUGMENT if spec["name"] == "item_enrichment"]
    llm = LLMConfig(**dict(args.llm))
    ctx = RunContext(seed=0, run_dir=Path(args.out), progress=True, llm_config=llm)
    enriched, _ = augment(parts.train, enrich, ctx)

    test = parts.test.interactions.astype({"user_id": str, "item_id": str})
    truth = test[test["item_id"].isin(set(parts.cold_items))].drop_duplicates(
        ["user_id", "item_id"])
    never_sold = len(set(parts.train.items["item_id"])
                     - set(parts.train.interactions["item_id"]))
    print(f"{args.period}: {never_sold} never-sold catalog items, "
          f"{truth['item_id'].nunique()} of them bought by {truth['user_id'].nunique()} "
          f"users ({len(truth)} pairs)")
    arms = {"raw text": (parts.train, {"use_attributes": False}),
            "all values": (enriched, {}),
            "grounded only": (enriched, {"grounded_only": True})}
    results = {name: arrival_recall(data, truth, cfg) for name, (data, cfg) in arms.items()}
    for name, res in results.items():
        print(f"{name:<14}" + "".join(f"  recall@{k} {res[k].mean():.4f}" for k in KS))
    for name in ("all values", "grounded only"):
        for k in KS:
            d = paired_difference(results[name][k], results["raw text"][k], 2000)
            star = "*" if d.excludes_zero else ""
            print(f"{name} - raw text  @{k}: {d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]{star}")


if __name__ == "__main__":
    main()
