"""Write ``serving/``: the best model of an experiment plus what a service needs around it
(fallbacks for cold users, the catalog, history, profiles, a search index), described by
``manifest.json`` so a server can refuse artifacts it cannot read."""

from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path
from typing import Any

from shopaug.artifacts import atomic_write_bytes, atomic_write_json
from shopaug.data.bundle import ShopData
from shopaug.data.schema import SCHEMA_VERSION
from shopaug.evaluate.compare import BASELINE

FORMAT = "shopaug-serving"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

log = logging.getLogger(__name__)


def _best(summary: dict[str, Any], fitted: dict) -> tuple[str, str, float | None]:
    """(model, arm, value) with the highest primary metric on slice "all"; an augmented
    arm only when its lift over the same model's baseline is significant."""
    metric = summary.get("primary_metric")
    rows = [r for r in summary.get("results", [])
            if r.get("metric") == metric and (r["model"], r["arm"]) in fitted]
    slices = {r.get("slice") for r in rows}
    # search runs may slice differently; "all" when there, else the first slice seen
    wanted = "all" if "all" in slices else next((r.get("slice") for r in rows), None)
    rows = [r for r in rows if r.get("slice") == wanted and r.get("mean") == r.get("mean")]
    if not rows:
        model, arm = next(iter(fitted))
        return model, arm, None
    # ties go to the baseline (no synthetic data needed), then to config order
    top = max(rows, key=lambda r: (r["mean"], r["arm"] == BASELINE))
    if top["arm"] != BASELINE and not _significant_gain(summary, top, wanted):
        # a lift within noise is no reason to serve a model trained on synthetic data
        base = next((r for r in rows if r["model"] == top["model"] and r["arm"] == BASELINE),
                    None)
        if base is not None:
            return base["model"], BASELINE, float(base["mean"])
    return top["model"], top["arm"], float(top["mean"])


def _significant_gain(summary: dict[str, Any], row: dict[str, Any], slice_: str) -> bool:
    """Whether ``row``'s arm beats its model's baseline with an interval above zero."""
    return any(r["model"] == row["model"] and r["arm"] == row["arm"]
               and r.get("slice") == slice_ and r.get("metric") == row["metric"]
               and r.get("excludes_zero") and r.get("mean", 0) > 0
               for r in summary.get("lift", []))


def _baseline_value(summary: dict[str, Any], model: str) -> float | None:
    metric = summary.get("primary_metric")
    for r in summary.get("results", []):
        if (r["model"], r["arm"], r.get("metric"), r.get("slice")) == (
                model, BASELINE, metric, "all"):
            return float(r["mean"])
    return None


def _pickle(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _by_kind(fitted: dict, name: str) -> Any | None:
    """The fitted model whose registry name is ``name``, preferring the baseline arm
    (fallbacks describe real data)."""
    hits = [(arm != BASELINE, model) for (_, arm), (model, _) in fitted.items()
            if getattr(model, "name", None) == name]
    return min(hits, key=lambda h: h[0])[1] if hits else None


def _catalog_bm25(real: ShopData, notes: list[str]) -> Any | None:
    """BM25 over the catalog, or None (with a note) when bm25s is not installed."""
    from shopaug.models.search.lexical import BM25

    try:
        return BM25().fit(real)
    except ImportError:
        notes.append("no search index: bm25s is not installed (pip install 'shopaug[search]')")
        return None


def export_models(out_dir: Path, *, config: Any,
                  fitted: dict[tuple[str, str], tuple[Any, ShopData]],
                  summary: dict[str, Any], data: ShopData) -> dict[str, Any]:
    """Export the best (model, arm) and its companions to ``out_dir``; returns the
    run-card entry (what was exported, and the metric that chose it).

    A failure here is reported in the entry, not raised: the experiment's results are
    worth keeping without a servable model, and the manifest (written last) is then
    absent, so ``shopaug serve`` refuses the directory with a clear message."""
    if not fitted:
        return {"exported": False, "reason": "no fitted models"}
    try:
        return _export(Path(out_dir), config, fitted, summary, data)
    except Exception as exc:  # unpicklable models, full disks, ...: keep the run
        log.warning("could not export the best model to %s: %s", out_dir, exc)
        return {"exported": False, "reason": f"{type(exc).__name__}: {exc}"}


def _export(out_dir: Path, config: Any, fitted: dict, summary: dict[str, Any],
            data: ShopData) -> dict[str, Any]:
    import shopaug

    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    model_name, arm, value = _best(summary, fitted)
    best, _train = fitted[(model_name, arm)]
    files: dict[str, str] = {}
    real = data.real()
    from shopaug.models.search.lexical import BM25

    if config.task == "rec":
        _pickle(out_dir / "recommender.pkl", best)
        files["recommender"] = "recommender.pkl"
        popularity = _by_kind(fitted, "popularity")
        if popularity is None:
            from shopaug.models.rec.popularity import Popularity

            popularity = Popularity().fit(real)
        for role, model in (("popularity", popularity), ("content", _by_kind(fitted, "content")),
                            ("itemknn", _by_kind(fitted, "itemknn"))):
            if model is best:  # the same fitted object: point at its file, don't copy it
                files[role] = "recommender.pkl"
            elif model is not None:
                _pickle(out_dir / f"{role}.pkl", model)
                files[role] = f"{role}.pkl"
        # /search works for rec runs too: plain BM25 over the catalog
        bm25 = _catalog_bm25(real, notes)
        if bm25 is not None:
            _pickle(out_dir / "search_model.pkl", bm25)
            files["search_model"] = "search_model.pkl"
    else:
        _pickle(out_dir / "search_model.pkl", best)
        files["search_model"] = "search_model.pkl"
        # models that score (query, item) pairs need a cheap first stage
        bm25 = None if isinstance(best, BM25) else _catalog_bm25(real, notes)
        if bm25 is not None:
            _pickle(out_dir / "candidates.pkl", bm25)
            files["candidates"] = "candidates.pkl"
    items = real.items
    items.drop(columns=[c for c in items.columns if c == "attributes"]).to_parquet(
        out_dir / "items.parquet", index=False)
    files["items"] = "items.parquet"
    inter = real.interactions[["user_id", "item_id", "timestamp"]]
    inter.to_parquet(out_dir / "history.parquet", index=False)
    files["history"] = "history.parquet"
    users = real.users
    cols = ["user_id", *(["profile_text"] if "profile_text" in users.columns else [])]
    users[cols].to_parquet(out_dir / "users.parquet", index=False)
    files["users"] = "users.parquet"
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "shopaug_version": shopaug.__version__, "schema_version": SCHEMA_VERSION,
        "task": config.task, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "best": {"model": model_name, "arm": arm, "metric": summary.get("primary_metric"),
                 "value": value, "baseline_value": _baseline_value(summary, model_name)},
        "files": files, "notes": notes,
        "counts": {"items": len(items), "users": int(inter["user_id"].nunique()),
                   "interactions": len(inter)},
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return {"exported": True, "dir": "serving", "best": manifest["best"],
            "files": sorted(set(files.values())), "notes": notes}

