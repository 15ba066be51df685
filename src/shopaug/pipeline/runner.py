"""Run a pipeline config: load -> split -> augment -> filter -> fit -> evaluate -> artifacts.

Everything a run writes goes to ``<output>/<name>-<fingerprint>/`` through a
temporary directory renamed into place at the end, so a crashed run never
leaves a half-written artifact directory behind.
"""

from __future__ import annotations

import logging
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from shopaug import __version__, registry
from shopaug.artifacts import atomic_dir, atomic_write_json, atomic_write_text
from shopaug.data.bundle import ShopData
from shopaug.data.schema import SCHEMA_VERSION
from shopaug.data.split import Split
from shopaug.evaluate.rec import evaluate_recommender
from shopaug.llm.client import LLM
from shopaug.llm.config import LLMConfig
from shopaug.pipeline.config import PipelineConfig
from shopaug.pipeline.executors import make_executor, run_component

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What a stage may know about the run it is part of. ``llm`` is built on first
    use, so runs without LLM stages never load a model."""

    seed: int
    run_dir: Path
    progress: bool = True
    llm_config: LLMConfig | None = None
    _llm: LLM | None = field(default=None, repr=False)
    #: runs each augmenter and filter (shopaug.pipeline.executors); None: in-process
    executor: Any = field(default=None, repr=False)
    #: every prompt this context's stages asked the LLM, for the leakage audit
    audit: list[dict[str, str]] = field(default_factory=list, repr=False)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            from shopaug.llm.config import build_llm

            self._llm = build_llm(self.llm_config)
        self._llm.audit = self.audit  # an engine shared between contexts logs to ours
        return self._llm

    def prompt_audit(self) -> list[dict[str, str]]:
        return self.audit


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    card: dict[str, Any]
    metrics: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Mean of each metric per model and slice over seeds."""
        counts = [c for c in ("users", "queries") if c in self.metrics.columns]
        cols = [*counts, *(c for c in self.metrics.columns if "@" in c)]
        return self.metrics.groupby(["model", "slice"], sort=False)[cols].mean()


class _Timings(dict):
    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = round(self.get(name, 0.0) + time.perf_counter() - start, 4)


