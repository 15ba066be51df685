"""Does a SASRec source (trained on the sequence_augment rows in the augmented twin) help
the hybrid? Measured on the validation window only (the 30 days before the bench's
test month), 3 seeds. The rule was set before the run: adopt iff HS_aug - HS_real
excludes zero and HS_aug's mean beats H_real and HS_real. (H: the hybrid's sources
before; HS: with SASRec.) Adopted in the bench.

    SHOPAUG_CACHE_DIR=... OMP_WAIT_POLICY=PASSIVE \
        python scripts/rec_hybrid_sasrec_source.py online_retail.parquet
"""
import logging
import sys
from pathlib import Path

import pandas as pd

from shopaug import registry
from shopaug.bench.rec import BASE_SOURCES, DEFAULT_AUGMENT, VARIANTS, augment
from shopaug.data.loaders import load
from shopaug.data.split import split
from shopaug.evaluate.rec import per_user_metrics
from shopaug.evaluate.stats import paired_difference
from shopaug.pipeline.runner import RunContext
from shopaug.quality.decontaminate import decontaminate

logging.basicConfig(level=logging.WARNING)
parts = split(load(sys.argv[1], format="online_retail").data, "temporal", seed=0, test_days=30)
valid = split(parts.train, "temporal", seed=0, test_days=30)
ctx = RunContext(seed=0, run_dir=Path("rec-hybrid-sasrec"), progress=False)
merged, _, _ = augment(valid.train, DEFAULT_AUGMENT, ctx)
merged, _ = decontaminate(merged, valid.test, interactions=True)
base = {"sources": BASE_SOURCES}
# the bench's hybrids, which have the SASRec source since this script adopted it
with_sas_real, with_sas_aug = VARIANTS["hybrid_real"][1], VARIANTS["hybrid_augmented"][1]
arms = {"H_real": (base, valid.train), "H_aug": (base, merged),
        "HS_real": (with_sas_real, valid.train), "HS_aug": (with_sas_aug, merged)}
res = {}
for arm, (config, data) in arms.items():
    frames = []
    for seed in (0, 1, 2):
        fitted = registry.create("recommender", "hybrid", config).fit(data, seed=seed)
        f = per_user_metrics(fitted, valid.train, valid, [20])
        frames.append(f[f["slice"] == "all"].assign(seed=seed))
        print(arm, seed, round(frames[-1]["recall@20"].mean(), 4), flush=True)
    res[arm] = pd.concat(frames).set_index(["seed", "user_id"])["recall@20"]
    print(f"{arm:<10} {res[arm].mean():.4f}", flush=True)
for a, b in [("H_aug", "H_real"), ("HS_real", "H_real"), ("HS_aug", "HS_real"),
             ("HS_aug", "H_real"), ("HS_aug", "H_aug")]:
    d = paired_difference(res[a], res[b], 2000)
    print(f"{a} - {b}: {d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]{'*' if d.excludes_zero else ''}")
