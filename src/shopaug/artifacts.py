"""Atomic artifact writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shopaug.errors import ArtifactError


def _fail(path: Path, exc: OSError) -> ArtifactError:
    if isinstance(exc, ArtifactError):  # a nested write already said what to fix
        return exc
    return ArtifactError(
        f"cannot write {path}: {exc.strerror or exc}. Fix: choose a writable output "
        "directory with free space (`output:` in the config or --out)"
    )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _fail(path, exc) from exc
    try:
        # mkstemp makes the file private (0600); an artifact gets the usual mode
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _fail(path, exc) from exc
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as null: JSON has no such numbers, and strict
    parsers (browsers' JSON.parse, jq, most languages) reject Python's bare ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict_json(v) for v in obj]
    if hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:  # numpy scalars
        return _strict_json(obj.item())
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(_strict_json(obj), indent=2, sort_keys=True, default=str,
                      allow_nan=False)
    return atomic_write_text(path, text + "\n")


def output_dir(path: str | os.PathLike) -> Path:
    """Create the output directory ``path`` now, so that a long job fails at once, not
    when it writes its results."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except FileExistsError as exc:
        raise ArtifactError(f"cannot write to {path}: it is a file. Fix: give --out a "
                            "directory path") from exc
    except OSError as exc:
        raise _fail(path, exc) from exc
    return path


def published_path(path: str | os.PathLike) -> Path:
    """Where a path inside an :func:`atomic_dir` temporary directory will live once the
    directory is renamed into place (for messages that users read after the run)."""
    path = Path(path)
    for i, part in enumerate(path.parts):
        if part.startswith(".") and part.endswith(".tmp") and part.count(".") >= 3:
            final = part[1:].rsplit(".", 2)[0]
            return Path(*path.parts[:i], final, *path.parts[i + 1:])
    return path


#: a staging directory of a process that is gone is removed once it is this old (the
#: age guards against a reused pid and against a writer on another host)
STALE_STAGING_SECONDS = 600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        pass
    return True


def remove_stale_staging(path: str | os.PathLike) -> list[Path]:
    """Remove the staging directories and files of ``path`` that a killed run left behind
    (``.<name>.<pid>-<random>.tmp`` whose process no longer exists); returns them."""
    path = Path(path)
    now = time.time()
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split("-", 1)[0]
        try:
            old = now - tmp.stat().st_mtime > STALE_STAGING_SECONDS
        except OSError:
            continue
        if pid.isdigit() and old and not _alive(int(pid)):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging file name beside ``path`` for a writer that only takes a path
    (e.g. a C library); it replaces ``path`` only on success. Named like
    :func:`atomic_dir`'s staging, so a later call removes what a killed run left.
    OSError propagates as is: the caller knows what the file is for."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces ``path`` only on success. The
    staging name carries the pid, so a later run can remove what a killed one left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                                    dir=path.parent))
        # mkdtemp makes the directory private (0700); the result gets the usual mode, so
        # others on shared storage can read a run as they can its files
        os.chmod(tmp, 0o777 & ~_umask())
    except OSError as exc:
        raise _fail(path, exc) from exc
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _fail(path, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
