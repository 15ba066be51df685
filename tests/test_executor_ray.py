"""The ``ray`` executor gives the local executor's rows, and captures row failures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

if not os.environ.get("CI"):
    pytest.importorskip("ray")

from shopaug import registry
from shopaug.augment.expand import LabelPropagation
from shopaug.data.bundle import ShopData
from shopaug.llm.config import LLMConfig
from shopaug.llm.engine import EngineError
from shopaug.llm.fake import FakeEngine
from shopaug.pipeline.config import PipelineConfig
from shopaug.pipeline.executors import LocalExecutor, RayExecutor
from shopaug.pipeline.runner import RunContext
from shopaug.testing import sample_data

FAKE = LLMConfig(engine="fake", use_cache=False, progress=False)
#: several shards and batches smaller than a shard, so a batch can straddle shards
OPTIONS = {"shards": 3, "batch_size": 2, "concurrency": 2, "num_cpus_per_worker": 0.5}


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    import ray
    from ray import cloudpickle

    # the engine factories below live in this test module, which Ray's workers cannot
    # import by name: ship them by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _ctx(tmp_path: Path, executor, seed: int = 3) -> RunContext:
    return RunContext(seed=seed, run_dir=tmp_path, progress=False, llm_config=FAKE,
                      executor=executor)


def _run(name: str, config: dict, executor, tmp_path: Path):
    component = registry.create("augmenter", name, config)
    ctx = _ctx(tmp_path, executor)
    return executor.run(component, sample_data(), ctx), component, ctx


@pytest.mark.parametrize(("name", "config"), [
    ("synthetic_queries", {"k": 2, "samples": 2, "n_examples": 2}),
    ("item_enrichment", {"fill_description": True, "only_missing": False}),
])
def test_ray_rows_equal_local_rows(name, config, tmp_path):
    local, local_c, local_ctx = _run(name, config, LocalExecutor(), tmp_path / "local")
    ray_out, ray_c, ray_ctx = _run(name, config, RayExecutor(OPTIONS), tmp_path / "ray")
    changed = 0
    for table, frame in local.tables().items():
        pd.testing.assert_frame_equal(ray_out.table(table), frame, obj=table)
        changed += not frame.equals(sample_data().table(table))
    assert changed, "the augmenter changed nothing: the comparison proves little"
    assert getattr(ray_c, "report_", None) == getattr(local_c, "report_", None)
    # the prompts asked on the actors reach the driver's audit (the leakage check)
    stage = local_ctx.llm.ledger.stages[name]
    assert ray_ctx.llm.ledger.stages[name].requests == stage.requests > 0
    key = ["request_id", "text"]
    assert sorted(map(tuple, pd.DataFrame(ray_ctx.audit)[key].to_numpy())) == \
        sorted(map(tuple, pd.DataFrame(local_ctx.audit)[key].to_numpy()))


def test_pipeline_config_accepts_the_ray_executor_and_keeps_the_fingerprint():
    base = {"data": {"path": "x.csv", "format": "native"}}
    local = PipelineConfig.model_validate(base)
    ray_cfg = PipelineConfig.model_validate(
        {**base, "executor": "ray", "executor_options": {"shards": 4, "concurrency": 3}})
    assert ray_cfg.executor_options.concurrency == 3
    # the executor changes where rows are made, never which: same run, same stage cache
    assert local.fingerprint() == ray_cfg.fingerprint()
    with pytest.raises(Exception, match="shard_count"):
        PipelineConfig.model_validate({**base, "executor_options": {"shard_count": 2}})


class _Picky(FakeEngine):
    """Raises a plain exception for any batch that holds the garden gnome."""

    def generate(self, requests, on_result=None):
        if any("gnome" in r.messages[-1][1].lower() for r in requests):
            raise RuntimeError("backend crashed on this record")
        return super().generate(requests, on_result)


def _picky() -> FakeEngine:
    return _Picky()


def _dead() -> FakeEngine:
    return FakeEngine(fail_with="connection refused by http://10.0.0.1:8000")


def test_a_failing_record_is_captured_not_fatal(tmp_path):
    executor = RayExecutor(OPTIONS, engine_factory=_picky)
    out, component, _ = _run("synthetic_queries", {"k": 2, "n_examples": 0}, executor,
                             tmp_path)
    errors = component.errors_
    assert list(errors["request_id"]) == ["i5"]  # the gnome
    assert "backend crashed" in errors["reason"].iloc[0]
    judged = set(out.judgments.loc[out.judgments["origin"] == "synthetic", "item_id"])
    assert judged == {"i1", "i2", "i3", "i4", "i6"}
    written = pd.read_csv(tmp_path / "errors" / "synthetic_queries.csv")
    assert list(written["request_id"]) == ["i5"]


def test_a_dead_engine_stops_the_stage_with_its_message(tmp_path):
    executor = RayExecutor(OPTIONS, engine_factory=_dead)
    with pytest.raises(EngineError, match="connection refused"):
        _run("item_enrichment", {}, executor, tmp_path)


class _Http500(FakeEngine):
    """Answers HTTP 500 (a row-level failure) for the gnome, or for every request."""

    def __init__(self, everything: bool = False) -> None:
        super().__init__()
        self.everything = everything

    def generate(self, requests, on_result=None):
        from shopaug.llm.types import ChatResponse

        answers = super().generate(requests)
        out = [ChatResponse("", error="HTTP 500: boom")
               if self.everything or "gnome" in r.messages[-1][1].lower() else a
               for r, a in zip(requests, answers, strict=True)]
        for i, response in enumerate(out):
            if on_result:
                on_result(i, response)
        return out


def test_a_batch_failing_whole_is_a_row_failure_but_a_stage_failing_whole_stops(tmp_path):
    one_per_batch = {**OPTIONS, "batch_size": 1}
    executor = RayExecutor(one_per_batch, engine_factory=lambda: _Http500())
    out, component, _ = _run("item_enrichment", {}, executor, tmp_path)
    assert "i5" in set(component.errors_["request_id"])  # the gnome's batch failed whole
    assert out.items["attributes"].notna().sum() >= 4  # the others were enriched
    executor = RayExecutor(one_per_batch, engine_factory=lambda: _Http500(everything=True))
    with pytest.raises(EngineError, match=r"all \d+ requests to the LLM failed.*HTTP 500"):
        _run("item_enrichment", {}, executor, tmp_path)


def test_components_without_shard_by_run_on_the_driver(tmp_path):
    # user_profiles declares no shard_by: it runs whole, on the driver
    out, _, _ = _run("user_profiles", {"max_users": 2}, RayExecutor(OPTIONS), tmp_path)
    local, _, _ = _run("user_profiles", {"max_users": 2}, LocalExecutor(), tmp_path)
    for table, frame in local.tables().items():
        pd.testing.assert_frame_equal(out.table(table), frame, obj=table)


def test_an_experiment_on_ray_gives_the_local_results(tmp_path):
    from shopaug.datasets import demo_path
    from shopaug.pipeline.experiment import ExperimentConfig, run_experiment

    def config(executor: str, out: str) -> ExperimentConfig:
        return ExperimentConfig.model_validate({
            "name": "x", "task": "rec",
            "data": {"path": str(demo_path()), "format": "online_retail"},
            "split": {"name": "leave_last_basket"},
            "augment": [{"name": "item_enrichment", "config": {"max_items": 12}}],
            "models": [{"name": "popularity"}],
            "evaluate": {"ks": [10], "n_boot": 50}, "seeds": [0],
            "llm": {"engine": "fake", "use_cache": False, "progress": False},
            "output": str(tmp_path / out), "progress": False, "report": False,
            "export": False, "stage_cache": None,
            "executor": executor, "executor_options": OPTIONS})

    local = run_experiment(config("local", "local"))
    on_ray = run_experiment(config("ray", "ray"))
    assert on_ray.run_dir.name == local.run_dir.name  # same fingerprint
    pd.testing.assert_frame_equal(on_ray.per_group, local.per_group)
    assert on_ray.summary["results"] == local.summary["results"]
    assert on_ray.summary["quality"] == local.summary["quality"]
    # the augmented training data the run saved, table by table
    from shopaug.data.bundle import ShopData

    ray_data, local_data = (ShopData.load(r.run_dir / "augmented") for r in (on_ray, local))
    for table, frame in local_data.tables().items():
        pd.testing.assert_frame_equal(ray_data.table(table), frame, obj=table)
    assert on_ray.summary["ledger"]["stages"]["item_enrichment"]["requests"] == 12


# -- embeddings on an actor pool -----------------------------------------------------
TEXTS = ([f"white ceramic mug {n} ml" for n in range(0, 400, 20)]
         + [f"garden gnome number {n}" for n in range(15)]
         + ["纯棉T恤 男款", "蓝色陶瓷咖啡杯", "红色心形靠垫", "玻璃罐 带盖", "牛仔夹克 蓝色",
            "Glass jar with lid", "Red heart cushion", "Blue denim jacket", "T恤", "",
            "mug", "cushion", "jacket", "花园小矮人", "咖啡 mug 混合"])


def test_the_ray_embedder_equals_local_encode_in_input_order(monkeypatch):
    from ray.data import DataContext

    from shopaug.models.search.encoder import encode
    from shopaug.pipeline.executors import ExecutorOptions
    from shopaug.pipeline.ray_embed import RayEmbedder

    # start both actors before the first batch: else the first one up may take them all
    monkeypatch.setattr(DataContext.get_current(), "wait_for_min_actors_s", 120)
    assert len(set(TEXTS)) == len(TEXTS) == 50  # distinct rows: a swap would show
    embed = RayEmbedder(ExecutorOptions(**OPTIONS), batch_size=8)
    got = embed(TEXTS)
    assert got.dtype == np.float32 and got.shape == (50, 384)
    np.testing.assert_allclose(got, encode(TEXTS, normalize=True), atol=1e-5)
    # 7 batches on 2 actors: both served, so the order came from the positions
    assert embed.actors_ == 2
    assert embed([]).shape == (0, 384)


def _with_synthetic() -> ShopData:
    """``sample_data()`` plus synthetic queries, judged top grade for their item."""
    rows = [("s1", "white coffee mug", "i1"), ("s2", "heart shaped cushion", "i2"),
            ("s3", "纯棉T恤", "i4"), ("s4", "denim jacket", "i1"),
            ("s5", "zzz qqq", "i6"), ("s6", "glass storage jar", "i6")]
    prov = {"origin": "synthetic", "augmenter": "maker", "augmenter_version": "1",
            "config_hash": "x", "seed": 0}
    queries = pd.DataFrame([(q, t) for q, t, _ in rows], columns=["query_id", "text"])
    judged = pd.DataFrame([(q, i) for q, _, i in rows], columns=["query_id", "item_id"])
    data = sample_data().append("queries", queries.assign(**prov))
    return data.append("judgments", judged.assign(grade="4", gain=1.0, **prov))


def test_an_embedding_filter_on_ray_gives_the_local_rows(tmp_path, monkeypatch):
    from shopaug.augment.expand import default_embedder
    from shopaug.pipeline.executors import run_component
    from shopaug.pipeline.ray_embed import RayEmbedder

    calls = []
    original = RayEmbedder.__call__
    monkeypatch.setattr(RayEmbedder, "__call__",
                        lambda self, texts: calls.append(len(texts)) or original(self, texts))
    data = _with_synthetic()
    config = {"scorer": "biencoder", "keep_fraction": 0.5}
    outs, reports = {}, {}
    # one actor: each embed call starts its own pool, and loading models is the slow part
    ray_executor = RayExecutor({**OPTIONS, "concurrency": 1})
    for name, executor in [("local", LocalExecutor()), ("ray", ray_executor)]:
        component = registry.create("filter", "consistency", config)
        outs[name] = run_component(component, data, _ctx(tmp_path / name, executor))
        reports[name] = component.report_
        assert component.embed is default_embedder  # put back after the run
    assert calls == [6, 6]  # the catalog, then the queries: on the pool, not the driver
    assert reports["ray"] == reports["local"] and reports["local"]["removed"] == 3
    for table, frame in outs["local"].tables().items():
        pd.testing.assert_frame_equal(outs["ray"].table(table), frame, obj=table)


def test_an_injected_embedder_is_kept_on_ray(tmp_path):
    seen = []

    def cheap(texts):
        seen.append(list(texts))
        return np.eye(len(texts), 8, dtype=np.float32) + 0.1

    component = LabelPropagation(embed=cheap)
    executor = RayExecutor(OPTIONS)
    executor.run(component, sample_data(), _ctx(tmp_path, executor))
    assert component.embed is cheap
    assert seen and seen[0] == sample_data().queries["text"].tolist()


def test_a_budget_keeps_the_stage_on_the_driver_with_one_ledger(tmp_path):
    from shopaug.llm.ledger import Budget

    config = FAKE.model_copy(update={"budget": Budget(max_requests=2)})
    component = registry.create("augmenter", "item_enrichment", {})
    ctx = RunContext(seed=3, run_dir=tmp_path, progress=False, llm_config=config)
    RayExecutor(OPTIONS).run(component, sample_data(), ctx)
    assert ctx.llm.ledger.total().requests == 2  # not 2 per Ray batch
    assert component.report_["enriched"] == 2
