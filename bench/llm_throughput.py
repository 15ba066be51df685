"""Benchmark: synthetic search queries for 200 Online Retail products with the
embedded SmolLM2-135M model, shopaug's engine against a plain llama-cpp-python loop.

Both sides get the same chat messages (the packaged ``search_queries`` template
with the same two few-shot examples), the same sampling parameters, the same
seeds and the same JSON-schema grammar; each runs in a fresh subprocess so its
peak RSS is its own. Prints shopaug tokens/s, raw tokens/s and their ratio
(target >= 1.0), peak RSS (target < 1 GB), and the warm-cache re-run of the
whole job in requests/s (target >= 1,000).

    python bench/llm_throughput.py [--n 200] [--parallel 8] [--weights auto]

Both sides load the same weights file (``--weights``: see ``shopaug.llm.weights``);
``bench/llm_weights.py`` compares the weights settings themselves.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "online_retail" / (
    "online_retail.parquet")
# Two hand-written examples: Online Retail has no search log to draw real ones from.
EXAMPLES = [
    ({"title": "WHITE HANGING HEART T-LIGHT HOLDER"},
     {"queries": ["heart tealight holder", "white t-light holder",
                  "hanging heart candle holder for wedding"]}),
    ({"title": "REGENCY CAKESTAND 3 TIER"},
     {"queries": ["cake stand", "3 tier cake stand",
                  "vintage regency cakestand for afternoon tea"]}),
]
MAX_TOKENS = 64


def _titles(n: int) -> list[str]:
    import pandas as pd

    df = pd.read_parquet(DATA, columns=["StockCode", "Description"])
    df = df[df["StockCode"].str.match(r"^\d{5}") & df["Description"].notna()]
    top = df.groupby("Description").size().sort_values(ascending=False, kind="stable")
    return [t for t in top.index if t not in {e[0]["title"] for e in EXAMPLES}][:n]


def _requests(n: int):
    from shopaug.llm import PromptTemplate, Sampling

    template = PromptTemplate.load("search_queries", "en")
    sampling = Sampling(max_tokens=MAX_TOKENS, temperature=0.7, top_p=0.95, top_k=40,
                        repeat_penalty=1.1)
    return [template.request({"title": t}, EXAMPLES, k=3, seed=i, sampling=sampling,
                             request_id=str(i)) for i, t in enumerate(_titles(n))]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_shopaug(n: int, parallel: int, weights: str) -> dict:
    from shopaug.llm import LLM, LLMCache
    from shopaug.llm.llamacpp import LlamaCppEngine

    requests = _requests(n)
    with tempfile.TemporaryDirectory() as tmp:
        engine = LlamaCppEngine(parallel=parallel, weights=weights)
        start = time.perf_counter()
        out = LLM(engine, LLMCache(Path(tmp) / "c.sqlite"), batch_size=64,
                  progress=False).generate(requests)
        seconds = time.perf_counter() - start
        warm_start = time.perf_counter()
        again = LLM(engine, LLMCache(Path(tmp) / "c.sqlite"), progress=False).generate(requests)
        warm = time.perf_counter() - warm_start
    assert all(r.cached for r in again)
    from shopaug.llm import parse_json

    def parses(text: str) -> bool:
        try:
            parse_json(text)
            return True
        except ValueError:
            return False

    return {"seconds": seconds, "completion_tokens": sum(r.completion_tokens for r in out),
            "valid_json": sum(parses(r.text) for r in out), "warm_seconds": warm,
            "requests": len(requests), "peak_rss_mb": _peak_mb(),
            "sample": [r.text for r in out[:3]]}


def run_raw(n: int, weights: str) -> dict:
    import llama_cpp.llama_cpp as llama_cpp_module
    from llama_cpp import Llama

    from shopaug.llm.llamacpp import smollm2_path
    from shopaug.llm.weights import model_params, resolve_weights

    requests = _requests(n)
    path = resolve_weights(smollm2_path(), weights)  # the file the engine loads
    # the engine's AMX-safe parameters (see weights.model_params), so both sides load alike
    with mock.patch.object(llama_cpp_module, "llama_model_default_params", model_params):
        llm = Llama(str(path), n_ctx=2048, n_threads=None, verbose=False)
    start = time.perf_counter()
    tokens = 0
    for r in requests:
        s = r.sampling
        out = llm.create_chat_completion(
            r.message_dicts(), max_tokens=s.max_tokens, temperature=s.temperature,
            top_p=s.top_p, top_k=s.top_k, repeat_penalty=s.repeat_penalty, seed=r.seed,
            response_format={"type": "json_object", "schema": r.schema_dict})
        tokens += out["usage"]["completion_tokens"]
    return {"seconds": time.perf_counter() - start, "completion_tokens": tokens,
            "requests": len(requests), "peak_rss_mb": _peak_mb()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--weights", choices=["auto", "file", "f16"], default="auto")
    parser.add_argument("--one", choices=["shopaug", "raw"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = (run_shopaug(args.n, args.parallel, args.weights) if args.one == "shopaug"
                  else run_raw(args.n, args.weights))
        print(json.dumps(result))
        return 0
    results = {}
    for side in ("raw", "shopaug"):
        cmd = [sys.executable, __file__, "--one", side, "--n", str(args.n),
               "--parallel", str(args.parallel), "--weights", args.weights]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, raw = results["shopaug"], results["raw"]
    ours_tps = ours["completion_tokens"] / ours["seconds"]
    raw_tps = raw["completion_tokens"] / raw["seconds"]
    warm_rps = ours["requests"] / ours["warm_seconds"]
    print(f"{args.n} products x 3 queries, SmolLM2-135M (weights {args.weights}), "
          "JSON-schema grammar, "
          f"max_tokens {MAX_TOKENS}, parallel {args.parallel}")
    print(f"raw llama-cpp-python loop: {raw['completion_tokens']} tokens in "
          f"{raw['seconds']:.1f} s, peak RSS {raw['peak_rss_mb']:.0f} MB")
    print(f"shopaug engine:            {ours['completion_tokens']} tokens in "
          f"{ours['seconds']:.1f} s, peak RSS {ours['peak_rss_mb']:.0f} MB, "
          f"valid JSON {ours['valid_json']}/{ours['requests']}")
    print(f"shopaug tokens/s {ours_tps:.1f}")
    print(f"raw tokens/s {raw_tps:.1f}")
    print(f"ratio {ours_tps / raw_tps:.2f} (target >= 1.0)")
    print(f"requests/s shopaug {ours['requests'] / ours['seconds']:.2f}, "
          f"raw {raw['requests'] / raw['seconds']:.2f}")
    print(f"warm-cache re-run: {ours['requests']} requests in {ours['warm_seconds'] * 1000:.0f} ms"
          f" = {warm_rps:,.0f} requests/s (target >= 1,000)")
    print("sample answers:", *ours["sample"], sep="\n  ")
    ok = ours_tps >= raw_tps and ours["peak_rss_mb"] < 1024 and warm_rps >= 1000
    print(f"targets: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
