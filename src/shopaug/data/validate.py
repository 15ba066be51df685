"""Typed coercion and validation of raw tables, vectorised, collecting every problem."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from shopaug.data.io import ROW
from shopaug.data.problems import Problem
from shopaug.data.schema import TableSpec

_EXPECTED = {
    "str": "text",
    "float": "a number",
    "int": "a whole number",
    "timestamp": "a date/time such as 2011-12-09 12:50:00 or a Unix epoch",
    "json": 'a JSON object such as {"colour": "red"}',
}


def _blank(values: pd.Series) -> pd.Series:
    """True where a value is missing or whitespace-only."""
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        return values.isna() | values.astype("str").str.strip().eq("")
    return values.isna()


def _report_rows(
    df: pd.DataFrame, mask: pd.Series, problems: list[Problem], label: str, column: str,
    source: str, problem: str, expected: str, fix: str, kind: str,
) -> None:
    if not mask.any():
        return
    values = df.loc[mask, column] if column in df.columns else pd.Series(index=df.index[mask])
    # a loaded file numbers its data rows; a frame built in Python counts from 1
    rows = (df.loc[mask, ROW] if ROW in df.columns
            else pd.Series(np.flatnonzero(mask.to_numpy()) + 1))
    for row, value in zip(rows.tolist(), values.tolist(), strict=True):
        problems.append(Problem(label, problem, expected, fix, row=int(row), column=source,
                                value=None if _isna(value) else str(value)[:200], kind=kind))


def _isna(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def to_str(values: pd.Series) -> pd.Series:
    """Ids and text as strings; integral floats (17850.0) become '17850'."""
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna().to_numpy()
        # only exactly representable integers: 1e308 is "integral" but no int64
        if len(finite) and np.all((np.mod(finite, 1) == 0) & (np.abs(finite) < 2**53)):
            values = values.astype("Int64")
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        out = values.astype("str")
        return out.where(values.notna(), None).astype("str")
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        values.dtype
    ):
        return values.astype("str").where(values.notna(), None).astype("str")
    return values.astype("str")


def to_timestamp(values: pd.Series) -> pd.Series:
    """Parse to naive UTC ``datetime64[us]``; unparseable values become NaT."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[us]")
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        return _from_epoch(values.astype("float64"))
    text = values.astype("str").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    # each value on its own: epochs (seconds or ms) and date texts may share a column,
    # and one bad value is reported alone instead of spoiling the others. Positional
    # (numpy) masks: the index may repeat labels
    is_epoch = numeric.notna().to_numpy()
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]")
    if is_epoch.any():
        out[is_epoch] = _from_epoch(numeric[is_epoch]).to_numpy()
    if (~is_epoch).any():
        out[~is_epoch] = _from_text(text[~is_epoch]).to_numpy()
    return pd.Series(out, index=values.index)


