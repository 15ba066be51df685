"""Benchmarks users run on their own data: ``shopaug bench search|rec``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopaug.quality.report import QualityReport


def record_quality(summary: dict[str, Any], report: QualityReport,
                   log: logging.Logger) -> None:
    """Put the quality verdict in a bench summary (its table ends with it) and warn when
    a check failed, so a failure cannot go unnoticed in metrics.json alone."""
    summary["quality_passed"], summary["quality"] = report.passed, report.verdict()
    if not report.passed:
        log.warning("%s", summary["quality"])
