"""``shopaug experiment CONFIG``: does each augmenter help, alone and together?

For every seed the data is split once; the baseline arm trains on the real
training side only, every other arm on the same training side plus the output
of one augmenter (each alone) or of all of them in order (``all_augmenters``),
followed by the filters. Augmenters only ever see the training side. Each arm's
synthetic data is checked (fidelity, diversity, consistency, leakage, privacy)
before any model trains on it; with ``enforce_quality`` a failed check stops the
run and names the check. Every model is trained on every arm with the same
protocol and scored on the same test groups (users or queries), so arms are
compared pairwise per group: bootstrap intervals, a paired randomisation test and
the sign test, per metric and per slice. Stage outputs are cached by fingerprint.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, model_validator

from shopaug import registry
from shopaug.artifacts import atomic_dir, atomic_write_json, atomic_write_text
from shopaug.data.bundle import ShopData
from shopaug.data.split import Split
from shopaug.evaluate.compare import BASELINE, compare_arms
from shopaug.fingerprint import fingerprint
from shopaug.pipeline.config import _LLM_NOT_FINGERPRINTED, ComponentSpec, PipelineConfig
from shopaug.pipeline.executors import make_executor
from shopaug.pipeline.runner import (
    _Timings,
    _versions,
    load_checked,
    seed_context_and_split,
    with_run_options,
)
from shopaug.pipeline.stages import StageCache, run_chain
from shopaug.quality.decontaminate import decontaminate

log = logging.getLogger(__name__)

ALL = "all_augmenters"


class ExperimentConfig(PipelineConfig):
    #: arms besides the baseline: augmenter labels and/or "all_augmenters";
    #: default: each augmenter alone, plus all together when there are several
    arms: list[str] | None = None
    #: quality thresholds (see shopaug.quality.QualityThresholds)
    quality: dict[str, Any] = Field(default_factory=dict)
    #: refuse to train on synthetic data that fails a quality check
    enforce_quality: bool = True
    #: drop synthetic rows that equal test rows before training (see
    #: shopaug.quality.decontaminate); only ever lowers the measured lift
    decontaminate: bool = True
    #: generated rows shown per augmenter in the report
    samples: int = Field(5, ge=0)
    #: where stage outputs are cached; "auto" = <output>/.stage-cache, null = off
    stage_cache: str | None = "auto"
    #: write report.html into the run directory
    report: bool = True
    #: save the best model (and the fallbacks a service needs) under serving/
    export: bool = True

    @model_validator(mode="after")
    def _arms_known(self) -> ExperimentConfig:
        if not self.augment:
            raise ValueError("an experiment needs at least one augmenter under `augment:`")
        labels = [s.display for s in self.augment]
        if len(set(labels)) != len(labels):
            raise ValueError(f"augmenters share a name {labels}: give each a distinct `label:`")
        unknown = sorted(set(self.arms or []) - {*labels, ALL})
        if unknown:
            raise ValueError(f"unknown arms {unknown}; arms are augmenter labels {labels} "
                             f"or {ALL!r}")
        from shopaug.quality.report import QualityThresholds

        QualityThresholds.model_validate(self.quality)
        return self

    def arm_specs(self) -> dict[str, list[ComponentSpec]]:
        """Arm name -> augmenters it applies, in config order (baseline excluded)."""
        by_label = {s.display: s for s in self.augment}
        names = self.arms if self.arms is not None else [
            *by_label, *([ALL] if len(by_label) > 1 else [])]
        return {name: list(self.augment) if name == ALL else [by_label[name]]
                for name in names}

    def metric_names(self) -> list[str]:
        ks = self.evaluate.ks
        if self.task == "rec":
            return [f"recall@{k}" for k in ks] + [f"ndcg@{k}" for k in ks]
        return [f"ndcg@{k}" for k in ks] + ["mrr"]


@dataclass(frozen=True)
class ExperimentResult:
    run_dir: Path
    summary: dict[str, Any]
    per_group: pd.DataFrame

    def table(self, slice_: str = "all") -> pd.DataFrame:
        """Primary metric per model and arm, with the lift over the baseline."""
        metric = self.summary["primary_metric"]
        res = pd.DataFrame(self.summary["results"])
        res = res[(res["slice"] == slice_) & (res["metric"] == metric)]
        out = res.pivot(index="model", columns="arm", values="mean")
        return out[[c for c in [BASELINE, *self.summary["arms"]] if c in out.columns]]


def _llm_fingerprint(config: ExperimentConfig) -> str:
    return fingerprint(config.llm.model_dump(mode="json", exclude=_LLM_NOT_FINGERPRINTED))


def _cache_root(config: ExperimentConfig) -> Path | None:
    if config.stage_cache is None:
        return None
    if config.stage_cache == "auto":
        return Path(config.output) / ".stage-cache"
    return Path(config.stage_cache)


def _evaluate(config: ExperimentConfig, spec: ComponentSpec, train: ShopData, parts: Split,
              seed: int) -> tuple[Any, pd.DataFrame]:
    """Fit one model; (the fitted model, its per-group metrics with a ``slice`` column)."""
    kind = "recommender" if config.task == "rec" else "search_model"
    model = registry.create(kind, spec.name, spec.config)
    model.fit(train, seed=seed)  # type: ignore[attr-defined]
    if config.task == "rec":
        from shopaug.evaluate.rec import per_user_metrics

        frame = per_user_metrics(model, parts.train, parts, config.evaluate.ks)
        return model, frame.rename(columns={"user_id": "group"})
    from shopaug.evaluate.search import evaluate_search, query_slices

    per_query = evaluate_search(model, parts, config.evaluate.ks).reset_index()
    frames = [per_query[per_query["query_id"].isin(ids)].assign(slice=name)
              for name, ids in query_slices(parts).items() if ids]
    return model, pd.concat(frames, ignore_index=True).rename(columns={"query_id": "group"})


def run_experiment(config: ExperimentConfig | str | Path, *, output: str | Path | None = None,
                   progress: bool | None = None) -> ExperimentResult:
    """Run ``config`` (an ExperimentConfig or a YAML path); see the module docstring."""
    from tqdm.auto import tqdm

    from shopaug.quality.report import QualityThresholds, assess

    if not isinstance(config, ExperimentConfig):
        config = load_experiment_config(config)
    config = with_run_options(config, output, progress)
    fp = config.fingerprint()
    run_dir = Path(config.output) / f"{config.name}-{fp[:12]}"
    thresholds = QualityThresholds.model_validate(config.quality)
    cache = StageCache(_cache_root(config))
    llm_fp = _llm_fingerprint(config)
    arms = config.arm_specs()
    timings = _Timings()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with atomic_dir(run_dir) as tmp:
        loaded = load_checked(config, tmp, timings)
        data = loaded.data
        rows, splits, stage_reports, quality_by_arm = [], {}, [], {}
        first: dict[str, Any] = {}
        bar = tqdm(total=len(config.seeds) * (len(arms) + 1) * len(config.models),
                   desc=config.name, unit="fit", disable=not config.progress)
        shared_llm = None
        executor = make_executor(config.executor, config.executor_options)
        #: (model, arm) -> fitted model and its training data, last seed only (for export)
        fitted: dict[tuple[str, str], tuple[Any, ShopData]] = {}
        for seed in config.seeds:
            ctx, parts = seed_context_and_split(config, data, seed, tmp, shared_llm, executor,
                                                timings)
            splits[str(seed)] = parts.report()
            arm_data = {BASELINE: parts.train}
            for arm, specs in arms.items():
                bar.set_postfix_str(f"seed {seed} augment {arm}")
                with timings.stage("augment"):
                    out, prompts, reports = run_chain(parts.train, specs, config.filters, ctx,
                                                      cache, llm_fp)
                stage_reports += [{"seed": seed, "arm": arm, **r} for r in reports]
                if config.decontaminate:
                    out, dropped = decontaminate(out, parts.test)
                    stage_reports.append({"seed": seed, "arm": arm, "kind": "decontaminate",
                                          "stage": "decontaminate", "report": dropped})
                with timings.stage("quality"):
                    report = assess(out, test=parts.test, prompts=prompts,
                                    thresholds=thresholds, seed=seed)
                quality_by_arm[f"{arm} (seed {seed})"] = {
                    "passed": report.to_dict()["passed"],
                    "failed": [c.name for c in report.failed()]}
                if seed == config.seeds[0] and (not first or arm == ALL):
                    first = {"arm": arm, "data": out, "test": parts.test,
                             "prompts": prompts, "quality": report}
                if config.enforce_quality and report.failed():
                    bar.close()
                    _refuse(arm, seed, report)
                arm_data[arm] = out
            shared_llm = ctx._llm
            for arm, train in arm_data.items():
                for spec in config.models:
                    bar.set_postfix_str(f"seed {seed} {arm} {spec.display}")
                    with timings.stage(f"fit+evaluate:{spec.display}"):
                        model, frame = _evaluate(config, spec, train, parts, seed)
                    if config.export and seed == config.seeds[-1]:
                        fitted[(spec.display, arm)] = (model, train)
                    rows.append(frame.assign(model=spec.display, arm=arm, seed=seed))
                    bar.update()
        bar.close()
        per_group = pd.concat(rows, ignore_index=True)
        summary = _summarize(config, per_group, arms, timings, shared_llm, first)
        card = {"name": config.name, "fingerprint": fp, "started_at": started,
                "versions": _versions(), "config": config.model_dump(mode="json"),
                "timings_seconds": dict(timings), "load": loaded.report.to_dict(),
                "counts": data.counts(), "splits": splits, "arms": list(arms),
                "stages": stage_reports, "quality_by_arm": quality_by_arm,
                "quality_passed": all(q["passed"] for q in quality_by_arm.values()),
                "stage_cache": {"root": str(cache.root) if cache.root else None,
                                "hits": cache.hits, "misses": cache.misses},
                "llm": summary["ledger"],
                # the headline in the card itself; every slice and metric is in summary.json
                "lift_all_groups": [r for r in summary["lift"] if r["slice"] == "all"]}
        summary["card"] = card
        if config.export:
            from shopaug.serve.export import export_models

            card["serving"] = export_models(tmp / "serving", config=config, fitted=fitted,
                                            summary=summary, data=data)
        _write(tmp, config, summary, per_group, first)
        if config.report:
            from shopaug.report.html import write_report

            write_report(tmp, tmp / "report.html")
    log.info("experiment %s written to %s", config.name, run_dir)
    return ExperimentResult(run_dir=run_dir, summary=summary, per_group=per_group)


def _refuse(arm: str, seed: int, report) -> None:
    from shopaug.errors import QualityError

    lines = [f"{c.section}/{c.name} = {c.value:.4g} (threshold {c.op} {c.threshold:g})"
             f"{': ' + c.detail if c.detail else ''}" for c in report.failed()]
    raise QualityError(
        f"refusing to train on the synthetic data of arm {arm!r} (seed {seed}): "
        f"{len(lines)} quality check(s) failed:\n  - " + "\n  - ".join(lines)
        + "\nFix: inspect the generated rows, or relax the threshold under `quality:` in "
        "the config, or set `enforce_quality: false` to train anyway")


def _summarize(config: ExperimentConfig, per_group: pd.DataFrame, arms: dict, timings,
               llm, first: dict[str, Any]) -> dict[str, Any]:
    from shopaug.pipeline.samples import collect_samples

    metrics = [m for m in config.metric_names() if m in per_group.columns]
    compared = compare_arms(per_group, metrics, n_boot=config.evaluate.n_boot)
    quality = first["quality"].to_dict() if first else None
    return {
        "kind": "experiment", "title": config.name, "task": config.task,
        "metrics": metrics, "primary_metric": metrics[0],
        "slices": list(dict.fromkeys(per_group["slice"])), "arms": list(arms),
        "models": [m.display for m in config.models], "seeds": config.seeds,
        **compared, "quality": quality,
        "quality_arm": first.get("arm"),
        "samples": collect_samples(first["data"], config.samples) if first else [],
        "ledger": llm.ledger.to_dict() if llm is not None else None,
        "timings_seconds": dict(timings), "card": None,
        "notes": [f"quality and samples shown for arm {first.get('arm')!r}, seed "
                  f"{config.seeds[0]}"] if first else [],
    }


def _write(tmp: Path, config: ExperimentConfig, summary: dict[str, Any],
           per_group: pd.DataFrame, first: dict[str, Any]) -> None:
    atomic_write_text(tmp / "config.yaml", config.to_yaml())
    atomic_write_json(tmp / "run_card.json", summary["card"])
    atomic_write_json(tmp / "summary.json", summary)
    if summary["quality"] is not None:
        atomic_write_json(tmp / "quality.json", summary["quality"])
    atomic_write_json(tmp / "samples.json", summary["samples"])
    per_group.to_parquet(tmp / "per_group.parquet", index=False)
    per_group.to_csv(tmp / "per_group.csv", index=False)
    for name in ("results", "lift"):
        frame = pd.DataFrame(summary[name])
        frame.to_csv(tmp / f"{name}.csv", index=False)
        frame.to_parquet(tmp / f"{name}.parquet", index=False)
    if first:
        # what `shopaug quality RUN_DIR` re-checks: the shown arm, its test side, prompts
        first["data"].save(tmp / "augmented")
        first["test"].save(tmp / "test")
        atomic_write_text(tmp / "prompts.jsonl", "".join(
            json.dumps(p, ensure_ascii=False) + "\n" for p in first["prompts"]))


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """Read an experiment YAML (relative paths are relative to the file)."""
    return ExperimentConfig.from_yaml(path)  # type: ignore[return-value]
