"""Fuzzed inputs to every loader: a clear ShopAugError, never another exception.

Files are random bytes, or CSV/TSV/JSONL texts of random shape built around each
format's real column names (so parsing gets past the header check and into the
typed columns), in random encodings, with quotes, NaNs, empty and huge fields.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shopaug
from shopaug.errors import ShopAugError

#: format -> (file names in its directory, separator, the format's own column names)
LAYOUTS = {
    "native": ({"items.csv": ("item_id", "title", "category", "price"),
                "interactions.csv": ("user_id", "item_id", "timestamp", "event", "quantity"),
                "judgments.csv": ("query_id", "item_id", "grade")}, ","),
    "crowdflower": ({"train.csv": ("id", "query", "product_title", "product_description",
                                   "median_relevance", "relevance_variance")}, ","),
    "wands": ({"product.csv": ("product_id", "product_name", "product_class",
                               "rating_count"),
               "query.csv": ("query_id", "query", "query_class"),
               "label.csv": ("id", "query_id", "product_id", "label")}, "\t"),
    "online_retail": ({"online_retail.csv": (
        "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
        "CustomerID", "Country")}, ","),
    "amazon_reviews": ({"All_Beauty.jsonl": ("rating", "title", "text", "asin",
                                             "parent_asin", "user_id", "timestamp"),
                        "meta_All_Beauty.jsonl": ("parent_asin", "title", "main_category",
                                                  "price", "categories")}, "jsonl"),
    "esci": ({"shopping_queries_dataset_examples.parquet": (
        "example_id", "query", "query_id", "product_id", "product_locale", "esci_label",
        "small_version", "large_version", "split"),
        "shopping_queries_dataset_products.parquet": (
            "product_id", "product_title", "product_description", "product_locale")},
        "parquet"),
}

CANONICAL = ["item_id", "user_id", "query_id", "title", "text", "grade", "value", "gain",
             "timestamp", "description", "attributes", "origin"]

cells = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "NaN", "nan", "NULL", "None", "inf", "-1", "0", "1e308", "\"",
                     '"a,b"', "'", "\n", "\r\n", "2010-12-01 08:26:00", "Exact", "E", "3",
                     "B00YQ6X8EO", "us", "true"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.just("x" * 200_000),  # a huge field
)


@st.composite
def columns(draw, known: tuple[str, ...]) -> list[str]:
    if draw(st.booleans()):  # the real header: the fuzz then reaches the typed columns
        return list(known)
    chosen = draw(st.lists(st.sampled_from(known), max_size=len(known) + 1))
    # shopaug's own names too: a file may already hold the column a format renames to
    extra = draw(st.lists(st.one_of(st.text(max_size=6), st.sampled_from(CANONICAL)),
                          max_size=2))
    names = chosen + extra
    return draw(st.permutations(names)) if names else names


@st.composite
def delimited(draw, known: tuple[str, ...], sep: str) -> bytes:
    names = draw(columns(known))
    n_rows = draw(st.integers(0, 6))
    # rows may be short or long: ragged shapes are part of the fuzz
    ragged = draw(st.integers(0, 3)) == 0
    rows = [[draw(cells) for _ in range(draw(st.integers(0, len(names) + 2)) if ragged
             else len(names))] for _ in range(n_rows)]
    buf = io.StringIO()
    quoting = draw(st.booleans())
    for row in [names, *rows]:
        buf.write(sep.join(f'"{c}"' if quoting else c for c in row) + "\n")
    return _encode(draw, buf.getvalue())


@st.composite
def json_lines(draw, known: tuple[str, ...]) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        keys = draw(columns(known))
        values = st.one_of(cells, st.none(), st.floats(), st.booleans(),
                           st.lists(st.text(max_size=4), max_size=3),
                           st.dictionaries(st.text(max_size=4), st.text(max_size=4),
                                           max_size=2))
        obj = {k: draw(values) for k in keys}
        lines.append(json.dumps(obj) if draw(st.integers(0, 9)) else json.dumps(obj)[:-3])
    return _encode(draw, "\n".join(lines))


@st.composite
def parquet_file(draw, known: tuple[str, ...]) -> bytes:
    names = list(dict.fromkeys(draw(columns(known))))
    n = draw(st.integers(0, 5))
    kinds = st.sampled_from(["str", "int", "float", "bool", "none"])
    frame = {}
    for name in names:
        kind = draw(kinds)
        values = {"str": st.text(max_size=6), "int": st.integers(-(2**40), 2**40),
                  "float": st.floats(), "bool": st.booleans(), "none": st.none()}[kind]
        frame[name] = draw(st.lists(values, min_size=n, max_size=n))
    buf = io.BytesIO()
    pd.DataFrame(frame).to_parquet(buf, index=False)
    data = buf.getvalue()
    return data[: draw(st.integers(0, len(data)))] if draw(st.integers(0, 4)) == 0 else data


def _encode(draw, text: str) -> bytes:
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@st.composite
def file_bytes(draw, known: tuple[str, ...], sep: str) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    if sep == "jsonl":
        return draw(json_lines(known))
    if sep == "parquet":
        return draw(parquet_file(known))
    return draw(delimited(known, sep))


@st.composite
def datasets(draw, fmt: str) -> dict[str, bytes | None]:
    files, sep = LAYOUTS[fmt]
    # each file may be missing or empty, but is mostly there and fuzzed
    out: dict[str, bytes | None] = {}
    for name, known in files.items():
        pick = draw(st.integers(0, 9))
        out[name] = None if pick == 0 else b"" if pick == 1 else draw(file_bytes(known, sep))
    return out


def _check(fmt: str, files: dict[str, bytes | None]) -> None:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        for name, content in files.items():
            if content is not None:
                (root / name).write_bytes(content)
        try:
            shopaug.load(root, format=fmt)
        except ShopAugError as exc:
            assert str(exc).strip(), f"{type(exc).__name__} with an empty message"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("fmt", sorted(LAYOUTS))
def test_fuzzed_files_give_clear_errors_only(fmt):
    @settings(max_examples=50, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(files=datasets(fmt))
    def check(files):
        _check(fmt, files)

    check()


def test_the_real_fixtures_still_load():
    here = Path(__file__).parent / "data"
    for fmt in ("native", "crowdflower", "wands", "online_retail", "amazon_reviews", "esci"):
        assert shopaug.load(here / fmt, format=fmt).data.counts()
