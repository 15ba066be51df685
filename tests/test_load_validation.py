"""Bad input never crashes with a traceback and never drops rows silently."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

import shopaug
from shopaug import DataValidationError


def _error(path: Path, **options) -> str:
    with pytest.raises(DataValidationError) as err:
        shopaug.load(path, **options)
    return str(err.value)


def test_good_native_data_loads_every_table(native_dir):
    result = shopaug.load(native_dir)
    assert result.data.counts() == {"items": 5, "users": 3, "interactions": 8, "queries": 4,
                                    "judgments": 7}
    assert result.report.problems == []
    inter = result.data.interactions
    assert str(inter["timestamp"].dtype) == "datetime64[us]"
    assert inter["value"].tolist()[:2] == [2.0, 1.0]
    assert result.data.items.set_index("item_id").loc["i1", "attributes"] == '{"colour": "white"}'
    assert "country" in result.data.users.columns  # extra columns are kept


def test_missing_directory(tmp_path):
    assert "directory not found" in _error(tmp_path / "nope")


def test_missing_items_file(native_dir):
    (native_dir / "items.csv").unlink()
    msg = _error(native_dir)
    assert "items.csv" in msg and "file not found" in msg


def test_missing_required_column_names_missing_and_present(native_dir):
    (native_dir / "items.csv").write_text("item_id,name\ni1,Mug\n")
    msg = _error(native_dir)
    assert "missing required column(s) ['title']" in msg
    assert "['item_id', 'name']" in msg
    assert "columns:" in msg  # the fix names the remapping option


def test_column_remapping_fixes_other_names(native_dir):
    (native_dir / "items.csv").write_text("sku,name\ni1,Mug\ni2,Cushion\ni3,J\ni4,T\ni5,G\n")
    data = shopaug.load(native_dir, columns={"items": {"sku": "item_id", "name": "title"}}).data
    assert data.items["title"].tolist()[:2] == ["Mug", "Cushion"]


def test_wrong_types_name_row_column_and_value(native_dir):
    (native_dir / "items.csv").write_text(
        "item_id,title,price\ni1,Mug,4.5\ni2,Cushion,cheap\ni3,J,1\ni4,T,2\ni5,G,3\n")
    msg = _error(native_dir)
    assert "items.csv row 2, column 'price': not a number (got 'cheap')" in msg


def test_unparseable_timestamps(native_dir):
    path = native_dir / "interactions.csv"
    lines = path.read_text().splitlines()
    lines[3] = "u1,i3,the day after,purchase,1,b2"
    path.write_text("\n".join(lines) + "\n")
    msg = _error(native_dir)
    assert "interactions.csv row 3, column 'timestamp': unparseable timestamp" in msg
    assert "missing value" not in msg  # one problem, reported once


def test_one_bad_value_in_a_column_of_epochs_is_the_only_one_reported(native_dir):
    path = native_dir / "interactions.csv"
    lines = path.read_text().splitlines()
    for row in range(1, len(lines)):
        fields = lines[row].split(",")
        fields[2] = "yesterday" if row == 2 else str(1704103200 + row * 3600)
        lines[row] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    msg = _error(native_dir)
    assert "row 2, column 'timestamp': unparseable timestamp (got 'yesterday')" in msg
    assert "1 problem(s)" in msg  # the epochs around it are not blamed
    kept = shopaug.load(native_dir, on_bad_rows="quarantine").data.interactions
    assert len(kept) == len(lines) - 2
    assert kept["timestamp"].min() == pd.Timestamp("2024-01-01 11:00:00")


def test_iso_dates_epoch_seconds_and_epoch_ms_may_share_a_column(native_dir):
    path = native_dir / "interactions.csv"
    lines = path.read_text().splitlines()
    stamps = {1: "1704103200", 2: "1704103200000", 3: "2024-01-01T10:00:00Z"}
    for row, stamp in stamps.items():
        fields = lines[row].split(",")
        fields[2] = stamp
        lines[row] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    times = shopaug.load(native_dir).data.interactions["timestamp"].head(3)
    assert (times == pd.Timestamp("2024-01-01 10:00:00")).all()


def test_duplicate_ids_point_at_the_first(native_dir):
    with (native_dir / "items.csv").open("a") as fh:
        fh.write("i2,Another cushion,,home,,3,\n")
    assert "row 6, column 'item_id': duplicate item_id (first seen in row 2)" in _error(native_dir)


def test_duplicate_judgment_pairs(native_dir):
    with (native_dir / "judgments.csv").open("a") as fh:
        fh.write("q1,i1,3\n")
    assert "duplicate query_id+item_id" in _error(native_dir)


def test_interactions_pointing_at_unknown_items_and_users(native_dir):
    with (native_dir / "interactions.csv").open("a") as fh:
        fh.write("u1,i99,2024-03-01 10:00:00,purchase,1,b9\n")
        fh.write("ghost,i1,2024-03-01 10:00:00,purchase,1,b9\n")
    msg = _error(native_dir)
    assert "row 9, column 'item_id': unknown item_id (not in items.csv) (got 'i99')" in msg
    assert "row 10, column 'user_id': unknown user_id (not in users.csv) (got 'ghost')" in msg


def test_empty_titles(native_dir):
    (native_dir / "items.csv").write_text(
        "item_id,title\ni1,Mug\ni2,   \ni3,J\ni4,T\ni5,\n")
    msg = _error(native_dir)
    assert "column 'title': empty value in 2 row(s) (rows 2, 5)" in msg


def test_non_utf8_bytes_name_the_line_and_the_fix(native_dir):
    (native_dir / "queries.csv").write_bytes(b"query_id,text\nq1,caf\xe9 mug\nq2,c\nq3,t\nq4,d\n")
    msg = _error(native_dir)
    assert "queries.csv row 1: bytes that are not valid utf-8 at line 2" in msg
    assert "encoding" in msg
    fixed = shopaug.load(native_dir, encoding="latin-1").data
    assert fixed.queries["text"].iloc[0] == "café mug"


def test_truncated_csv(native_dir):
    text = (native_dir / "items.csv").read_text()
    (native_dir / "items.csv").write_text(text + 'i6,"Half a tit')
    msg = _error(native_dir)
    assert "items.csv row 6: unparseable record at line 7" in msg and "truncated" in msg


def test_row_with_missing_fields(native_dir):
    with (native_dir / "items.csv").open("a") as fh:
        fh.write("i6,Short row\n")
    assert "row 6: 2 fields instead of 7" in _error(native_dir)


def test_truncated_parquet(native_dir):
    items = pd.read_csv(native_dir / "items.csv")
    (native_dir / "items.csv").unlink()
    items.to_parquet(native_dir / "items.parquet")
    data = (native_dir / "items.parquet").read_bytes()
    (native_dir / "items.parquet").write_bytes(data[: len(data) // 2])
    msg = _error(native_dir)
    assert "items.parquet" in msg and "not a readable Parquet file" in msg


def test_truncated_jsonl(native_dir):
    (native_dir / "queries.csv").unlink()
    (native_dir / "queries.jsonl").write_text(
        '{"query_id": "q1", "text": "white mug"}\n{"query_id": "q2", "text": "cushion"}\n'
        '{"query_id": "q3", "text": "T恤"}\n{"query_id": "q4", "te')
    assert "queries.jsonl row 4: line 4 is not valid JSON" in _error(native_dir)


def test_empty_file(native_dir):
    (native_dir / "users.csv").write_text("")
    assert "users.csv: the file is empty" in _error(native_dir)


def test_two_files_for_one_table(native_dir):
    (native_dir / "users.jsonl").write_text('{"user_id": "u1"}\n')
    assert "several files for table users" in _error(native_dir)


def test_every_problem_is_listed_in_one_error(native_dir):
    (native_dir / "items.csv").write_text("item_id,title,price\ni1,,x\ni2,Cushion,1\n"
                                          "i3,J,1\ni4,T,1\ni5,G,1\n")
    (native_dir / "queries.csv").write_bytes(b"query_id,text\nq1,\xff\nq2,c\nq3,t\nq4,d\n")
    with pytest.raises(DataValidationError) as info:
        shopaug.load(native_dir)
    err = info.value
    kinds = {p.kind for p in err.problems}
    assert {"empty", "bad_number", "encoding"} <= kinds
    assert all(p.fix for p in err.problems)


def test_quarantine_sets_bad_rows_aside_and_counts_them(native_dir, tmp_path):
    with (native_dir / "items.csv").open("a") as fh:
        fh.write("i6,,,,,1,\ni7,Lamp,,,,not-a-price,\n")
    with (native_dir / "interactions.csv").open("a") as fh:
        fh.write("u1,i6,2024-03-01,purchase,1,b9\nu2,i99,2024-03-01,purchase,1,b9\n")
    out = tmp_path / "q"
    result = shopaug.load(native_dir, on_bad_rows="quarantine", quarantine_dir=str(out))
    assert result.report.quarantined == {"items": 2, "interactions": 2}
    assert result.data.counts()["items"] == 5 and result.data.counts()["interactions"] == 8
    bad_items = pd.read_csv(out / "items.quarantine.csv")
    assert bad_items["item_id"].tolist() == ["i6", "i7"]
    assert "empty value" in bad_items["_reason"].iloc[0]
    bad_inter = pd.read_csv(out / "interactions.quarantine.csv")
    reasons = dict(zip(bad_inter["item_id"], bad_inter["_reason"], strict=True))
    assert "has a problem" in reasons["i6"]  # orphan of a quarantined item
    assert "unknown item_id" in reasons["i99"]
    assert "quarantined: 2 items rows" in result.report.summary()


def test_quarantine_keeps_unparseable_records(native_dir, tmp_path):
    with (native_dir / "items.csv").open("a") as fh:
        fh.write("i6,Short row\n")
    result = shopaug.load(native_dir, on_bad_rows="quarantine", quarantine_dir=str(tmp_path))
    assert result.report.quarantined == {"unparsed records": 1}
    assert "i6,Short row" in (tmp_path / "unparsed.quarantine.csv").read_text()


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet", ".csv.gz"])
def test_other_file_kinds(native_dir, suffix):
    items = pd.read_csv(native_dir / "items.csv", dtype=str)
    (native_dir / "items.csv").unlink()
    target = native_dir / f"items{suffix}"
    if suffix == ".tsv":
        items.to_csv(target, sep="\t", index=False)
    elif suffix == ".jsonl":
        items.to_json(target, orient="records", lines=True, force_ascii=False)
    elif suffix == ".parquet":
        items.to_parquet(target)
    else:
        target.write_bytes(gzip.compress(items.to_csv(index=False).encode()))
    data = shopaug.load(native_dir).data
    assert data.items["title"].tolist()[3] == "T恤 男款 纯棉"


def test_unknown_loader_option_is_a_config_error(native_dir):
    with pytest.raises(shopaug.ConfigError, match="on_bad_row"):
        shopaug.load(native_dir, on_bad_row="quarantine")


def test_unknown_format_is_named():
    with pytest.raises(LookupError, match="no loader named 'parquetish'"):
        shopaug.load(".", format="parquetish")


def test_grade_off_the_scale_names_its_row(native_dir):
    with (native_dir / "judgments.csv").open("a") as fh:
        fh.write("q3,i1,9\n")
    msg = _error(native_dir, grade_scale="1-4")
    assert "judgments.csv row 8, column 'grade': grade not on the '1-4' scale (got '9')" in msg


def test_a_stray_grade_is_a_row_problem_that_quarantine_sets_aside(native_dir):
    with (native_dir / "judgments.csv").open("a") as fh:
        fh.write("q3,i1,9\nq999,i2,2\n")  # a grade no scale has, and an unknown query
    msg = _error(native_dir)  # the scale comes from the other grades, both are reported
    assert "row 8, column 'grade': grade not on the '1-4' scale (got '9')" in msg
    assert "q999" in msg
    result = shopaug.load(native_dir, on_bad_rows="quarantine")
    assert len(result.data.judgments) == 7 and result.data.grade_scale == "1-4"


def test_grades_no_scale_explains_are_one_clear_problem(native_dir):
    (native_dir / "judgments.csv").write_text("query_id,item_id,grade\nq1,i1,great\n")
    msg = _error(native_dir)
    assert "cannot tell the grade scale" in msg and "grade_scale" in msg


def test_timestamps_parse_by_position_when_index_labels_repeat():
    from shopaug.data.validate import to_timestamp

    values = pd.Series(["2024-01-01 10:00:00", "1704103200", "1704103200000", "soon", "1e30"],
                       index=[3, 3, 4, 4, 4])  # as after a concat; found by the fuzz test
    parsed = to_timestamp(values)
    assert parsed.index.tolist() == [3, 3, 4, 4, 4]
    assert parsed.iloc[:3].eq(pd.Timestamp("2024-01-01 10:00:00")).all()
    assert parsed.iloc[3:].isna().all()
    # seconds beside milliseconds past pandas' nanosecond range (the fuzz test's case)
    edge = to_timestamp(pd.Series([0.5, 9223372036855.0], index=[3, 4]))
    assert edge.tolist() == [pd.Timestamp("1970-01-01 00:00:00.5"),
                             pd.Timestamp("2262-04-11 23:47:16.855")]
