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
    """The pipeline config that ``shopaug demo`` runs."""
    return _HERE / "demo.yaml"
