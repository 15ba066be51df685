"""Benchmark: how fast `synthetic_queries` generates with other settings.

Runs the augmenter with the embedded SmolLM2 model on the first ``--n`` products of
a CrowdFlower-layout file, each time with a fresh LLM cache: first the search
bench's default settings (the baseline), then each candidate ``K:CHARS`` (queries
per product : description characters), alternating ``--repeats`` times because
this machine is noisy. Prints products/s per setting and each candidate's ratio to
the baseline measured in the same run.

    python bench/query_settings.py ../shared/data/crowdflower_dev/crowdflower_dev.csv \
        --candidates 3:60 2:60 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

BASELINE = (3, 100)  # bench.search DEFAULT_AUGMENT: k 3, description_chars 100


def products_per_second(data, n: int, k: int, chars: int, parallel: int) -> float:
    from shopaug import registry
    from shopaug.llm.config import LLMConfig
    from shopaug.pipeline.runner import RunContext

    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(seed=0, run_dir=Path(tmp), progress=False, llm_config=LLMConfig(
            cache=str(Path(tmp) / "cache.sqlite"), parallel=parallel, progress=False))
        augmenter = registry.create("augmenter", "synthetic_queries", {
            "k": k, "max_tokens": 48, "description_chars": chars, "max_items": n})
        _ = ctx.llm  # load the model outside the timed part
        start = time.perf_counter()
        augmenter.run(data, ctx)
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--candidates", nargs="+", default=["3:60", "2:60"])
    args = parser.parse_args()
    from shopaug.data.loaders import load

    data = load(args.data, format="crowdflower").data
    settings = [BASELINE, *[tuple(map(int, c.split(":"))) for c in args.candidates]]
    rates: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
    for _ in range(args.repeats):
        for k, chars in settings:
            rates[k, chars].append(products_per_second(data, args.n, k, chars, args.parallel))
            print(f"k {k} description_chars {chars}: {rates[k, chars][-1]:.2f} products/s",
                  flush=True)
    base = statistics.median(rates[BASELINE])
    for (k, chars), values in rates.items():
        rate = statistics.median(values)
        print(f"k {k} chars {chars:>3}: median {rate:.2f} products/s, "
              f"ratio to baseline {rate / base:.2f}")


if __name__ == "__main__":
    main()
