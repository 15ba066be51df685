from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
