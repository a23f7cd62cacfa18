"""Where the interop vectors are: `$IRONROOT_VECTORS` or `../shared/vectors` beside the checkout.

A uniquely named module (not `conftest`) so any test or helper can import it even where a
subdirectory has its own conftest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

_DEFAULT_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"


def vectors_dir() -> Path | None:
    """The interop vectors folder, if present."""
    env = os.environ.get("IRONROOT_VECTORS")
    path = Path(env) if env else _DEFAULT_VECTORS
    return path if path.is_dir() else None


def required() -> bool:
    """CI sets ``IRONROOT_REQUIRE_VECTORS=1``: there a missing vector fails the run."""
    return os.environ.get("IRONROOT_REQUIRE_VECTORS", "") not in ("", "0")


def vectors_missing(reason: str) -> NoReturn:
    """Skip the test, saying why; fail it instead when the vectors are required."""
    if required():
        pytest.fail(f"{reason} (IRONROOT_REQUIRE_VECTORS is set: a missing vector is an error)")
    pytest.skip(reason)
