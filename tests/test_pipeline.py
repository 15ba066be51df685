from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

import shopaug
from shopaug import ConfigError, PipelineConfig
from shopaug.cli import main
from shopaug.datasets import demo_config_path


def _config(tmp_path: Path, native_dir: Path, **extra) -> Path:
    values = {"name": "t", "data": {"path": str(native_dir)},
              "split": {"name": "temporal", "config": {"test_days": 20}},
              "models": [{"name": "popularity"}], "output": str(tmp_path / "runs"),
              "progress": False, **extra}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_unknown_top_level_key_is_an_error(tmp_path, native_dir):
    with pytest.raises(ConfigError, match="modles: unknown key"):
        PipelineConfig.from_yaml(_config(tmp_path, native_dir, modles=[]))


def test_unknown_key_inside_a_component_fails_before_any_work(tmp_path, native_dir):
    path = _config(tmp_path, native_dir,
                   models=[{"name": "popularity", "config": {"wieght": "users"}}])
    with pytest.raises(ConfigError, match=r"(?s)models\[0\].*wieght: unknown key"):
        PipelineConfig.from_yaml(path)


def test_unknown_component_and_loader_option(tmp_path, native_dir):
    with pytest.raises(ConfigError, match="no recommender named 'magic'"):
        PipelineConfig.from_yaml(_config(tmp_path, native_dir, models=[{"name": "magic"}]))
    with pytest.raises(ConfigError, match="on_bad_row"):
        PipelineConfig.from_yaml(_config(
            tmp_path, native_dir, data={"path": str(native_dir), "on_bad_row": "quarantine"}))


def test_duplicate_model_names_need_labels(tmp_path, native_dir):
    path = _config(tmp_path, native_dir, models=[{"name": "popularity"}, {"name": "popularity"}])
    with pytest.raises(ConfigError, match="label"):
        PipelineConfig.from_yaml(path)


def test_fingerprint_is_canonical_and_ignores_output(tmp_path, native_dir):
    a = PipelineConfig.from_yaml(_config(tmp_path, native_dir))
    b = a.model_copy(update={"output": "elsewhere", "progress": True})
    assert a.fingerprint() == b.fingerprint()
    c = PipelineConfig.from_yaml(_config(tmp_path, native_dir, seeds=[1]))
    assert c.fingerprint() != a.fingerprint()
    again = PipelineConfig.from_dict(yaml.safe_load(a.to_yaml()))
    assert again == a and again.fingerprint() == a.fingerprint()


def test_relative_paths_are_relative_to_the_config(tmp_path, native_dir):
    path = _config(tmp_path, native_dir, data={"path": "shop"}, output="out")
    config = PipelineConfig.from_yaml(path)
    assert config.data.path == str(native_dir) and config.output == str(tmp_path / "out")


def test_run_writes_artifacts_and_run_card(tmp_path, native_dir):
    result = shopaug.run(_config(tmp_path, native_dir))
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "run_card.json", "metrics.json", "metrics.csv"} <= files
    card = json.loads((result.run_dir / "run_card.json").read_text())
    assert card["fingerprint"].startswith(result.run_dir.name.split("-")[-1])
    assert card["counts"]["interactions"] == 8
    assert card["versions"]["schema"] == "1.0"
    assert {"load", "split", "fit:popularity"} <= set(card["timings_seconds"])
    assert card["splits"]["0"]["sizes"]["test"]["interactions"] > 0
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert set(metrics["slice"]) >= {"all"} and "ndcg@10" in metrics.columns
    leftovers = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]
    assert not leftovers


def test_a_failing_run_leaves_no_artifact_directory(tmp_path, native_dir):
    (native_dir / "items.csv").write_text("item_id,title\ni1,\n")
    with pytest.raises(shopaug.DataValidationError):
        shopaug.run(_config(tmp_path, native_dir))
    runs = tmp_path / "runs"
    assert not runs.exists() or not list(runs.iterdir())


def test_quarantined_rows_land_in_the_run_directory(tmp_path, native_dir):
    with (native_dir / "items.csv").open("a") as fh:
        fh.write("i9,,,,,,\n")
    path = _config(tmp_path, native_dir,
                   data={"path": str(native_dir), "on_bad_rows": "quarantine"})
    result = shopaug.run(path)
    assert (result.run_dir / "quarantine" / "items.quarantine.csv").is_file()
    assert result.card["load"]["quarantined"] == {"items": 1}


