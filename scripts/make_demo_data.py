"""Build the shipped demo subset of UCI Online Retail (CC BY 4.0).

Run from the project root: ``python scripts/make_demo_data.py`` (no arguments; it
overwrites the shipped file). Takes every line
(purchases, cancellations, fees) of 600 randomly chosen customers plus 2,000
guest lines, so the demo exercises the loader's cleaning and has cold items.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

SOURCE = Path(__file__).resolve().parents[1] / "../shared/data/online_retail/online_retail.parquet"
TARGET = Path(__file__).resolve().parents[1] / "src/shopaug/datasets/online_retail_demo.parquet"


def main(customers: int = 600, guest_lines: int = 2000, seed: int = 7) -> None:
    df = pd.read_parquet(SOURCE)
    rng = np.random.default_rng(seed)
    ids = df["CustomerID"].dropna().unique()
    chosen = rng.choice(ids, size=customers, replace=False)
    guests = df[df["CustomerID"].isna()]
    subset = pd.concat([
        df[df["CustomerID"].isin(chosen)],
        guests.iloc[np.sort(rng.choice(len(guests), size=guest_lines, replace=False))],
    ]).sort_index()
    subset.to_parquet(TARGET, index=False, compression="zstd")
    print(f"{len(subset):,} lines, {TARGET.stat().st_size / 1e6:.2f} MB -> {TARGET}")


if __name__ == "__main__":
    if sys.argv[1:]:  # e.g. --help: print this, never overwrite the shipped file
        sys.exit(__doc__)
    main()
