"""UCI Online Retail (Chen 2015): invoice lines of a UK online gift retailer.

Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
CustomerID, Country; as the original ``Online Retail.xlsx``, a CSV export, or
Parquet. The documented cleaning, each step counted in the load report:
cancellations (InvoiceNo ``C...``), non-positive quantities (returns),
non-positive prices, guest lines without CustomerID and non-product stock codes
(POST, DOT, M, BANK CHARGES, gift vouchers...). Quantities are then summed per
basket line (invoice x stock code), giving one ``purchase`` interaction each.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shopaug.data.io import ROW
from shopaug.data.loaders.base import LoadContext, Loader
from shopaug.data.problems import Problem
from shopaug.data.validate import coerce

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
           "CustomerID", "Country")
#: product stock codes start with five digits (85123A, 22423); the rest are fees and notes
PRODUCT_CODE = r"^\d{5}"
_CANDIDATES = ("online_retail.parquet", "Online Retail.xlsx", "online_retail.xlsx",
               "online_retail.csv", "Online Retail.csv", "data.csv")


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in _CANDIDATES:
            if (path / name).is_file():
                return path / name
        return path / _CANDIDATES[0]
    return path


class OnlineRetailLoader(Loader):
    name = "online_retail"

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        path = _resolve(ctx.path)
        df = self._read_lines(ctx, path)
        if df is None:
            return {}
        label = path.name
        for col, dtype in (("Quantity", "float"), ("UnitPrice", "float"),
                           ("InvoiceDate", "timestamp"), ("InvoiceNo", "str"),
                           ("StockCode", "str"), ("CustomerID", "str"), ("Description", "str")):
            coerce(df, col, dtype, ctx.problems, label)
        # CustomerID is a float in the published files (17850.0): ids are its integer text
        df["CustomerID"] = df["CustomerID"].str.replace(r"\.0$", "", regex=True)
        unusable = df["Quantity"].isna() | df["UnitPrice"].isna() | df["InvoiceDate"].isna()
        df = df[~unusable]  # reported as problems by coerce (and quarantined as unparsed)

        products = df["StockCode"].str.upper().str.match(PRODUCT_CODE, na=False)
        steps = (
            ("cancellation lines (InvoiceNo C...)", df["InvoiceNo"].str.startswith("C", na=False)),
            ("non-product stock codes (POST, DOT, M, ...)", ~products),
            ("lines with quantity <= 0 (returns, adjustments)", df["Quantity"] <= 0),
            ("lines with unit price <= 0", df["UnitPrice"] <= 0),
        )
        keep = pd.Series(True, index=df.index)
        for reason, drop in steps:
            ctx.cleaned(reason, int((keep & drop).sum()))
            keep &= ~drop
        sold = df[keep]
        items = self._items(ctx, sold, label)
        guest = sold["CustomerID"].isna()
        ctx.cleaned("guest lines without CustomerID", int(guest.sum()))
        lines = sold[~guest & sold["StockCode"].isin(items["item_id"])]

        grouped = lines.groupby(["InvoiceNo", "StockCode"], sort=False)
        interactions = grouped.agg(
            user_id=("CustomerID", "first"), timestamp=("InvoiceDate", "min"),
            value=("Quantity", "sum"), unit_price=("UnitPrice", "mean"), _row=(ROW, "min"),
        ).reset_index().rename(columns={"InvoiceNo": "session_id", "StockCode": "item_id"})
        ctx.cleaned("duplicate basket lines merged (quantities summed)",
                    len(lines) - len(interactions))
        interactions["event"] = "purchase"
        users = lines.groupby("CustomerID", sort=False).agg(
            country=("Country", lambda s: s.mode().iat[0] if s.notna().any() else None),
            _row=(ROW, "min"),
        ).reset_index().rename(columns={"CustomerID": "user_id"})
        for table in ("items", "interactions", "users"):
            ctx.labels[table] = label
        ctx.sources["interactions"] = {"user_id": "CustomerID", "item_id": "StockCode",
                                       "timestamp": "InvoiceDate", "value": "Quantity",
                                       "session_id": "InvoiceNo"}
        ctx.sources["items"] = {"item_id": "StockCode", "title": "Description",
                                "price": "UnitPrice"}
        ctx.sources["users"] = {"user_id": "CustomerID"}
        return {"items": items, "users": users, "interactions": interactions}

    def _read_lines(self, ctx: LoadContext, path: Path) -> pd.DataFrame | None:
        if path.suffix.lower() in (".xlsx", ".xls"):
            try:
                import openpyxl  # noqa: F401
            except ImportError:
                ctx.problems.append(Problem(
                    path.name, "reading .xlsx needs openpyxl", "an installed openpyxl",
                    "pip install 'shopaug[excel]', or convert the file to CSV", fatal=True,
                    kind="dependency"))
                return None
            try:
                df = pd.read_excel(path, dtype={"InvoiceNo": str, "StockCode": str})
            except (OSError, ValueError) as exc:
                ctx.problems.append(Problem(path.name, f"unreadable workbook ({exc})",
                                            "the Online Retail workbook", "re-download it",
                                            kind="truncated", fatal=True))
                return None
            df[ROW] = range(1, len(df) + 1)
            ctx.labels["lines"] = path.name
            return _check_columns(ctx, df, path)
        df = ctx.read("interactions", path)
        return None if df is None else _check_columns(ctx, df, path)

    def _items(self, ctx: LoadContext, sold: pd.DataFrame, label: str) -> pd.DataFrame:
        """One row per stock code: its most frequent description and median price.

        Guest purchases count too: they show the product exists even when no known
        customer bought it (a cold-start item)."""
        described = sold[sold["Description"].notna()]
        counts = described.groupby(["StockCode", "Description"], sort=False).size()
        titles = counts.sort_values(ascending=False, kind="stable").reset_index()
        titles = titles.drop_duplicates("StockCode").set_index("StockCode")["Description"]
        stats = sold.groupby("StockCode", sort=False).agg(
            price=("UnitPrice", "median"), _row=(ROW, "min"))
        items = stats.join(titles.rename("title"), how="left").reset_index()
        items = items.rename(columns={"StockCode": "item_id"})
        no_title = items["title"].isna()
        ctx.cleaned("products never given a description", int(no_title.sum()))
        return items[~no_title][["item_id", "title", "price", ROW]]


def _check_columns(ctx: LoadContext, df: pd.DataFrame, path: Path) -> pd.DataFrame | None:
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        ctx.problems.append(Problem(
            path.name, f"missing Online Retail column(s) {missing}", f"columns {list(COLUMNS)}",
            f"this is not the UCI Online Retail layout; the file has "
            f"{[c for c in df.columns if c != ROW]}", kind="missing_column", fatal=True))
        return None
    return df
