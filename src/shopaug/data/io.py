"""Reading table files (CSV/TSV, Parquet, JSONL, optionally gzipped) into raw frames.

Nothing here raises on bad content: every problem becomes a :class:`Problem`
with its file and row, so one load reports all of them. Rows that cannot be
parsed are kept as problems (never dropped silently). Each returned frame has
a ``_row`` column with the 1-based data row number for later messages.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pandas as pd

from shopaug.data.problems import Problem

ROW = "_row"
SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".json", ".ndjson")
UTF8_FIX = (
    "save the file as UTF-8, or set `encoding:` in the data config to the file's real "
    "encoding (e.g. latin-1 or cp1252)"
)


def table_files(directory: Path, table: str) -> list[Path]:
    """Files in ``directory`` that could hold ``table`` (``items.csv``, ``items.jsonl.gz``...)."""
    found = []
    for suffix in SUFFIXES:
        for candidate in (directory / f"{table}{suffix}", directory / f"{table}{suffix}.gz"):
            if candidate.is_file():
                found.append(candidate)
    return found


def _kind(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    for suffix, kind in ((".parquet", "parquet"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                         (".json", "jsonl"), (".tsv", "tsv"), (".csv", "csv"), (".txt", "csv")):
        if name.endswith(suffix):
            return kind
    return "csv"


def read_table(
    path: Path,
    problems: list[Problem],
    *,
    encoding: str = "utf-8",
    sep: str | None = None,
    required: tuple[str, ...] = (),
    label: str | None = None,
) -> pd.DataFrame | None:
    """Read one file into a frame of raw values; ``None`` if it cannot be read at all.

    ``required`` columns are checked here so the message names what is missing and
    what the file has. ``label`` is the file name used in messages.
    """
    label = label or path.name
    if not path.exists():
        problems.append(Problem(
            label, "file not found", f"a file at {path}",
            "check the path, or the data directory's file names (items.csv, interactions.csv, ...)",
            kind="missing_file", fatal=True,
        ))
        return None
    kind = _kind(path)
    try:
        if kind == "parquet":
            df = _read_parquet(path, problems, label)
        else:
            raw = path.read_bytes()
            if path.name.lower().endswith(".gz"):
                raw = _gunzip(raw, problems, label)
            if raw is None:
                return None
            text = _decode(raw, encoding, problems, label)
            if kind == "jsonl":
                df = _read_jsonl(text, problems, label)
            else:
                sep = sep or ("\t" if kind == "tsv" else None)
                df = _read_delimited(text, sep, problems, label)
    except OSError as exc:
        problems.append(Problem(label, f"cannot read the file: {exc}", "a readable file",
                                "check the file's permissions", kind="unreadable", fatal=True))
        return None
    if df is None:
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        present = [c for c in df.columns if c != ROW]
        problems.append(Problem(
            label, f"missing required column(s) {missing}",
            f"columns {list(required)}",
            f"add the column(s), or map your names onto them with `columns:` in the data "
            f"config; the file has {present}",
            kind="missing_column", fatal=True,
        ))
    return df


def _gunzip(raw: bytes, problems: list[Problem], label: str) -> bytes | None:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        problems.append(Problem(label, f"not a complete gzip file ({exc})", "a gzip file",
                                "re-download or re-compress the file", kind="truncated",
                                fatal=True))
        return None


def _read_parquet(path: Path, problems: list[Problem], label: str) -> pd.DataFrame | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        df = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        problems.append(Problem(
            label, f"not a readable Parquet file ({exc})", "a complete Parquet file",
            "the file is probably truncated or not Parquet: write it again", kind="truncated",
            fatal=True,
        ))
        return None
    df[ROW] = range(1, len(df) + 1)
    return df


def _decode(raw: bytes, encoding: str, problems: list[Problem], label: str) -> str:
    """Decode, reporting every line with undecodable bytes (then replacing them)."""
    try:
        return raw.decode(encoding).removeprefix("\ufeff")
    except LookupError:
        problems.append(Problem(label, f"unknown encoding {encoding!r}", "a Python codec name",
                                "use e.g. utf-8, latin-1 or cp1252", kind="encoding", fatal=True))
        return raw.decode("utf-8", errors="replace")
    except UnicodeDecodeError:
        pass
    pos, line, reported = 0, 1, 0
    while pos < len(raw) and reported < 1000:
        try:
            raw[pos:].decode(encoding)
            break
        except UnicodeDecodeError as exc:
            bad = pos + exc.start
            line += raw.count(b"\n", pos, bad)
            end = raw.find(b"\n", bad)
            end = len(raw) if end < 0 else end
            problems.append(Problem(
                label, f"bytes that are not valid {encoding} at line {line}",
                f"{encoding} text", UTF8_FIX, row=line - 1,
                value=repr(raw[bad : min(bad + 8, end)]),
                kind="encoding",
            ))
            reported += 1
            line += 1
            pos = end + 1
    return raw.decode(encoding, errors="replace").removeprefix("\ufeff")


def _sniff_sep(text: str) -> str:
    header = text.split("\n", 1)[0]
    return "\t" if header.count("\t") > header.count(",") else ","


def _read_delimited(
    text: str, sep: str | None, problems: list[Problem], label: str
) -> pd.DataFrame | None:
    if not text.strip():
        problems.append(Problem(label, "the file is empty", "a header line and rows",
                                "write the header and the data", kind="empty", fatal=True))
        return None
    sep = sep or _sniff_sep(text)
    had_problems = any(p.file == label for p in problems)
    if not had_problems:
        df = _read_fast(text, sep)
        if df is not None:
            return df
    return _read_slow(text, sep, problems, label)


def _read_fast(text: str, sep: str) -> pd.DataFrame | None:
    """pyarrow's parser; ``None`` when the file needs row-by-row diagnosis."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    invalid = []
    try:
        header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=sep))
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            parse_options=pacsv.ParseOptions(
                delimiter=sep, newlines_in_values=True,
                invalid_row_handler=lambda row: invalid.append(row) or "skip",
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True, quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, StopIteration, csv.Error):
        return None
    if invalid or len(set(header)) != len(header):
        return None
    df = table.to_pandas()
    df[ROW] = range(1, len(df) + 1)
    return df


