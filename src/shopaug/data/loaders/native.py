"""shopaug's native format: a directory of ``items``, ``users``, ``interactions``,
``queries`` and ``judgments`` files (CSV, TSV, Parquet or JSONL; optionally .gz).

Only ``items`` is required. See the README for the columns of each file.
"""

from __future__ import annotations

import pandas as pd

from shopaug.data.io import table_files
from shopaug.data.loaders.base import LoadContext, Loader
from shopaug.data.problems import Problem
from shopaug.data.schema import TABLES


class NativeLoader(Loader):
    name = "native"

    def read(self, ctx: LoadContext) -> dict[str, pd.DataFrame]:
        if not ctx.path.is_dir():
            fix = ("give the format of this file (--format online_retail, crowdflower, esci, "
                   "wands or amazon_reviews), or the native directory that holds the files"
                   if ctx.path.is_file() else
                   "give the path of the directory that holds the files")
            ctx.problems.append(Problem(
                str(ctx.path), "not a directory" if ctx.path.exists() else "directory not found",
                "a directory with items.csv (or .parquet, .jsonl) and optional users, "
                "interactions, queries, judgments files", fix, kind="missing_file", fatal=True,
            ))
            return {}
        raw: dict[str, pd.DataFrame] = {}
        for name, spec in TABLES.items():
            found = table_files(ctx.path, name)
            if len(found) > 1:
                ctx.problems.append(Problem(
                    str(ctx.path), f"several files for table {name}: "
                    f"{[f.name for f in found]}", "one file per table",
                    "remove or rename all but one", kind="ambiguous", fatal=True))
                continue
            if not found:
                if name == "items":
                    ctx.read(name, ctx.path / "items.csv")  # reports the missing file
                continue
            df = ctx.read(name, found[0], required=spec.required)
            if df is not None:
                raw[name] = df
        return raw
