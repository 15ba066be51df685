"""Data problems: collected all at once, reported with where, what and the fix."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from shopaug.errors import DataValidationError

#: how many example rows one problem group shows in an error message
EXAMPLES_PER_GROUP = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input.

    ``row`` is the 1-based data row (the header is not counted; for JSONL it is
    the line number). ``fatal`` problems (a missing file or column) cannot be
    fixed by quarantining rows.
    """

    file: str
    problem: str
    expected: str
    fix: str
    row: int | None = None
    column: str | None = None
    value: str | None = None
    kind: str = "invalid"
    fatal: bool = False

    def location(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", column {self.column!r}"
        return where

    def __str__(self) -> str:
        got = f" (got {self.value!r})" if self.value is not None else ""
        return (
            f"{self.location()}: {self.problem}{got}; expected {self.expected}. "
            f"Fix: {self.fix}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _short(value: object, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_problems(problems: list[Problem], header: str | None = None) -> str:
    """Group problems by (file, column, kind) and show a few examples per group."""
    groups: dict[tuple, list[Problem]] = defaultdict(list)
    for p in problems:
        groups[(p.file, p.column, p.kind, p.problem if p.row is None else "")].append(p)
    lines = [header or f"{len(problems)} data problem(s) found:"]
    for members in groups.values():
        first = members[0]
        if len(members) == 1 or first.row is None:
            lines.extend(f"  - {p}" for p in members)
            continue
        rows = ", ".join(str(p.row) for p in members[:EXAMPLES_PER_GROUP])
        more = len(members) - EXAMPLES_PER_GROUP
        examples = "; ".join(
            f"row {p.row}: {_short(p.value)!r}" for p in members[:3] if p.value is not None
        )
        column = f", column {first.column!r}" if first.column is not None else ""
        lines.append(
            f"  - {first.file}{column}: {first.problem} in "
            f"{len(members)} row(s) (rows {rows}{f' and {more} more' if more > 0 else ''})"
            f"; expected {first.expected}."
            + (f" Examples: {examples}." if examples else "")
            + f" Fix: {first.fix}"
        )
    return "\n".join(lines)


def raise_if_any(problems: list[Problem], header: str | None = None) -> None:
    if problems:
        raise DataValidationError(format_problems(problems, header), problems)
