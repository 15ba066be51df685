"""Quality of synthetic data: filters that drop bad synthetic rows, and the report
(`assess`) that measures fidelity, diversity, consistency, leakage and privacy."""

from __future__ import annotations

from typing import Any

__all__ = ["QualityReport", "QualityThresholds", "assess", "format_text"]


def __getattr__(name: str) -> Any:  # lazy: importing shopaug.quality stays cheap
    if name in __all__:
        from shopaug.quality import report

        return getattr(report, name)
    raise AttributeError(f"module 'shopaug.quality' has no attribute {name!r}")
