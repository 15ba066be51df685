"""Column provenance: the values an augmenter wrote into rows it did not make.

A synthetic row names its augmenter in its own provenance columns. An augmenter
that fills a column of existing rows (``item_enrichment`` writing
``items.attributes``, ``user_profiles`` writing ``users.profile_text``) leaves no
such trace, so a :class:`~shopaug.data.bundle.ShopData` keeps one :class:`Fill` per
(augmenter, table, column) with the values those rows had before.
``ShopData.as_if_only`` reverts the fills of the augmenters left out, which lets a
model (or one source of a hybrid) train on some augmenters' output only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from shopaug.data.schema import PROVENANCE_NAMES

if TYPE_CHECKING:
    from shopaug.data.bundle import ShopData

#: the tables whose existing rows an augmenter can fill, by key
FILLABLE = {"items": "item_id", "users": "user_id"}


@dataclass(frozen=True, eq=False)
class Fill:
    augmenter: str
    table: str
    column: str
    #: key -> the value the row had before the augmenter wrote (None: empty, or the
    #: column did not exist)
    before: pd.Series
    #: the column did not exist before the augmenter wrote it
    created: bool = False

    def undo(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the filled rows' values put back (a column this fill created is
        dropped once nothing else has written to it)."""
        if self.column not in frame.columns:
            return frame
        key = frame[FILLABLE[self.table]].astype(str)
        hit = key.isin(self.before.index).to_numpy()
        values = frame[self.column].astype(object).to_numpy(copy=True)
        values[hit] = self.before.reindex(key[hit]).to_numpy(dtype=object)
        column = pd.Series(values, index=frame.index, dtype=object)
        if self.created and column.isna().all():
            return frame.drop(columns=self.column)
        with contextlib.suppress(TypeError, ValueError):  # a number column stays one
            column = column.astype(frame[self.column].dtype)
        return frame.assign(**{self.column: column})

    def digest(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        before = {str(k): (None if _null(v) else v) for k, v in self.before.items()}
        return {"augmenter": self.augmenter, "table": self.table, "column": self.column,
                "created": self.created, "before": before}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Fill:
        before = pd.Series(raw["before"], dtype=object)
        before.index = before.index.astype(str)
        return cls(raw["augmenter"], raw["table"], raw["column"], before,
                   bool(raw.get("created", False)))


def _null(value: Any) -> bool:
    """None, NaN, NaT or pd.NA (a list or dict value is never null)."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def diff_fills(before: ShopData, after: ShopData, augmenter: str) -> list[Fill]:
    """One :class:`Fill` per item or user column that ``after`` writes into rows that
    ``before`` already had (a row's value changed, or a new column has a value)."""
    fills = []
    for table, key in FILLABLE.items():
        old = getattr(before, table).drop_duplicates(key).set_index(key)
        new = getattr(after, table).drop_duplicates(key).set_index(key)
        new = new[new.index.isin(old.index)]
        if new.empty:
            continue
        for column in new.columns:
            if column in PROVENANCE_NAMES:
                continue
            created = column not in old.columns
            now = new[column]
            was = (pd.Series(None, index=now.index, dtype=object) if created
                   else old[column].reindex(now.index))
            both_null = now.isna().to_numpy() & was.isna().to_numpy()
            changed = ~both_null & (now.astype(str) != was.astype(str)).to_numpy()
            if changed.any():
                previous = was[changed].astype(object).where(was[changed].notna(), None)
                previous.index = previous.index.astype(str)
                fills.append(Fill(augmenter, table, column, previous, created))
    return fills