def _from_text(text: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    retry = parsed.isna() & text.notna()
    if retry.any():
        parsed.loc[retry] = pd.to_datetime(text[retry], format="mixed", errors="coerce",
                                           utc=True, dayfirst=False)
    return parsed.dt.tz_localize(None).astype("datetime64[us]")


def _from_epoch(seconds_or_ms: pd.Series) -> pd.Series:
    # Amazon Reviews uses milliseconds; most logs use seconds. 1e11 s is year 5138, so
    # each value's size tells its unit
    x = seconds_or_ms.to_numpy(dtype="float64", na_value=np.nan)
    ms = np.abs(x) > 1e11
    out = pd.to_datetime(pd.Series(np.where(ms, np.nan, x)), unit="s", errors="coerce"
                         ).astype("datetime64[us]").to_numpy(copy=True)
    if ms.any():
        out[ms] = pd.to_datetime(pd.Series(x[ms]), unit="ms", errors="coerce"
                                 ).astype("datetime64[us]").to_numpy()
    return pd.Series(out, index=seconds_or_ms.index)


def _to_json_text(value: object) -> str | float | None:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if not isinstance(value, list) and _isna(value):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return np.nan  # marks a bad value
    if not isinstance(parsed, dict):
        return np.nan
    return json.dumps(parsed, ensure_ascii=False, sort_keys=True)


def coerce(
    df: pd.DataFrame, column: str, dtype: str, problems: list[Problem], label: str,
    source: str | None = None,
) -> None:
    """Convert ``df[column]`` in place to ``dtype``, reporting values that do not convert."""
    source = source or column
    raw = df[column]
    present = ~_blank(raw)
    if dtype == "str":
        df[column] = to_str(raw).str.strip().where(present, None).astype("str")
        return
    if dtype in ("float", "int"):
        if pd.api.types.is_numeric_dtype(raw.dtype):  # bools included
            out = raw.astype("float64")
        else:
            out = pd.to_numeric(raw.astype("str").str.strip(), errors="coerce")
        bad = present & out.isna()
        if dtype == "int":
            bad |= out.notna() & (np.mod(out.fillna(0), 1) != 0)
        _report_rows(df, bad, problems, label, column, source, f"not {_EXPECTED[dtype]}",
                     _EXPECTED[dtype], "correct or remove the value", "bad_number")
        out = out.where(~bad)
        df[column] = out.astype("Int64") if dtype == "int" else out.astype("float64")
        return
    if dtype == "timestamp":
        out = to_timestamp(raw)
        bad = present & out.isna()
        _report_rows(df, bad, problems, label, column, source, "unparseable timestamp",
                     _EXPECTED[dtype],
                     "use ISO 8601 (YYYY-MM-DD HH:MM:SS) or epoch seconds", "bad_timestamp")
        df[column] = out
        return
    if dtype == "json":
        out = raw.map(_to_json_text)
        bad = present & out.isna() & out.map(lambda v: isinstance(v, float))
        _report_rows(df, bad, problems, label, column, source, "not a JSON object",
                     _EXPECTED[dtype], "write the attributes as a JSON object", "bad_json")
        df[column] = out.where(~bad, None).astype("object")
        return
    raise ValueError(f"unknown dtype {dtype!r}")


def validate_table(
    df: pd.DataFrame, spec: TableSpec, problems: list[Problem], label: str,
    sources: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Coerce the declared columns and check emptiness and key uniqueness.

    ``sources`` maps canonical column names to the names the user's file uses, so
    messages speak the file's language. Returns a new frame; ``df`` is untouched.
    """
    sources = sources or {}
    df = df.copy()
    for col in spec.columns:
        if col.name not in df.columns:
            continue
        blank = _blank(df[col.name])  # before coercion: a bad value is not a missing one
        coerce(df, col.name, col.dtype, problems, label, sources.get(col.name, col.name))
        if col.required or col.non_empty:
            what = "empty value" if col.dtype == "str" else "missing value"
            _report_rows(df, blank, problems, label, col.name, sources.get(col.name, col.name),
                         what, "a non-empty text" if col.dtype == "str" else "a value",
                         f"fill in the {col.name}, or drop the row", "empty")
    key = [k for k in spec.key if k in df.columns]
    if key and len(key) == len(spec.key) and len(df):
        dup = df.duplicated(key, keep="first") & df[key].notna().all(axis=1)
        if dup.any():
            first = df[~df.duplicated(key, keep="first")].set_index(key)[ROW]
            shown = "+".join(sources.get(k, k) for k in key)
            for _, row in df[dup].iterrows():
                ident = tuple(row[k] for k in key)
                first_row = first.loc[ident if len(key) > 1 else ident[0]]
                problems.append(Problem(
                    label, f"duplicate {shown} (first seen in row {int(first_row)})",
                    f"each {shown} once", "remove or merge the duplicate rows",
                    row=int(row[ROW]), column=sources.get(key[0], key[0]),
                    value="/".join(map(str, ident)), kind="duplicate",
                ))
    return df


def check_references(
    child: pd.DataFrame, column: str, parent_ids: pd.Series, problems: list[Problem],
    label: str, parent_label: str, source: str | None = None,
    bad_parent_ids: pd.Series | None = None,
) -> None:
    """Every ``child[column]`` must exist in ``parent_ids`` (e.g. interactions -> items).

    Ids in ``bad_parent_ids`` exist but their parent row has a problem of its own;
    those children are reported as such, so the message points at the real cause.
    """
    known = child[column].isin(parent_ids) | child[column].isna()
    orphan_of_bad = ~known & child[column].isin(
        bad_parent_ids if bad_parent_ids is not None else [])
    source = source or column
    _report_rows(child, ~known & ~orphan_of_bad, problems, label, column, source,
                 f"unknown {column} (not in {parent_label})", f"an id present in {parent_label}",
                 f"add the missing rows to {parent_label}, or remove these rows", "unknown_ref")
    _report_rows(child, orphan_of_bad, problems, label, column, source,
                 f"{column} whose row in {parent_label} has a problem",
                 f"a valid row in {parent_label}", f"fix that row of {parent_label}",
                 "bad_parent")


def check_grades(
    judgments: pd.DataFrame, scale_name: str | None, problems: list[Problem],
    fatal: list[Problem], label: str, source: str = "grade",
) -> None:
    """Every grade must be on the configured scale (or one inferred from the values).

    Off-scale grades are row problems; values no scale explains are one fatal problem.
    """
    from shopaug.data.grades import SCALES, get_scale, infer_scale, infer_scale_of_most
    from shopaug.errors import ConfigError

    present = ~_blank(judgments["grade"])
    if not present.any():
        return
    if scale_name is None:
        try:
            scale = infer_scale(judgments.loc[present, "grade"].unique())
        except ConfigError as exc:
            scale = infer_scale_of_most(judgments.loc[present, "grade"])
            if scale is None:
                fatal.append(Problem(label, str(exc).split(";")[0], "grades on one of the "
                                     f"scales {sorted(SCALES)}",
                                     "set grade_scale in the data config", column=source,
                                     kind="bad_grade", fatal=True))
                return
    else:
        scale = get_scale(scale_name)
    bad = present & scale.gain_of(judgments["grade"]).isna()
    _report_rows(judgments, bad, problems, label, "grade", source,
                 f"grade not on the {scale.name!r} scale", f"one of {scale.labels}",
                 "correct the grade, or set grade_scale to the scale the file uses",
                 "bad_grade")
