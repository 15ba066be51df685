"""The loader contract: files in, a validated :class:`ShopData` plus a report out.

A loader's ``read`` turns its format's files into raw canonical tables; the
shared :func:`finalize` types, validates and cross-checks them, then either
raises one error listing every problem or (``on_bad_rows: quarantine``) moves
bad rows to quarantine files and reports the counts. No row disappears
without being counted: format-specific cleaning is reported in ``cleaning``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from shopaug.components import Component, ComponentConfig
from shopaug.data.bundle import ShopData
from shopaug.data.io import ROW, read_table
from shopaug.data.problems import Problem, format_problems
from shopaug.data.schema import TABLES
from shopaug.data.validate import check_grades, check_references, validate_table
from shopaug.errors import DataValidationError

log = logging.getLogger(__name__)


class LoaderConfig(ComponentConfig):
    #: 'error' raises one error listing every problem; 'quarantine' sets bad rows aside
    on_bad_rows: Literal["error", "quarantine"] = "error"
    #: where quarantined rows are written (default: <data path>/../shopaug-quarantine)
    quarantine_dir: str | None = None
    encoding: str = "utf-8"
    #: per table, your column name -> shopaug's, e.g. {"items": {"sku": "item_id"}}
    columns: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: grade scale of the judgments ('1-4', '0-3', 'esci', 'wands', 'binary'); inferred if unset
    grade_scale: str | None = None


@dataclass
class LoadReport:
    format: str
    path: str
    counts: dict[str, int] = field(default_factory=dict)
    #: rows removed on purpose by the format's documented cleaning, by reason
    cleaning: dict[str, int] = field(default_factory=dict)
    #: rows set aside as bad, per table (quarantine mode)
    quarantined: dict[str, int] = field(default_factory=dict)
    quarantine_files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    grade_scale: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "format": self.format, "path": self.path, "counts": self.counts,
            "cleaning": self.cleaning, "quarantined": self.quarantined,
            "quarantine_files": self.quarantine_files, "grade_scale": self.grade_scale,
            "problems": len(self.problems), "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        lines = [f"loaded {self.path} as {self.format} in {self.seconds:.2f}s"]
        lines += [f"  {name:<13}{n:>10,} rows" for name, n in self.counts.items()]
        for reason, n in self.cleaning.items():
            lines.append(f"  cleaning: {n:,} {reason}")
        for table, n in self.quarantined.items():
            lines.append(f"  quarantined: {n:,} {table} rows")
        for f in self.quarantine_files:
            lines.append(f"  quarantine file: {f}")
        if self.grade_scale:
            lines.append(f"  grade scale: {self.grade_scale}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LoadResult:
    data: ShopData
    report: LoadReport


@dataclass
class LoadContext:
    """What a loader's ``read`` needs: the config, the path, and places to report to."""

    config: LoaderConfig
    path: Path
    problems: list[Problem] = field(default_factory=list)
    cleaning: dict[str, int] = field(default_factory=dict)
    #: per table, the file name used in messages
    labels: dict[str, str] = field(default_factory=dict)
    #: per table, canonical column -> the column name in the user's file
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    def read(self, table: str, path: Path, required: tuple[str, ...] = (),
             sep: str | None = None, rename: dict[str, str] | None = None) -> pd.DataFrame | None:
        """Read ``path`` as ``table``.

        The user's ``columns:`` mapping for the table is applied first; ``required``
        names the columns of the format's own layout (so a missing-column message
        speaks the file's language); ``rename`` then maps those onto shopaug's names.
        """
        user = self.config.columns.get(table, {})
        rename = rename or {}
        df = read_table(path, self.problems, encoding=self.config.encoding, sep=sep,
                        label=path.name)
        self.labels[table] = path.name
        if df is None:
            return None
        original = [c for c in df.columns if c != ROW]
        df = df.rename(columns=user)
        missing = [c for c in required if c not in df.columns]
        if missing:
            hint = next(iter(missing))
            self.problems.append(Problem(
                path.name, f"missing required column(s) {missing}", f"columns {list(required)}",
                f"add them, or map your column names with `columns: {{{table}: {{your_name: "
                f"{hint}}}}}` in the data config; the file has {original}",
                kind="missing_column", fatal=True,
            ))
            return None
        # canonical name -> the name in the user's file, for messages
        back = {v: k for k, v in user.items()}
        final = [rename.get(c, c) for c in df.columns]
        clashes = sorted({c for c in final if final.count(c) > 1})
        if clashes:  # e.g. a file with both parent_asin and item_id: two item_id columns
            named = [back.get(c, c) for c, f in zip(df.columns, final, strict=True)
                     if f in clashes]
            self.problems.append(Problem(
                path.name, f"columns {named} would all become {clashes}",
                "one source column per field",
                "drop or rename the extra column, or map it elsewhere with `columns:` in "
                "the data config", kind="ambiguous", fatal=True))
            return None
        self.sources[table] = {rename.get(c, c): back.get(c, c) for c in df.columns if c != ROW}
        return df.rename(columns=rename)

    def require_directory(self, needs: str) -> bool:
        """Report (fatally) a data path that is not a directory; True when it is one."""
        if self.path.is_dir():
            return True
        self.problems.append(Problem(
            str(self.path), "not a directory" if self.path.exists() else "directory not found",
            f"a directory with {needs}", "point the data path at the directory that holds them",
            kind="missing_file", fatal=True,
        ))
        return False

    def cleaned(self, reason: str, n: int) -> None:
        """Count rows removed by documented, intended cleaning."""
        if n:
            self.cleaning[reason] = self.cleaning.get(reason, 0) + int(n)


