"""Read a run's output directory into the normalized report model (spec section 2).

Three kinds of directory are recognised: an experiment run (``summary.json`` already in
normalized form), a ``shopaug bench search`` output and a ``shopaug bench rec`` output
(``metrics.json`` plus CSV files, converted here). Beyond the spec's keys the adapters
fill two optional ones the renderer understands: ``comparisons`` (paired differences that
are not augmented-vs-twin, e.g. every search variant against BM25) and ``tables``
(extra TABLE dicts such as the filter or augmenter reports).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from shopaug.errors import ArtifactError

#: generated rows shown per augmenter, and rows per sample
SAMPLES_PER_AUGMENTER = 8
ROWS_PER_SAMPLE = 6


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}. Fix: point the report at a complete "
                            "run directory (re-run it if the file is truncated)") from exc


def _optional_json(path: Path) -> Any:
    return _read_json(path) if path.is_file() else None


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def empty_model(kind: str, title: str, task: str) -> dict[str, Any]:
    return {"kind": kind, "title": title, "task": task, "metrics": [], "primary_metric": None,
            "slices": [], "results": [], "lift": [], "quality": None, "samples": [],
            "ledger": None, "timings_seconds": {}, "card": None, "notes": [],
            "comparisons": [], "tables": []}


def load_report_model(path: Path) -> dict[str, Any]:
    """The normalized report model of the run at ``path`` (a directory, or a file in it)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise ArtifactError(f"no run directory at {path}. Fix: pass the output directory of "
                            "`shopaug experiment` or `shopaug bench search|rec`")
    summary = _optional_json(path / "summary.json")
    if isinstance(summary, dict) and summary.get("kind") == "experiment":
        return _experiment(path, summary)
    metrics = _optional_json(path / "metrics.json")
    if isinstance(metrics, dict):
        if isinstance(metrics.get("metric"), str) or (path / "per_query.csv").is_file():
            model = bench_search_model(path, metrics)
        else:
            model = bench_rec_model(path, metrics)
        model["quality"] = _optional_json(path / "quality.json")
        return model
    raise ArtifactError(f"{path} holds neither summary.json (kind experiment) nor "
                        "metrics.json. Fix: pass the output directory of `shopaug "
                        "experiment` or `shopaug bench search|rec`")


def _experiment(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    model = {**empty_model("experiment", path.name, summary.get("task", "")), **summary}
    for key, name in (("quality", "quality.json"), ("samples", "samples.json"),
                      ("card", "run_card.json")):
        loaded = _optional_json(path / name)
        if loaded is not None:
            model[key] = loaded
    card = model.get("card") or {}
    if not model.get("ledger") and isinstance(card, dict) and card.get("llm"):
        model["ledger"] = card["llm"]
    if not model.get("timings_seconds") and isinstance(card, dict):
        model["timings_seconds"] = card.get("timings_seconds") or {}
    model["samples"] = model.get("samples") or []
    return model


# -- benches -------------------------------------------------------------------------

def variant_arms(variants: list[str], pairs: dict[str, str]) -> dict[str, tuple[str, str]]:
    """variant -> (model, arm). An augmented variant and its real twin share the model name
    (the twin's name without ``_real``); a variant without a twin is arm "real". When
    several augmented variants share a twin (leave-one-out arms, defined ones), the first
    is arm "augmented" and the others are named by their variant, so none overwrites
    another."""
    out: dict[str, tuple[str, str]] = {}
    for v in variants:
        twin = pairs.get(v)
        if twin is not None:
            model = twin.removesuffix("_real")
            taken = (model, "augmented") in out.values()
            out[v] = (model, v.removeprefix(f"{model}_") if taken else "augmented")
        else:
            out[v] = (v.removesuffix("_real"), "real")
    return out


def _interval(d: dict[str, Any] | None) -> dict[str, Any]:
    d = d or {}
    n = d.get("n")
    return {"mean": _num(d.get("mean")), "lo": _num(d.get("lo")), "hi": _num(d.get("hi")),
            "n": int(n) if _num(n) is not None else None}


def _lift_row(model: str, arm: str, slice_: str, metric: str, diff: dict[str, Any],
              base_mean: float | None, **extra: Any) -> dict[str, Any]:
    row = {"model": model, "arm": arm, "baseline": "real", "slice": slice_, "metric": metric,
           **_interval(diff),
           # the permutation test where the bench ran one (it weighs effect sizes)
           "p": _num(diff.get("permutation_p", diff.get("sign_test_p"))),
           "p_holm": _num(diff.get("p_holm")),
           "excludes_zero": bool(diff.get("excludes_zero"))}
    row["relative"] = (row["mean"] / base_mean if row["mean"] is not None and base_mean
                       else None)
    return {**row, **extra}


def _common(model: dict[str, Any], metrics: dict[str, Any], path: Path) -> None:
    model["ledger"] = metrics.get("llm")
    model["timings_seconds"] = metrics.get("timings_seconds") or {}
    card = {"name": path.name, "source": str(path), "seeds": metrics.get("seeds"),
            "synthetic_counts": metrics.get("synthetic_counts")}
    for key in ("quality_passed", "split"):
        if metrics.get(key) is not None:
            card[key] = metrics[key]
    model["card"] = card


def _csv_table(path: Path, title: str, note: str | None = None) -> dict[str, Any] | None:
    import pandas as pd

    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError):
        return None
    if frame.empty:
        return None
    frame = frame.astype(object).where(frame.notna(), None)
    return {"title": title, "columns": [str(c) for c in frame.columns],
            "rows": frame.values.tolist(), "note": note}


