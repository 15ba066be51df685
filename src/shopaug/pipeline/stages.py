"""Augmentation stages with a fingerprinted cache.

A stage's output is stored under the hash of everything that determines it: the
input bundle's content, the component and its config, the run seed and the LLM
settings that change answers. Rerunning an experiment with one augmenter changed
reuses every other stage from disk; the prompts a stage sent are stored with its
output, so the leakage audit of a reused stage is as complete as a fresh one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopaug import registry
from shopaug.artifacts import atomic_dir
from shopaug.data.bundle import ShopData
from shopaug.fingerprint import fingerprint
from shopaug.pipeline.config import ComponentSpec
from shopaug.pipeline.executors import run_component

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    data: ShopData
    prompts: list[dict[str, str]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False


class StageCache:
    """Stage outputs on disk, one directory per fingerprint. ``root=None`` disables it."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root else None
        self.hits = 0
        self.misses = 0

    def _dir(self, key: str) -> Path | None:
        return self.root / key if self.root else None

    def get(self, key: str) -> StageResult | None:
        where = self._dir(key)
        if where is None or not (where / "meta.json").is_file():
            return None
        try:
            meta = json.loads((where / "meta.json").read_text(encoding="utf-8"))
            data = ShopData.load(where / "data")
        except (OSError, ValueError) as exc:  # a damaged entry is recomputed, not fatal
            log.warning("stage cache entry %s unreadable (%s); recomputing", where, exc)
            return None
        self.hits += 1
        return StageResult(data, meta.get("prompts", []), meta.get("report", {}),
                           meta.get("seconds", 0.0), reused=True)

    def put(self, key: str, result: StageResult) -> None:
        where = self._dir(key)
        if where is None:
            return
        with atomic_dir(where) as tmp:
            result.data.save(tmp / "data")
            meta = {"prompts": result.prompts, "report": result.report,
                    "seconds": result.seconds}
            (tmp / "meta.json").write_text(json.dumps(meta, default=str), encoding="utf-8")


def stage_key(data: ShopData, kind: str, spec: ComponentSpec, seed: int,
              llm_fingerprint: str) -> str:
    return fingerprint({"input": data.fingerprint(), "kind": kind, "name": spec.name,
                        "config": spec.config, "seed": seed, "llm": llm_fingerprint}, 24)


def run_stage(data: ShopData, kind: str, spec: ComponentSpec, ctx, cache: StageCache,
              llm_fingerprint: str) -> StageResult:
    """One augmenter or filter on ``data``, from the cache when its inputs are unchanged.
    The values it wrote into ``data``'s rows are recorded as its fills (also for a cached
    output, which may predate fills)."""
    key = stage_key(data, kind, spec, ctx.seed, llm_fingerprint)
    cached = cache.get(key)
    if cached is not None:
        log.info("%s %s: reused from the stage cache", kind, spec.display)
        cached.data = cached.data.record_fills(data, spec.name)
        return cached
    cache.misses += 1
    component = registry.create(kind, spec.name, spec.config)
    audit = ctx.prompt_audit()
    before = len(audit)
    start = time.perf_counter()
    out = run_component(component, data, ctx).record_fills(data, spec.name)  # type: ignore[arg-type]
    result = StageResult(out, list(audit[before:]),
                         dict(getattr(component, "report_", {}) or {}),
                         time.perf_counter() - start)
    errors = getattr(component, "errors_", None)
    stopped = getattr(getattr(ctx, "_llm", None), "stopped_by_budget", None)
    if (errors is not None and len(errors)) or stopped:
        # an incomplete stage is not reused: a rerun (a larger budget, the server back)
        # asks again what was not answered; the answer cache keeps what was
        log.info("%s %s: not kept in the stage cache (%s)", kind, spec.display,
                 stopped or f"{len(errors)} failed rows")
    else:
        cache.put(key, result)
    return result


def run_chain(data: ShopData, augmenters: list[ComponentSpec], filters: list[ComponentSpec],
              ctx, cache: StageCache, llm_fingerprint: str
              ) -> tuple[ShopData, list[dict[str, str]], list[dict[str, Any]]]:
    """Augmenters in order, then filters: (bundle, prompts sent, per-stage report)."""
    prompts: list[dict[str, str]] = []
    reports: list[dict[str, Any]] = []
    for kind, specs in (("augmenter", augmenters), ("filter", filters)):
        for spec in specs:
            before, n_fills = data.origin_counts(), len(data.fills)
            result = run_stage(data, kind, spec, ctx, cache, llm_fingerprint)
            data = result.data
            after = data.origin_counts()
            prompts.extend(result.prompts)
            reports.append({
                "kind": kind, "stage": spec.display, "seconds": round(result.seconds, 3),
                "reused": result.reused, "prompts": len(result.prompts),
                "synthetic_rows_change": {
                    t: after[t]["synthetic"] - before[t]["synthetic"] for t in after
                    if after[t]["synthetic"] != before[t]["synthetic"]},
                # values written into existing rows (enrichment, profiles): no row count
                # shows them
                "filled": {f"{f.table}.{f.column}": len(f.before)
                           for f in data.fills[n_fills:]},
                "report": result.report})
    return data, prompts, reports
