from __future__ import annotations

import pandas as pd
import pytest

from shopaug.data.grades import gains_to_grades, get_scale, infer_scale
from shopaug.errors import ConfigError


@pytest.mark.parametrize(("scale", "grades", "gains"), [
    ("1-4", ["1", "2", "3", "4"], [0.0, 1 / 3, 2 / 3, 1.0]),
    ("0-3", [0, 1, 2, 3], [0.0, 1 / 3, 2 / 3, 1.0]),
    ("esci", ["E", "S", "C", "I"], [1.0, 0.1, 0.01, 0.0]),
    ("wands", ["Exact", "Partial", "Irrelevant"], [1.0, 0.5, 0.0]),
    ("binary", ["1", "0", "true"], [1.0, 0.0, 1.0]),
])
def test_every_scale_maps_to_one_gain(scale, grades, gains):
    got = get_scale(scale).gain_of(pd.Series(grades)).tolist()
    assert got == pytest.approx(gains)


def test_float_strings_from_csv_are_read_as_grades():
    assert get_scale("1-4").gain_of(pd.Series(["4.0", "1.0"])).tolist() == [1.0, 0.0]


def test_unknown_grade_becomes_nan():
    assert get_scale("esci").gain_of(pd.Series(["X"])).isna().all()


@pytest.mark.parametrize(("grades", "name"), [
    (["1", "2", "4"], "1-4"), (["0", "2", "3"], "0-3"), (["0", "1"], "binary"),
    (["E", "I"], "esci"), (["Partial"], "wands"),
])
def test_infer_scale(grades, name):
    assert infer_scale(grades).name == name


def test_infer_scale_fails_clearly():
    with pytest.raises(ConfigError, match="grade_scale"):
        infer_scale(["great", "bad"])


def test_gains_back_to_nearest_grade():
    assert gains_to_grades([1.0, 0.1, 0.0], get_scale("esci")) == ["E", "S", "I"]
