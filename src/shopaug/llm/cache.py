"""Persistent, content-addressed cache of LLM answers (SQLite in WAL mode).

The key hashes the engine, the model identity, the messages, the sampling
parameters, the seed, the schema and the prompt template. Every answer is
committed as soon as it arrives, so a run killed mid-way (even with SIGKILL)
restarts without repeating a single finished request.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shopaug.errors import ShopAugError
from shopaug.fingerprint import canonical_json
from shopaug.llm.types import ChatRequest, ChatResponse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    engine TEXT NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    finish_reason TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses(created);
"""


def default_cache_path() -> Path:
    base = os.environ.get("SHOPAUG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "shopaug")
    return Path(base) / "llm-cache.sqlite"


def beside_answers(name: str, answers: str | os.PathLike | None = None) -> Path:
    """The directory ``name`` next to the LLM answer file ``answers`` (default: next to
    :func:`default_cache_path`): where fine-tuned encoders and f16 weights are kept."""
    return Path(answers or default_cache_path()).parent / name


def cache_key(engine: str, model_id: str, request: ChatRequest) -> str:
    material = {"engine": engine, "model": model_id, **request.key_material()}
    return hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheInfo:
    path: str
    entries: int
    size_bytes: int
    by_model: dict[str, int]

    def __str__(self) -> str:
        models = ", ".join(f"{m}: {n:,}" for m, n in self.by_model.items()) or "none"
        return (f"{self.path}\n  {self.entries:,} answers, {self.size_bytes / 1e6:.1f} MB\n"
                f"  by model: {models}")


class LLMCache:
    """Thread-safe; one connection per thread."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ShopAugError(
                f"cannot open the LLM cache at {self.path}: {exc}. Fix: set llm.cache to a "
                "writable file, or SHOPAUG_CACHE_DIR") from exc
        self._local = threading.local()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process (only a power cut may lose the tail).
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, ChatResponse]:
        found: dict[str, ChatResponse] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT key, text, prompt_tokens, completion_tokens, seconds, finish_reason "
                f"FROM responses WHERE key IN ({marks})", chunk).fetchall()
            for key, text, pt, ct, sec, fin in rows:
                found[key] = ChatResponse(text, pt, ct, sec, fin, cached=True)
        return found

    def put(self, key: str, engine: str, model: str, response: ChatResponse) -> None:
        """Store one successful answer (failures are never cached)."""
        if response.error is not None:
            return
        self._conn.execute(
            "INSERT OR REPLACE INTO responses VALUES (?,?,?,?,?,?,?,?,?)",
            (key, engine, model, response.text, response.prompt_tokens,
             response.completion_tokens, response.seconds, response.finish_reason, time.time()))

    def info(self) -> CacheInfo:
        entries = self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        by_model = dict(self._conn.execute(
            "SELECT engine || ':' || model, COUNT(*) FROM responses GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall())
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return CacheInfo(str(self.path), entries, size, by_model)

    def prune(self, older_than_days: float | None = None, model: str | None = None,
              everything: bool = False) -> int:
        """Delete answers; returns how many. Needs at least one criterion."""
        clauses: list[str] = []
        args: list[object] = []
        if older_than_days is not None:
            clauses.append("created < ?")
            args.append(time.time() - older_than_days * 86400)
        if model is not None:
            clauses.append("(model = ? OR engine || ':' || model = ?)")
            args += [model, model]
        if not clauses and not everything:
            raise ShopAugError("prune needs --older-than-days, --model or --all")
        where = " AND ".join(clauses) or "1"
        deleted = self._conn.execute(f"DELETE FROM responses WHERE {where}", args).rowcount
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.execute("VACUUM")
        return int(deleted)

    def iter_keys(self) -> Iterable[str]:
        return (row[0] for row in self._conn.execute("SELECT key FROM responses"))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
