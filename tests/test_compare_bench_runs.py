"""scripts/compare_bench_runs.py: a variant's paired difference between two bench runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_bench_runs.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("compare_bench_runs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(path: Path, recall: np.ndarray) -> Path:
    path.mkdir()
    users = [f"{u:05d}" for u in range(len(recall) // 2)]  # leading zeros must survive
    seeds = [0] * len(users) + [1] * len(users)
    rows = pd.DataFrame({"slice": "all", "user_id": users * 2, "recall@20": recall,
                         "variant": "hybrid_augmented", "seed": seeds})
    rows.to_csv(path / "per_user.csv", index=False)
    return path


def test_a_run_that_is_better_for_every_user_wins_and_equal_runs_tie(script, tmp_path, capsys):
    base = np.random.default_rng(0).uniform(0, 0.5, 400)
    a = write_run(tmp_path / "a", base + 0.05)
    b = write_run(tmp_path / "b", base)
    result = script.compare(script.per_unit(a), script.per_unit(b), "hybrid_augmented",
                            "recall@20", "all")
    assert result["diff"] == pytest.approx(0.05) and result["lo"] > 0.04
    assert result["units"] == 200 and result["only_in_one"] == 0 and result["p"] < 0.01
    tie = script.compare(script.per_unit(b), script.per_unit(b), "hybrid_augmented",
                         "recall@20", "all")
    assert tie["diff"] == 0 and tie["lo"] == tie["hi"] == 0
    script.main([str(a), str(b), "--variant", "hybrid_augmented"])
    assert "A - B +0.0500" in capsys.readouterr().out


def test_a_missing_variant_or_a_different_split_is_a_clear_error(script, tmp_path):
    a = script.per_unit(write_run(tmp_path / "a", np.zeros(10)))
    with pytest.raises(SystemExit, match="no recall@20 for 'als_real'"):
        script.compare(a, a, "als_real", "recall@20", "all")
    other = a.assign(user_id="x" + a["user_id"])
    with pytest.raises(SystemExit, match="share no"):
        script.compare(a, other, "hybrid_augmented", "recall@20", "all")
    with pytest.raises(SystemExit, match=r"no per_user\.csv"):
        script.per_unit(tmp_path)


def test_a_run_from_before_rolling_origin_pairs_with_window_0(script, tmp_path):
    old = script.per_unit(write_run(tmp_path / "old", np.linspace(0, 1, 20)))
    new = pd.concat([old.assign(window=0), old.assign(window=1, user_id="w1" + old["user_id"])])
    result = script.compare(new, old, "hybrid_augmented", "recall@20", "all")
    assert result["diff"] == 0 and result["units"] == 10 and result["only_in_one"] == 20


def test_two_differently_named_variants_pair_up(script, tmp_path, capsys):
    # a variant run alone against the real twin of an earlier run
    base = np.random.default_rng(1).uniform(0, 0.5, 40)
    a = write_run(tmp_path / "a", base + 0.01)
    b = write_run(tmp_path / "b", base)
    alone = script.per_unit(a).assign(variant="mine")
    result = script.compare(alone, script.per_unit(b), "mine", "recall@20", "all",
                            variant_b="hybrid_augmented")
    assert result["diff"] == pytest.approx(0.01) and result["units"] == 20
    with pytest.raises(SystemExit, match="run B has no recall@20 for 'hybrid_real'"):
        script.compare(alone, script.per_unit(b), "mine", "recall@20", "all",
                       variant_b="hybrid_real")
    (a / "per_user.csv").write_text(alone.to_csv(index=False))
    script.main([str(a), str(b), "--variant", "mine=hybrid_augmented"])
    assert "A - B +0.0100" in capsys.readouterr().out
