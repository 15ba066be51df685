"""Loaders: files in a native or published format -> validated ShopData."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shopaug.data.loaders.base import LoadContext, Loader, LoaderConfig, LoadReport, LoadResult


def load(path: str | Path, format: str = "native", **options: Any) -> LoadResult:
    """Load data in any registered format; returns the bundle and a load report.

    >>> from shopaug.datasets import demo_path
    >>> result = load(demo_path(), format="online_retail")
    >>> result.data.counts()["interactions"] > 0
    True
    """
    from shopaug import registry

    loader = registry.create("loader", format, options)
    assert isinstance(loader, Loader)
    return loader.load(path)


__all__ = ["LoadContext", "LoadReport", "LoadResult", "Loader", "LoaderConfig", "load"]
