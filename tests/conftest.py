"""Shared fixtures: where the interop vectors are."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot_vectors import vectors_dir

__all__ = ["vectors_dir"]


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vectors folder; skips the test, saying why, when it is absent."""
    path = vectors_dir()
    if path is None:
        pytest.skip("interop vectors not found: set IRONROOT_VECTORS or provide ../shared/vectors")
    return path
