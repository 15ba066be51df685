"""The UCI Online Retail loader, on a hand-written file in the published layout."""

from __future__ import annotations

import pandas as pd
import pytest

import shopaug
from conftest import DATA, SHARED
from shopaug.datasets import demo_path

FIXTURE = DATA / "online_retail" / "online_retail.csv"


@pytest.fixture(scope="module")
def loaded():
    return shopaug.load(FIXTURE, format="online_retail")


def test_documented_cleaning_is_counted(loaded):
    assert loaded.report.cleaning == {
        "cancellation lines (InvoiceNo C...)": 1,
        "non-product stock codes (POST, DOT, M, ...)": 3,
        "lines with quantity <= 0 (returns, adjustments)": 1,
        "lines with unit price <= 0": 1,
        "guest lines without CustomerID": 1,
        "duplicate basket lines merged (quantities summed)": 1,
    }


def test_no_line_is_unaccounted_for(loaded):
    lines = len(pd.read_csv(FIXTURE))
    kept = loaded.data.counts()["interactions"]
    assert kept + sum(loaded.report.cleaning.values()) == lines


def test_basket_lines_are_aggregated(loaded):
    inter = loaded.data.interactions.set_index(["session_id", "item_id"])
    assert inter.loc[("536365", "71053"), "value"] == 8.0
    assert inter.loc[("536365", "71053"), "event"] == "purchase"
    assert set(loaded.data.interactions["user_id"]) == {"17850", "13047", "12583"}


def test_items_take_the_most_frequent_description(loaded):
    items = loaded.data.items.set_index("item_id")
    assert items.loc["85123A", "title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    # bought only by a guest: still in the catalog, a cold item
    assert items.loc["21730", "title"] == "GLASS STAR FROSTED T-LIGHT HOLDER"
    assert "POST" not in items.index


def test_users_carry_their_country(loaded):
    users = loaded.data.users.set_index("user_id")
    assert users.loc["12583", "country"] == "France"


def test_not_online_retail_layout_is_named(tmp_path):
    path = tmp_path / "online_retail.csv"
    path.write_text("invoice,sku\n1,2\n")
    with pytest.raises(shopaug.DataValidationError, match="missing Online Retail column"):
        shopaug.load(path, format="online_retail")


def test_bad_quantity_is_reported_with_its_row(tmp_path):
    text = FIXTURE.read_text().replace("536366,22633,HAND WARMER UNION JACK,6,",
                                       "536366,22633,HAND WARMER UNION JACK,six,")
    (tmp_path / "online_retail.csv").write_text(text)
    with pytest.raises(shopaug.DataValidationError, match="row 4, column 'Quantity'"):
        shopaug.load(tmp_path / "online_retail.csv", format="online_retail")


def test_xlsx_like_the_uci_download(tmp_path):
    pytest.importorskip("openpyxl")
    path = tmp_path / "Online Retail.xlsx"
    pd.read_csv(FIXTURE, dtype={"InvoiceNo": str, "StockCode": str}).to_excel(path, index=False)
    data = shopaug.load(tmp_path, format="online_retail").data
    assert data.counts()["interactions"] == 8


def test_shipped_demo_data_loads():
    result = shopaug.load(demo_path(), format="online_retail")
    counts = result.data.counts()
    assert 300 <= counts["users"] <= 700
    assert counts["interactions"] > 10_000
    assert demo_path().stat().st_size < 2_000_000


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "online_retail").exists(), reason="needs ../shared/data")
def test_full_file_matches_the_reference_numbers():
    result = shopaug.load(SHARED / "online_retail" / "online_retail.parquet",
                          format="online_retail")
    data = result.data
    inter = data.interactions
    # ../shared/data/README.md: 4,334 customers, 3,659 items, 18,402 baskets
    assert inter["user_id"].nunique() == 4334
    assert inter["item_id"].nunique() == 3659
    assert inter["session_id"].nunique() == 18402
    lines = 541_909
    assert len(inter) + sum(result.report.cleaning.values()) == lines
