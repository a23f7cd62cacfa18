"""Strict JSON: one definition of what Ironroot refuses in JSON others send it.

Python's ``json`` reads what RFC 8259 does not allow or leaves open: ``NaN``, ``Infinity`` and
``-Infinity`` (not JSON), a number past a double's range (read as infinity, which passes every
``>=``), and an object with a member twice (the last one kept, where another reader may keep
the first). :data:`DECODER` refuses each with ``ValueError``, which its callers turn into their
own typed error; it is built from ``json``'s own hooks, so nothing is parsed by hand.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

__all__ = ["DECODER", "unique_members"]


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object from its members, refusing a name given twice (``ValueError``)."""
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member name appears twice in one object")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is past the range of a double")
    return value


DECODER: Final = json.JSONDecoder(
    object_pairs_hook=unique_members, parse_constant=_no_constant, parse_float=_finite
)
