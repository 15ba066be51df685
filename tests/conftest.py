from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Caches the code keeps by default (f16 model weights, encoders, LLM answers) go to
    a directory of this test session, never to the user's ~/.cache."""
    previous = os.environ.get("SHOPAUG_CACHE_DIR")
    os.environ["SHOPAUG_CACHE_DIR"] = str(tmp_path_factory.mktemp("shopaug-cache"))
    yield
    if previous is None:
        os.environ.pop("SHOPAUG_CACHE_DIR", None)
    else:
        os.environ["SHOPAUG_CACHE_DIR"] = previous

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def native_dir(tmp_path: Path) -> Path:
    """A writable copy of the native-format fixture."""
    import shutil

    target = tmp_path / "shop"
    shutil.copytree(DATA / "native", target)
    return target


@pytest.fixture
def sample():
    from shopaug.testing import sample_data

    return sample_data()
