"""import shopaug and shopaug --help stay fast: no heavy library is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version

import shopaug

HEAVY = ("pandas", "numpy", "pyarrow", "pydantic", "yaml", "torch", "llama_cpp", "tqdm")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_shopaug_loads_no_heavy_library():
    loaded = _modules_after("import shopaug")
    assert not [m for m in HEAVY if m in loaded]


def test_cli_help_loads_no_heavy_library():
    loaded = _modules_after("from shopaug.cli_parser import build_parser\n"
                            "build_parser().format_help()")
    assert not [m for m in HEAVY if m in loaded]


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "shopaug", "--help"], capture_output=True,
                         text=True, check=True)
    for command in ("data", "run", "demo", "experiment", "quality", "report"):
        assert command in out.stdout


def test_version_matches_package_metadata():
    assert shopaug.__version__ == version("shopaug")


def test_public_api_resolves_lazily():
    for name in shopaug.__all__:
        assert getattr(shopaug, name) is not None
    assert "ShopData" in dir(shopaug)
