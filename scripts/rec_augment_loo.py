"""Which augmenters help the hybrid? Leave each one out, on a validation window.

The Online Retail training side (everything before the bench's test cut) is split
again: its last 30 days are the validation period, so a choice made here is not a
choice made on the bench's test month. The bench's default augmenters run once on
the validation-train data; the bench's hybrid is then trained on real data, on all
augmented data, and on all augmented data minus one augmenter at a time, over
three seeds. Printed: Recall@20 per arm and paired differences (seed, user) against
real-only and against all augmenters.

    SHOPAUG_CACHE_DIR=... python scripts/rec_augment_loo.py \
        ../shared/data/online_retail/online_retail.parquet [--variant hybrid_augmented]

--only A,B (repeatable) adds an arm trained on real data plus only those augmenters'
rows, e.g. the bench's `use` list of a variant: --variant sasrec_augmented
--only sequence_augment --only sequence_augment,interaction_simulation. The variant
runs with the bench's config overrides (SASRec: 10 epochs).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from shopaug import registry
from shopaug.bench.rec import DEFAULT_AUGMENT, VARIANTS, RecBenchConfig, augment
from shopaug.data.bundle import ShopData
from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.evaluate.rec import per_user_metrics
from shopaug.evaluate.stats import paired_difference
from shopaug.pipeline.runner import RunContext
from shopaug.quality.decontaminate import decontaminate

#: augmenters that change item or user columns rather than add interactions
_COLUMNS = {"item_enrichment": ("items", "item_id", ["attributes"]),
            "user_profiles": ("users", "user_id", ["profile_text", "interests"])}


def without(data: ShopData, real: ShopData, name: str) -> ShopData:
    """``data`` minus one augmenter's contribution."""
    if name in _COLUMNS:
        table, key, cols = _COLUMNS[name]
        frame = getattr(data, table)
        original = getattr(real, table)
        restored = frame.drop(columns=[c for c in cols if c in frame.columns])
        keep = [c for c in cols if c in original.columns]
        if keep:
            restored = restored.merge(original[[key, *keep]].drop_duplicates(key), on=key,
                                      how="left")
        return data.replace(**{table: restored})
    others = sorted(set(data.interactions["augmenter"].dropna()) - {name})
    return data.keep_augmenters(others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--format", default="online_retail")
    parser.add_argument("--variant", default="hybrid_augmented")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="rec-augment-loo")
    parser.add_argument("--only", action="append", default=[],
                        help="comma-separated augmenters: one more arm with only them")
    parser.add_argument("--no-leave-one-out", action="store_true",
                        help="only the real, all and --only arms")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    parts = split(load(args.data, format=args.format).data, "temporal", seed=0, test_days=30)
    valid = split(parts.train, "temporal", seed=0, test_days=30)
    ctx = RunContext(seed=0, run_dir=Path(args.out), progress=True)
    merged, _, _ = augment(valid.train, DEFAULT_AUGMENT, ctx)
    merged, _ = decontaminate(merged, valid.test, interactions=True)
    names = [spec["name"] for spec in DEFAULT_AUGMENT]
    arms = {"real": valid.train, "all": merged}
    if not args.no_leave_one_out:
        arms.update({f"-{n}": without(merged, valid.train, n) for n in names})
    for only in args.only:
        kept = only.split(",")
        arm = merged.keep_augmenters(kept)  # rows; the column augmenters need `without`
        for name in sorted(set(_COLUMNS) - set(kept)):
            arm = without(arm, valid.train, name)
        arms[f"only {only}"] = arm
    model, config, _ = VARIANTS[args.variant]
    config = {**config, **RecBenchConfig().overrides.get(args.variant, {})}
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, pd.Series] = {}
    for arm, data in arms.items():
        frames = []
        for seed in seeds:
            fitted = registry.create("recommender", model, config).fit(data, seed=seed)
            frame = per_user_metrics(fitted, valid.train, valid, [20])
            frames.append(frame[frame["slice"] == "all"].assign(seed=seed))
        results[arm] = pd.concat(frames).set_index(["seed", "user_id"])["recall@20"]
        print(f"{arm:<26} recall@20 {results[arm].mean():.4f}", flush=True)
    for arm in arms:
        if arm == "real":
            continue
        vs_real = paired_difference(results[arm], results["real"], 2000)
        line = f"{arm:<26} - real {vs_real.mean:+.4f} [{vs_real.lo:+.4f}, {vs_real.hi:+.4f}]"
        if arm != "all":
            vs_all = paired_difference(results[arm], results["all"], 2000)
            line += f"   - all {vs_all.mean:+.4f} [{vs_all.lo:+.4f}, {vs_all.hi:+.4f}]"
        print(line)


if __name__ == "__main__":
    main()