def _read_slow(text: str, sep: str, problems: list[Problem], label: str) -> pd.DataFrame | None:
    """Python's csv module: slower, but knows the row and line of every bad record."""
    # its default limit (131,072 characters per field) would call a long product
    # description a broken record; no field can be longer than the file
    limit = csv.field_size_limit(max(len(text), csv.field_size_limit()))
    try:
        return _read_records(text, sep, problems, label)
    finally:
        csv.field_size_limit(limit)


def _read_records(text: str, sep: str, problems: list[Problem],
                  label: str) -> pd.DataFrame | None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        problems.append(Problem(label, f"unreadable header ({exc})", "a header line",
                                "write a header line with the column names", kind="header",
                                fatal=True))
        return None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        problems.append(Problem(label, f"duplicate column names {dupes}", "unique column names",
                                "rename the repeated columns", kind="header", fatal=True))
        return None
    rows, numbers = [], []
    row = 0
    while True:
        start_line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row += 1
            problems.append(Problem(
                label, f"unparseable record at line {start_line} ({exc}); the file may be "
                "truncated", "a complete CSV record", "repair or re-export the file",
                row=row, value=text.splitlines()[start_line - 1][:200] if start_line else None,
                kind="bad_record",
            ))
            break  # the csv module cannot resynchronise after a broken quote
        if not record:
            continue
        row += 1
        if len(record) != len(header):
            problems.append(Problem(
                label, f"{len(record)} fields instead of {len(header)} at line {start_line}",
                f"{len(header)} fields like the header",
                "check for a truncated file, or quote values that contain the delimiter",
                row=row, value=sep.join(record)[:200], kind="bad_record",
            ))
            continue
        rows.append(record)
        numbers.append(row)
    df = pd.DataFrame(rows, columns=header, dtype="str") if rows else pd.DataFrame(
        {h: pd.Series(dtype="str") for h in header})
    df = df.replace("", None) if len(df) else df
    df[ROW] = numbers
    return df


def _read_jsonl(text: str, problems: list[Problem], label: str) -> pd.DataFrame | None:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array file is accepted too
        try:
            records = json.loads(stripped)
            df = pd.DataFrame.from_records(records)
            df[ROW] = range(1, len(df) + 1)
            return df
        except (ValueError, TypeError) as exc:
            problems.append(Problem(label, f"invalid JSON ({exc})", "a JSON array of objects",
                                    "repair the file (is it truncated?)", kind="bad_record",
                                    fatal=True))
            return None
    records, numbers = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(label, f"line {number} is not valid JSON ({exc})",
                                    "one JSON object per line",
                                    "repair the line; a bad last line means a truncated file",
                                    row=number, value=line[:200], kind="bad_record"))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(label, f"line {number} is not a JSON object",
                                    "one JSON object per line", "wrap the values in an object",
                                    row=number, value=line[:200], kind="bad_record"))
            continue
        records.append(record)
        numbers.append(number)
    if not records and not problems:
        problems.append(Problem(label, "the file is empty", "one JSON object per line",
                                "write the data", kind="empty", fatal=True))
        return None
    df = pd.DataFrame.from_records(records)
    df[ROW] = numbers
    return df
