"""`ShopData`: one immutable bundle of typed tables flowing through every stage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from shopaug.data.fills import Fill, diff_fills
from shopaug.data.grades import get_scale, infer_scale
from shopaug.data.problems import Problem, raise_if_any
from shopaug.data.schema import (
    ORIGINS,
    PROVENANCE,
    PROVENANCE_NAMES,
    SCHEMA_VERSION,
    TABLE_NAMES,
    TABLES,
    TableSpec,
)
from shopaug.data.validate import coerce
from shopaug.errors import SchemaError

_CANONICAL = {"str": "str", "float": "float64", "int": "Int64", "timestamp": "datetime64[us]"}
META_FILE = "shopdata.json"
FILLS_FILE = "fills.json"


def empty_table(name: str) -> pd.DataFrame:
    spec = TABLES[name]
    cols = {c.name: pd.Series(dtype=_CANONICAL.get(c.dtype, "object")) for c in spec.columns}
    cols.update({c.name: pd.Series(dtype=_CANONICAL[c.dtype]) for c in PROVENANCE})
    return pd.DataFrame(cols)


def _normalise(spec: TableSpec, df: pd.DataFrame, grade_scale: str | None) -> pd.DataFrame:
    missing = [c for c in spec.required if c not in df.columns]
    if missing:
        raise SchemaError(
            f"table {spec.name!r} lacks required column(s) {missing}; it has "
            f"{list(df.columns)}. Fix: rename or add the columns"
        )
    df = df.copy(deep=False)
    if spec.name == "judgments" and "gain" not in df.columns:
        df["gain"] = np.nan
    problems: list[Problem] = []
    for col in (*spec.columns, *PROVENANCE):
        if col.name not in df.columns:
            if col.name in PROVENANCE_NAMES:
                value = "real" if col.name == "origin" else None
                df[col.name] = pd.Series(value, index=df.index, dtype=_CANONICAL[col.dtype])
            continue
        if str(df[col.name].dtype) != _CANONICAL.get(col.dtype, "object") or (
                col.dtype == "json" and _holds_objects(df[col.name])):
            coerce(df, col.name, col.dtype, problems, f"table {spec.name!r}")
    raise_if_any(problems, f"table {spec.name!r} has values of the wrong type:")
    for col in spec.columns:  # an id, title or time missing would go wrong much later
        if col.required and col.name in df.columns:
            values = df[col.name]
            empty = values.isna() | (values == "") if col.non_empty else values.isna()
            if col.non_empty and spec.name in ("items", "queries"):  # small tables: titles
                empty |= values.str.strip().eq("").fillna(False).astype(bool)
            if empty.any():
                rows = (np.flatnonzero(empty.to_numpy())[:5] + 1).tolist()
                raise SchemaError(
                    f"table {spec.name!r}: {int(empty.sum()):,} row(s) with no "
                    f"{col.name} (rows {rows}). Fix: fill them in or drop those rows")
    df["origin"] = df["origin"].fillna("real")  # rows with no origin given are real data
    bad_origin = ~df["origin"].isin(ORIGINS)
    if bad_origin.any():
        raise SchemaError(
            f"table {spec.name!r}: origin must be one of {ORIGINS}, got "
            f"{sorted(df.loc[bad_origin, 'origin'].astype(str).unique())[:5]}"
        )
    if spec.name == "judgments" and len(df) and (grade_scale or df["gain"].isna().any()):
        scale = get_scale(grade_scale) if grade_scale else infer_scale(df["grade"].unique())
        gains = scale.gain_of(df["grade"])
        # also when gains are given: judgments of another scale must not mix in
        off = df["grade"].notna() & gains.isna()
        if grade_scale and off.any():
            bad = sorted(df.loc[off, "grade"].astype(str).unique())[:5]
            raise SchemaError(f"grades {bad} are not on this bundle's {grade_scale!r} scale. "
                              "Fix: map them onto it first, or keep the bundles apart")
        df["gain"] = df["gain"].fillna(gains)
        if df["gain"].isna().any():
            bad = sorted(df.loc[df["gain"].isna(), "grade"].astype(str).unique())[:5]
            raise SchemaError(
                f"grades {bad} are not on the {scale.name!r} scale {scale.labels}. Fix: set "
                "grade_scale to the scale your judgments use"
            )
    declared = [c.name for c in spec.columns if c.name in df.columns]
    extras = [c for c in df.columns if c not in declared and c not in PROVENANCE_NAMES]
    return df[[*declared, *extras, *PROVENANCE_NAMES]].reset_index(drop=True)


def _holds_objects(values: pd.Series) -> bool:
    """Whether a JSON column holds dicts (or lists) rather than JSON text."""
    return bool(values.map(lambda v: isinstance(v, dict | list)).any())


class ShopData:
    """Immutable bundle of the tables ``items``, ``users``, ``interactions``,
    ``queries`` and ``judgments``.

    Table accessors return copy-on-write views: changing one never changes the
    bundle. Every row carries provenance columns (``origin`` real/synthetic, the
    augmenter, its config hash, the LLM model, prompt id, seed, quality score).
    Values an augmenter wrote into rows it did not make are recorded in ``fills``
    (see :mod:`shopaug.data.fills`).

    >>> import pandas as pd
    >>> data = ShopData(items=pd.DataFrame({"item_id": ["a"], "title": ["Red mug"]}))
    >>> data.counts()["items"], data.items["origin"].tolist()
    (1, ['real'])
    """

    __slots__ = ("_frames", "fills", "grade_scale", "schema_version")

    def __init__(
        self,
        items: pd.DataFrame | None = None,
        users: pd.DataFrame | None = None,
        interactions: pd.DataFrame | None = None,
        queries: pd.DataFrame | None = None,
        judgments: pd.DataFrame | None = None,
        *,
        grade_scale: str | None = None,
        schema_version: str = SCHEMA_VERSION,
        fills: Sequence[Fill] = (),
    ) -> None:
        if schema_version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise SchemaError(
                f"data has schema version {schema_version}, this shopaug reads "
                f"{SCHEMA_VERSION}. Fix: re-create the data with this version of shopaug"
            )
        given = dict(items=items, users=users, interactions=interactions, queries=queries,
                     judgments=judgments)
        frames = {
            name: empty_table(name) if df is None else _normalise(TABLES[name], df, grade_scale)
            for name, df in given.items()
        }
        object.__setattr__(self, "_frames", MappingProxyType(frames))
        if grade_scale is None and len(frames["judgments"]):
            grade_scale = infer_scale(frames["judgments"]["grade"].unique()).name
        object.__setattr__(self, "grade_scale", grade_scale)
        object.__setattr__(self, "schema_version", SCHEMA_VERSION)
        object.__setattr__(self, "fills", tuple(fills))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ShopData is immutable; use .replace(...) to derive a new one")

    # -- tables ---------------------------------------------------------------
    def table(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            raise KeyError(f"no table {name!r}; tables are {list(TABLE_NAMES)}")
        return self._frames[name].copy(deep=False)

    @property
    def items(self) -> pd.DataFrame:
        return self.table("items")

    @property
    def users(self) -> pd.DataFrame:
        return self.table("users")

    @property
    def interactions(self) -> pd.DataFrame:
        return self.table("interactions")

    @property
    def queries(self) -> pd.DataFrame:
        return self.table("queries")

    @property
    def judgments(self) -> pd.DataFrame:
        return self.table("judgments")

    def tables(self) -> Mapping[str, pd.DataFrame]:
        return {name: self.table(name) for name in TABLE_NAMES}

    # -- deriving new bundles ---------------------------------------------------
    def replace(self, **tables: pd.DataFrame) -> ShopData:
        """A new bundle with some tables replaced (validated like the constructor)."""
        unknown = set(tables) - set(TABLE_NAMES)
        if unknown:
            raise KeyError(f"unknown table(s) {sorted(unknown)}; tables are {list(TABLE_NAMES)}")
        merged = {name: tables.get(name, self._frames[name]) for name in TABLE_NAMES}
        return ShopData(**merged, grade_scale=self.grade_scale, fills=self.fills)

    def append(self, table: str, rows: pd.DataFrame) -> ShopData:
        """Add rows (usually synthetic) to one table."""
        if len(rows) == 0:
            return self
        new = _normalise(TABLES[table], rows, self.grade_scale)
        return self.replace(**{table: pd.concat([self._frames[table], new], ignore_index=True)})

    def select(self, origin: str) -> ShopData:
        """Only the rows of one origin ('real' or 'synthetic') in every table."""
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}")
        return self.replace(**{n: df[df["origin"] == origin] for n, df in self._frames.items()})

    def real(self) -> ShopData:
        return self.select("real")

    def keep_augmenters(self, augmenters: Sequence[str] | None,
                        table: str = "interactions") -> ShopData:
        """The real rows of ``table`` plus the synthetic rows the given augmenters made
        (None: every row; empty: real rows only). Other tables are left as they are."""
        if augmenters is None:
            return self
        frame = self._frames[table]
        keep = (frame["origin"] == "real") | frame["augmenter"].isin(list(augmenters))
        return self.replace(**{table: frame[keep]})

    def as_if_only(self, augmenters: Sequence[str] | None) -> ShopData:
        """The bundle as if only ``augmenters`` had run (None: all of them; empty: none):
        the others' synthetic rows leave every table, and the values they wrote into
        other rows' columns (enriched attributes, profiles) are put back. A value that a
        kept augmenter wrote over a left-out one's goes back too."""
        if augmenters is None:
            return self
        keep = set(augmenters)
        frames = {name: df[(df["origin"] == "real") | df["augmenter"].isin(keep)]
                  for name, df in self._frames.items()}
        for fill in reversed(self.fills):
            if fill.augmenter not in keep:
                frames[fill.table] = fill.undo(frames[fill.table])
        return ShopData(**frames, grade_scale=self.grade_scale,
                        fills=[f for f in self.fills if f.augmenter in keep])

    def record_fills(self, before: ShopData, augmenter: str) -> ShopData:
        """This bundle, made by ``augmenter`` from ``before``, with the values it wrote
        into ``before``'s rows recorded as that augmenter's fills."""
        fills = (*before.fills, *diff_fills(before, self, augmenter))
        if len(fills) == len(self.fills) and all(
                a is b for a, b in zip(fills, self.fills, strict=True)):
            return self
        return ShopData(**self._frames, grade_scale=self.grade_scale, fills=fills)

    def synthetic(self) -> ShopData:
        return self.select("synthetic")

    # -- facts ----------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {name: len(df) for name, df in self._frames.items()}

    def origin_counts(self) -> dict[str, dict[str, int]]:
        return {
            name: {o: int((df["origin"] == o).sum()) for o in ORIGINS}
            for name, df in self._frames.items()
        }

    def fingerprint(self) -> str:
        """Content hash of every table (order-sensitive)."""
        digest = hashlib.sha256(f"{self.schema_version}|{self.grade_scale}".encode())
        for name in TABLE_NAMES:
            df = self._frames[name]
            digest.update(f"|{name}|{list(df.columns)}|".encode())
            if len(df):
                digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        for fill in self.fills:
            digest.update(f"|fill|{fill.digest()}".encode())
        return digest.hexdigest()

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v:,}" for k, v in self.counts().items())
        return f"ShopData({counts}, schema={self.schema_version})"

    # -- persistence ------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the bundle as Parquet tables plus ``shopdata.json``, atomically. The
        directory is replaced as a whole, so it must be new, empty or a saved bundle."""
        from shopaug import __version__
        from shopaug.artifacts import atomic_dir
        from shopaug.errors import ArtifactError

        target = Path(directory)
        if target.exists() and not target.is_dir():
            raise ArtifactError(f"cannot save a ShopData to {target}: it is a file. Fix: "
                                "give a directory path")
        if (target.is_dir() and not (target / META_FILE).is_file()
                and any(target.iterdir())):
            raise ArtifactError(f"{target} holds other files and is not a saved ShopData; "
                                "saving replaces the whole directory. Fix: save to a new "
                                "or empty directory")

        with atomic_dir(directory) as tmp:
            for name, df in self._frames.items():
                df.to_parquet(tmp / f"{name}.parquet", index=False)
            meta = {"schema_version": self.schema_version, "grade_scale": self.grade_scale,
                    "shopaug_version": __version__, "counts": self.counts()}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
            if self.fills:
                (tmp / FILLS_FILE).write_text(json.dumps(
                    [f.to_dict() for f in self.fills], default=str) + "\n")
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path) -> ShopData:
        """Read a bundle written by :meth:`save` (schema version checked)."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise SchemaError(f"{directory} is not a saved ShopData (no {META_FILE}). Fix: "
                              "use shopaug.load() for raw data files")
        from shopaug.errors import ArtifactError

        try:
            meta = json.loads(meta_path.read_text())
            version = meta["schema_version"]
            frames = {n: pd.read_parquet(directory / f"{n}.parquet") for n in TABLE_NAMES}
            fills_path = directory / FILLS_FILE
            fills = ([Fill.from_dict(f) for f in json.loads(fills_path.read_text())]
                     if fills_path.is_file() else [])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(f"{directory} is a damaged ShopData ({type(exc).__name__}: "
                                f"{exc}). Fix: save the bundle again") from None
        return cls(**frames, grade_scale=meta.get("grade_scale"), schema_version=version,
                   fills=fills)
