"""How many examples a property test draws, by test tier.

``make test`` (the full suite, and CI) draws every example a test asks for. ``make test-fast``
sets ``IRONROOT_TEST_TIER=fast``: the same properties run on a fifth of the examples (at least
ten), so the edit-test loop stays short while CI keeps the full search. Hypothesis keeps the
examples that failed before in its database and replays them first in either tier.
"""

from __future__ import annotations

import os

__all__ = ["FAST", "examples"]

FAST = os.environ.get("IRONROOT_TEST_TIER") == "fast"


def examples(full: int) -> int:
    """``full`` in the full suite; in the fast tier a fifth (at least 10, at most ``full``)."""
    return min(full, max(10, full // 5)) if FAST else full
