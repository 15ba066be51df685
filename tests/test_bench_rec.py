"""``shopaug bench rec`` end to end on the shipped demo data with the deterministic fake
LLM and the quick model variants."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pandas as pd
import pytest

import shopaug
from shopaug.bench.rec import RecBenchConfig, run_rec_benchmark
from shopaug.bench.rec_data import _merge, _target
from shopaug.data.split import split
from shopaug.llm import LLM, FakeEngine, LLMCache

QUICK = ["popularity", "itemknn", "als_real", "als_augmented", "content_real",
         "content_augmented"]
SMALL_AUGMENT = [
    {"name": "item_enrichment", "config": {"max_tokens": 96},
     "target": {"items": "cold_and_tail", "max": 15}},
    {"name": "user_profiles", "target": {"users": "sparse", "max": 10}},
    {"name": "interaction_simulation", "config": {"max_users": 10}},
    {"name": "cold_item_simulation", "config": {"n_users": 5, "threads": 1}},
    {"name": "sequence_augment", "config": {"max_history": 10}},
    {"name": "rec_teacher_labels", "config": {"teacher": "itemknn", "max_history": 3}},
]


@pytest.fixture(scope="module")
def data():
    from shopaug.datasets import demo_path

    return shopaug.load(demo_path(), format="online_retail").data


@pytest.fixture(scope="module")
def summary(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec")
    cfg = RecBenchConfig(seeds=[0, 1], variants=QUICK, augment=SMALL_AUGMENT, progress=False,
                         n_boot=200, ablation=["als_augmented"],
                         overrides={"als_real": {"threads": 1},
                                    "als_augmented": {"threads": 1}})
    llm = LLM(FakeEngine(), LLMCache(out / "c.sqlite"), progress=False)
    return run_rec_benchmark(data, out / "bench", cfg, llm=llm), out / "bench"


def test_every_variant_and_slice_with_intervals(summary):
    result, out = summary
    assert set(result["variants"]) == set(QUICK)
    for res in result["variants"].values():
        a = res["all"]["recall@20"]
        assert a["lo"] <= a["mean"] <= a["hi"]
        assert {"all", "cold_users", "long_tail"} <= set(res)
    assert "als_augmented - als_real" in result["paired"]
    assert any(k.endswith("(best vs best)") for k in result["paired"])
    written = json.loads((out / "metrics.json").read_text())
    assert written["variants"].keys() == result["variants"].keys()
    verdict = (out / "summary.txt").read_text().rstrip().splitlines()[-1]
    assert verdict == written["quality"] and verdict.startswith("quality checks: ")
    assert ("FAILED" in verdict) == (not written["quality_passed"])
    per_user = pd.read_csv(out / "per_user.csv")
    assert set(per_user["seed"]) == {0, 1}
    synthetic = pd.read_csv(out / "synthetic_interactions.csv")
    assert len(synthetic) and set(synthetic["augmenter"]) >= {
        "sequence_augment", "rec_teacher_labels", "cold_item_simulation"}
    assert "interactions_kept" not in written["decontaminated"]  # dropped by default
    ablation = result["ablation"]["als_augmented"]
    assert "(real only)" in ablation and "+sequence_augment" in ablation


def test_augmented_training_data_never_reaches_past_the_cut(data, summary):
    _, out = summary
    parts = split(data, "temporal", test_days=30)
    synthetic = pd.read_csv(out / "synthetic_interactions.csv", parse_dates=["timestamp"])
    assert (synthetic["timestamp"] < parts.cut).all()


def test_targets_pick_the_needy_and_merge_keeps_real_rows(data):
    parts = split(data, "temporal", test_days=30)
    train = parts.train
    cold = _target(train, {"target": {"items": "cold_and_tail", "max": 5}})
    counts = train.interactions.groupby("item_id").size()
    assert len(cold.items) == 5
    assert counts.reindex(cold.items["item_id"]).fillna(0).max() <= counts.min()
    sparse = _target(train, {"target": {"users": "sparse", "max": 4}})
    assert sparse.interactions["user_id"].nunique() <= 4
    extra = train.interactions.head(2).assign(origin="synthetic", augmenter="x",
                                              user_id="new~crop0")
    out = train.append("interactions", extra)
    merged = _merge(train, "x", train, out)
    assert len(merged.interactions) == len(train.interactions) + 2
    assert (merged.interactions["origin"] == "real").sum() == len(train.interactions)


def test_validation_mode_never_reads_the_test_period(data, tmp_path):
    """--validation: the augmenters, prompts and models see only the training side minus
    its last period, and the scored users are those of that period."""
    asked = []

    def spy(request):
        from shopaug.llm.fake import default_responder

        asked.append(request)
        return default_responder(request)

    cfg = RecBenchConfig(seeds=[0], variants=["popularity", "itemknn", "itemknn_augmented"],
                         augment=SMALL_AUGMENT[:3], progress=False, n_boot=100,
                         validation=True)
    llm = LLM(FakeEngine(spy), LLMCache(tmp_path / "c.sqlite"), progress=False)
    result = run_rec_benchmark(data, tmp_path / "out", cfg, llm=llm)
    outer = split(data, "temporal", test_days=30)
    inner = split(outer.train, "temporal", test_days=30)
    assert result["scored_on"] == "validation" and asked
    assert pd.Timestamp(result["split"]["cut"]) == inner.cut < outer.cut
    synthetic = pd.read_csv(tmp_path / "out" / "synthetic_interactions.csv",
                            parse_dates=["timestamp"])
    assert len(synthetic) and (synthetic["timestamp"] < inner.cut).all()
    scored = pd.read_csv(tmp_path / "out" / "per_user.csv", dtype={"user_id": str})
    assert set(scored["user_id"]) <= set(inner.test.interactions["user_id"].astype(str))
    assert "VALIDATION" in (tmp_path / "out" / "summary.txt").read_text()


def test_a_defined_variant_pair_is_benchmarked_and_reported(tmp_path, capsys):
    """`define:` in --config: a user's own twins run with the same protocol, get their
    paired difference, and the HTML report shows their lift."""
    import yaml

    from shopaug.cli import main
    from shopaug.report.sources import load_report_model

    # the README's example, so it cannot drift from the code
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = next(block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                   if "knn10_real" in block)
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({
        **yaml.safe_load(example), "variants": ["popularity", "knn10_real", "knn10_augmented"],
        "augment": [{"name": "sequence_augment", "config": {"max_history": 10}}],
        "compare": [["knn10_real", "popularity"]], "n_boot": 100}))
    out = tmp_path / "out"
    assert main(["bench", "rec", "--data", "shopaug:demo", "--format", "online_retail",
                 "--out", str(out), "--seeds", "1", "--no-progress",
                 "--config", str(tmp_path / "bench.yaml")]) == 0
    assert "knn10_augmented - knn10_real" in capsys.readouterr().out
    written = json.loads((out / "metrics.json").read_text())
    assert written["pairs"] == {"knn10_augmented": "knn10_real"}
    assert written["best"] == {"augmented": "knn10_augmented",
                               "real": max(["popularity", "knn10_real"], key=lambda v: written[
                                   "variants"][v]["all"]["recall@20"]["mean"])}
    assert "knn10_real - popularity" in written["paired"]  # asked for under compare
    report = load_report_model(out)
    assert {(row["model"], row["arm"]) for row in report["lift"]} == {("knn10", "augmented")}
    assert ("knn10_real", "popularity") in {(c["a"], c["b"]) for c in report["comparisons"]}


def test_a_use_list_leaves_out_other_augmenters_rows_and_the_columns_they_filled(data, tmp_path):
    from shopaug.bench.rec_data import augment
    from shopaug.pipeline.runner import RunContext

    train = split(data, "temporal", test_days=30).train
    llm = LLM(FakeEngine(), LLMCache(tmp_path / "c.sqlite"), progress=False)
    ctx = RunContext(seed=0, run_dir=tmp_path, progress=False, _llm=llm)
    merged, report = augment(train, [SMALL_AUGMENT[0], SMALL_AUGMENT[1], SMALL_AUGMENT[4]], ctx)
    columns = {r["augmenter"]: r["columns"].split() for r in report.to_dict("records")}
    assert columns == {"item_enrichment": ["items.attributes"],
                       "user_profiles": ["users.profile_text", "users.interests"],
                       "sequence_augment": []}
    assert merged.items["attributes"].notna().any()

    rows_only = merged.as_if_only(["sequence_augment"])
    assert set(rows_only.synthetic().interactions["augmenter"]) == {"sequence_augment"}
    assert set(rows_only.synthetic().users["augmenter"]) <= {"sequence_augment"}
    assert merged.as_if_only([]).users.equals(train.users)
    assert "attributes" not in rows_only.items.columns  # the real catalog has none
    assert "profile_text" not in rows_only.users.columns
    columns_only = merged.as_if_only(["item_enrichment"])
    assert columns_only.synthetic().interactions.empty
    pd.testing.assert_series_equal(columns_only.items["attributes"], merged.items["attributes"])
    assert merged.as_if_only(None) is merged


def test_leave_one_out_retrains_a_variant_without_each_augmenter(tmp_path, capsys):
    import yaml

    from shopaug.cli import main

    teacher = {"name": "rec_teacher_labels", "config": {"teacher": "popularity"}}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump({
        "variants": ["itemknn", "itemknn_augmented", "knn_teacher_only"], "n_boot": 100,
        "augment": [{"name": "sequence_augment", "config": {"max_history": 10}}, teacher],
        "leave_one_out": ["itemknn_augmented"],
        # the same as itemknn_augmented_without_sequence_augment, by another route
        "define": {"knn_teacher_only": {"model": "itemknn", "augmented": True,
                                        "twin": "itemknn"}},
        "use": {"knn_teacher_only": ["rec_teacher_labels"]}}))
    out = tmp_path / "out"
    assert main(["bench", "rec", "--data", "shopaug:demo", "--format", "online_retail",
                 "--out", str(out), "--seeds", "2", "--no-progress",
                 "--config", str(tmp_path / "bench.yaml")]) == 0
    written = json.loads((out / "metrics.json").read_text())
    loo = ["itemknn_augmented_without_sequence_augment",
           "itemknn_augmented_without_rec_teacher_labels"]
    assert set(loo) <= set(written["variants"])
    for name in loo:
        assert f"itemknn_augmented - {name}" in written["paired"]
        assert written["pairs"][name] == "itemknn"
    per_user = pd.read_csv(out / "per_user.csv", dtype={"user_id": str})
    by_variant = {v: f.drop(columns="variant").reset_index(drop=True)
                  for v, f in per_user.groupby("variant")}
    pd.testing.assert_frame_equal(by_variant[loo[0]], by_variant["knn_teacher_only"])
    assert not by_variant[loo[1]].equals(by_variant["itemknn_augmented"])
    assert "itemknn_augmented - itemknn_augmented_without_sequence_augment" in (
        capsys.readouterr().out)
    assert written["best"]["augmented"] in ("itemknn_augmented", "knn_teacher_only")
    from shopaug.report.sources import load_report_model

    arms = {(r["model"], r["arm"]) for r in load_report_model(out)["lift"]}
    assert arms == {("itemknn", "augmented"), ("itemknn", "knn_teacher_only"),
                    ("itemknn", "augmented_without_sequence_augment"),
                    ("itemknn", "augmented_without_rec_teacher_labels")}

    # --variants on the command line keeps the leave-one-out variants of its choice
    import argparse

    from shopaug.bench.commands import _config

    args = argparse.Namespace(config=str(tmp_path / "bench.yaml"), seeds=None,
                              no_progress=True, variants="itemknn,itemknn_augmented")
    assert _config(RecBenchConfig, args).variants == ["itemknn", "itemknn_augmented", *loo]

    with pytest.raises(shopaug.ConfigError, match="not an augmented variant"):
        RecBenchConfig(leave_one_out=["itemknn"])
    with pytest.raises(shopaug.ConfigError, match="unknown variant 'hybrid_augmentd'"):
        RecBenchConfig(leave_one_out=["hybrid_augmentd"])
    clash = {"als_augmented_without_user_profiles": {"model": "als", "augmented": True}}
    with pytest.raises(shopaug.ConfigError, match="rename the one under define"):
        RecBenchConfig(leave_one_out=["als_augmented"], define=clash)


def test_windows_benchmark_earlier_periods_and_pool_them(data, tmp_path):
    """Rolling origin: window 1 is the period before the test month, with its own cut,
    augmenters and prompt audit; the pooled intervals count a customer once."""
    import argparse

    from shopaug.bench.commands import _config

    args = argparse.Namespace(config=None, seeds=1, no_progress=True, windows=2,
                              variants="popularity,itemknn,itemknn_augmented")
    cfg = _config(RecBenchConfig, args)
    assert cfg.windows == 2
    cfg.augment, cfg.n_boot = [*SMALL_AUGMENT[:3], SMALL_AUGMENT[4]], 100
    out = tmp_path / "out"
    llm = LLM(FakeEngine(), LLMCache(tmp_path / "c.sqlite"), progress=False)
    summary = run_rec_benchmark(data, out, cfg, llm=llm)
    written = json.loads((out / "metrics.json").read_text())
    outer = split(data, "temporal", test_days=30)
    inner = split(outer.train, "temporal", test_days=30)
    cuts = [pd.Timestamp(w["split"]["cut"]) for w in written["windows"]]
    assert cuts == [outer.cut, inner.cut]
    per_user = pd.read_csv(out / "per_user.csv", dtype={"user_id": str})
    assert set(per_user["window"]) == {0, 1}
    for k, side in enumerate((outer, inner)):
        scored = per_user.loc[per_user["window"] == k, "user_id"]
        assert set(scored) <= set(side.test.interactions["user_id"].astype(str))
    synthetic = pd.read_csv(out / "synthetic_interactions.csv", parse_dates=["timestamp"])
    for k, side in enumerate((outer, inner)):
        rows = synthetic[synthetic["window"] == k]
        assert len(rows) and (rows["timestamp"] < side.cut).all()
    # a customer in both windows is one unit of the pooled interval
    everyone = per_user.loc[(per_user["slice"] == "all")
                            & (per_user["variant"] == "itemknn"), "user_id"]
    assert everyone.duplicated().any()
    pooled = written["paired"]["itemknn_augmented - itemknn"]["all"]["recall@20"]
    assert pooled["n"] == everyone.nunique() < len(everyone)
    assert written["variants"]["itemknn"]["all"]["users"] == everyone.nunique()
    for w in written["windows"]:
        assert w["users"] == (per_user.loc[everyone.index, "window"] == w["window"]).sum()
        assert "itemknn_augmented - itemknn" in w["paired"]
        assert not any(p.removesuffix(" (best vs best)") in written["paired"]  # no repeats
                       for p in w["paired"] if p.endswith(" (best vs best)"))
    # each window's prompts are audited against its own test period
    audits = [json.loads((out / name).read_text())
              for name in ("quality.json", "quality_window1.json")]
    prompts = [next(c for c in q["checks"] if c["name"] == "prompts_with_test_only_items")
               for q in audits]
    assert all(c["passed"] for c in prompts)
    assert all(int(re.search(r"of ([\d,]+) prompts", c["detail"])[1].replace(",", "")) > 0
               for c in prompts)
    from shopaug.bench.rec import write_table

    text = write_table(summary)
    assert "pooled over 2 windows" in text and "window 1: from" in text
    assert (out / "summary.txt").read_text().strip() == text.strip()
    from shopaug.report.sources import load_report_model

    table = next(t for t in load_report_model(out)["tables"]
                 if t["title"].startswith("Each window alone"))
    assert [r[0] for r in table["rows"]] == [0, 1]
    assert "itemknn_augmented - itemknn" in table["columns"]


def test_windows_must_fit_in_the_data(data, tmp_path):
    with pytest.raises(shopaug.ConfigError, match="at least 1"):
        RecBenchConfig(windows=0)
    cfg = RecBenchConfig(windows=14, variants=["popularity"], progress=False)
    with pytest.raises(shopaug.ConfigError, match="reaches back before the data starts"):
        run_rec_benchmark(data, tmp_path / "out", cfg)


def test_a_failing_older_window_fails_the_run_and_is_named():
    from types import SimpleNamespace

    from shopaug.bench.rec import _record_quality

    def report(passed: bool, verdict: str):
        return SimpleNamespace(passed=passed, verdict=lambda: verdict)

    summary: dict = {}
    _record_quality(summary, [report(True, "all passed"), report(False, "1 FAILED")])
    assert summary == {"quality_passed": False, "quality": "window 1: 1 FAILED"}
    _record_quality(summary, [report(True, "all passed"), report(True, "all passed")])
    assert summary == {"quality_passed": True, "quality": "all passed"}
    _record_quality(summary, [report(False, "2 FAILED"), report(False, "1 FAILED")])
    assert summary == {"quality_passed": False, "quality": "2 FAILED"}


def test_older_windows_leave_out_items_not_yet_sold_unless_told_not_to(data):
    from shopaug.bench.rec import _windows

    whole = _windows(data, RecBenchConfig(windows=3, catalog_as_of_period=False))
    then = _windows(data, RecBenchConfig(windows=3))
    assert len(then[0].train.items) == len(whole[0].train.items)  # the test month's
    first_sale = data.interactions.groupby("item_id")["timestamp"].min()
    for k in (1, 2):
        items = set(then[k].train.items["item_id"])
        assert len(items) < len(whole[k].train.items)
        period_end = then[k - 1].cut  # window k's test period ends at the next cut
        assert (first_sale.reindex(list(items)).dropna() < period_end).all()
        # the interactions and the split itself do not change
        assert then[k].cut == whole[k].cut
        assert len(then[k].test.interactions) == len(whole[k].test.interactions)
    validation = _windows(data, RecBenchConfig(validation=True))
    assert set(validation[0].train.items["item_id"]) == set(then[1].train.items["item_id"])


def test_models_that_ignore_the_seed_are_fitted_once_and_stand_for_every_seed(data, monkeypatch):
    import shopaug.bench.rec as rec

    fits: list[tuple[str, int]] = []
    real_fit_eval = rec._fit_eval

    def counting(variant, train, parts, cfg, seed):
        fits.append((variant, seed))
        return real_fit_eval(variant, train, parts, cfg, seed)

    monkeypatch.setattr(rec, "_fit_eval", counting)
    cfg = RecBenchConfig(seeds=[0, 1, 2], variants=["itemknn", "als_real"], progress=False,
                         overrides={"als_real": {"threads": 1, "iterations": 2}})
    parts = rec._windows(data, cfg)[0]
    rows, _ = rec.run_variants(parts, parts.train, cfg)
    assert fits == [("itemknn", 0), ("als_real", 0), ("als_real", 1), ("als_real", 2)]
    knn = rows[rows["variant"] == "itemknn"]
    assert sorted(knn["seed"].unique()) == [0, 1, 2]
    by_seed = [knn[knn["seed"] == s].drop(columns="seed").reset_index(drop=True)
               for s in (0, 1, 2)]
    pd.testing.assert_frame_equal(by_seed[0], by_seed[2])
    # a seeded model really differs between seeds, so reusing its fit would be wrong
    als = rows[rows["variant"] == "als_real"]
    assert not als[als["seed"] == 0].drop(columns="seed").reset_index(drop=True).equals(
        als[als["seed"] == 1].drop(columns="seed").reset_index(drop=True))


@pytest.mark.parametrize("name", ["popularity", "itemknn", "content"])
def test_a_model_marked_seed_free_gives_the_same_lists_under_any_seed(data, name):
    from shopaug import registry

    assert registry.get("recommender", name).seeded is False
    users = sorted(data.interactions["user_id"].unique())[:30]
    lists = [registry.create("recommender", name, {}).fit(data, seed=s).recommend(users, 10)
             for s in (0, 7)]
    pd.testing.assert_frame_equal(lists[0], lists[1])


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("scripts/rec_*.yaml")),
                         ids=lambda p: p.name)
def test_the_published_rec_configs_still_build(path):
    # The README's numbers cite these files: a renamed variant or setting must break here,
    # not when a reader reruns a result.
    import argparse

    from shopaug.bench.commands import _config

    args = argparse.Namespace(config=str(path), variants=None, windows=None, seeds=None,
                              no_progress=True, validation=False)
    cfg = _config(RecBenchConfig, args)
    assert cfg.variants and set(cfg.variants) <= set(cfg.table()[0])


def test_a_variant_whose_use_list_names_no_augmenter_that_runs_is_flagged(caplog):
    # content_augmented reads item_enrichment's output only: without that augmenter it
    # would quietly be its real-only twin
    augment = [{"name": "sequence_augment"}]
    with caplog.at_level("WARNING", logger="shopaug.bench.rec"):
        RecBenchConfig(variants=["content_real", "content_augmented"], augment=augment)
    assert "content_augmented trains on the output of item_enrichment" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="shopaug.bench.rec"):
        RecBenchConfig(variants=["content_real", "content_augmented"])
        RecBenchConfig(variants=["itemknn_augmented"], augment=augment,
                       use={"itemknn_augmented": []})
    assert caplog.text == ""


def test_a_use_list_for_one_variant_keeps_the_defaults_of_the_others():
    cfg = RecBenchConfig(variants=["als_augmented"], use={"als_augmented": ["item_enrichment"]})
    assert cfg.use["als_augmented"] == ["item_enrichment"]
    assert cfg.use["sasrec_augmented"] == ["sequence_augment"]  # not dropped by the merge
    everything = RecBenchConfig(variants=["content_augmented"], use={"content_augmented": None})
    assert everything.use["content_augmented"] is None  # None: every augmenter's output
    again = dataclasses.replace(everything)  # merging twice must not bring the default back
    assert again.use["content_augmented"] is None
