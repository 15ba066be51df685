"""Docstring examples in the public modules run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["shopaug.data.bundle", "shopaug.data.loaders", "shopaug.data.split", "shopaug.llm",
           "shopaug.testing"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
