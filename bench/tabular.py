"""Benchmark: tabular synthesizers on the user features of the full Online Retail data.

Fits the Gaussian copula and the TVAE on one row per customer (history length,
baskets, basket size, recency, mean price, favourite category and its share,
first purchase), samples as many rows, and prints fit and sample time with the
fidelity (mean two-sample KS statistic over the numeric columns; 0 = identical)
and the copula/TVAE time ratio, both measured in the same run.

With ``--purchase`` it also trains the purchase-probability model on a temporal
split (last 30 days are test) with real feature rows only and with real +
synthetic rows from each synthesizer, and prints test AUC and log loss.

    python bench/tabular.py [--path ...] [--epochs 100] [--purchase]

About 45 s on 2 cores; ``--purchase`` adds about 4 min (mostly the TVAE on 224k rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(var, "1")

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "online_retail" / (
    "online_retail.parquet")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def synthesizers(data, epochs: int) -> None:
    import numpy as np

    from shopaug.augment.tabular import GaussianCopulaSynthesizer, ks_fidelity, user_features
    from shopaug.augment.tvae import TVAESynthesizer

    feats = user_features(data.interactions, data.items).drop(columns="user_id")
    print(f"user feature rows: {len(feats):,} x {feats.shape[1]} columns "
          f"({', '.join(f'{c}:{t}' for c, t in feats.dtypes.astype(str).items())})")
    results = {}
    for name, synth in (("copula", GaussianCopulaSynthesizer(seed=0)),
                        ("tvae", TVAESynthesizer(epochs=epochs, seed=0, threads=1))):
        fitted, fit_s = timed(synth.fit, feats)
        fake, sample_s = timed(fitted.sample, len(feats), 0)
        ks = ks_fidelity(feats, fake)
        results[name] = (fit_s, sample_s, float(np.mean(list(ks.values()))))
        worst = max(ks, key=ks.get)
        label = f"tvae ({epochs} epochs)" if name == "tvae" else name
        print(f"{label:>18}: fit {fit_s:7.2f} s, sample {sample_s:6.3f} s, "
              f"mean KS {results[name][2]:.3f} (worst {worst} {ks[worst]:.3f}), "
              f"dtypes kept: {fake.dtypes.equals(feats.dtypes)}")
    (cf, cs, ck), (tf, ts, tk) = results["copula"], results["tvae"]
    print(f"copula/TVAE time ratio: fit {cf / tf:.3f}, sample {cs / ts:.3f}, "
          f"fit+sample {(cf + cs) / (tf + ts):.3f}; mean KS copula {ck:.3f} vs TVAE {tk:.3f}")


def purchase(data, tvae_epochs: int) -> None:
    from shopaug.data.split import split
    from shopaug.models.rec.purchase import PurchaseModel

    parts = split(data, "temporal", test_days=30)
    base = {"threads": 1}
    test_rows = None
    for label, extra in (("real only", {}),
                         ("real + copula (1x)", {"use_synthetic": True}),
                         (f"real + tvae (1x, {tvae_epochs} ep)",
                          {"use_synthetic": True, "synthesizer": "tvae",
                           "tvae_epochs": tvae_epochs})):
        model, fit_s = timed(PurchaseModel({**base, **extra}).fit, parts.train, 0)
        if test_rows is None:  # the same labelled test rows for every variant
            test_rows = model.feature_rows(parts.train, targets=parts.test)
        result = model.evaluate(test_rows)
        print(f"{label:>24}: train rows {model.real_rows_:,} real + "
              f"{model.synthetic_rows_:,} synthetic, fit {fit_s:6.1f} s, "
              f"test AUC {result['auc']:.4f}, log loss {result['log_loss']:.4f} "
              f"({result['rows']:,} rows)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default=str(DEFAULT))
    parser.add_argument("--epochs", type=int, default=100, help="TVAE epochs (user features)")
    parser.add_argument("--purchase", action="store_true",
                        help="also compare the purchase model on real vs real + synthetic rows")
    parser.add_argument("--purchase-tvae-epochs", type=int, default=5)
    args = parser.parse_args()
    if not Path(args.path).exists():
        print(f"data not found: {args.path}", file=sys.stderr)
        return 1
    import scipy.special
    import scipy.stats  # imported up front: both synthesizers are timed without imports
    import torch

    import shopaug

    del scipy
    torch.set_num_threads(1)
    data, load_s = timed(lambda: shopaug.load(args.path, format="online_retail").data)
    print(f"loaded {args.path} in {load_s:.1f} s: {data}")
    synthesizers(data, args.epochs)
    if args.purchase:
        purchase(data, args.purchase_tvae_epochs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
