"""Benchmark: how fast `synthetic_queries` generates with other settings.

Runs the augmenter with the embedded SmolLM2 model on the first ``--n`` products of
a CrowdFlower-layout file, each time with a fresh LLM cache: first the search bench's
own settings (the baseline), then each candidate ``K:CHARS`` (queries per product :
description characters; ``K:CHARS:nl`` also stops each answer at its first newline),
alternating ``--repeats`` times because this machine is noisy. Prints products/s per
setting and each candidate's ratio to the baseline measured in the same run.

    python bench/query_settings.py ../shared/data/crowdflower_dev/crowdflower_dev.csv \
        --candidates 3:100 3:100:nl 2:60 --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def baseline() -> str:
    """The search bench's own synthetic_queries settings as ``K:CHARS[:nl]``."""
    from shopaug.bench.search import DEFAULT_AUGMENT

    cfg = DEFAULT_AUGMENT[0]["config"]
    return f"{cfg['k']}:{cfg['description_chars']}" + (":nl" if cfg.get("stop") else "")


def setting(spec: str) -> dict:
    """``K:CHARS[:nl]`` -> synthetic_queries config."""
    k, chars, *rest = spec.split(":")
    return {"k": int(k), "description_chars": int(chars),
            "stop": ["\n"] if rest == ["nl"] else []}


def products_per_second(data, n: int, spec: str, parallel: int) -> float:
    from shopaug import registry
    from shopaug.llm.config import LLMConfig
    from shopaug.pipeline.runner import RunContext

    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(seed=0, run_dir=Path(tmp), progress=False, llm_config=LLMConfig(
            cache=str(Path(tmp) / "cache.sqlite"), parallel=parallel, progress=False))
        augmenter = registry.create("augmenter", "synthetic_queries", {
            **setting(spec), "max_tokens": 48, "max_items": n})
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
    parser.add_argument("--candidates", nargs="+", default=["3:100", "2:60"])
    args = parser.parse_args()
    from shopaug.data.loaders import load

    data = load(args.data, format="crowdflower").data
    base_spec = baseline()
    settings = [base_spec, *[c for c in args.candidates if c != base_spec]]
    for spec in settings:
        setting(spec)  # a malformed candidate fails before any timing
    rates: dict[str, list[float]] = {s: [] for s in settings}
    for _ in range(args.repeats):
        for spec in settings:
            rates[spec].append(products_per_second(data, args.n, spec, args.parallel))
            print(f"{spec}: {rates[spec][-1]:.2f} products/s", flush=True)
    base = statistics.median(rates[base_spec])
    for spec, values in rates.items():
        rate = statistics.median(values)
        print(f"{spec:<10} median {rate:.2f} products/s, ratio to baseline {rate / base:.2f}")


if __name__ == "__main__":
    main()
