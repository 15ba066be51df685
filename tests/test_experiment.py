"""The experiment runner: arms, paired statistics, quality gate, stage cache, outputs."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from pydantic import Field

from shopaug import registry
from shopaug.augment.base import Augmenter
from shopaug.cli import main
from shopaug.components import ComponentConfig
from shopaug.data.split import split
from shopaug.datasets import demo_path
from shopaug.errors import ConfigError, QualityError
from shopaug.evaluate.compare import compare_arms
from shopaug.evaluate.stats import holm, permutation_p
from shopaug.pipeline.experiment import ExperimentConfig, run_experiment

FAKE = {"engine": "fake", "use_cache": False, "progress": False}


def _config(tmp_path, **overrides) -> ExperimentConfig:
    values = {
        "name": "t", "task": "rec",
        "data": {"path": str(demo_path()), "format": "online_retail"},
        "split": {"name": "leave_last_basket"},
        "augment": [
            {"name": "user_profiles", "config": {"max_users": 10, "prefer": "sparse"}},
            {"name": "sequence_augment", "config": {"ops": ["crop"], "max_history": 10}},
        ],
        "models": [{"name": "popularity"}, {"name": "itemknn"}],
        "evaluate": {"ks": [10], "n_boot": 200},
        "seeds": [0, 1], "llm": FAKE, "output": str(tmp_path / "runs"), "progress": False,
        "report": False,
    }
    values.update(overrides)
    return ExperimentConfig.model_validate(values)


# -- statistics --------------------------------------------------------------------

def _frame(shift: float, n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.random(n)
    rows = []
    for arm, values in (("baseline", base), ("aug", base + shift + rng.normal(0, 0.01, n))):
        rows.append(pd.DataFrame({"model": "m", "arm": arm, "seed": 0, "slice": "all",
                                  "group": [f"u{i}" for i in range(n)], "recall@10": values}))
    return pd.concat(rows, ignore_index=True)


def test_compare_arms_finds_a_real_shift_and_not_a_null_one():
    gain = compare_arms(_frame(0.05), ["recall@10"], n_boot=300)["lift"][0]
    assert gain["excludes_zero"] and gain["mean"] == pytest.approx(0.05, abs=0.005)
    assert gain["p"] < 0.01 and gain["relative"] > 0
    null = compare_arms(_frame(0.0), ["recall@10"], n_boot=300)["lift"][0]
    assert abs(null["mean"]) < 0.005 and null["p"] > 0.05


def test_permutation_p_and_holm():
    a = pd.Series([0.1, 0.2, 0.3, 0.4])
    assert permutation_p(a, a) == 1.0
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


# -- config ------------------------------------------------------------------------

def test_default_arms_are_each_augmenter_alone_and_all(tmp_path):
    arms = _config(tmp_path).arm_specs()
    assert list(arms) == ["user_profiles", "sequence_augment", "all_augmenters"]
    assert [s.name for s in arms["all_augmenters"]] == ["user_profiles", "sequence_augment"]


def test_unknown_arm_and_threshold_are_config_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown arms"):
        _config(tmp_path, arms=["nope"])
    with pytest.raises(ValueError):
        _config(tmp_path, quality={"no_such_threshold": 1})


# -- running -----------------------------------------------------------------------

def test_experiment_writes_paired_results_quality_and_samples(tmp_path):
    result = run_experiment(_config(tmp_path))
    s = result.summary
    assert s["arms"] == ["user_profiles", "sequence_augment", "all_augmenters"]
    # every model x arm is paired with its own baseline on every slice and metric
    lift = pd.DataFrame(s["lift"])
    assert set(lift["arm"]) == set(s["arms"]) and set(lift["model"]) == {"popularity",
                                                                          "itemknn"}
    assert {"recall@10", "ndcg@10"} <= set(lift["metric"])
    headline = lift[(lift["slice"] == "all") & (lift["metric"] == "recall@10")]
    assert headline["p_holm"].notna().all() and (headline["p_holm"] >= headline["p"]).all()
    # popularity counts real rows only, so synthetic rows cannot move it at all
    pop = headline[headline["model"] == "popularity"]
    assert (pop["mean"].abs() < 1e-12).all()
    # groups are test users of both seeds, identical for every arm
    groups = result.per_group.groupby(["model", "arm"])["group"].nunique()
    assert groups.nunique() == 1
    run = result.run_dir
    for name in ("summary.json", "run_card.json", "quality.json", "samples.json",
                 "per_group.parquet", "results.csv", "lift.parquet", "prompts.jsonl"):
        assert (run / name).is_file(), name
    card = json.loads((run / "run_card.json").read_text())
    assert card["quality_passed"] is True and card["llm"]["total"]["requests"] > 0
    assert {(r["model"], r["arm"]) for r in card["lift_all_groups"]} == {
        (m, a) for m in ("popularity", "itemknn") for a in s["arms"]}
    samples = json.loads((run / "samples.json").read_text())
    assert {x["augmenter"] for x in samples} >= {"user_profiles", "sequence_augment"}
    profile = next(x for x in samples if x["augmenter"] == "user_profiles")
    assert profile["generated"][0] and profile["real"]  # generated text next to history
    prompts = [json.loads(line) for line in (run / "prompts.jsonl").read_text().splitlines()]
    assert prompts and all(p["stage"] == "user_profiles" for p in prompts)


def test_rerun_reuses_every_stage_and_asks_the_llm_nothing(tmp_path):
    first = run_experiment(_config(tmp_path))
    assert first.summary["card"]["stage_cache"]["misses"] > 0
    # a different model list: a new run, but the same augmentation stages
    second = run_experiment(_config(tmp_path, models=[{"name": "popularity"}]))
    card = second.summary["card"]
    assert card["stage_cache"]["misses"] == 0 and card["stage_cache"]["hits"] > 0
    assert card["llm"] is None  # the LLM was never even built
    assert second.summary["quality"]["passed"] is True


class _LeakyConfig(ComponentConfig):
    pairs: list[tuple[str, str]] = Field(default_factory=list)


class _Leaky(Augmenter):
    """Test-only: appends the given (user, item) pairs as synthetic purchases."""

    name = "leaky_test_pairs"
    Config = _LeakyConfig
    requires: ClassVar[dict[str, tuple[str, ...]]] = {}

    def run(self, data, ctx):
        inter = data.interactions
        rows = pd.DataFrame({"user_id": [u for u, _ in self.config.pairs],
                             "item_id": [i for _, i in self.config.pairs],
                             "timestamp": inter["timestamp"].max(), "origin": "synthetic",
                             "augmenter": self.name, "value": 1.0})
        return data.append("interactions", rows)


def test_leaky_augmentation_is_refused_before_training(tmp_path):
    registry.register("augmenter", _Leaky)
    from shopaug import load

    data = load(demo_path(), format="online_retail").data
    parts = split(data, "leave_last_basket", seed=0)
    test = parts.test.interactions
    pairs = list(test[["user_id", "item_id"]].drop_duplicates().head(30).itertuples(
        index=False, name=None))
    bought_before = set(parts.train.interactions[["user_id", "item_id"]].itertuples(
        index=False, name=None))
    new_pairs = [p for p in pairs if p not in bought_before]  # repeat buys are no leak
    cfg = _config(tmp_path, augment=[{"name": "leaky_test_pairs",
                                      "config": {"pairs": pairs}}], seeds=[0],
                  decontaminate=False)
    with pytest.raises(QualityError, match="leaky_test_pairs") as err:
        run_experiment(cfg)
    assert "leakage" in str(err.value) and "enforce_quality" in str(err.value)
    assert not list((tmp_path / "runs").glob("t-*"))  # nothing half-written
    # without the gate it trains, and the card says the check failed
    result = run_experiment(cfg.model_copy(update={"enforce_quality": False}))
    assert result.summary["card"]["quality_passed"] is False
    # decontamination (the default) drops exactly the copied test pairs before training
    clean = run_experiment(cfg.model_copy(update={"decontaminate": True}))
    assert clean.summary["card"]["quality_passed"] is True
    dropped = [s["report"] for s in clean.summary["card"]["stages"]
               if s["stage"] == "decontaminate"]
    assert dropped and dropped[0]["interactions"] == len(new_pairs) > 0


def test_cli_experiment_and_report(tmp_path, capsys):
    cfg = _config(tmp_path, seeds=[0], report=True)
    path = tmp_path / "exp.yaml"
    path.write_text(cfg.to_yaml())
    assert main(["experiment", str(path), "--no-progress", "--llm", "engine=fake",
                 "--llm", "use_cache=false"]) == 0
    out = capsys.readouterr().out
    assert "recall@10" in out and "all_augmenters" in out and "report:" in out
    run = next((tmp_path / "runs").glob("t-*"))
    html = (run / "report.html").read_text(encoding="utf-8")
    assert 'id="lift"' in html and "all_augmenters" in html
    assert main(["quality", str(run), "--out", str(tmp_path / "q.json")]) == 0
    assert json.loads((tmp_path / "q.json").read_text())["passed"] is True


def test_missing_config_file_is_a_clean_error(tmp_path, capsys):
    assert main(["experiment", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_config_error_type():
    with pytest.raises(ConfigError):
        ExperimentConfig.from_dict({"data": {"path": "x"}})


def test_messages_name_the_published_run_dir_not_the_temporary_one(tmp_path):
    from shopaug.artifacts import atomic_dir, published_path

    with atomic_dir(tmp_path / "run-1.v2") as tmp:
        inside = tmp / "errors" / "x.csv"
        assert published_path(inside) == tmp_path / "run-1.v2" / "errors" / "x.csv"
    assert published_path(tmp_path / "plain.csv") == tmp_path / "plain.csv"


class _Shouter(Augmenter):
    """Writes every title in capitals: a column filled in rows it did not make."""

    name = "shouter_test"
    Config = ComponentConfig

    def run(self, data, ctx):
        return data.replace(items=data.items.assign(title=data.items["title"].str.upper()))


def test_a_stage_records_what_it_wrote_into_rows_also_when_reused(tmp_path):
    from shopaug.pipeline.config import ComponentSpec
    from shopaug.pipeline.runner import RunContext
    from shopaug.pipeline.stages import StageCache, run_stage
    from shopaug.testing import sample_data

    registry.register("augmenter", _Shouter)
    data = sample_data()
    ctx = RunContext(seed=0, run_dir=tmp_path, progress=False)
    cache = StageCache(tmp_path / "stages")
    spec = ComponentSpec(name="shouter_test")
    for reused in (False, True):
        result = run_stage(data, "augmenter", spec, ctx, cache, "no-llm")
        assert result.reused is reused
        assert [(f.augmenter, f.column) for f in result.data.fills] == [
            ("shouter_test", "title")]
        assert result.data.items["title"].str.isupper().all()
        pd.testing.assert_frame_equal(result.data.as_if_only([]).items, data.items)
    from shopaug.pipeline.stages import run_chain

    _, _, reports = run_chain(data, [spec], [], ctx, cache, "no-llm")
    changed = int((data.items["title"] != data.items["title"].str.upper()).sum())
    assert changed > 0 and reports[0]["filled"] == {"items.title": changed}


class _HalfDone(Augmenter):
    """Reports one failed row, as an LLM stage whose server failed on one request."""

    name = "half_done_test"
    Config = ComponentConfig

    def run(self, data, ctx):
        from shopaug.llm.structured import errors_table

        self.errors_ = errors_table([], self.name)
        self.errors_.loc[0] = [self.name, "i1", 1, "HTTP 500", "", ""]
        return data


def test_an_incomplete_stage_is_not_reused_so_a_rerun_asks_again(tmp_path):
    from shopaug.pipeline.config import ComponentSpec
    from shopaug.pipeline.runner import RunContext
    from shopaug.pipeline.stages import StageCache, run_stage
    from shopaug.testing import sample_data

    registry.register("augmenter", _HalfDone)
    ctx = RunContext(seed=0, run_dir=tmp_path, progress=False)
    cache = StageCache(tmp_path / "stages")
    for _ in range(2):
        result = run_stage(sample_data(), "augmenter", ComponentSpec(name="half_done_test"),
                           ctx, cache, "no-llm")
        assert not result.reused
    assert cache.misses == 2 and cache.hits == 0
