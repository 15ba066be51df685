"""Benchmark: load and validate the full UCI Online Retail file (541,909 lines).

Targets (issue 2): under 10 s and under 2 GB peak RSS on a 2-core machine.
Each variant runs in a fresh subprocess so its peak memory is its own. The
baseline is a bare ``pandas.read_parquet`` of the same file, measured in the
same run, so the printed ratio says what validation and cleaning cost.

    python bench/load.py [--path ../shared/data/online_retail/online_retail.parquet]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "online_retail" / (
    "online_retail.parquet")


def _one(variant: str, path: str) -> dict:
    start = time.perf_counter()
    if variant == "baseline":
        import pandas as pd

        rows = len(pd.read_parquet(path))
    else:
        import shopaug

        result = shopaug.load(path, format="online_retail")
        rows = len(result.data.interactions) + sum(result.report.cleaning.values())
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": variant, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default=str(DEFAULT))
    parser.add_argument("--one", choices=["baseline", "shopaug"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.path)))
        return 0
    if not Path(args.path).exists():
        print(f"data not found: {args.path}", file=sys.stderr)
        return 1
    results = {}
    for variant in ("baseline", "shopaug"):
        out = subprocess.run([sys.executable, __file__, "--one", variant, "--path", args.path],
                             capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, base = results["shopaug"], results["baseline"]
    print(f"file: {args.path}")
    for r in (base, ours):
        print(f"{r['variant']:>9}: {r['rows']:,} lines in {r['seconds']:.2f} s = "
              f"{r['rows'] / r['seconds']:,.0f} lines/s, peak RSS {r['peak_rss_mb']:,.0f} MB")
    print(f"ratio shopaug/baseline: time {ours['seconds'] / base['seconds']:.1f}x, "
          f"peak RSS {ours['peak_rss_mb'] / base['peak_rss_mb']:.1f}x")
    ok = ours["seconds"] < 10 and ours["peak_rss_mb"] < 2048
    print(f"target (< 10 s, < 2 GB peak RSS): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
