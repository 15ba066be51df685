"""Small report inputs shared by the HTML report tests: a normalized model, a quality dict
in the spec's schema, and bench output directories written with the benches' own
`summarize` so the adapters are tested against the real format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopaug.artifacts import atomic_write_json
from shopaug.llm.ledger import Ledger, Usage

EVIL = '<script>alert("x")</script>'
CHINESE = "无线蓝牙耳机 降噪"


def fake_quality(passed: bool = False) -> dict[str, Any]:
    hist = {"title": "query length (tokens)", "kind": "hist", "x_label": "tokens",
            "y_label": "share", "labels": ["0-2", "3", "4", "5-8", "9+"],
            "series": {"real": [0.1, 0.3, 0.3, 0.2, 0.1], "synthetic": [0.2, 0.4, 0.2, 0.15, 0.05]}}
    bar = {"title": "top categories", "kind": "bar", "x_label": "category", "y_label": "share",
           "labels": ["furniture and home decoration", "electronics", CHINESE],
           "series": {"real": [0.5, 0.3, 0.2], "synthetic": [0.4, 0.4, 0.2]}}
    return {
        "passed": passed,
        "checks": [
            {"section": "leakage", "name": "test_query_exact_share", "value": 0.0,
             "threshold": 0.0, "op": "<=", "passed": True,
             "detail": "0 of 1,456 synthetic queries equal a test query"},
            {"section": "diversity", "name": "distinct_2", "value": 0.21, "threshold": 0.3,
             "op": ">=", "passed": passed, "detail": "distinct bigrams over all bigrams"},
        ],
        "sections": {
            "fidelity": {"tables": [{"title": "length", "columns": ["origin", "mean tokens"],
                                     "rows": [["real", 3.4], ["synthetic", 2.9]],
                                     "note": "tokens split on whitespace"}],
                         "plots": [hist, bar]},
            "diversity": {"tables": [], "plots": []},
            "consistency": {"tables": [], "plots": []},
            "leakage": {"tables": [{"title": "overlap", "columns": ["kind", "count"],
                                    "rows": [["exact", 0], ["near", 2]], "note": None}],
                        "plots": []},
            "privacy": {"tables": [{"title": "privacy", "columns": ["why"],
                                    "rows": [["no synthetic users"]], "note": None}],
                        "plots": []},
        },
        "counts": {"queries": {"real": 120, "synthetic": 300}},
    }


def ledger_dict() -> dict[str, Any]:
    ledger = Ledger(stages={"synthetic_queries": Usage(requests=40, cached=10, failed=1,
                                                       prompt_tokens=5000,
                                                       completion_tokens=700,
                                                       engine_seconds=12.5, cost=0.01)})
    return ledger.to_dict()


def small_model(quality: dict[str, Any] | None = None) -> dict[str, Any]:
    """A normalized model with one significant gain, one loss and one null result."""
    lift, results = [], []
    for model, mean, lo, hi in (("als", 0.012, 0.004, 0.02), ("bpr", -0.01, -0.018, -0.002),
                                ("itemknn", 0.001, -0.003, 0.005)):
        for slice_ in ("all", "cold_users"):
            lift.append({"model": model, "arm": "all_augmenters", "baseline": "baseline",
                         "slice": slice_, "metric": "recall@20", "mean": mean, "lo": lo,
                         "hi": hi, "n": 300, "p": 0.01, "excludes_zero": lo > 0 or hi < 0,
                         "relative": mean / 0.2})
            for arm, m in (("baseline", 0.2), ("all_augmenters", 0.2 + mean)):
                results.append({"model": model, "arm": arm, "slice": slice_,
                                "metric": "recall@20", "mean": m, "lo": m - 0.01,
                                "hi": m + 0.01, "n": 300})
    return {
        "kind": "experiment", "title": "demo 演示", "task": "rec",
        "metrics": ["recall@20"], "primary_metric": "recall@20",
        "slices": ["all", "cold_users"], "results": results, "lift": lift,
        "quality": quality,
        "samples": [{"augmenter": "synthetic_queries", "table": "queries",
                     "source": {"label": "item i1", "text": CHINESE},
                     "generated": ["蓝牙耳机", EVIL], "real": ["bluetooth earbuds"]}],
        "ledger": ledger_dict(), "timings_seconds": {"augment": 12.3, "fit:als": 4.0},
        "card": {"name": "demo", "fingerprint": "abc123", "started_at": "2025-01-01T00:00:00",
                 "versions": {"shopaug": "0.1", "python": "3.11"},
                 "config": {"task": "rec", "seeds": [0, 1]}},
        "notes": ["a note"],
    }


def write_search_bench(out: Path, n_queries: int = 30) -> Path:
    """A `shopaug bench search` directory: metrics.json from the bench's `summarize`."""
    from shopaug.bench.search import summarize

    rng = np.random.default_rng(0)
    qids = [f"q{i}" for i in range(n_queries)]
    base = rng.uniform(0.3, 0.8, size=n_queries)
    shift = {"random": -0.2, "bm25": 0.0, "bm25_doc2query": 0.0, "biencoder_real": 0.05,
             "biencoder_augmented": 0.1}
    rows = []
    for seed in (0, 1):
        for variant, d in shift.items():
            noise = rng.normal(0, 0.002, size=n_queries) if variant == "bm25_doc2query" else 0
            for q, v in zip(qids, base + d + noise, strict=True):
                rows.append({"query_id": q, "ndcg@10": v, "recall@10": v / 2,
                             "variant": variant, "seed": seed})
    per_query = pd.DataFrame(rows)
    slices = {s: {"all": set(qids), "cold_items": set(qids[::2])} for s in (0, 1)}
    summary = summarize(per_query, slices, n_boot=200)
    summary.update(timings_seconds={"augment": 1.5, "fit+eval:bm25": 0.2},
                   synthetic_counts={"queries": 3, "judgments": 3}, seeds=[0, 1],
                   llm=ledger_dict())
    out.mkdir(parents=True, exist_ok=True)
    per_query.to_csv(out / "per_query.csv", index=False)
    pd.DataFrame({
        "query_id": ["sq-1", "sq-2", "sq-3"], "text": ["red pillow", EVIL, "蓝牙耳机"],
        "origin": "synthetic", "augmenter": "synthetic_queries", "quality_score": None,
        "item_id": ["i1", "i1", "i2"], "gain": 1.0,
        "title": ["Accent Pillow - Red", "Accent Pillow - Red", CHINESE],
    }).to_csv(out / "generated_queries.csv", index=False)
    pd.DataFrame([{"filter": "dedup", "removed": 2, "kept": 3,
                   "reasons": json.dumps({"duplicate_same_item": 2})}]
                 ).to_csv(out / "filter_report.csv", index=False)
    atomic_write_json(out / "metrics.json", summary)
    return out


