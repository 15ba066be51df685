"""Compare search-model arms on fixed synthetic data, seed by seed, with paired
differences against a base arm: the quick loop behind the search benchmark's defaults.

    python scripts/search_prepare.py ... (or any saved synthetic-only ShopData)
    python scripts/search_ablation.py DATA.csv SYNTHETIC_DIR SPEC.json [--validation]

SPEC.json: {"base": "ltr_real", "arms": {"name": [model, config, per_seed_augment]},
            "pairs": [["arm a", "arm b"], ...]}   (pairs: optional, a - b differences)
where per_seed_augment is null for a real-only arm, [] for real + synthetic and a list
of augmenter specs (e.g. teacher_labels) to run on each seed's training side.
Writes SPEC.csv (per seed and query) next to the spec and prints the table.

--validation: never look at the bench's test queries. Each seed's training side is
split again by query (the same test fraction) and the arms are scored on that inner
held-out side: the place to choose a default before the bench measures it. The
queries the generator could show as few-shot examples (those on the training side of
every seed) are never held out, as in the bench: the inner held-out queries are drawn
from the others, as many as the test fraction of the seed's training side. Writes
SPEC.validation.csv.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from shopaug import registry
from shopaug.bench.search import (
    SearchBenchConfig,
    augment_seed,
    stable_train_queries,
    validation_split,
)
from shopaug.data.bundle import ShopData
from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.evaluate.search import evaluate_search
from shopaug.evaluate.stats import paired_difference
from shopaug.pipeline.runner import RunContext


def main(data_path: str, synthetic_dir: str, spec_path: str, fmt: str = "crowdflower",
         seeds: tuple[int, ...] = (0, 1, 2), test_fraction: float = 0.3,
         validation: bool = False) -> None:
    spec = json.loads(Path(spec_path).read_text())
    arms, base = spec["arms"], spec["base"]
    data = load(data_path, format=fmt).data
    synthetic = ShopData.load(synthetic_dir)
    pool = stable_train_queries(data, list(seeds), test_fraction)
    # what the augmenters write (errors/*.csv quote the data's queries) stays out of the
    # repository the specs live in
    run_dir = Path(tempfile.gettempdir()) / "search_ablation" / Path(spec_path).stem
    rows = []
    for seed in seeds:
        parts = split(data, "by_query", seed=seed, test_fraction=test_fraction)
        if validation:  # the seed's test side stays unseen: hold out training queries
            parts = validation_split(parts.train, seed, test_fraction, pool)
        trained: dict[str, ShopData] = {}
        for arm, (model, config, per_seed) in arms.items():
            start = time.perf_counter()
            if per_seed is None:
                train = parts.train
            else:
                key = json.dumps(per_seed, sort_keys=True)
                if key not in trained:
                    cfg = SearchBenchConfig(per_seed_augment=per_seed, progress=False)
                    ctx = RunContext(seed=seed, run_dir=run_dir, progress=False)
                    trained[key] = augment_seed(parts.train, synthetic, parts.test, cfg, ctx)[0]
                train = trained[key]
            fitted = registry.create("search_model", model, config).fit(train, seed=seed)
            per_query = evaluate_search(fitted, parts).reset_index().assign(arm=arm, seed=seed)
            rows.append(per_query)
            print(f"seed {seed} {arm}: {per_query['ndcg@10'].mean():.4f} "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)
    frame = pd.concat(rows)
    frame.to_csv(Path(spec_path).with_suffix(".validation.csv" if validation else ".csv"),
                 index=False)
    indexed = frame.set_index(["seed", "query_id"])
    for arm in arms:
        ndcg = indexed[indexed["arm"] == arm]["ndcg@10"]
        line = f"{arm:<28}{ndcg.mean():.4f}"
        if arm != base:
            d = paired_difference(ndcg, indexed[indexed["arm"] == base]["ndcg@10"], 2000)
            line += (f"   vs {base}: {d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"
                     f"{'*' if d.excludes_zero else ''}")
        print(line)
    for a, b in spec.get("pairs", []):  # further paired differences, e.g. twin arms
        d = paired_difference(indexed[indexed["arm"] == a]["ndcg@10"],
                              indexed[indexed["arm"] == b]["ndcg@10"], 2000)
        print(f"{a} - {b}: {d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"
              f"{'*' if d.excludes_zero else ''}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--validation"]
    if len(args) != 3:
        sys.exit(__doc__)
    main(*args, validation="--validation" in sys.argv[1:])
