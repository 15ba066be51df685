"""Content hashes of configs and values. Fails loud: an unhashable value raises
instead of being hashed under a random key (a bug history of HF datasets)."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from pathlib import PurePath
from typing import Any

from shopaug.errors import ShopAugError


class UnhashableError(ShopAugError, TypeError):
    """A value has no canonical form, so it cannot be part of a cache key."""


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)  # keeps 0.1 and 0.1000001 apart, stable across runs
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_canonical(v) for v in value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "model_dump"):  # pydantic models
        return _canonical(value.model_dump(mode="json"))
    raise UnhashableError(
        f"cannot fingerprint a {type(value).__name__}; use plain data (dict, list, str, "
        "number) in configs and cache keys"
    )


def canonical_json(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Any, length: int = 16) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]
