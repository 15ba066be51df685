"""The augmenter and filter contract: ``run(data, ctx) -> ShopData``.

An augmenter returns the input bundle plus synthetic rows; it never mutates its
input. Every synthetic row carries provenance: ``origin='synthetic'``, the
augmenter's registry name and version, its config hash, the LLM model and
prompt template (when an LLM made it), the run seed and a quality score.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from shopaug.components import Component, ComponentConfig
from shopaug.data.bundle import ShopData

if TYPE_CHECKING:
    from shopaug.pipeline.runner import RunContext


class Augmenter(Component):
    kind = "augmenter"
    Config = ComponentConfig
    #: the table this component works on row by row, independently per row: an
    #: executor may then split it into shards (``select`` -> ``run_rows`` per shard ->
    #: ``merge``). None: the component runs whole, on the driver.
    shard_by: ClassVar[str | None] = None

    def run(self, data: ShopData, ctx: RunContext) -> ShopData:
        raise NotImplementedError

    # -- the sharding contract (only for shard_by components) ------------------------
    def select(self, data: ShopData) -> pd.DataFrame:
        """The rows of ``shard_by`` to process, in order (budgets such as max_items
        apply here, once, over the whole table)."""
        raise NotImplementedError

    def run_rows(self, data: ShopData, rows: pd.DataFrame, ctx: RunContext) -> dict[str, Any]:
        """New rows for ``rows`` (a slice of :meth:`select`); ``data`` is the whole
        bundle, for context such as few-shot examples. Sets ``errors_`` and ``report_``."""
        raise NotImplementedError

    def merge(self, data: ShopData, pieces: list[dict[str, Any]], ctx: RunContext
              ) -> ShopData:
        """``data`` plus the pieces of :meth:`run_rows`, given in :meth:`select` order."""
        raise NotImplementedError

    def provenance(self, rows: pd.DataFrame, ctx: RunContext, *, llm_model: str | None = None,
                   prompt_id: str | None = None,
                   quality_score: pd.Series | np.ndarray | float | None = None) -> pd.DataFrame:
        """``rows`` with every provenance column filled for synthetic data."""
        out = rows.copy()
        out["origin"] = "synthetic"
        out["augmenter"] = self.name
        out["augmenter_version"] = self.version
        out["config_hash"] = self.config_hash()
        out["llm_model"] = llm_model
        out["prompt_id"] = prompt_id
        out["seed"] = ctx.seed
        out["quality_score"] = quality_score if quality_score is not None else np.nan
        return out


class Filter(Augmenter):
    """Removes synthetic rows (never real ones) and reports how many and why."""

    kind = "filter"


def record_seed(run_seed: int, component: str, record_id: str) -> int:
    """A per-record seed: the same for a record whatever the batch or worker count."""
    digest = hashlib.sha256(f"{run_seed}|{component}|{record_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def synthetic_id(prefix: str, *parts: object) -> str:
    """A stable id for a synthetic row, derived from what made it."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode("utf-8")).hexdigest()[:12]
    return f"{prefix}-{digest}"
