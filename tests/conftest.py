"""Shared fixtures: where the interop vectors are."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ironroot_vectors import vectors_dir, vectors_missing

__all__ = ["vectors_dir"]


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The vectors folder; skips the test, saying why, when it is absent."""
    path = vectors_dir()
    if path is None:
        vectors_missing(
            "interop vectors not found: set IRONROOT_VECTORS or provide ../shared/vectors"
        )
    return path


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that starts a service configures the ``ironroot`` logger (handler, level) the way
    the service's process would; undo that, so later tests see the defaults."""
    import logging

    logger = logging.getLogger("ironroot")
    handlers, level = list(logger.handlers), logger.level
    yield
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.setLevel(level)
