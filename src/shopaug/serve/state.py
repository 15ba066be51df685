"""Load ``RUN_DIR/serving`` into an immutable :class:`ServingState`.

Everything a request needs is prepared here, once: item records as plain dicts, the
popularity list, per-user histories, a user x item matrix for co-purchases, so that
requests touch numpy arrays and dicts, not pandas. Loading refuses artifacts this
version cannot read, with a message that says what to do, before anything is served.
"""

from __future__ import annotations

import json
import math
import pickle
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shopaug.errors import ArtifactError
from shopaug.serve.export import FORMAT, FORMAT_VERSION, MANIFEST

#: the largest k an endpoint accepts; per-user lists are computed once at this length
MAX_K = 100
#: per-user recommendation lists kept (LRU), so memory stays bounded under any traffic
CACHE_USERS = 20_000
ITEM_FIELDS = ("item_id", "title", "category", "brand", "price")


def _major_minor(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return (0, 0)


def check_manifest(manifest: dict[str, Any], where: Path) -> None:
    """Raise ArtifactError when this shopaug cannot serve what ``manifest`` describes."""
    import shopaug
    from shopaug.data.schema import SCHEMA_VERSION

    redo = ("Fix: re-run the experiment with this shopaug (it re-exports serving/), or "
            "serve it with the shopaug version that wrote it")
    wrote = manifest.get("shopaug_version", "?")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{where} is serving format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r} (written by shopaug {wrote}); this shopaug "
            f"{shopaug.__version__} reads {FORMAT!r} version {FORMAT_VERSION}. {redo}")
    schema = str(manifest.get("schema_version", ""))
    if schema.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ArtifactError(
            f"{where} holds data of schema version {schema or '?'}; this shopaug reads "
            f"schema {SCHEMA_VERSION}. {redo}")
    if _major_minor(str(wrote)) > _major_minor(shopaug.__version__):
        raise ArtifactError(
            f"{where} was written by shopaug {wrote}, newer than this shopaug "
            f"{shopaug.__version__}. Fix: upgrade shopaug to {wrote} or later, or re-run the "
            "experiment with this version")
    if manifest.get("task") not in ("rec", "search"):
        raise ArtifactError(f"{where}: unknown task {manifest.get('task')!r}. {redo}")


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class ServingState:
    run_dir: Path
    manifest: dict[str, Any]
    models: dict[str, Any]
    items: list[dict[str, Any]]
    item_pos: dict[str, int]
    history: dict[str, list[str]]
    profiles: dict[str, str]
    popular: list[tuple[str, float]]
    #: user x item purchase matrix (csr; csc copy for column lookups) for co-purchases
    purchases: Any
    buyers: Any
    #: the best model's top-MAX_K (item positions, scores) of the most active users,
    #: computed in batches at load: a request then costs a dict lookup
    precomputed: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    _cache: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def active_users(self) -> list[str]:
        """Users by number of distinct items bought, most first (ties by id)."""
        if "_active" not in self.__dict__:
            self.__dict__["_active"] = sorted(self.history,
                                              key=lambda u: (-len(self.history[u]), u))
        return self.__dict__["_active"]

    @property
    def needs_candidates(self) -> bool:
        """The search model scores (query, item) pairs, not the whole catalog at once."""
        return not hasattr(self.models.get("search_model"), "query_scores")

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def best(self) -> dict[str, Any]:
        return self.manifest["best"]

    def item(self, item_id: str) -> dict[str, Any] | None:
        pos = self.item_pos.get(item_id)
        return None if pos is None else self.items[pos]

    def _listing(self, pairs: list[tuple[str, float]], k: int) -> list[dict[str, Any]]:
        out = []
        for item_id, score in pairs:
            record = self.item(item_id) or {"item_id": item_id}
            out.append({**record, "rank": len(out) + 1, "score": round(float(score), 6)})
            if len(out) == k:
                break
        return out

    # -- recommendations ----------------------------------------------------------
    def _cached(self, key: tuple[str, str], compute) -> list[tuple[str, float]]:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        value = compute()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_USERS:
                self._cache.popitem(last=False)
        return value

    def _model_top(self, role: str, user_id: str) -> list[tuple[str, float]]:
        if role == "recommender" and user_id in self.precomputed:
            positions, scores = self.precomputed[user_id]
            return [(self.items[p]["item_id"], s) for p, s in zip(positions.tolist(),
                                                                  scores.tolist(), strict=True)]

        def compute() -> list[tuple[str, float]]:
            recs = self.models[role].recommend([user_id], k=MAX_K)
            return list(zip(recs["item_id"].astype(str), recs["score"].astype(float),
                            strict=True))
        return self._cached((role, user_id), compute)

    def recommend(self, user_id: str, k: int) -> dict[str, Any]:
        """Top-``k`` items and why: the best model for users it knows ("history" or
        "profile"), else content on the profile, else popularity, labelled fallback."""
        model = self.models["recommender"]
        known = getattr(model, "user_index_", None)
        in_model = (user_id in known) if known is not None else (
            user_id in getattr(model, "user_vec_", self.history))
        has_history = user_id in self.history
        has_profile = bool(self.profiles.get(user_id))
        base = {"user_id": user_id, "history_items": len(self.history.get(user_id, ()))}
        if in_model and (has_history or has_profile):
            return {**base, "source": "model", "model": self.best["model"],
                    "reason": "history" if has_history else "profile",
                    "items": self._listing(self._model_top("recommender", user_id), k)}
        content = self.models.get("content")
        if has_profile and content is not None and user_id in content.user_vec_:
            return {**base, "source": "fallback", "model": "content", "reason": "profile",
                    "detail": "no purchase history the model knows; recommending from the "
                              "user's profile text",
                    "items": self._listing(self._model_top("content", user_id), k)}
        detail = ("user has purchases the model was not trained on" if has_history else
                  "known user without purchase history" if user_id in self.profiles else
                  "unknown user")
        return {**base, "source": "fallback", "model": "popularity",
                "reason": "cold_user" if user_id in self.profiles or has_history
                else "unknown_user",
                "detail": f"{detail}; recommending the most popular items",
                "items": self._listing(self.popular, k)}

    # -- similar items ------------------------------------------------------------
    def similar(self, item_id: str, k: int) -> dict[str, Any]:
        """Items like ``item_id``: item-kNN similarity, else content embeddings, else
        co-purchase counts."""
        knn = self.models.get("itemknn")
        if knn is not None and hasattr(knn, "similarity_"):
            pos = knn.item_ids_.searchsorted(item_id)  # categories are sorted
            if pos < len(knn.item_ids_) and knn.item_ids_[pos] == item_id:
                row = knn.similarity_.getrow(pos)
                pairs = [(str(knn.item_ids_[j]), v) for j, v in zip(row.indices, row.data,
                                                                    strict=True)]
                return {"item_id": item_id, "method": "itemknn",
                        "items": self._listing(_top(pairs, k), k)}
        content = self.models.get("content")
        if content is not None:
            vec = content.item_vectors([item_id])[0]
            if vec.any():
                scores = content.item_emb_ @ vec
                order = np.argsort(-scores, kind="stable")[: k + 1]
                pairs = [(str(content.item_ids_[j]), scores[j]) for j in order
                         if content.item_ids_[j] != item_id]
                return {"item_id": item_id, "method": "content",
                        "items": self._listing(pairs, k)}
        pos = self.item_pos[item_id]
        buyers = self.buyers[:, pos].nonzero()[0]
        counts = np.asarray(self.purchases[buyers].sum(axis=0)).ravel()
        counts[pos] = 0
        nz = np.flatnonzero(counts)
        pairs = [(self.items[j]["item_id"], counts[j]) for j in nz]
        return {"item_id": item_id, "method": "co_purchase", "items": self._listing(
            _top(pairs, k), k)}

    # -- search -------------------------------------------------------------------
    def search(self, query: str, k: int) -> dict[str, Any]:
        """Items for ``query``: BM25-like models score the whole catalog; other models
        rerank BM25's top candidates."""
        import pandas as pd

        model = self.models.get("search_model")
        if model is None:  # a rec run exported without bm25s installed
            return {"query": query, "model": None, "items": [],
                    "detail": "this run has no search index (bm25s was not installed)"}
        first = model if hasattr(model, "query_scores") else self.models.get("candidates")
        if first is None:
            return {"query": query, "model": self.best["model"], "items": []}
        scores = first.query_scores(query)
        # only matching items; ties by item id so results are reproducible
        hits = np.flatnonzero(scores > 0)
        n = k if first is model else max(MAX_K, k)
        hits = hits[np.lexsort((first.item_ids_.to_numpy()[hits], -scores[hits]))][:n]
        pairs = [(str(first.item_ids_.iat[j]), scores[j]) for j in hits]
        if first is not model and pairs:
            cands = pd.DataFrame({"query_id": "q", "item_id": [p[0] for p in pairs]})
            ranked = model.rank(pd.DataFrame({"query_id": ["q"], "text": [query]}), cands)
            pairs = list(zip(ranked["item_id"], ranked["score"], strict=True))
        return {"query": query, "model": (self.best["model"] if self.task == "search"
                                          else "bm25"), "items": self._listing(pairs, k)}


