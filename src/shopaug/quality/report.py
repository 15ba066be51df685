"""The synthetic-data quality report: fidelity, diversity, consistency, leakage, privacy.

`assess` measures an augmented bundle (real training rows and synthetic rows together,
told apart by ``origin``) against its own real rows and, for leakage, against the test
side of the split and the prompts sent to the LLM. Measurements are tables and plots;
the ones with a pass/fail threshold are `Check` objects. `QualityReport.raise_if_failed`
turns failed checks into one `QualityError` that says how to relax each threshold.

    >>> from shopaug.testing import sample_data
    >>> report = assess(sample_data())
    >>> report.passed, sorted(report.to_dict()["sections"])
    (True, ['consistency', 'diversity', 'fidelity', 'leakage', 'privacy'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError, QualityError
from shopaug.quality._common import Check, Section

__all__ = ["Check", "QualityReport", "QualityThresholds", "assess", "format_text"]

SECTIONS = ("fidelity", "diversity", "consistency", "leakage", "privacy")


class QualityThresholds(BaseModel):
    """Pass/fail thresholds, one per check (the field name is the check name); None
    switches a check off. Counts must stay at or below their threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # leakage. Information flow: no prompt may hold a test query or a test-only purchase.
    prompts_with_test_query: float | None = Field(0, ge=0)
    prompts_with_test_only_items: float | None = Field(0, ge=0)
    # Overlap, as a share of the synthetic rows: a generator that never saw the test side
    # still writes some of its queries by chance ("blender", "yoga mat": 9 of 1,721 on
    # CrowdFlower) and a simulator predicts some real test purchases; copying shows as a
    # much larger share. The counts and examples are in the report either way.
    test_query_exact_share: float | None = Field(0.01, ge=0, le=1)
    test_query_near_duplicate_share: float | None = Field(0.01, ge=0, le=1)
    test_judgment_overlap_share: float | None = Field(0.01, ge=0, le=1)
    test_interaction_overlap_share: float | None = Field(0.01, ge=0, le=1)
    # privacy
    pii_emails: float | None = Field(0, ge=0)
    pii_phones: float | None = Field(0, ge=0)
    pii_cards: float | None = Field(0, ge=0)
    pii_addresses: float | None = Field(0, ge=0)
    #: share of synthetic users whose item set equals a real user's
    synthetic_user_exact_copy_share: float | None = Field(0.05, ge=0, le=1)
    #: not a check: char-3-gram Jaccard at which a synthetic query near-duplicates a test one
    near_duplicate_jaccard: float = Field(0.9, gt=0, le=1)


@dataclass
class QualityReport:
    checks: list[Check]
    sections: dict[str, Section]
    counts: dict[str, dict[str, int]]
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able report (schema: docs of `shopaug.quality`, spec section 1)."""
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks],
                "sections": {name: self.sections[name].to_dict() for name in SECTIONS},
                "counts": self.counts}

    def verdict(self) -> str:
        """One line for a run's summary: all passed, or which checks failed."""
        failed = self.failed()
        if not failed:
            return f"quality checks: all {len(self.checks)} passed"
        return (f"quality checks: {len(failed)} of {len(self.checks)} FAILED: " + "; ".join(
            f"{c.section}.{c.name} = {_num(c.value)} (must be {c.op} {_num(c.threshold)})"
            for c in failed) + " (see quality.json)")

    def raise_if_failed(self) -> None:
        failed = self.failed()
        if not failed:
            return
        lines = [f"{len(failed)} of {len(self.checks)} quality checks failed:"]
        for c in failed:
            lines.append(f"  - {c.section}.{c.name} = {_num(c.value)} (must be {c.op} "
                         f"{_num(c.threshold)}): {c.detail}")
        keys = ", ".join(f"{c.key}: {c.value:g}" for c in failed)
        lines.append(
            f"Fix the data, or relax the threshold(s): `quality: {{{keys}}}` in the experiment "
            "config, the same mapping in a --thresholds YAML for `shopaug quality`, or "
            "QualityThresholds(<key>=<value>) in Python; null switches a check off")
        raise QualityError("\n".join(lines), failed)


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"


def _thresholds(value: QualityThresholds | Mapping[str, Any] | None) -> QualityThresholds:
    if isinstance(value, QualityThresholds):
        return value
    try:
        return QualityThresholds(**dict(value or {}))
    except ValidationError as exc:
        known = ", ".join(QualityThresholds.model_fields)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid quality thresholds ({problems}). Known keys: {known}"
                          ) from None


def assess(augmented: ShopData, *, test: ShopData | None = None,
           prompts: list[dict] | None = None,
           thresholds: QualityThresholds | Mapping[str, Any] | None = None,
           embed: Callable[[list[str]], np.ndarray] | None = None,
           seed: int = 0) -> QualityReport:
    """Measure the synthetic rows of ``augmented`` against its real rows.

    ``test``: the test side of the split (leakage is measured only when given);
    ``prompts``: the prompts sent to the LLM, dicts with "stage", "request_id" and "text";
    ``embed``: texts -> embedding rows for the dispersion measure (default: hashed
    character 3-grams, no model); ``seed`` fixes every sample taken.
    """
    from shopaug.quality.consistency import consistency_section
    from shopaug.quality.diversity import diversity_section
    from shopaug.quality.fidelity import fidelity_section
    from shopaug.quality.leakage import leakage_section
    from shopaug.quality.privacy import privacy_section

    thr = _thresholds(thresholds)
    sections = {
        "fidelity": fidelity_section(augmented, seed=seed),
        "diversity": diversity_section(augmented, embed=embed, seed=seed),
        "consistency": consistency_section(augmented, seed=seed),
        "leakage": leakage_section(augmented, test=test, prompts=prompts, thresholds=thr),
        "privacy": privacy_section(augmented, thresholds=thr, seed=seed),
    }
    checks = [c for name in SECTIONS for c in sections[name].checks]
    return QualityReport(checks, sections, augmented.origin_counts(), thr)


def format_text(report: QualityReport) -> str:
    """A terminal summary: counts, then one PASS/FAIL line per check."""
    failed = report.failed()
    head = (f"quality: {len(report.checks) - len(failed)} of {len(report.checks)} checks "
            f"passed" + (f", {len(failed)} FAILED" if failed else ""))
    counts = "; ".join(f"{t} {c.get('real', 0):,} real / {c.get('synthetic', 0):,} synthetic"
                       for t, c in report.counts.items() if any(c.values()))
    lines = [head, f"rows: {counts or 'none'}"]
    width = max((len(f"{c.section}.{c.name}") for c in report.checks), default=0)
    for c in report.checks:
        verdict = "PASS" if c.passed else "FAIL"
        limit = f"{_num(c.value)} {c.op} {_num(c.threshold)}"
        lines.append(f"{verdict}  {f'{c.section}.{c.name}':<{width}}  {limit:<14}  {c.detail}")
    quiet = [n for n in SECTIONS if not any(c.section == n for c in report.checks)]
    if quiet:
        lines.append("no checks in: " + ", ".join(quiet) + " (measurements only; see tables)")
    return "\n".join(lines)