def test_demo_config_runs_on_the_shipped_data(tmp_path):
    result = shopaug.run(demo_config_path(), output=tmp_path, progress=False)
    summary = result.summary()
    hr = summary.loc[("popularity_lines", "all"), "hr@10"]
    assert 0.2 < hr < 0.6  # top-10 popular hits about a third of last baskets
    assert result.card["load"]["cleaning"]["guest lines without CustomerID"] > 0


def test_cli_demo_prints_lift_and_report_path(tmp_path, capsys):
    # the demo experiment as `make demo` runs it, with the fake LLM instead of SmolLM2
    assert main(["demo", "--out", str(tmp_path), "--no-progress", "--llm", "engine=fake",
                 "--llm", "use_cache=false"]) == 0
    out = capsys.readouterr().out
    assert "recall@20" in out and "all_augmenters" in out and "run written to" in out
    report = Path(out.split("report: ")[1].split()[0])
    assert report.is_file() and 'id="quality"' in report.read_text(encoding="utf-8")


def test_cli_run_and_clear_error_exit(tmp_path, native_dir, capsys):
    assert main(["run", str(_config(tmp_path, native_dir))]) == 0
    bad = _config(tmp_path, native_dir, modles=[])
    assert main(["run", str(bad)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_cli_data_inspect(native_dir, capsys):
    assert main(["data", "inspect", str(native_dir)]) == 0
    out = capsys.readouterr().out
    assert "interactions" in out and "timestamp:datetime64[us]" in out
    (native_dir / "items.csv").write_text("item_id,title\ni1,\n")
    assert main(["data", "inspect", str(native_dir)]) == 1
    assert "column 'title': empty value" in capsys.readouterr().err


def test_cli_inspect_with_options(native_dir, capsys):
    with (native_dir / "items.csv").open("a") as fh:
        fh.write("i9,,,,,,\n")
    code = main(["data", "inspect", str(native_dir), "--option", "on_bad_rows=quarantine",
                 "--option", f"quarantine_dir={native_dir / 'q'}"])
    assert code == 0 and "quarantined: 1 items rows" in capsys.readouterr().out


def test_cli_components_lists_builtins(capsys):
    assert main(["components"]) == 0
    out = capsys.readouterr().out
    assert "online_retail" in out and "leave_last_basket" in out and "popularity" in out


def test_cli_hides_debug_chatter_of_libraries():
    import subprocess
    import sys

    code = ("import logging\nfrom shopaug.cli import main\nmain(['components'])\n"
            "noisy = logging.getLogger('bm25s')\nnoisy.setLevel(logging.DEBUG)\n"
            "noisy.debug('Building index from tokens')\nnoisy.warning('real warning')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "Building index" not in out.stderr and "real warning" in out.stderr


@pytest.mark.parametrize(("task", "known"), [("search", "bm25"), ("rec", "popularity")])
def test_bench_commands_refuse_unknown_variants_before_any_work(task, known, tmp_path,
                                                                  capsys):
    from shopaug.cli import main

    config = tmp_path / "bench.yaml"
    config.write_text("variants: [no_such_model]\n")
    args = ["bench", task, "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]
    # from --variants and from a config file alike, and before the data is even read
    assert main([*args, "--variants", f"{known},no_such_model"]) == 2
    assert "unknown variants ['no_such_model']" in capsys.readouterr().err
    assert main([*args, "--config", str(config)]) == 2
    assert "unknown variants ['no_such_model']" in capsys.readouterr().err
    config.write_text("overrides: {no_such_model: {epochs: 2}}\n")  # would change nothing
    assert main([*args, "--config", str(config)]) == 2
    assert "unknown variants ['no_such_model']" in capsys.readouterr().err
    config.write_text(f"overrides: {{{known}: {{no_such_setting: 2}}}}\n")
    assert main([*args, "--config", str(config)]) == 2
    assert f"variant {known} " in capsys.readouterr().err


@pytest.mark.parametrize(("task", "model", "builtin"), [("search", "bm25", "bm25"),
                                                     ("rec", "itemknn", "popularity")])
@pytest.mark.parametrize(("define", "error"), [
    ({"{builtin}": {"model": "{model}"}}, "'{builtin}' is a built-in variant"),
    ({"mine": {"model": "no_such_model"}}, "define: mine: no "),
    ({"mine": {"model": "{model}", "epochs": 2}}, "define: mine: Extra inputs"),
    ({"a": {"model": "{model}", "augmented": True},
      "b": {"model": "{model}", "augmented": True, "twin": "a"}}, "twin 'a' is not a real-only"),
    ({"a": {"model": "{model}"}, "b": {"model": "{model}", "twin": "a"}}, "is not augmented"),
    # settings are checked before any generation, not when the model is built
    ({"mine": {"model": "{model}", "config": {"no_such_setting": 1}}},
     "variant mine ({model})"),
])
def test_defined_variants_are_checked_before_any_work(task, model, builtin, define, error,
                                                      tmp_path, capsys):
    from shopaug.cli import main

    def fill(value):
        return value.format(model=model, builtin=builtin) if isinstance(value, str) else value

    define = {fill(name): {k: fill(v) for k, v in spec.items()} for name, spec in define.items()}
    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({"define": define}))
    args = ["bench", task, "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path),
            "--config", str(config)]
    assert main(args) == 2
    assert fill(error) in capsys.readouterr().err


@pytest.mark.parametrize(("source", "error"), [
    ({"name": "als", "config": {"factorz": 3}}, "source als: invalid config"),
    ({"name": "no_such_model"}, "source no_such_model: no recommender named"),
])
def test_a_hybrid_variants_sources_are_checked_before_any_work(source, error, tmp_path,
                                                                capsys):
    """A source's settings inside a hybrid used to fail only when the hybrid was fit,
    after the LLM stages."""
    from shopaug.cli import main

    config = tmp_path / "bench.yaml"
    config.write_text(yaml.safe_dump({"define": {"mine": {
        "model": "hybrid", "config": {"sources": [{"name": "popularity"}, source]}}}}))
    args = ["bench", "rec", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path),
            "--config", str(config)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "variant mine (hybrid)" in err and error in err


def test_rec_compare_names_two_running_variants(tmp_path, capsys):
    from shopaug.cli import main

    config = tmp_path / "bench.yaml"
    config.write_text("variants: [popularity, itemknn]\ncompare: [[itemknn, als_real]]\n")
    args = ["bench", "rec", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path),
            "--config", str(config)]
    assert main(args) == 2
    assert "compare: ['itemknn', 'als_real'] must be two of the variants" in \
        capsys.readouterr().err


@pytest.mark.parametrize("task", ["search", "rec"])
def test_a_misspelt_bench_setting_is_named_with_a_suggestion(task, tmp_path, capsys):
    from shopaug.cli import main

    config = tmp_path / "bench.yaml"
    config.write_text("defne: {}\n")
    args = ["bench", task, "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path),
            "--config", str(config)]
    assert main(args) == 2
    assert "unknown setting 'defne' (did you mean 'define'?)" in capsys.readouterr().err
    config.write_text("- a list\n")
    assert main(args) == 2
    assert "must hold a mapping (seeds, " in capsys.readouterr().err
    config.write_text("seeds: [0\n")
    assert main(args) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    assert main([*args[:-1], str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml not found" in capsys.readouterr().err


def test_bench_seeds_come_from_the_flag_then_the_file_then_the_default(tmp_path):
    import argparse

    from shopaug.bench.commands import _config
    from shopaug.bench.rec import RecBenchConfig

    config = tmp_path / "bench.yaml"
    config.write_text("seeds: [4, 7]\n")

    def seeds(flag, path):
        args = argparse.Namespace(config=path, seeds=flag, no_progress=True, variants=None)
        return _config(RecBenchConfig, args).seeds

    assert seeds(2, str(config)) == [0, 1]
    assert seeds(None, str(config)) == [4, 7]
    assert seeds(None, None) == [0, 1, 2]


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "scripts")
                                        .glob("rec_*.yaml")), ids=lambda p: p.name)
def test_the_shipped_rec_bench_configs_are_valid(path):
    """The configs the README and the issue notes cite still load, with every variant,
    override and defined model checked, so none can drift from the bench."""
    import argparse

    from shopaug.bench.commands import _config
    from shopaug.bench.rec import RecBenchConfig

    args = argparse.Namespace(config=str(path), seeds=None, no_progress=True, variants=None)
    assert _config(RecBenchConfig, args).variants
