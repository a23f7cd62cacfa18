"""Shared fixtures: where the interop vectors are, and pinned time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_DEFAULT_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"


def vectors_dir() -> Path | None:
    """The interop vectors folder ($IRONROOT_VECTORS or ../shared/vectors), if present."""
    env = os.environ.get("IRONROOT_VECTORS")
    path = Path(env) if env else _DEFAULT_VECTORS
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vectors folder; skips the test, saying why, when it is absent."""
    path = vectors_dir()
    if path is None:
        pytest.skip("interop vectors not found: set IRONROOT_VECTORS or provide ../shared/vectors")
    return path
