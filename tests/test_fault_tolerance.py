"""Long runs survive SIGKILL, and unwritable or full disks fail cleanly."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from shopaug.artifacts import atomic_dir, atomic_write_json
from shopaug.datasets import demo_path
from shopaug.errors import ArtifactError
from shopaug.pipeline.experiment import ExperimentConfig, run_experiment
from shopaug.testing import sample_data

#: a job that runs one experiment with a slow fake engine (same answers and cache keys
#: as the plain fake engine) that logs every request it answers to a file
JOB = """
import sys, time, json
from shopaug.llm import config as llm_config
from shopaug.llm.fake import FakeEngine
from shopaug.pipeline.experiment import ExperimentConfig, run_experiment

class Slow(FakeEngine):
    def generate(self, requests, on_result=None):
        out = []
        for i, request in enumerate(requests):
            time.sleep(0.04)  # a remote endpoint's latency
            [response] = super().generate([request])
            with open(sys.argv[2], "a") as log:  # answered: log it before it is stored
                log.write(json.dumps([request.request_id, request.seed]) + "\\n")
            if on_result:
                on_result(i, response)
            out.append(response)
        return out

llm_config.build_engine = lambda config: Slow()
config = ExperimentConfig.model_validate(json.loads(open(sys.argv[1]).read()))
print(run_experiment(config).run_dir)
"""


def _values(tmp: Path, out: Path, cache: Path) -> dict:
    return {
        "name": "ft", "task": "rec",
        "data": {"path": str(demo_path()), "format": "online_retail"},
        "split": {"name": "leave_last_basket"},
        "augment": [{"name": "item_enrichment", "config": {"max_items": 24}},
                    {"name": "user_profiles", "config": {"max_users": 12}}],
        "models": [{"name": "popularity"}], "evaluate": {"ks": [10], "n_boot": 50},
        "seeds": [0], "output": str(out), "progress": False, "report": False,
        "export": False, "llm": {"engine": "fake", "cache": str(cache), "progress": False},
    }


def _start(tmp: Path, tag: str, out: Path, cache: Path) -> tuple[subprocess.Popen, Path]:
    script, config, log = tmp / "job.py", tmp / f"{tag}.json", tmp / f"{tag}.log"
    script.write_text(JOB)
    config.write_text(json.dumps(_values(tmp, out, cache)))
    proc = subprocess.Popen([sys.executable, str(script), str(config), str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, log


def _finish(proc: subprocess.Popen) -> Path:
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    return Path(stdout.strip().splitlines()[-1])


def _answered(log: Path) -> list[tuple]:
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()] \
        if log.exists() else []


def _cached(cache: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_sigkill_mid_augmentation_then_rerun_repeats_no_request(tmp_path):
    # the reference: one uninterrupted run, with its own cache
    proc, ref_log = _start(tmp_path, "ref", tmp_path / "ref-out", tmp_path / "ref.sqlite")
    ref_dir = _finish(proc)
    ref = _answered(ref_log)
    assert len(ref) >= 30 and len(set(ref)) == len(ref)

    out, cache = tmp_path / "out", tmp_path / "llm.sqlite"
    proc, log = _start(tmp_path, "killed", out, cache)
    deadline = time.monotonic() + 120
    # kill right after an answer is committed: the job is then inside the next request
    while _cached(cache) < len(ref) // 2:
        assert proc.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = _answered(log)
    assert 0 < len(first) < len(ref), "the kill did not land mid-augmentation"
    assert not any(out.glob("ft-*/summary.json")), "a killed run published a run dir"

    proc, log2 = _start(tmp_path, "rerun", out, cache)
    run_dir = _finish(proc)
    second = _answered(log2)
    # every request answered exactly once over both runs, and nothing more
    assert len(first) + len(second) == len(ref)
    assert sorted(first + second) == sorted(ref)

    # the same final output as the uninterrupted run
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "per_group.parquet"),
                                  pd.read_parquet(ref_dir / "per_group.parquet"))
    for name in ("results", "lift"):
        got = json.loads((run_dir / "summary.json").read_text())[name]
        want = json.loads((ref_dir / "summary.json").read_text())[name]
        assert got == want, name
    # the killed run's temporary directory never shows as a run dir
    visible = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    assert visible == [run_dir.name]


# -- unwritable output and full disks -------------------------------------------------

def _small_experiment(out: Path) -> ExperimentConfig:
    values = _values(out, out, out / "unused.sqlite")
    values["llm"] = {"engine": "fake", "use_cache": False, "progress": False}
    values["augment"] = [{"name": "sequence_augment", "config": {"ops": ["crop"]}}]
    values["stage_cache"] = None
    return ExperimentConfig.model_validate(values)


def test_output_under_a_regular_file_is_a_clear_error(tmp_path):
    # chmod does not stop root: a path below a regular file is unwritable for everyone
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    config = _small_experiment(blocker / "runs")
    with pytest.raises(ArtifactError) as info:
        run_experiment(config)
    message = str(info.value)
    assert str(blocker / "runs") in message and "Fix: choose a writable output" in message
    assert blocker.read_text() == "x"


def test_full_disk_while_writing_artifacts_leaves_nothing_half_written(tmp_path,
                                                                       monkeypatch):
    out = tmp_path / "runs"
    config = _small_experiment(out)
    real = pd.DataFrame.to_parquet

    def full(self, path, *args, **kwargs):
        if str(path).endswith("per_group.parquet"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(ArtifactError) as info:
        run_experiment(config)
    message = str(info.value)
    assert "No space left on device" in message and "Fix:" in message
    assert str(out) in message and ".tmp" not in message  # names the published path
    assert list(out.iterdir()) == [], "a half-written run directory was left behind"


def test_full_disk_on_a_single_file_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "card.json"
    atomic_write_json(target, {"v": 1})
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ArtifactError, match=r"card\.json: No space left on device"):
        atomic_write_json(target, {"v": 2})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json"]


def test_full_disk_while_saving_a_bundle_keeps_the_old_bundle(tmp_path, monkeypatch):
    where = tmp_path / "bundle"
    sample_data().save(where)
    before = sorted(p.name for p in where.iterdir())

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(ArtifactError, match="No space left on device"), \
            atomic_dir(where) as tmp:
        (tmp / "items.parquet").write_text("partial")
    assert sorted(p.name for p in where.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_killed_runs_staging_directory_is_removed_by_the_next_run(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    where = tmp_path / "run"
    killed = tmp_path / f".run.{dead_pid}-abc123.tmp"      # SIGKILL left it, long ago
    recent = tmp_path / f".run.{dead_pid}-def456.tmp"      # too young to judge
    running = tmp_path / f".run.{os.getpid()}-ghi789.tmp"  # a live writer's
    other = tmp_path / f".runs.{dead_pid}-jkl012.tmp"      # another run's name
    for d in (killed, recent, running, other):
        (d / "errors").mkdir(parents=True)
    hour_ago = time.time() - 3600
    for d in (killed, running, other):
        os.utime(d, (hour_ago, hour_ago))
    with atomic_dir(where) as tmp:
        assert tmp.name.startswith(f".run.{os.getpid()}-")
        (tmp / "card.json").write_text("{}")
    assert not killed.exists()
    assert recent.exists() and running.exists() and other.exists()
    assert (where / "card.json").exists()


def test_atomic_file_replaces_only_on_success_and_clears_a_killed_writers_file(tmp_path):
    from shopaug.artifacts import atomic_file

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    target = tmp_path / "models" / "m.gguf"
    target.parent.mkdir()
    killed = target.parent / f".m.gguf.{int(gone.stdout)}-abc123.tmp"  # SIGKILL left it
    killed.write_text("half a model")
    hour_ago = time.time() - 3600
    os.utime(killed, (hour_ago, hour_ago))
    with pytest.raises(RuntimeError), atomic_file(target) as staging:
        staging.write_text("partial")
        raise RuntimeError("the converter failed")
    assert not target.exists() and not killed.exists()
    assert list(target.parent.iterdir()) == []  # the failed write left nothing
    with atomic_file(target) as staging:
        assert staging.name.startswith(f".m.gguf.{os.getpid()}-")
        staging.write_text("model")
    assert target.read_text() == "model" and list(target.parent.iterdir()) == [target]
