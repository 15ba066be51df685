"""Benchmark: the embedded engine on SmolLM2's shipped 4-bit weights vs their f16 expansion.

Runs the search bench's own `synthetic_queries` settings with the embedded engine on
the first ``--n`` products of a CrowdFlower-layout file, each time with a fresh LLM
cache, alternating ``weights: file`` (the baseline) and ``weights: f16`` ``--repeats``
times because this machine is noisy. Prints products/s, milliseconds per prompt token
(in engine steps that evaluate prompts) and per decoded step, the share of answers that
passed the schema, and the f16 ratio to the baseline measured in the same run.

    python bench/llm_weights.py ../shared/data/crowdflower_dev/crowdflower_dev.csv \
        [--n 160] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def run(data, n: int, weights: str) -> dict[str, float]:
    from shopaug import registry
    from shopaug.bench.search import DEFAULT_AUGMENT
    from shopaug.llm import llamacpp
    from shopaug.llm.config import LLMConfig
    from shopaug.pipeline.runner import RunContext

    steps: list[tuple[int, float]] = []
    decode = llamacpp.LlamaCppEngine._decode

    def timed(engine) -> None:
        start = time.perf_counter()
        decode(engine)
        steps.append((engine._batch.batch.n_tokens, time.perf_counter() - start))

    llamacpp.LlamaCppEngine._decode = timed
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = RunContext(seed=0, run_dir=Path(tmp), progress=False, llm_config=LLMConfig(
                cache=str(Path(tmp) / "cache.sqlite"), weights=weights, progress=False))
            augmenter = registry.create("augmenter", "synthetic_queries", {
                **DEFAULT_AUGMENT[0]["config"], "max_items": n})
            _ = ctx.llm  # load (and on first use expand) the model outside the timed part
            start = time.perf_counter()
            out = augmenter.run(data, ctx)
            seconds = time.perf_counter() - start
    finally:
        llamacpp.LlamaCppEngine._decode = decode
    # steps of more than parallel tokens carry prompt chunks; the rest decode one token each
    prompt = [(t, s) for t, s in steps if t > 16]
    single = [(t, s) for t, s in steps if t <= 16]
    made = out.synthetic().counts()["queries"]
    return {"products_per_s": n / seconds,
            "prompt_ms_per_token": 1000 * sum(s for _, s in prompt) / sum(t for t, _ in prompt),
            "decode_ms_per_step": 1000 * statistics.mean(s for _, s in single),
            "queries_per_product": made / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from shopaug.data.loaders import load

    data = load(args.data, format="crowdflower").data
    results: dict[str, list[dict[str, float]]] = {"file": [], "f16": []}
    for _ in range(args.repeats):
        for weights in results:
            results[weights].append(run(data, args.n, weights))
            r = results[weights][-1]
            print(f"{weights}: {r['products_per_s']:.2f} products/s", flush=True)
    median = {w: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
              for w, rs in results.items()}
    for weights, m in median.items():
        print(f"{weights:<5} median {m['products_per_s']:.2f} products/s, prompt "
              f"{m['prompt_ms_per_token']:.2f} ms/token, decode {m['decode_ms_per_step']:.0f} "
              f"ms/step, {m['queries_per_product']:.2f} queries/product made")
    ratio = median["f16"]["products_per_s"] / median["file"]["products_per_s"]
    print(f"f16 / file products/s ratio {ratio:.2f} (baseline: the shipped 4-bit file)")


if __name__ == "__main__":
    main()
