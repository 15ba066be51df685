"""Declared table schemas of a :class:`~shopaug.data.ShopData` bundle.

The schema is versioned: artifacts written by one version record it, and a
reader refuses a bundle whose major version differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SCHEMA_VERSION = "1.0"

DType = Literal["str", "float", "int", "timestamp", "json"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    required: bool = False
    #: string columns whose values must not be empty or whitespace-only
    non_empty: bool = False
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    doc: str = ""
    #: (column, referenced table, referenced column)
    references: tuple[tuple[str, str, str], ...] = field(default=())

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


# Provenance travels with every row, real or synthetic, so a synthetic row can
# never be mistaken for a real one and can always be traced to what made it.
PROVENANCE: tuple[Column, ...] = (
    Column("origin", "str", doc="'real' or 'synthetic'"),
    Column("augmenter", "str", doc="registry name of the augmenter that made the row"),
    Column("augmenter_version", "str"),
    Column("config_hash", "str", doc="hash of the augmenter's canonical config"),
    Column("llm_model", "str", doc="model identity, when an LLM was involved"),
    Column("prompt_id", "str", doc="prompt template id and version"),
    Column("seed", "int"),
    Column("quality_score", "float", doc="filter score in [0, 1], when scored"),
)
PROVENANCE_NAMES = tuple(c.name for c in PROVENANCE)
ORIGINS = ("real", "synthetic")

ITEMS = TableSpec(
    "items",
    key=("item_id",),
    columns=(
        Column("item_id", "str", required=True, non_empty=True),
        Column("title", "str", required=True, non_empty=True),
        Column("description", "str"),
        Column("category", "str"),
        Column("brand", "str"),
        Column("price", "float"),
        Column("attributes", "json", doc="JSON object of extra attributes"),
    ),
    doc="The catalog: one row per product.",
)
USERS = TableSpec(
    "users",
    key=("user_id",),
    columns=(
        Column("user_id", "str", required=True, non_empty=True),
        Column("profile_text", "str"),
    ),
    doc="Optional user table; extra profile columns are kept as they are.",
)
INTERACTIONS = TableSpec(
    "interactions",
    key=(),
    columns=(
        Column("user_id", "str", required=True, non_empty=True),
        Column("item_id", "str", required=True, non_empty=True),
        Column("timestamp", "timestamp", required=True),
        Column("event", "str", doc="view, click, cart, purchase, rating, ..."),
        Column("value", "float", doc="quantity, rating or weight; 1.0 when absent"),
        Column("session_id", "str", doc="session or basket id"),
    ),
    references=(("item_id", "items", "item_id"), ("user_id", "users", "user_id")),
    doc="User-item events.",
)
QUERIES = TableSpec(
    "queries",
    key=("query_id",),
    columns=(
        Column("query_id", "str", required=True, non_empty=True),
        Column("text", "str", required=True, non_empty=True),
    ),
    doc="Search queries.",
)
JUDGMENTS = TableSpec(
    "judgments",
    key=("query_id", "item_id"),
    columns=(
        Column("query_id", "str", required=True, non_empty=True),
        Column("item_id", "str", required=True, non_empty=True),
        Column("grade", "str", required=True, non_empty=True, doc="grade as given"),
        Column("gain", "float", doc="grade mapped onto [0, 1]; derived from grade"),
    ),
    references=(("query_id", "queries", "query_id"), ("item_id", "items", "item_id")),
    doc="Graded relevance of items for queries.",
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (ITEMS, USERS, INTERACTIONS, QUERIES, JUDGMENTS)
}
TABLE_NAMES = tuple(TABLES)
