"""Where a stage's component runs: ``local`` (in this process) or ``ray`` (Ray Data).

With ``ray``, a component that declares ``shard_by`` (the LLM augmenters that work
item by item) is split: the rows it selects are written as Parquet shards, read with
``ray.data.read_parquet`` and processed by ``map_batches`` on a pool of actors. Each
actor builds its own LLM from the ``llm:`` config once (per-actor HTTP concurrency
for the ``openai`` engine, one loaded model per actor for ``llamacpp``) and shares
the SQLite answer cache by path, so a restarted job skips every answered request.
The whole bundle (few-shot examples, judgments) is broadcast once with ``ray.put``.
Outputs come back tagged with the position of their first input row and are merged
in that order, so the result equals the local executor's row for row (per-record
seeds make every answer independent of the shard it was in). Components without
``shard_by`` run on the driver, unchanged.

Components that embed text with the default embedder embed on an actor pool instead
(``shopaug.pipeline.ray_embed``), wherever they run on the driver.

A batch that raises is retried row by row; rows that still fail land in the stage's
errors table (``errors/<stage>.csv``) instead of stopping the run. An ``EngineError``
(dead server, bad key) still stops it: retrying every row against it is pointless.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from shopaug.errors import ConfigError, ShopAugError

if TYPE_CHECKING:
    from shopaug.augment.base import Augmenter
    from shopaug.data.bundle import ShopData
    from shopaug.llm.engine import Engine
    from shopaug.pipeline.runner import RunContext

log = logging.getLogger(__name__)

_ROW = "_shopaug_row"


class ExecutorOptions(BaseModel):
    """``executor_options:`` of a pipeline config (used by ``executor: ray``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Ray cluster to join ("auto", "ray://head:10001"); None starts a local Ray
    address: str | None = None
    #: CPUs of a local Ray started here (ignored with ``address``)
    num_cpus: int | None = Field(None, ge=1)
    #: Parquet files the selected rows are written as
    shards: int = Field(8, ge=1)
    #: actors (workers) per stage; each holds its own LLM client or model
    concurrency: int = Field(2, ge=1)
    #: rows per map_batches call (an LLM batch)
    batch_size: int = Field(32, ge=1)
    #: texts per map_batches call of the embedding actors
    embed_batch_size: int = Field(256, ge=1)
    #: CPUs reserved per actor: small for HTTP clients, the thread count for llama.cpp
    num_cpus_per_worker: float = Field(1.0, gt=0)
    #: GPUs per actor (an embedded model on a GPU node)
    num_gpus_per_worker: float = Field(0.0, ge=0)
    #: where shards are written; must be visible to every node on a multi-node cluster
    #: (shared filesystem or an object-store URI pyarrow understands, e.g. s3://...)
    shard_dir: str | None = None


class LocalExecutor:
    name = "local"

    def run(self, component: Augmenter, data: ShopData, ctx: RunContext) -> ShopData:
        return component.run(data, ctx)


def make_executor(name: str, options: ExecutorOptions | dict[str, Any] | None = None
                  ) -> LocalExecutor | RayExecutor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(options)
    raise ShopAugError(f"unknown executor {name!r}; known: local, ray")


def run_component(component: Augmenter, data: ShopData, ctx: RunContext) -> ShopData:
    """Run ``component`` with the context's executor (local when it has none)."""
    executor = getattr(ctx, "executor", None) or LocalExecutor()
    return executor.run(component, data, ctx)


class RayExecutor:
    """Shard-by-row components on Ray Data; everything else on the driver, with
    default-embedder text embeddings on an actor pool.

    ``engine_factory`` (a picklable callable returning an Engine) replaces the engine
    built from the LLM config inside each actor: for tests and custom engines.
    """

    name = "ray"

    def __init__(self, options: ExecutorOptions | dict[str, Any] | None = None,
                 engine_factory: Callable[[], Engine] | None = None) -> None:
        self.options = (options if isinstance(options, ExecutorOptions)
                        else ExecutorOptions.model_validate(options or {}))
        self.engine_factory = engine_factory

    def run(self, component: Augmenter, data: ShopData, ctx: RunContext) -> ShopData:
        from shopaug.pipeline.ray_embed import RayEmbedder, uses_default_embedder

        if not uses_default_embedder(component):
            return self._run(component, data, ctx)
        default = component.embed  # type: ignore[attr-defined]
        component.embed = RayEmbedder(self.options, start=self._init)  # type: ignore[attr-defined]
        try:
            return self._run(component, data, ctx)
        finally:  # the component may run again elsewhere: leave it as it was
            component.embed = default  # type: ignore[attr-defined]

    def _run(self, component: Augmenter, data: ShopData, ctx: RunContext) -> ShopData:
        if getattr(component, "shard_by", None) is None:
            return component.run(data, ctx)
        budget = getattr(getattr(ctx, "llm_config", None), "budget", None)
        if budget is not None and any(v is not None for v in budget.model_dump().values()):
            # a budget needs one ledger; the workers' separate ones would each allow it all
            log.warning("%s: an llm budget is set, so the stage runs on the driver, not on "
                        "Ray", component.name)
            return component.run(data, ctx)
        rows = component.select(data)
        if rows.empty:
            return component.run(data, ctx)
        pieces = self._map(component, data, rows.reset_index(drop=True), ctx)
        return self._merge(component, data, pieces, ctx)

    # -- driver side ---------------------------------------------------------------
    def _init(self) -> None:
        import ray

        if ray.is_initialized():
            return
        opts = self.options
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if opts.address:
            kwargs["address"] = opts.address
        elif opts.num_cpus:
            kwargs["num_cpus"] = opts.num_cpus
        ray.init(**kwargs)

    def _map(self, component: Augmenter, data: ShopData, rows: pd.DataFrame,
             ctx: RunContext) -> list[dict[str, Any]]:
        import numpy as np
        import ray

        self._init()
        opts = self.options
        # ShopData itself does not pickle (immutable, slots): ship its tables
        bundle = {"tables": data.tables(), "grade_scale": data.grade_scale}
        shared = ray.put({"data": bundle, "component": (component.kind, component.name,
                                                      component.config.model_dump()),
                          "dtypes": rows.dtypes.to_dict(), "seed": ctx.seed,
                          "llm_config": ctx.llm_config, "engine_factory": self.engine_factory})
        if opts.shard_dir and _is_local(opts.shard_dir) and not Path(opts.shard_dir).is_dir():
            raise ConfigError(f"executor_options.shard_dir {opts.shard_dir} is not a directory. "
                              "Fix: create it (on storage every node can read)")
        with tempfile.TemporaryDirectory(prefix="shopaug-shards-",
                                         dir=opts.shard_dir if _is_local(opts.shard_dir)
                                         else None) as local_dir:
            root = opts.shard_dir if not _is_local(opts.shard_dir) else local_dir
            paths = _write_shards(rows, np.array_split(np.arange(len(rows)),
                                                       min(opts.shards, len(rows))), root)
            # one directory, not a list of files: Ray lists a list of paths on threads
            # that race on an optional fsspec import (ImportError with fsspec, no aiohttp);
            # one block per shard: Ray reads small files as one block, which one actor
            # would then process alone
            dataset = ray.data.read_parquet(
                root, file_extensions=["parquet"]).repartition(len(paths)).map_batches(
                _ShardWorker, batch_format="pandas", batch_size=opts.batch_size,
                compute=ray.data.ActorPoolStrategy(size=opts.concurrency),
                num_cpus=opts.num_cpus_per_worker,
                num_gpus=opts.num_gpus_per_worker or None,
                fn_constructor_kwargs={"shared": [shared]})
            try:
                out = dataset.to_pandas()
            except Exception as exc:
                raise _unwrap(exc) from exc
        out = out.sort_values("start", kind="stable")
        pieces = [pickle.loads(blob) for blob in out["payload"]]
        fatal = next((p["fatal"] for p in pieces if "fatal" in p), None)
        if fatal is not None:
            raise fatal
        return pieces

    def _merge(self, component: Augmenter, data: ShopData, pieces: list[dict[str, Any]],
               ctx: RunContext) -> ShopData:
        from shopaug.llm import errors_table

        for piece in pieces:
            ctx.audit.extend(piece["audit"])
        errors = [p["errors"] for p in pieces if len(p["errors"])]
        component.errors_ = (pd.concat(errors, ignore_index=True) if errors
                             else errors_table([], component.name))
        if len(component.errors_) and getattr(ctx, "run_dir", None):
            path = Path(ctx.run_dir) / "errors" / f"{component.name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            component.errors_.to_csv(path, index=False)
            log.warning("%s: %d rows or requests failed; see %s", component.name,
                        len(component.errors_), path)
        _add_usage(ctx, [p["usage"] for p in pieces])
        _raise_if_no_answer(component.name, [p["usage"] for p in pieces], component.errors_)
        return component.merge(data, [p["out"] for p in pieces], ctx)


def _is_local(path: str | None) -> bool:
    return path is None or "://" not in path


def _write_shards(rows: pd.DataFrame, parts: list, root: str) -> list[str]:
    """One Parquet file per part; each row keeps its position for the merge."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = []
    for k, part in enumerate(parts):
        frame = rows.iloc[part].assign(**{_ROW: part})
        path = f"{root.rstrip('/')}/shard-{k:05d}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
        paths.append(path)
    return paths


def _unwrap(exc: BaseException) -> BaseException:
    """The ShopAugError a Ray task raised, when there is one (Ray wraps user errors)."""
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            break
        cause = getattr(seen, "cause", None)  # RayTaskError keeps the original here
        if isinstance(seen, ShopAugError) and not isinstance(cause, BaseException):
            return seen
        seen = cause if isinstance(cause, BaseException) else seen.__cause__
    return ShopAugError(f"the Ray job failed: {exc}")


def _raise_if_no_answer(name: str, usages: list[dict[str, Any]], errors: pd.DataFrame) -> None:
    """The whole stage's check that a worker skips for its batch: the engine answered
    none of the stage's requests (a batch failing whole is only a row-level failure)."""
    from shopaug.llm.structured import engine_never_answered, no_answer_error

    totals: dict[str, list[int]] = {}
    for usage in usages:
        for stage, stats in usage.items():
            total = totals.setdefault(stage, [0, 0])
            total[0] += stats.requests
            total[1] += stats.failed
    for stage, (requests, failed) in totals.items():
        if engine_never_answered(requests, failed):
            first = errors["reason"].iloc[0] if len(errors) else "no answer"
            raise no_answer_error(f"{name} ({stage})", requests, str(first))


def _add_usage(ctx: RunContext, usages: list[dict[str, Any]]) -> None:
    """Fold the actors' LLM usage into the driver's ledger, when the driver has one."""
    llm = getattr(ctx, "_llm", None)
    config = getattr(ctx, "llm_config", None)
    if llm is None and config is not None and config.engine != "llamacpp":
        llm = ctx.llm  # an HTTP client or the fake: cheap, unlike loading a model here
    if llm is None:
        return
    for usage in usages:
        for stage, stats in usage.items():
            llm.ledger.stages.setdefault(stage, type(stats)()).add(stats)


# -- actor side --------------------------------------------------------------------
class _ShardWorker:
    """One per actor: builds the component and its LLM once, then serves batches."""

    def __init__(self, shared: list) -> None:
        import ray

        from shopaug import registry
        from shopaug.data.bundle import ShopData
        from shopaug.llm import structured
        from shopaug.llm.config import build_llm

        structured.CHECK_WHOLE_CALL = False  # this process serves batches, not stages
        self.shared = ray.get(shared[0])
        bundle = self.shared["data"]
        self.data = ShopData(**bundle["tables"], grade_scale=bundle["grade_scale"])
        kind, name, config = self.shared["component"]
        self.make = lambda: registry.create(kind, name, config)
        factory = self.shared["engine_factory"]
        self.llm = build_llm(self.shared["llm_config"], engine=factory() if factory else None)
        self.llm.progress = False
        self.fatal: ShopAugError | None = None

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        batch = batch.sort_values(_ROW, kind="stable").reset_index(drop=True)
        # a batch may hold rows from several shards: one piece per contiguous run
        pos = batch[_ROW].to_numpy(dtype="int64")
        bounds = [0, *(np.flatnonzero(np.diff(pos) != 1) + 1), len(pos)]
        out = [{"start": int(pos[a]), "payload": pickle.dumps(self._safe_piece(batch.iloc[a:b]))}
               for a, b in itertools.pairwise(bounds)]
        return pd.DataFrame(out)

    def _safe_piece(self, run: pd.DataFrame) -> dict[str, Any]:
        """A piece, or the fatal error as data: Ray re-raises task errors as its own
        types, losing the ShopAugError (and its message) the driver must show."""
        if self.fatal is None:
            try:
                return self._piece(run)
            except ShopAugError as exc:
                self.fatal = exc  # a dead engine stays dead: skip this actor's other batches
        return {"fatal": self.fatal}

    def _rows(self, run: pd.DataFrame) -> pd.DataFrame:
        rows = run.drop(columns=[_ROW]).reset_index(drop=True)
        for col, dtype in self.shared["dtypes"].items():
            if col in rows.columns and rows[col].dtype != dtype:
                # the driver's dtypes, so prompts see the values the local run sees
                with contextlib.suppress(TypeError, ValueError):
                    rows[col] = rows[col].astype(dtype)
        return rows

    def _piece(self, run: pd.DataFrame) -> dict[str, Any]:
        from shopaug.llm.engine import EngineError
        from shopaug.llm.ledger import Ledger
        from shopaug.pipeline.runner import RunContext

        rows = self._rows(run)
        self.llm.ledger = Ledger(self.llm.ledger.price_prompt_per_1k,
                                 self.llm.ledger.price_completion_per_1k)
        ctx = RunContext(seed=self.shared["seed"], run_dir=None, progress=False,  # type: ignore[arg-type]
                         llm_config=self.shared["llm_config"], _llm=self.llm)
        component = self.make()
        data = self.data
        try:
            out, errors = component.run_rows(data, rows, ctx), [component.errors_]
        except EngineError:
            raise
        except Exception as exc:  # one bad row must not sink its batch: retry one by one
            log.warning("%s: a batch failed (%s); retrying row by row", component.name, exc)
            out, errors = self._row_by_row(component, data, rows, ctx)
        errors = [e for e in errors if len(e)]
        return {"out": out, "errors": pd.concat(errors, ignore_index=True) if errors
                else pd.DataFrame(), "audit": list(ctx.audit),
                "usage": dict(self.llm.ledger.stages)}

    def _row_by_row(self, component: Augmenter, data: ShopData, rows: pd.DataFrame,
                    ctx: RunContext) -> tuple[dict[str, Any], list[pd.DataFrame]]:
        from shopaug.llm.engine import EngineError

        outs, errors = [], []
        key = rows.columns[0]
        for i in range(len(rows)):
            one = rows.iloc[[i]]
            try:
                outs.append(component.run_rows(data, one, ctx))
                errors.append(component.errors_)
            except EngineError:
                raise
            except Exception as exc:
                errors.append(pd.DataFrame([{
                    "stage": component.name, "request_id": str(one[key].iloc[0]),
                    "attempts": 1, "reason": f"{type(exc).__name__}: {exc}", "prompt": "",
                    "answer": ""}]))
        return _combine(outs), errors


def _combine(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-row pieces of one contiguous run as one piece (same shape as run_rows')."""
    outs = [o for o in outs if o]
    if not outs:
        return {}
    merged: dict[str, Any] = {}
    for key in outs[0]:
        values = [o[key] for o in outs if key in o]
        first = values[0]
        if isinstance(first, pd.DataFrame):
            merged[key] = pd.concat(values, ignore_index=True)
        elif isinstance(first, list):
            merged[key] = [x for v in values for x in v]
        elif isinstance(first, dict):
            merged[key] = {k: sum(v.get(k, 0) for v in values) for k in first}
        else:
            merged[key] = first
    return merged
