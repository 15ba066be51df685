"""Generate (from the LLM cache when warm), filter and decontaminate the search
benchmark's synthetic queries once, and save them for scripts/search_ablation.py.

    python scripts/search_prepare.py DATA OUT_DIR [MAX_ITEMS|all] [FORMAT]

FORMAT defaults to crowdflower (any format `shopaug.load` reads).

Uses the benchmark's defaults (3 seeds, test fraction 0.3, its augmenter and filters).
"""

from __future__ import annotations

import sys
from pathlib import Path

from shopaug.bench.search import SearchBenchConfig, _sides, generate
from shopaug.data.loaders import load
from shopaug.pipeline.runner import RunContext
from shopaug.quality.decontaminate import decontaminate


def main(data_path: str, out_dir: str, max_items: str = "all",
         fmt: str = "crowdflower") -> None:
    data = load(data_path, format=fmt).data
    cfg = SearchBenchConfig(progress=True)
    if max_items != "all":
        cfg.augment = [{**spec, "config": {**spec.get("config", {}),
                                           "max_items": int(max_items)}}
                       for spec in cfg.augment]
    ctx = RunContext(seed=0, run_dir=Path(out_dir), progress=True)
    synthetic, report = generate(data, cfg, ctx)
    synthetic, dropped = decontaminate(synthetic, _sides(data, cfg)[1])
    print(report.to_string(index=False))
    print(f"decontamination dropped {dropped['queries']} queries, "
          f"{dropped['judgments']} judgments")
    synthetic.save(Path(out_dir) / "synthetic")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