class Loader(Component):
    kind = "loader"
    Config = LoaderConfig

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        """Return raw canonical tables (each with a ``_row`` column)."""
        raise NotImplementedError

    def load(self, path: str | Path) -> LoadResult:
        start = time.perf_counter()
        ctx = LoadContext(self.config, Path(path))
        raw = self.read(ctx)
        result = finalize(raw, ctx, self.name)
        result.report.seconds = time.perf_counter() - start
        log.info("%s", result.report.summary())
        return result


def finalize(raw: dict[str, pd.DataFrame], ctx: LoadContext, fmt: str) -> LoadResult:
    config = ctx.config
    per_table: dict[str, list[Problem]] = defaultdict(list)
    typed: dict[str, pd.DataFrame] = {}
    # A row-level problem found while reading (undecodable bytes, a bad grade) whose
    # row was still parsed belongs to that table: it is quarantined with the table's
    # other bad rows. The rest (records that never became rows) stay unparsed.
    rows_of = {name: set(df[ROW]) for name, df in raw.items()}
    attached = []
    for p in ctx.problems:
        if p.row is None or p.fatal:
            continue
        for name in raw:
            if ctx.labels.get(name) == p.file and p.row in rows_of[name]:
                per_table[name].append(p)
                attached.append(p)
    ctx.problems = [p for p in ctx.problems if p not in attached]
    for name, df in raw.items():
        typed[name] = validate_table(df, TABLES[name], per_table[name],
                                     ctx.labels.get(name, name), ctx.sources.get(name))
    if "judgments" in typed:
        check_grades(typed["judgments"], config.grade_scale, per_table["judgments"],
                     ctx.problems, ctx.labels.get("judgments", "judgments"),
                     ctx.sources.get("judgments", {}).get("grade", "grade"))
    fatal = [p for p in ctx.problems if p.fatal]
    if fatal or "items" not in typed:
        if "items" not in typed and not fatal:
            fatal.append(Problem(str(ctx.path), "no items table", "an items file",
                                 "add items.csv (item_id, title, ...)", kind="missing_file",
                                 fatal=True))
        everything = fatal + [p for p in ctx.problems if not p.fatal]
        everything += [p for ps in per_table.values() for p in ps]
        raise DataValidationError(format_problems(everything, _header(ctx, everything)),
                                  everything)

    # Drop rows with problems before checking references, so an orphan caused by a
    # quarantined parent is reported as an orphan rather than silently kept.
    clean = {name: _without(df, per_table[name]) for name, df in typed.items()}
    for name in ("interactions", "judgments"):
        if name not in clean:
            continue
        for column, parent, parent_col in TABLES[name].references:
            if parent not in clean:
                continue
            before = len(per_table[name])
            check_references(clean[name], column, clean[parent][parent_col], per_table[name],
                             ctx.labels.get(name, name), ctx.labels.get(parent, parent),
                             ctx.sources.get(name, {}).get(column),
                             bad_parent_ids=typed[parent][parent_col])
            if len(per_table[name]) > before:
                clean[name] = _without(clean[name], per_table[name])

    problems = ctx.problems + [p for ps in per_table.values() for p in ps]
    report = LoadReport(fmt, str(ctx.path), cleaning=dict(ctx.cleaning), problems=problems)
    if problems and config.on_bad_rows == "error":
        # Rows that only point at a bad parent row are fixed by fixing the parent.
        causes = [p for p in problems if p.kind != "bad_parent"] or problems
        raise DataValidationError(
            format_problems(causes, _header(ctx, causes))
            + "\nTo load the good rows and set the bad ones aside, set `on_bad_rows: quarantine`.",
            problems,
        )
    if problems:
        _quarantine(raw, per_table, ctx, report)

    tables = {name: df.drop(columns=[ROW]) for name, df in clean.items()}
    data = ShopData(**tables, grade_scale=config.grade_scale)
    report.counts = data.counts()
    report.grade_scale = data.grade_scale
    return LoadResult(data, report)


def _header(ctx: LoadContext, problems: list[Problem]) -> str:
    return f"cannot load {ctx.path}: {len(problems)} problem(s) found:"


def _without(df: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    bad = {p.row for p in problems if p.row is not None}
    return df[~df[ROW].isin(bad)] if bad else df


def _quarantine(raw: dict[str, pd.DataFrame], per_table: dict[str, list[Problem]],
                ctx: LoadContext, report: LoadReport) -> None:
    from shopaug.artifacts import atomic_write_bytes

    out_dir = Path(ctx.config.quarantine_dir or ctx.path.resolve().parent / "shopaug-quarantine")
    for name, problems in per_table.items():
        reasons: dict[int, list[str]] = defaultdict(list)
        for p in problems:
            if p.row is not None:
                col = f"{p.column}: " if p.column else ""
                reasons[p.row].append(f"{col}{p.problem}")
        if not reasons:
            continue
        bad = raw[name][raw[name][ROW].isin(reasons)].copy()
        bad["_reason"] = ["; ".join(reasons[r]) for r in bad[ROW]]
        bad.insert(0, "_file", ctx.labels.get(name, name))
        path = out_dir / f"{name}.quarantine.csv"
        atomic_write_bytes(path, bad.to_csv(index=False).encode("utf-8"))
        report.quarantined[name] = len(bad)
        report.quarantine_files.append(str(path))
    # Records that could not even be parsed into a row (broken lines, bad JSON).
    unparsed = [p for p in ctx.problems if not p.fatal]
    if unparsed:
        frame = pd.DataFrame([{"_file": p.file, "_row": p.row, "_reason": p.problem,
                               "_raw": p.value} for p in unparsed])
        path = out_dir / "unparsed.quarantine.csv"
        atomic_write_bytes(path, frame.to_csv(index=False).encode("utf-8"))
        report.quarantined["unparsed records"] = len(frame)
        report.quarantine_files.append(str(path))
