"""CVSS v3.1 base vectors for test reports: ``vector_for(score)`` is a vector whose base score
is ``score`` (or, for the few scores no vector has, the highest below it), so that a report's
stated score and its vector agree and the score is what the report is judged by."""

from __future__ import annotations

import functools
import itertools

from ironroot.safe import cvss_base_score

__all__ = ["vector_for"]

_METRICS = (
    ("AV", "NALP"),
    ("AC", "LH"),
    ("PR", "NLH"),
    ("UI", "NR"),
    ("S", "UC"),
    ("C", "HLN"),
    ("I", "HLN"),
    ("A", "HLN"),
)


@functools.cache
def _by_score() -> dict[float, str]:
    found: dict[float, str] = {}
    for values in itertools.product(*(choices for _name, choices in _METRICS)):
        vector = "/".join(f"{name}:{v}" for (name, _c), v in zip(_METRICS, values, strict=True))
        score = cvss_base_score(vector)
        assert score is not None
        found.setdefault(score, vector)
    return found


def vector_for(score: float) -> str:
    """A CVSS v3.1 base vector scoring ``score``, else the highest score below it."""
    table = _by_score()
    return table[max(s for s in table if s <= round(score, 1))]