def _top(pairs: list[tuple[str, float]], k: int) -> list[tuple[str, float]]:
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:k]


def _load_pickle(path: Path) -> Any:
    # The pickles are this run's own exports: serve only run directories you trust.
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)
    except Exception as exc:  # a truncated or foreign pickle raises almost anything
        raise ArtifactError(f"cannot load {path}: {type(exc).__name__}: {exc}. Fix: re-run "
                            "the experiment to re-export serving/") from exc


def load_serving(run_dir: str | Path) -> ServingState:
    """Read and check ``run_dir/serving``; raises ArtifactError saying what to do."""
    import pandas as pd
    import scipy.sparse as sp

    run_dir = Path(run_dir)
    serving = run_dir / "serving"
    path = serving / MANIFEST
    if not path.is_file():
        raise ArtifactError(
            f"{run_dir} has no serving/{MANIFEST}: it is not an experiment run directory, "
            "the experiment ran with `export: false`, or its export failed (see `serving` in "
            "run_card.json). Fix: pass a run directory written by `shopaug experiment` (with "
            "export: true, the default)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}. Fix: re-run the experiment to "
                            "re-export serving/") from exc
    check_manifest(manifest, path)
    files = manifest.get("files", {})
    need = {"items", "history", "users"} | (
        {"recommender", "popularity"} if manifest["task"] == "rec" else {"search_model"})
    missing = sorted(f"{r} ({files.get(r, 'not listed')})" for r in need
                     if r not in files or not (serving / files[r]).is_file())
    if missing:
        raise ArtifactError(f"{serving} lacks {', '.join(missing)}. Fix: re-run the "
                            "experiment to re-export serving/")
    roles = [r for r in files if r not in ("items", "history", "users")]
    models = {r: _load_pickle(serving / files[r]) for r in roles}
    try:
        items = pd.read_parquet(serving / files["items"])
        history = pd.read_parquet(serving / files["history"])
        users = pd.read_parquet(serving / files["users"])
    except Exception as exc:
        raise ArtifactError(f"cannot read the tables in {serving}: {exc}. Fix: re-run the "
                            "experiment to re-export serving/") from exc
    items = items.drop_duplicates("item_id").reset_index(drop=True)
    cols = [c for c in ITEM_FIELDS if c in items.columns]
    records = [{c: _json_value(v) for c, v in row.items() if _json_value(v) is not None}
               for row in items[cols].to_dict("records")]
    item_pos = {r["item_id"]: i for i, r in enumerate(records)}
    history = history.sort_values(["user_id", "timestamp"], kind="stable")
    by_user = {str(u): list(dict.fromkeys(g.astype(str)))
               for u, g in history.groupby("user_id", sort=False)["item_id"]}
    profiles = ({str(u): str(t) for u, t in zip(users["user_id"], users["profile_text"],
                                                strict=True) if isinstance(t, str) and t.strip()}
                if "profile_text" in users.columns else {})
    profiles.update({str(u): "" for u in users["user_id"] if str(u) not in profiles})
    codes = history["item_id"].astype(str).map(item_pos)
    known = codes.notna().to_numpy()
    user_codes = pd.factorize(history["user_id"].astype(str))[0][known]
    purchases = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32),
         (user_codes, codes[known].to_numpy(dtype=np.int64))),
        shape=(int(user_codes.max(initial=-1)) + 1, len(records)))
    purchases.data[:] = 1.0  # count buyers, not purchase lines
    popular: list[tuple[str, float]] = []
    if "popularity" in models:
        top = models["popularity"].recommend(["_"], k=MAX_K)
        popular = list(zip(top["item_id"].astype(str), top["score"].astype(float), strict=True))
    return ServingState(run_dir=run_dir, manifest=manifest, models=models, items=records,
                        item_pos=item_pos, history=by_user, profiles=profiles, popular=popular,
                        purchases=purchases, buyers=purchases.tocsc(),
                        precomputed=_precompute(models.get("recommender"), by_user, item_pos))


def _precompute(model: Any, history: dict[str, list[str]], item_pos: dict[str, int],
                batch: int = 2000) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Top-MAX_K of up to CACHE_USERS of the most active users the model knows, scored
    in batches (one vectorised call per batch instead of one per request)."""
    known = getattr(model, "user_index_", None)
    if model is None or known is None:
        return {}
    users = sorted((u for u in history if u in known), key=lambda u: (-len(history[u]), u))
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for start in range(0, min(len(users), CACHE_USERS), batch):
        recs = model.recommend(users[start:start + batch], k=MAX_K)
        pos = recs["item_id"].map(item_pos)
        recs = recs[pos.notna()].assign(pos=pos[pos.notna()].astype(np.int32))
        for user, group in recs.groupby("user_id", sort=False):
            out[str(user)] = (group["pos"].to_numpy(np.int32),
                              group["score"].to_numpy(np.float64))
    return out