def _versions() -> dict[str, str]:
    out = {"shopaug": __version__, "python": platform.python_version(),
           "schema": SCHEMA_VERSION}
    for pkg in ("pandas", "numpy", "pyarrow", "pydantic"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "missing"
    return out


def run(config: PipelineConfig | str | Path, *, output: str | Path | None = None,
        progress: bool | None = None) -> RunResult:
    """Run ``config`` (a PipelineConfig or a YAML path) and return where it wrote."""
    from tqdm.auto import tqdm

    if not isinstance(config, PipelineConfig):
        config = PipelineConfig.from_yaml(config)
    config = with_run_options(config, output, progress)
    fp = config.fingerprint()
    run_dir = Path(config.output) / f"{config.name}-{fp[:12]}"
    timings = _Timings()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with atomic_dir(run_dir) as tmp:
        loaded = load_checked(config, tmp, timings)
        data = loaded.data
        rows, splits = [], {}
        steps = [(s, m) for s in config.seeds for m in config.models]
        bar = tqdm(total=len(steps), desc=f"{config.name}", disable=not config.progress,
                   unit="model")
        shared_llm: LLM | None = None
        executor = make_executor(config.executor, config.executor_options)
        for seed in config.seeds:
            ctx, parts = seed_context_and_split(config, data, seed, tmp, shared_llm, executor,
                                                timings)
            splits[seed] = parts.report()
            train = _augment(parts.train, config, ctx, timings)
            for spec in config.models:
                bar.set_postfix_str(f"seed {seed} {spec.display}")
                model = registry.create(_model_kind(config), spec.name, spec.config)
                with timings.stage(f"fit:{spec.display}"):
                    model.fit(train, seed=seed)  # type: ignore[attr-defined]
                with timings.stage(f"evaluate:{spec.display}"):
                    for slice_name, metrics in _evaluate(
                            config, model, train, parts).items():
                        rows.append({"model": spec.display, "seed": seed, "slice": slice_name,
                                     **metrics})
                bar.update()
            shared_llm = ctx._llm  # one engine and ledger for the whole run
        bar.close()
        metrics = pd.DataFrame(rows)
        card = {
            "name": config.name, "fingerprint": fp, "started_at": started,
            "versions": _versions(), "config": config.model_dump(mode="json"),
            "timings_seconds": dict(timings), "load": loaded.report.to_dict(),
            "counts": data.counts(), "splits": {str(k): v for k, v in splits.items()},
            "metrics": metrics.to_dict("records"),
            "llm": shared_llm.ledger.to_dict() if shared_llm else None,
        }
        atomic_write_text(tmp / "config.yaml", config.to_yaml())
        atomic_write_json(tmp / "run_card.json", card)
        atomic_write_json(tmp / "metrics.json", card["metrics"])
        metrics.to_csv(tmp / "metrics.csv", index=False)
    log.info("run %s written to %s", config.name, run_dir)
    return RunResult(run_dir=run_dir, card=card, metrics=metrics)


def seed_context_and_split(config: Any, data: ShopData, seed: int, run_dir: Path,
                           llm: LLM | None, executor: Any, timings: _Timings
                           ) -> tuple[RunContext, Split]:
    """One seed's context and split, for pipeline and experiment configs alike."""
    ctx = RunContext(seed=seed, run_dir=run_dir, progress=config.progress,
                     llm_config=config.llm, _llm=llm, executor=executor)
    with timings.stage("split"):
        parts: Split = registry.create(
            "splitter", config.split.name, config.split.config).split(  # type: ignore[attr-defined]
            data, seed=seed)
    return ctx, parts


def load_checked(config: PipelineConfig, run_tmp: Path, timings: _Timings):
    """Load the configured data (bad rows quarantined inside the run directory) and check
    every component's inputs before any work."""
    with timings.stage("load"):
        options = {"quarantine_dir": str(run_tmp / "quarantine"),
                   **config.data.loader_options()}
        loader = registry.create("loader", config.data.format, options)
        loaded = loader.load(config.data.path)  # type: ignore[attr-defined]
    check_inputs(config, loaded.data)
    return loaded


def with_run_options(config: PipelineConfig, output: str | Path | None,
                     progress: bool | None) -> PipelineConfig:
    """``config`` with a caller's output directory and progress setting (None: the
    config's own); no progress bars means the LLM's bar too."""
    updates: dict[str, Any] = {k: v for k, v in (("output", str(output) if output else None),
                                                 ("progress", progress)) if v is not None}
    if updates:
        config = config.model_copy(update=updates)
    if not config.progress and config.llm.progress:
        config = config.model_copy(update={"llm": config.llm.model_copy(
            update={"progress": False})})
    return config


def _model_kind(config: PipelineConfig) -> str:
    return "recommender" if config.task == "rec" else "search_model"


def _evaluate(config: PipelineConfig, model: Any, train: ShopData,
              parts: Split) -> dict[str, dict[str, float]]:
    """Mean metrics per slice: per user for recommenders, per query for search models."""
    if config.task == "rec":
        return evaluate_recommender(model, train, parts, config.evaluate.ks)
    from shopaug.evaluate.search import evaluate_search, query_slices

    per_query = evaluate_search(model, parts, config.evaluate.ks)
    out = {}
    for name, ids in query_slices(parts).items():
        frame = per_query[per_query.index.isin(ids)]
        if len(frame):
            out[name] = {"queries": len(frame), **frame.mean().astype(float).to_dict()}
    return out


def check_inputs(config: PipelineConfig, data: ShopData) -> None:
    """Every component's declared input columns, all reported at once, before any work."""
    from shopaug.errors import SchemaError

    model_kind = _model_kind(config)
    kinds = [("splitter", [config.split]), ("augmenter", config.augment),
             ("filter", config.filters), (model_kind, config.models)]
    missing = [
        f"{kind} {spec.display}: {col}"
        for kind, specs in kinds for spec in specs
        for col in registry.create(kind, spec.name, spec.config).missing_inputs(data)
    ]
    if missing:
        raise SchemaError("the data lacks columns that the pipeline needs:\n  - "
                          + "\n  - ".join(missing))


def _augment(train: ShopData, config: PipelineConfig, ctx: RunContext,
             timings: _Timings) -> ShopData:
    """Apply augmenters then filters in order; each returns a new bundle."""
    for kind, specs in (("augmenter", config.augment), ("filter", config.filters)):
        for spec in specs:
            component = registry.create(kind, spec.name, spec.config)
            with timings.stage(f"{kind}:{spec.name}"):
                train = run_component(component, train, ctx)  # type: ignore[arg-type]
    return train
