"""What every CEL decision checks of its compiled program: a result that can be a boolean.

Ironroot's CEL policies (the registration policy, appraisal rules, key release policies) decide
by their result being ``true``; anything else fails closed when evaluated. A program whose
result can be known when it is compiled not to be a boolean (``"yes"``, ``1``, ``[true]``)
would fail every evaluation: it is refused where it is compiled, with the error of the layer
that compiles it (ADR 0005: policies are compiled once).

What is known then: a program that reads no variable is a constant (the CEL bindings list the
variables a program reads), and is evaluated once, with no context, to learn its result's type.
A program that reads variables is not evaluated here (no claims are at hand): its result's
type is checked at each evaluation, as before. A constant that fails to evaluate (``1/0``) is
left to the evaluation too, where it fails closed like any error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from ironroot.errors import IronrootError

__all__ = ["refuse_non_boolean"]

# CEL's names for the types the bindings return, with the article a sentence needs.
_CEL_TYPES: Final[tuple[tuple[type, str], ...]] = (
    (str, "a string"),
    (bytes, "bytes"),
    (int, "an int"),
    (float, "a double"),
    (list, "a list"),
    (dict, "a map"),
    (type(None), "null"),
    (dt.datetime, "a timestamp"),
    (dt.timedelta, "a duration"),
)


def _cel_type(value: object) -> str:
    for kind, text in _CEL_TYPES:
        if isinstance(value, kind):
            return text
    return f"a {type(value).__name__}"


def refuse_non_boolean(program: Any, what: str, error: type[IronrootError]) -> None:
    """Raise ``error("<what> always evaluates to <a CEL type>, not a boolean")`` when the
    compiled ``program`` reads no variable and evaluates to anything but a boolean."""
    if list(program.variables()):
        return
    try:
        result = program.execute({})
    except Exception:  # the CEL runtime raises several kinds; evaluation fails closed later
        return
    if not isinstance(result, bool):
        raise error(f"{what} always evaluates to {_cel_type(result)}, not a boolean")
