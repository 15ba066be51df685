"""A small servable run on the shipped demo data with the fake LLM (a few seconds):
for the serving tests, the browser test and ``bench/serve_load.py``."""

from __future__ import annotations

from pathlib import Path


def demo_run(output: str | Path, *, report: bool = True) -> Path:
    """Run popularity + item-kNN, baseline vs ``sequence_augment``, one seed; the run
    directory (with ``serving/`` and, if ``report``, ``report.html``)."""
    from shopaug.datasets import demo_path
    from shopaug.pipeline.experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig.model_validate({
        "name": "serve-demo", "task": "rec",
        "data": {"path": str(demo_path()), "format": "online_retail"},
        "split": {"name": "leave_last_basket"},
        "augment": [{"name": "sequence_augment",
                     "config": {"ops": ["crop"], "max_history": 10}}],
        "models": [{"name": "popularity"}, {"name": "itemknn"}],
        "evaluate": {"ks": [10], "n_boot": 200}, "seeds": [0],
        "llm": {"engine": "fake", "use_cache": False, "progress": False},
        "output": str(output), "progress": False, "report": report,
    })
    return run_experiment(config).run_dir
