"""``shopaug bench judge``: how well does the LLM judge agree with your human grades?

Queries are split by query; the judge's few-shot examples come from the training
side only, and it grades a random sample of the held-out judged pairs. The report
has accuracy, quadratic-weighted Cohen's kappa, the confusion matrix, the grade
distributions side by side, and the cost per 1,000 labels (tokens, seconds, money).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopaug.artifacts import atomic_write_json
from shopaug.augment.judge import LLMJudge, judge_agreement
from shopaug.data.bundle import ShopData
from shopaug.data.grades import gains_to_grades
from shopaug.data.split import split


def run_judge_benchmark(data: ShopData, out_dir: str | Path, n_pairs: int = 300,
                        seed: int = 0, test_fraction: float = 0.3,
                        judge_config: dict[str, Any] | None = None, llm_config=None,
                        llm=None, progress: bool = True) -> dict[str, Any]:
    from shopaug.pipeline.runner import RunContext

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = split(data, "by_query", seed=seed, test_fraction=test_fraction)
    held = parts.test.judgments
    held = held[held["origin"] == "real"].merge(
        parts.test.queries[["query_id", "text"]], on="query_id")
    rng = np.random.default_rng(seed)
    sample = held.iloc[np.sort(rng.choice(len(held), min(n_pairs, len(held)),
                                          replace=False))]
    judge = LLMJudge(**(judge_config or {}))
    scale = judge.judge_scale(data)
    ctx = RunContext(seed=seed, run_dir=out_dir, progress=progress, llm_config=llm_config,
                     _llm=llm)
    start = time.perf_counter()
    judged = judge.judge_pairs(parts.train, sample, ctx)
    seconds = time.perf_counter() - start
    human = pd.Series(gains_to_grades(sample["gain"].to_numpy(), scale),
                      index=list(zip(sample["query_id"], sample["item_id"], strict=True)))
    predicted = pd.Series(judged["label"].to_numpy(),
                          index=list(zip(judged["query_id"], judged["item_id"], strict=True)))
    report = judge_agreement(predicted, human, scale)
    report["n_asked"] = len(sample)
    report["n_failed"] = len(sample) - len(judged)
    report["human_distribution"] = human.value_counts().to_dict()
    report["judge_distribution"] = predicted.value_counts().to_dict()
    # the agreement a judge gets by always answering the most common human grade
    report["majority_baseline_accuracy"] = float(human.value_counts(normalize=True).max())
    usage = ctx.llm.ledger.to_dict()["total"]
    n = max(len(judged), 1)
    report["per_1000_labels"] = {
        "prompt_tokens": usage["prompt_tokens"] / n * 1000,
        "completion_tokens": usage["completion_tokens"] / n * 1000,
        "seconds": seconds / n * 1000, "cost": usage["cost"] / n * 1000}
    report["model"] = ctx.llm.engine.model_id
    report["mean_confidence"] = float(judged["confidence"].mean()) if len(judged) else None
    sample.merge(judged, on=["query_id", "item_id"], how="left").to_csv(
        out_dir / "judged_pairs.csv", index=False)
    atomic_write_json(out_dir / "judge_agreement.json", report)
    return report


def format_report(report: dict[str, Any]) -> str:
    labels = report["labels"]
    lines = [f"judge {report['model']}: {report['n']} labels "
             f"({report['n_failed']} failed of {report['n_asked']})",
             f"accuracy {report['accuracy']:.3f} (always-majority baseline "
             f"{report['majority_baseline_accuracy']:.3f}), quadratic-weighted kappa "
             f"{report['kappa_quadratic']:.3f}",
             "confusion (rows human, columns judge): " + " ".join(f"{x:>5}" for x in labels)]
    for label, row in zip(labels, report["confusion"]["matrix"], strict=True):
        lines.append(f"{label:>38} " + " ".join(f"{x:>5}" for x in row))
    per = report["per_1000_labels"]
    lines.append(f"per 1,000 labels: {per['prompt_tokens']:,.0f} prompt + "
                 f"{per['completion_tokens']:,.0f} completion tokens, {per['seconds']:,.0f} s, "
                 f"cost {per['cost']:.4f}")
    return "\n".join(lines)