def write_rec_bench(out: Path, n_users: int = 40) -> Path:
    """A `shopaug bench rec` directory: metrics.json from the bench's `summarize`."""
    from shopaug.bench.rec import summarize

    rng = np.random.default_rng(1)
    users = [f"u{i}" for i in range(n_users)]
    base = rng.uniform(0.0, 0.2, size=n_users)
    # itemknn_augmented is the best augmented and als_real the best real-only variant,
    # so the bench's "best vs best" pair is not an augmented-vs-twin pair
    level = {"popularity": 0.0, "itemknn": 0.05, "itemknn_augmented": 0.35,
             "als_real": 0.30, "als_augmented": 0.28}
    rows = []
    for seed in (0, 1):
        for variant, d in level.items():
            for slice_, keep in (("all", users), ("cold_users", users[:10])):
                for u in keep:
                    v = float(base[users.index(u)] + d)
                    rows.append({"slice": slice_, "user_id": u, "recall@20": v,
                                 "ndcg@20": v * 0.8, "hr@20": min(1.0, v * 3),
                                 "variant": variant, "seed": seed})
    per_user = pd.DataFrame(rows)
    summary = summarize(per_user, [20], n_boot=200)
    summary.update(timings_seconds={"augment": 2.0}, seeds=[0, 1], llm=None,
                   split={"kind": "temporal", "cold_users": 10},
                   synthetic_counts={"interactions": {"real": 100, "synthetic": 12}})
    out.mkdir(parents=True, exist_ok=True)
    per_user.to_csv(out / "per_user.csv", index=False)
    pd.DataFrame([{"augmenter": "sequence_augment", "seconds": 0.5,
                   "synthetic_interactions": 8, "report": "{}"}]
                 ).to_csv(out / "augment_report.csv", index=False)
    pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u3~crop0", "u3~crop0", "u3~crop0"],
        "item_id": ["a", "b", "c", "d", "e", "f"],
        "timestamp": "2011-01-18 10:01:00", "event": "purchase", "value": 0.5,
        "origin": "synthetic",
        "augmenter": ["interaction_simulation"] * 3 + ["sequence_augment"] * 3,
    }).to_csv(out / "synthetic_interactions.csv", index=False)
    atomic_write_json(out / "metrics.json", summary)
    return out
