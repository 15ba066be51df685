"""Conformance kit every component passes (in the spirit of scikit-learn's
``check_estimator``): default construction, config round trip, unknown keys
rejected, no input mutation, same seed same output, empty input, and a clear
error on missing data.

    >>> from shopaug.testing import check_component
    >>> from shopaug.models.rec.popularity import Popularity
    >>> "same_seed_same_output" in check_component(Popularity)
    True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml

from shopaug.components import Component
from shopaug.data.bundle import ShopData
from shopaug.errors import ConfigError, SchemaError, ShopAugError


def sample_data() -> ShopData:
    """A tiny, real-shaped bundle: 6 items, 4 users, 3 months of purchases, 3 queries."""
    items = pd.DataFrame({
        "item_id": ["i1", "i2", "i3", "i4", "i5", "i6"],
        "title": ["White ceramic mug", "Red heart cushion", "Blue denim jacket",
                  "T恤 男款 纯棉", "Garden gnome", "Glass jar with lid"],
        "category": ["kitchen", "home", "fashion", "fashion", "garden", "kitchen"],
        "price": [4.5, 12.0, 49.99, 59.0, 8.25, 3.1],
    })
    rows = []
    for day, (user, item, basket) in enumerate([
        ("u1", "i1", "b1"), ("u1", "i2", "b1"), ("u2", "i1", "b2"), ("u3", "i4", "b3"),
        ("u2", "i5", "b4"), ("u1", "i3", "b5"), ("u4", "i1", "b6"), ("u3", "i1", "b7"),
        ("u2", "i2", "b8"), ("u1", "i6", "b9"), ("u4", "i6", "b10"), ("u3", "i6", "b11"),
    ]):
        rows.append({"user_id": user, "item_id": item, "session_id": basket,
                     "timestamp": pd.Timestamp("2024-01-01") + pd.Timedelta(days=7 * day),
                     "event": "purchase", "value": 1.0})
    queries = pd.DataFrame({"query_id": ["q1", "q2", "q3", "q4"],
                            "text": ["mug", "cushion", "jacket", "T恤"]})
    judgments = pd.DataFrame({"query_id": ["q1", "q1", "q2", "q3", "q4"],
                              "item_id": ["i1", "i6", "i2", "i3", "i4"],
                              "grade": ["4", "2", "4", "4", "4"]})
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u4"]})
    return ShopData(items=items, users=users, interactions=pd.DataFrame(rows),
                    queries=queries, judgments=judgments, grade_scale="1-4")


class ConformanceError(AssertionError):
    pass


def _require(condition: bool, check: str, detail: str) -> None:
    if not condition:
        raise ConformanceError(f"{check}: {detail}")


def _output_fingerprint(value: object) -> str:
    from shopaug.data.split import Split

    if isinstance(value, ShopData):
        return value.fingerprint()
    if isinstance(value, Split):
        return "|".join(p.fingerprint() for p in (value.train, value.test))
    if isinstance(value, pd.DataFrame):
        return str(pd.util.hash_pandas_object(value, index=False).sum())
    raise TypeError(type(value))


def _runner(component: Component, llm: object = None,
            run_dir: Path | None = None) -> Callable[[ShopData, int], object]:
    """The component's contract method as data, seed -> output."""
    kind = component.kind
    if kind == "splitter":
        return lambda data, seed: component.split(data, seed=seed)  # type: ignore[attr-defined]
    if kind == "recommender":
        def fit_recommend(data: ShopData, seed: int) -> pd.DataFrame:
            component.fit(data, seed=seed)  # type: ignore[attr-defined]
            users = sorted(set(data.interactions["user_id"]))
            return component.recommend(users, k=3)  # type: ignore[attr-defined]
        return fit_recommend
    if kind == "search_model":
        def fit_rank(data: ShopData, seed: int) -> pd.DataFrame:
            component.fit(data, seed=seed)  # type: ignore[attr-defined]
            return component.rank(  # type: ignore[attr-defined]
                data.queries[["query_id", "text"]],
                data.judgments[["query_id", "item_id"]].drop_duplicates())
        return fit_rank
    if kind in ("augmenter", "filter"):
        from shopaug.pipeline.runner import RunContext

        return lambda data, seed: component.run(  # type: ignore[attr-defined]
            data, RunContext(seed=seed, run_dir=run_dir or Path("."), progress=False,
                             _llm=llm))
    raise ConformanceError(f"no conformance checks for kind {kind!r}")


def check_component(cls: type[Component], data: ShopData | None = None,
                    config: dict | None = None, llm: object = None) -> list[str]:
    """Run every check on ``cls``; return the names of the checks that passed.

    Raises :class:`ConformanceError` naming the first failing check. Augmenters and
    filters run in a temporary run directory; ``llm`` (an `LLM`, e.g. over the
    fake engine) is what LLM augmenters get as ``ctx.llm``.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="shopaug-check-") as tmp:
        return _check(cls, data, config, llm, Path(tmp))


def _check(cls: type[Component], data: ShopData | None, config: dict | None, llm: object,
           run_dir: Path) -> list[str]:
    passed = []
    data = data if data is not None else sample_data()
    component = cls()
    passed.append("default_construction")

    component = cls(config or {})
    spec = json.loads(json.dumps(component.to_dict()))
    again = cls.from_dict(spec)
    _require(again.config == component.config, "config_round_trip", "JSON round trip changed it")
    from_yaml = cls.from_dict(yaml.safe_load(yaml.safe_dump(spec)))
    _require(from_yaml.config == component.config, "config_round_trip", "YAML round trip")
    passed.append("config_round_trip")

    try:
        cls({**(config or {}), "surely_not_a_key": 1})
    except ConfigError:
        passed.append("unknown_key_rejected")
    else:
        raise ConformanceError("unknown_key_rejected: an unknown config key was accepted")

    before = data.fingerprint()
    first = _runner(component, llm, run_dir)(data, 0)
    _require(data.fingerprint() == before, "no_input_mutation", "the input bundle changed")
    passed.append("no_input_mutation")

    second = _runner(cls(config or {}), llm, run_dir)(data, 0)
    _require(_output_fingerprint(first) == _output_fingerprint(second),
             "same_seed_same_output", "two runs with seed 0 differ")
    passed.append("same_seed_same_output")

    empty = ShopData(items=data.items)
    try:
        out = _runner(cls(config or {}), llm, run_dir)(empty, 0)
    except ShopAugError:
        passed.append("empty_input_clear_error")
    except Exception as exc:
        raise ConformanceError(
            f"empty_input: raised {type(exc).__name__}: {exc} instead of a ShopAugError "
            "or an empty result") from exc
    else:
        _require(out is not None, "empty_input", "returned None")
        passed.append("empty_input_ok")

    for table, columns in cls.requires.items():
        for column in columns:
            frame = data.table(table)
            frame[column] = None
            try:
                stripped = data.replace(**{table: frame})
            except SchemaError as exc:  # a required schema column: the bundle refuses it
                _require(column in str(exc), "missing_column_clear_error",
                         f"the error does not name {table}.{column}: {exc}")
                continue
            try:
                cls(config or {}).check_inputs(stripped)
            except SchemaError as exc:
                _require(f"{table}.{column}" in str(exc), "missing_column_clear_error",
                         f"the error does not name {table}.{column}: {exc}")
            else:
                raise ConformanceError(f"missing_column_clear_error: an empty {table}.{column} "
                                       "was not reported")
    passed.append("missing_column_clear_error")
    return passed
