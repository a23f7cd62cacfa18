"""Where the interop vectors are: `$IRONROOT_VECTORS` or `../shared/vectors` beside the checkout.

A uniquely named module (not `conftest`) so any test or helper can import it even where a
subdirectory has its own conftest.
"""

from __future__ import annotations

import os
from pathlib import Path

_DEFAULT_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"


def vectors_dir() -> Path | None:
    """The interop vectors folder, if present."""
    env = os.environ.get("IRONROOT_VECTORS")
    path = Path(env) if env else _DEFAULT_VECTORS
    return path if path.is_dir() else None
