"""Benchmark: one SASRec training epoch on the full cleaned UCI Online Retail data.

Target (issue 5): one epoch with the default settings under 60 s on a 2-core
machine, with 2 torch threads. Two baselines are measured in the same process as
each epoch: fitting the popularity recommender, and one pass of SASRec's own batch
loader (sequences, shuffling, negative sampling) without the network, so the ratio
says what the network costs.

Each variant runs in a fresh subprocess, because OpenMP reads its environment
once: ``OMP_WAIT_POLICY=PASSIVE`` stops idle OpenMP threads from spinning, which
on a machine that other jobs keep busy can make 2 threads ten times slower than 1.
The load average is printed with every figure.

    python bench/sasrec_epoch.py [--path ../shared/data/online_retail/online_retail.parquet]
                                 [--variants 2:spin 2:passive 1:spin] [--augment]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "online_retail" / (
    "online_retail.parquet")


def loader_pass(data, threads: int) -> tuple[float, int]:
    """Seconds for one epoch of SASRec's batches without the network, and the batch count."""
    import numpy as np
    import pandas as pd
    import torch

    from shopaug.models.rec.base import positives, time_order, weights
    from shopaug.models.rec.sasrec import SASRecConfig, batches, sequences

    torch.set_num_threads(threads)
    cfg = SASRecConfig()
    start = time.perf_counter()
    inter = positives(data.interactions)
    inter = inter.iloc[time_order(inter)].reset_index(drop=True)
    items = pd.Index(np.sort(inter["item_id"].unique()))
    _, seqs, w, lengths = sequences(inter, items, cfg.max_len + 1, weights(inter))
    keep = lengths >= 2
    gen = torch.Generator().manual_seed(0)
    n = sum(1 for _ in batches(torch.from_numpy(seqs[keep]), torch.from_numpy(w[keep]),
                               len(items), cfg, gen))
    return time.perf_counter() - start, n


def one(path: str, threads: int, augment: bool) -> dict:
    """One variant, in this process: baselines and one epoch."""
    import shopaug
    from shopaug.models.rec.popularity import Popularity
    from shopaug.models.rec.sasrec import SASRec

    data = shopaug.load(path, format="online_retail").data
    out: dict = {"rows": len(data.interactions), "users": data.interactions["user_id"].nunique()}
    if augment:  # the baselines below then run on the augmented data too
        from shopaug.augment.sequence import SequenceAugment
        from shopaug.pipeline.runner import RunContext

        start = time.perf_counter()
        data = SequenceAugment().run(data, RunContext(seed=0, run_dir=Path("."),
                                                      progress=False))
        out["augment"] = time.perf_counter() - start
        out["pseudo_users"] = data.origin_counts()["users"]["synthetic"]
    start = time.perf_counter()
    Popularity().fit(data)
    out["popularity"] = time.perf_counter() - start
    out["loader"], out["batches"] = loader_pass(data, threads)
    start = time.perf_counter()
    model = SASRec(epochs=1, threads=threads).fit(data)
    out["fit"] = time.perf_counter() - start
    out["epoch"] = model.epoch_seconds_[0]
    out["load_avg"] = os.getloadavg()[0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default=str(DEFAULT))
    parser.add_argument("--variants", nargs="+", default=["2:spin", "2:passive", "1:spin"],
                        help="THREADS:spin|passive (the OpenMP wait policy)")
    parser.add_argument("--augment", action="store_true",
                        help="also time an epoch on sequence_augment's output (default ops)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        threads, augment = args.one.split(":")
        print(json.dumps(one(args.path, int(threads), augment == "augment")))
        return 0
    if not Path(args.path).exists():
        print(f"data not found: {args.path}", file=sys.stderr)
        return 1
    from shopaug.models.rec.sasrec import SASRecConfig

    print(f"SASRec defaults: {SASRecConfig().model_dump()}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), cores: {os.cpu_count()}")
    runs = [(v, False) for v in args.variants]
    if args.augment:
        runs.append((args.variants[-1], True))
    for variant, augment in runs:
        threads, policy = variant.split(":")
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        env.pop("OMP_WAIT_POLICY", None)
        if policy == "passive":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        one_arg = f"{threads}:{'augment' if augment else 'plain'}"
        done = subprocess.run([sys.executable, __file__, "--path", args.path, "--one", one_arg],
                              capture_output=True, text=True, check=True, env=env)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        what = (f"augmented ({r['augment']:.1f} s, {r['pseudo_users']:,} pseudo-users)"
                if augment else f"{r['rows']:,} rows, {r['users']:,} users")
        print(f"threads={threads} wait={policy:<7} {what}: epoch {r['epoch']:6.2f} s "
              f"({r['batches']} batches; fit {r['fit']:.1f} s) | loader pass "
              f"{r['loader']:.2f} s -> {r['epoch'] / r['loader']:.0f}x | popularity fit "
              f"{r['popularity']:.2f} s -> {r['epoch'] / r['popularity']:.0f}x | "
              f"target < 60 s: {'PASS' if r['epoch'] < 60 else 'FAIL'} | "
              f"load avg {r['load_avg']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
