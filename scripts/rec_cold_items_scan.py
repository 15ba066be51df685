"""Choose `cold_item_simulation` settings on a validation window, not on the test period.

The Online Retail training side (everything before the bench's test cut) is split
again: its last 30 days are the validation period. For each setting, item-kNN and
ALS are trained on the validation-train data with and without the simulated buyers;
the script prints the change in Recall@20 (all users) and the cold-item Recall@20.

    python scripts/rec_cold_items_scan.py ../shared/data/online_retail/online_retail.parquet
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from shopaug import registry
from shopaug.augment.cold_items import ColdItemSimulation
from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.evaluate.rec import per_user_metrics
from shopaug.pipeline.runner import RunContext


def recall(name: str, data, parts) -> tuple[float, float]:
    frame = per_user_metrics(registry.create("recommender", name, {}).fit(data, seed=0),
                             parts.train, parts, [20])
    mean = frame.groupby("slice")["recall@20"].mean()
    return float(mean.get("all", 0.0)), float(mean.get("cold_items", 0.0))


def main(path: str) -> None:
    data = load(path, format="online_retail").data
    bench = split(data, "temporal", seed=0, test_days=30)
    parts = split(bench.train, "temporal", seed=0, test_days=30)  # validation
    print("validation", parts.report())
    base = {name: recall(name, parts.train, parts)[0] for name in ("itemknn", "als")}
    ctx = RunContext(seed=0, run_dir=Path("/tmp/rec_cold_scan"), progress=False)
    for n, w, a in itertools.product((10, 30, 60, 100), (0.2, 0.5, 1.0), (0.0, 1.0, 3.0)):
        aug = ColdItemSimulation(n_users=n, weight=w, activity_weight=a).run(parts.train, ctx)
        cells = []
        for name in ("itemknn", "als"):
            overall, cold = recall(name, aug, parts)
            cells.append(f"{name} {overall - base[name]:+.4f} cold {cold:.4f}")
        print(f"n_users {n:>3} weight {w:.1f} activity {a:.1f}  " + " | ".join(cells),
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    main(sys.argv[1])
