"""shopaug: augment e-commerce search and recommendation data, and prove the lift.

The public surface is small and imported lazily, so ``import shopaug`` stays
fast: pandas, pyarrow and friends load only when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ShopData": "shopaug.data.bundle",
    "load": "shopaug.data.loaders",
    "LoadResult": "shopaug.data.loaders",
    "Split": "shopaug.data.split",
    "split": "shopaug.data.split",
    "PipelineConfig": "shopaug.pipeline.config",
    "run": "shopaug.pipeline.runner",
    "ExperimentConfig": "shopaug.pipeline.experiment",
    "run_experiment": "shopaug.pipeline.experiment",
    "assess": "shopaug.quality.report",
    "registry": "shopaug.registry",
    "ShopAugError": "shopaug.errors",
    "DataValidationError": "shopaug.errors",
    "ConfigError": "shopaug.errors",
    "SchemaError": "shopaug.errors",
    "LeakageError": "shopaug.errors",
    "QualityError": "shopaug.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    # ruff: noqa: F401 - names for type checkers; the runtime resolves them lazily
    from shopaug import registry
    from shopaug.data.bundle import ShopData
    from shopaug.data.loaders import LoadResult, load
    from shopaug.data.split import Split, split
    from shopaug.errors import (
        ConfigError,
        DataValidationError,
        LeakageError,
        QualityError,
        SchemaError,
        ShopAugError,
    )
    from shopaug.pipeline.config import PipelineConfig
    from shopaug.pipeline.experiment import ExperimentConfig, run_experiment
    from shopaug.pipeline.runner import run
    from shopaug.quality.report import assess


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shopaug' has no attribute {name!r}")
    value = importlib.import_module(module)
    if name != "registry":
        value = getattr(value, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
