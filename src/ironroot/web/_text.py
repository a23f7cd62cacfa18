"""Text from data made safe to look at, not only safe to parse.

Escaping keeps a hostile string from becoming markup; it does not keep it from lying to the
eye. A right-to-left override (U+202E) in an issuer, a subject or a quarantine reason
reverses what follows it on the page, a zero-width space makes ``node-0001`` and
``node-0001\u200b`` two names that look the same, and control characters hide in a payload.
:func:`visible` (:mod:`ironroot._text`'s, the one list of such characters that the CLI and
the audit report use too) shows each such character as its code point, ``[U+202E]``, so what
the dashboard shows is what the data holds. Tabs and line breaks stay: payloads are laid out
with them.

Marks stack: a letter with 300 combining accents draws a column of ink over the rows above it
(another entry's issuer, a node's state), from a subject anyone may register; the fifth mark
on one letter and every one after it are shown as code points too.

A :class:`Trouble` is text about the server's own trouble (a file it cannot read, with its
path; a host it cannot reach): the pages show it to signed-in operators and, to anyone else
(the log pages are public), only :attr:`Trouble.PUBLIC` — as the 503 page does.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from ironroot._text import visible

__all__ = ["Trouble", "utc", "visible"]


class Trouble(str):
    """Text that names where the server keeps its files or which hosts it reaches (the detail
    of a storage error, an unreadable file): for operators. Rendered for a reader who is not
    signed in as :attr:`PUBLIC` (:func:`ironroot.web._app` does it for every value a
    template prints), so a public page never says where the server keeps its files."""

    __slots__ = ()
    PUBLIC: Final = "cannot be read now (operators who sign in see why); try again shortly"


def utc(seconds: object, pattern: str = "%Y-%m-%d %H:%M:%S UTC") -> str:
    """POSIX ``seconds`` as a UTC time; ``—`` for ``None``. A time no calendar date holds
    (an ``iat`` of 2**62 in a statement anyone may register, a negative one, one that is
    not a number) is shown as the value it is, never an error that takes the page down."""
    if seconds is None:
        return "—"
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(pattern)  # type: ignore[arg-type]
    except (OverflowError, OSError, ValueError, TypeError):
        return f"{seconds!r} (not a time)"