def bench_search_model(path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    from shopaug.bench.search import PAIRS as BUILTIN_PAIRS

    # a run's own twins (its defined variants too); older runs did not write them
    twins = metrics.get("pairs") or BUILTIN_PAIRS
    model = empty_model("bench_search", f"search bench: {path.name}", "search")
    metric = metrics.get("metric", "ndcg@10")
    variants: dict[str, Any] = metrics.get("variants") or {}
    arms = variant_arms(list(variants), twins)
    slices = sorted({s for r in variants.values() for s in r if s != "all_metrics"},
                    key=lambda s: (s != "all", s))
    extra = sorted({m for r in variants.values() for m in r.get("all_metrics", {})} - {metric})
    model.update(metrics=[metric, *extra], primary_metric=metric, slices=slices)
    for v, res in variants.items():
        m, arm = arms[v]
        for s in slices:
            if s in res:
                model["results"].append({"model": m, "arm": arm, "slice": s, "metric": metric,
                                         **_interval(res[s]), "variant": v})
        for name in extra:
            if name in res.get("all_metrics", {}):
                model["results"].append({"model": m, "arm": arm, "slice": "all",
                                         "metric": name, "mean": _num(res["all_metrics"][name]),
                                         "lo": None, "hi": None, "n": None, "variant": v})
    for key, per_slice in (metrics.get("paired") or {}).items():
        aug, _, real = key.partition(" - ")
        if twins.get(aug) == real:
            m, arm = arms[aug]
            for s, diff in per_slice.items():
                base = _num((variants.get(real, {}).get(s) or {}).get("mean"))
                model["lift"].append(_lift_row(m, arm, s, metric, diff, base, variant=aug))
        else:
            for s, diff in per_slice.items():
                base = _num((variants.get(real, {}).get(s) or {}).get("mean"))
                model["comparisons"].append(
                    {"a": aug, "b": real, **_lift_row("", "", s, metric, diff, base)})
    _common(model, metrics, path)
    model["samples"] = search_samples(path / "generated_queries.csv")
    for name, title in (("filter_report.csv", "Filters applied to the synthetic queries"),):
        table = _csv_table(path / name, title)
        if table:
            model["tables"].append(table)
    model["notes"].append(f"{metric}: mean over (seed, query) with a 95% bootstrap interval over "
                          "queries; "
                          "lift = augmented variant minus its real-only twin, paired.")
    return model


def search_samples(path: Path) -> list[dict[str, Any]]:
    """A few catalog items with the queries generated for them. The bench does not keep
    real query text per item, so the product title is the real row shown."""
    import pandas as pd

    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError):
        return []
    need = {"text", "item_id"}
    if frame.empty or not need <= set(frame.columns):
        return []
    if "augmenter" not in frame.columns:
        frame["augmenter"] = "synthetic_queries"
    if "title" not in frame.columns:
        frame["title"] = ""
    samples = []
    for augmenter, rows in frame.groupby("augmenter", sort=True):
        items = sorted(rows["item_id"].unique())
        step = max(len(items) // SAMPLES_PER_AUGMENTER, 1)
        for item in items[::step][:SAMPLES_PER_AUGMENTER]:
            group = rows[rows["item_id"] == item]
            title = group["title"].iloc[0]
            samples.append({"augmenter": str(augmenter), "table": "queries",
                            "source": {"label": f"item {item}", "text": title},
                            "generated": list(dict.fromkeys(group["text"]))[:ROWS_PER_SAMPLE],
                            "real": []})
    return samples


def bench_rec_model(path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    from shopaug.bench.rec import PAIRS as BUILTIN_PAIRS

    twins = metrics.get("pairs") or BUILTIN_PAIRS
    model = empty_model("bench_rec", f"rec bench: {path.name}", "rec")
    names = list(metrics.get("metrics") or [])
    variants: dict[str, Any] = metrics.get("variants") or {}
    arms = variant_arms(list(variants), twins)
    order = ["all", "cold_users", "cold_items", "long_tail"]
    found = {s for r in variants.values() for s in r}
    slices = [s for s in order if s in found] + sorted(found - set(order))
    extra = sorted({m for r in variants.values() for m in (r.get("all") or {}).get("means", {})}
                   - set(names))
    model.update(metrics=names + extra, primary_metric=names[0] if names else None,
                 slices=slices)
    for v, res in variants.items():
        m, arm = arms[v]
        for s in slices:
            for name in names:
                if name in res.get(s, {}):
                    model["results"].append({
                        "model": m, "arm": arm, "slice": s, "metric": name,
                        **_interval(res[s][name]), "variant": v})
        means = (res.get("all") or {}).get("means", {})
        for name in extra:
            if name in means:
                model["results"].append({"model": m, "arm": arm, "slice": "all", "metric": name,
                                         "mean": _num(means[name]), "lo": None, "hi": None,
                                         "n": None, "variant": v})
    for key, per_slice in (metrics.get("paired") or {}).items():
        pair, _, suffix = key.partition(" (")
        aug, _, real = pair.partition(" - ")
        is_twin = twins.get(aug) == real
        if is_twin and suffix:
            continue  # "best vs best" that repeats an augmented-vs-twin pair
        for s, per_metric in per_slice.items():
            for name, diff in per_metric.items():
                base = _num(((variants.get(real) or {}).get(s) or {}).get(name, {}).get("mean"))
                if is_twin:
                    m, arm = arms[aug]
                    model["lift"].append(_lift_row(m, arm, s, name, diff, base, variant=aug))
                else:
                    model["comparisons"].append(
                        {"a": aug, "b": real, "label": key,
                         **_lift_row("", "", s, name, diff, base)})
    _common(model, metrics, path)
    model["samples"] = rec_samples(path / "synthetic_interactions.csv")
    table = _csv_table(path / "augment_report.csv", "Augmenters (each run once on the "
                       "training side)")
    if table:
        model["tables"].append(table)
    model["tables"].extend(_ablation_tables(metrics.get("ablation") or {}))
    model["tables"].extend(_window_tables(metrics.get("windows") or [], names[:1]))
    model["notes"].append(f"{', '.join(names)}: mean over (seed, test user) with a 95% "
                          "bootstrap interval over users; lift = augmented variant minus its "
                          "real-only twin, paired by user.")
    return model


def _ablation_tables(ablation: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for variant, rows in ablation.items():
        columns = sorted({c for r in rows.values() for c in r})
        out.append({"title": f"Ablation: {variant} with each augmenter alone (first seed)",
                    "columns": ["training data", *columns],
                    "rows": [[label, *(r.get(c) for c in columns)] for label, r in rows.items()],
                    "note": None})
    return out


def _window_tables(windows: list[dict[str, Any]], metric: list[str]) -> list[dict[str, Any]]:
    """Rolling origin: each window's paired differences next to the pooled ones above."""
    pairs = list(dict.fromkeys(p for w in windows for p in w.get("paired") or {}))
    if len(windows) < 2 or not pairs:
        return []

    def cell(d: dict[str, Any] | None) -> str:
        if not d:
            return ""
        star = "*" if d.get("excludes_zero") else ""
        return f"{d['mean']:+.4f} [{d['lo']:+.4f}, {d['hi']:+.4f}]{star}"

    rows = [[w["window"], str((w.get("split") or {}).get("cut", "")), w.get("users"),
             *(cell((w.get("paired") or {}).get(p)) for p in pairs)] for w in windows]
    return [{"title": f"Each window alone ({', '.join(metric)}, slice all; window 0 is the "
                      "latest)", "columns": ["window", "from", "users", *pairs],
             "rows": rows, "note": "* the interval excludes zero"}]


def rec_samples(path: Path) -> list[dict[str, Any]]:
    """A few users per augmenter with their synthetic interactions."""
    import pandas as pd

    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, OSError):
        return []
    if frame.empty or not {"user_id", "item_id"} <= set(frame.columns):
        return []
    if "augmenter" not in frame.columns:
        frame["augmenter"] = "synthetic"
    samples = []
    per_aug = SAMPLES_PER_AUGMENTER // 2  # interaction rows are terse: fewer users suffice
    for augmenter, rows in frame.groupby("augmenter", sort=True):
        users = list(dict.fromkeys(rows["user_id"]))
        step = max(len(users) // per_aug, 1)
        for user in users[::step][:per_aug]:
            mine = rows[rows["user_id"] == user]
            total = len(mine)
            generated = []
            for r in mine.head(ROWS_PER_SAMPLE).to_dict("records"):
                parts = [f"item {r['item_id']}", r.get("event", ""), r.get("timestamp", "")]
                if r.get("value"):
                    parts.append(f"weight {r['value']}")
                generated.append(" · ".join(p for p in parts if p))
            samples.append({"augmenter": str(augmenter), "table": "interactions",
                            "source": {"label": f"user {user}",
                                       "text": f"{total} synthetic interactions"},
                            "generated": generated, "real": []})
    return samples
