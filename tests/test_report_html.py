"""HTML report: bench adapters, experiment directories, self-containment, escaping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from report_fixtures import (
    CHINESE,
    EVIL,
    fake_quality,
    small_model,
    write_rec_bench,
    write_search_bench,
)
from shopaug.errors import ArtifactError
from shopaug.report import load_report_model, main_report, render_html, svg, write_report
from shopaug.report.sources import empty_model

SECTION_IDS = ["summary", "lift", "slices", "results", "quality", "samples", "ledger", "card"]


def section_html(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"no section #{sid}"
    return m.group(1)


def assert_self_contained(html: str) -> None:
    assert '<meta charset="utf-8">' in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert "@import" not in html and "url(" not in html
    assert "<link" not in html.lower()


def lift_row(model: dict, name: str, arm: str, slice_: str = "all", metric: str | None = None):
    metric = metric or model["primary_metric"]
    rows = [r for r in model["lift"] if (r["model"], r["arm"], r["slice"], r["metric"])
            == (name, arm, slice_, metric)]
    assert len(rows) == 1, rows
    return rows[0]


def test_search_bench_adapter(tmp_path: Path) -> None:
    run = write_search_bench(tmp_path / "search")
    model = load_report_model(run)
    assert (model["kind"], model["task"], model["primary_metric"]) == (
        "bench_search", "search", "ndcg@10")
    assert model["slices"][0] == "all" and "cold_items" in model["slices"]
    pairs = {(r["model"], r["arm"]) for r in model["results"] if r["metric"] == "ndcg@10"}
    assert pairs == {("random", "real"), ("bm25", "real"), ("bm25", "augmented"),
                     ("biencoder", "real"), ("biencoder", "augmented")}
    # augmented is exactly +0.05 over its twin on every query: a significant gain
    gain = lift_row(model, "biencoder", "augmented")
    assert gain["mean"] == pytest.approx(0.05) and gain["excludes_zero"]
    base = next(r["mean"] for r in model["results"] if (r["model"], r["arm"], r["slice"],
                                                        r["metric"]) ==
                ("biencoder", "real", "all", "ndcg@10"))
    assert gain["relative"] == pytest.approx(0.05 / base)
    assert 0 <= gain["p"] < 0.05
    assert lift_row(model, "biencoder", "augmented", "cold_items")["excludes_zero"]
    # the twin pair bm25_doc2query - bm25 keeps every slice (the vs-BM25 comparison
    # used to overwrite it with an "all"-only entry)
    assert [r for r in model["lift"] if r["model"] == "bm25" and r["slice"] == "cold_items"]
    assert {(c["a"], c["b"]) for c in model["comparisons"]} >= {("random", "bm25"),
                                                              ("biencoder_real", "bm25")}
    assert [s["generated"] for s in model["samples"]] == [["red pillow", EVIL], ["蓝牙耳机"]]
    assert model["samples"][1]["source"]["text"] == CHINESE
    assert model["ledger"]["total"]["requests"] == 40
    assert model["timings_seconds"]["augment"] == 1.5
    assert model["tables"][0]["rows"][0][0] == "dedup"
    assert model["quality"] is None

    html = render_html(model)
    assert_self_contained(html)
    assert "significant gain" in section_html(html, "summary")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html
    assert CHINESE in section_html(html, "samples")
    assert "no quality report for this run" in section_html(html, "quality")

    atomic = run / "quality.json"
    atomic.write_text(json.dumps(fake_quality()), encoding="utf-8")
    assert load_report_model(run)["quality"]["checks"][0]["name"] == "test_query_exact_share"


def test_rec_bench_adapter(tmp_path: Path) -> None:
    run = write_rec_bench(tmp_path / "rec")
    model = load_report_model(run)
    assert (model["kind"], model["task"]) == ("bench_rec", "rec")
    assert model["metrics"][:2] == ["recall@20", "ndcg@20"] and "hr@20" in model["metrics"]
    assert model["primary_metric"] == "recall@20"
    assert model["slices"] == ["all", "cold_users"]
    keys = [(r["model"], r["arm"], r["slice"], r["metric"]) for r in model["lift"]]
    assert len(keys) == len(set(keys))
    assert {k[:2] for k in keys} == {("itemknn", "augmented"), ("als", "augmented")}
    loss = lift_row(model, "als", "augmented")
    assert loss["mean"] == pytest.approx(-0.02) and loss["excludes_zero"]
    assert lift_row(model, "itemknn", "augmented", "cold_users", "ndcg@20")["mean"] == (
        pytest.approx(0.24))
    # best augmented (itemknn_augmented) vs best real (als_real) is not a twin pair
    first = model["comparisons"][0]
    assert (first["a"], first["b"]) == ("itemknn_augmented", "als_real")
    assert ("popularity", "real") in {(r["model"], r["arm"]) for r in model["results"]}
    assert next(r for r in model["results"] if r["metric"] == "hr@20")["lo"] is None
    by_aug = {s["augmenter"]: s for s in model["samples"]}
    assert set(by_aug) == {"interaction_simulation", "sequence_augment"}
    assert len(by_aug["sequence_augment"]["generated"]) == 3
    assert model["ledger"] is None
    assert model["card"]["split"]["kind"] == "temporal"

    html = render_html(model)
    assert_self_contained(html)
    summary = section_html(html, "summary")
    assert "significant loss" in summary and "significant gain" in summary
    assert "no LLM ledger" in section_html(html, "ledger")
    assert "sequence_augment" in section_html(html, "samples")


def test_experiment_dir_and_write_report(tmp_path: Path, capsys) -> None:
    model = small_model()
    run = tmp_path / "exp"
    run.mkdir()
    summary = {k: v for k, v in model.items() if k not in ("quality", "samples", "card")}
    summary["ledger"] = None
    (run / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    (run / "quality.json").write_text(json.dumps(fake_quality(passed=True)), encoding="utf-8")
    (run / "samples.json").write_text(json.dumps(model["samples"]), encoding="utf-8")
    (run / "run_card.json").write_text(json.dumps({**model["card"], "llm": model["ledger"]}),
                                       encoding="utf-8")
    loaded = load_report_model(run / "summary.json")
    assert loaded["quality"]["passed"] is True
    assert loaded["samples"][0]["generated"][1] == EVIL
    assert loaded["card"]["fingerprint"] == "abc123"
    assert loaded["ledger"]["total"]["requests"] == 40  # taken from the run card

    assert main_report(str(run), None) == 0
    out = run / "report.html"
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    assert_self_contained(html)
    for sid in SECTION_IDS:
        section_html(html, sid)
    assert "abc123" in section_html(html, "card")
    assert "seeds: [0, 1]" in section_html(html, "card")
    other = write_report(run, tmp_path / "elsewhere" / "r.html")
    assert other.read_text(encoding="utf-8") == html


def test_full_model_renders_every_part() -> None:
    model = small_model(fake_quality(passed=False))
    model["lift"][0]["p_holm"] = 0.03
    html = render_html(model)
    assert_self_contained(html)
    assert "p (Holm)" in section_html(html, "lift")
    summary = section_html(html, "summary")
    for verdict in ("significant gain", "significant loss", "no significant difference"):
        assert verdict in summary
    lift = section_html(html, "lift")
    assert lift.count("<svg") == 1 and "<title>Lift on recall@20 (slice all)</title>" in lift
    assert lift.count('class="sig-gain"') == 1 and lift.count('class="sig-loss"') == 1
    quality = section_html(html, "quality")
    assert quality.count('class="badge pass"') == 1
    assert quality.count('class="badge fail"') == 2  # the failed check and the overall verdict
    assert quality.count("<svg") == 2 and CHINESE in quality
    assert "tokens split on whitespace" in quality
    ledger = section_html(html, "ledger")
    assert "5,000" in ledger and "12.5000" in ledger and "fit:als" in ledger
    slices = section_html(html, "slices")
    assert "cold_users" in slices and "-0.0100" in slices
    assert "demo 演示" in html


def test_escaping_everywhere() -> None:
    model = small_model(fake_quality())
    model["title"] = EVIL
    model["lift"][0]["model"] = "<b>bold</b>"
    model["results"][0]["model"] = "<b>bold</b>"
    model["quality"]["sections"]["fidelity"]["plots"][0]["labels"][0] = EVIL
    model["card"]["config"] = {"query": EVIL}
    html = render_html(model)
    assert "<script" not in html and "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in section_html(html, "lift")


@pytest.mark.parametrize("model", [
    {},
    {"kind": "experiment", "title": "t"},
    empty_model("bench_rec", "empty", "rec"),
    {**empty_model("experiment", "nulls", "rec"), "metrics": None, "slices": None,
     "quality": None, "ledger": None, "card": None, "samples": None},
])
def test_empty_parts(model: dict) -> None:
    html = render_html(model)
    assert_self_contained(html)
    for sid in SECTION_IDS:
        section_html(html, sid)
    assert "no quality report for this run" in section_html(html, "quality")
    assert "no samples" in section_html(html, "samples")
    assert "no LLM ledger" in section_html(html, "ledger")
    assert "no paired lift" in section_html(html, "summary")


def test_long_tables_are_capped() -> None:
    model = small_model()
    template = model["lift"][0]
    model["lift"] = [{**template, "model": f"m{i:03d}"} for i in range(120)]
    lift = section_html(render_html(model), "lift")
    assert "70 more rows hidden (showing 50 of 120)" in lift
    assert lift.count("<tr") == 51  # header + 50 rows


def test_missing_or_unknown_directory(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="Fix"):
        load_report_model(tmp_path)
    with pytest.raises(ArtifactError, match="no run directory"):
        load_report_model(tmp_path / "nope")
    (tmp_path / "metrics.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="cannot read"):
        load_report_model(tmp_path)


def test_svg_charts() -> None:
    rows = [{"label": "a", "mean": 0.1, "lo": 0.05, "hi": 0.15, "excludes_zero": True},
            {"label": "b", "mean": -0.01, "lo": -0.05, "hi": 0.03, "excludes_zero": False},
            {"label": "c", "mean": float("nan"), "lo": None, "hi": None}]
    forest = svg.forest_plot(rows, "t<1>")
    assert forest.startswith('<svg class="chart" role="img"')
    assert "<title>t&lt;1&gt;</title>" in forest
    assert forest.count(f'fill="{svg.GAIN}"') == 3  # highlighted band, marker, value text
    assert forest.count('font-weight="bold"') == 2  # label and value of the one row
    assert ">c<" not in forest  # NaN rows are left out
    ticks = svg.nice_ticks(-0.013, 0.027)
    assert ticks[0] <= -0.013 and ticks[-1] >= 0.027 and 0.0 in ticks
    assert svg.nice_ticks(0.0, 0.0)[-1] > 0
    bars = svg.bar_chart([{"label": "x", "mean": 0.5, "lo": 0.4, "hi": 0.6, "group": "real"},
                          {"label": "y", "mean": 0.6, "group": "augmented"}], "bars")
    assert "augmented" in bars and bars.count("<rect") == 4  # 2 bars + 2 legend swatches
    share = svg.share_chart({"title": "s", "kind": "bar", "labels": ["a long category name"] * 9,
                             "series": {"real": [0.1] * 9, "synthetic": [0.2] * 9}})
    assert "rotate(-40)" in share and share.count("<rect") == 18 + 2
    assert "no data" in svg.share_chart({"title": "e", "labels": [], "series": {}})
