"""Data shipped with shopaug, so the demo runs offline on a fresh machine."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent

ATTRIBUTION = (
    "Chen, D. (2015). Online Retail [Dataset]. UCI Machine Learning Repository. "
    "https://doi.org/10.24432/C5BW33. Licensed CC BY 4.0."
)


def demo_path() -> Path:
    """The Online Retail demo subset (load it with ``format="online_retail"``)."""
    return _HERE / "online_retail_demo.parquet"


def demo_config_path() -> Path:
    """A minimal pipeline config (popularity baselines) for ``shopaug run``."""
    return _HERE / "demo.yaml"


def demo_experiment_path() -> Path:
    """The experiment config that ``shopaug demo`` runs (augmenters alone and together,
    real-only vs augmented models, quality checks, HTML report)."""
    return _HERE / "demo_experiment.yaml"
