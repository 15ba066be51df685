"""Benchmark: one item-level LLM stage (item_enrichment) on the ``ray`` executor with
1 and then 2 workers, over N items of the packaged demo catalog.

The engine is the deterministic fake engine plus a fixed sleep per request, which
stands in for the latency of a remote OpenAI-compatible endpoint (a vLLM server):
each worker sends its requests one at a time, so the ratio shows how well the
executor spreads an I/O-bound stage over workers, Ray's own overhead included.
No LLM cache, so both runs send every request; the outputs are checked equal.

    python bench/ray_scaling.py [--n 200] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="items to enrich")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds per request (the stand-in endpoint's latency)")
    args = parser.parse_args()

    import ray

    from shopaug import registry
    from shopaug.data.loaders import load
    from shopaug.datasets import demo_path
    from shopaug.llm.config import LLMConfig
    from shopaug.llm.fake import FakeEngine
    from shopaug.pipeline.executors import RayExecutor
    from shopaug.pipeline.runner import RunContext

    latency = args.latency

    class Remote(FakeEngine):
        def generate(self, requests, on_result=None):
            time.sleep(latency * len(requests))  # one request at a time, per worker
            return super().generate(requests, on_result)

    def engine() -> FakeEngine:
        return Remote()

    data = load(demo_path(), format="online_retail").data
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    llm = LLMConfig(engine="fake", use_cache=False, progress=False, batch_size=8)
    seconds, outputs = {}, {}
    for workers in (1, 2):
        component = registry.create("augmenter", "item_enrichment",
                                    {"max_items": args.n, "only_missing": False})
        executor = RayExecutor({"concurrency": workers, "shards": 8, "batch_size": 25,
                                "num_cpus_per_worker": 0.5}, engine_factory=engine)
        ctx = RunContext(seed=0, run_dir=None, progress=False, llm_config=llm,  # type: ignore[arg-type]
                         executor=executor)
        start = time.perf_counter()
        out = executor.run(component, data, ctx)
        seconds[workers] = time.perf_counter() - start
        outputs[workers] = out.items
        print(f"{workers} worker(s): {seconds[workers]:.2f} s for "
              f"{component.report_['items']} items ({component.report_['enriched']} enriched)")
    ray.shutdown()
    same = outputs[1].equals(outputs[2])
    print(f"speed-up 2 vs 1 workers: {seconds[1] / seconds[2]:.2f}x "
          f"(request latency {latency:g} s; outputs equal: {same})")


if __name__ == "__main__":
    main()
