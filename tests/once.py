"""A costly fixture built once per test run, even when pytest-xdist spreads its users.

A module-scoped fixture runs once per *worker* that runs a test of its module; with work
stealing, a module's tests often land on every worker, so a world that takes half a minute to
build is built three times. :func:`once_per_run` builds it once in the directory the workers
share (the parent of each worker's base temporary directory), under a file lock; the other
workers wait for it and read what it left. Only for worlds the tests read and never change.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["once_per_run"]

_RESULT = "result.json"


def once_per_run(
    factory: pytest.TempPathFactory, name: str, build: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """``build(directory)`` run once for the whole run; its directory and its JSON result.

    Without xdist it is built in a fresh temporary directory. Under xdist, in ``name`` in the
    workers' shared directory: the first worker to take the lock builds it and records its
    result; the others wait for the lock and return what it recorded (a build that raised
    records nothing, so the next worker tries again and sees the error itself)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        directory = factory.mktemp(name)
        return directory, build(directory)
    root = factory.getbasetemp().parent
    directory = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = directory / _RESULT
        if done.is_file():
            return directory, json.loads(done.read_text())
        if directory.exists():  # a build that raised: start again
            import shutil

            shutil.rmtree(directory)
        directory.mkdir()
        result = build(directory)
        done.write_text(json.dumps(result))
        return directory, result
