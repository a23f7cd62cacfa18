"""Text from data made safe to look at, not only safe to parse.

Escaping keeps a hostile string from becoming markup; it does not keep it from lying to the
eye. A right-to-left override (U+202E) in an issuer, a subject or a quarantine reason
reverses what follows it on the page (``https://evil.example/\u202eelpmaxe.rodnev//:sptth``
reads as ending in a vendor's URL), an isolate or an embedding reorders a row, a zero-width
space makes ``node-0001`` and ``node-0001\u200b`` two names that look the same (so do a soft
hyphen inside a word, a variation selector, a Hangul filler, and Unicode tag characters, an
invisible copy of ASCII that can spell a whole word), and control characters (an escape
sequence copied into a terminal) hide in a payload. :func:`visible`
shows each such character as its code point, ``[U+202E]``, so what the dashboard shows is
what the data holds. Tabs and line breaks stay: payloads are laid out with them.

A :class:`Trouble` is text about the server's own trouble (a file it cannot read, with its
path; a host it cannot reach): the pages show it to signed-in operators and, to anyone else
(the log pages are public), only :attr:`Trouble.PUBLIC` — as the 503 page does.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

__all__ = ["Trouble", "utc", "visible"]

_HIDDEN: Final = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 (but tab, line feed, carriage return), DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u200b-\u200d\u2060-\u2064\ufeff"  # zero-width and invisible operators
    "\u2028\u2029"  # line and paragraph separators
    # every other format character (Unicode category Cf) but the number signs that draw:
    # the soft hyphen, deprecated formats, interlinear annotations, Egyptian, shorthand and
    # musical format controls, and the tags (an invisible copy of ASCII)
    "\u00ad\u180e\u206a-\u206f\ufff9-\ufffb\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
    # what draws nothing or a blank in other categories: the combining grapheme joiner,
    # Hangul and Khmer fillers, variation selectors (Mongolian, standard, supplement), the
    # object replacement character and the Braille blank
    "\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180d\u180f\u3164\uffa0\ufe00-\ufe0f"
    "\U000e0100-\U000e01ef\ufffc\u2800"
    # and the code points Unicode reserves as default ignorable, not yet assigned, which a
    # browser draws as nothing today (chromium: "node\u2065-0001" is "node-0001" to the eye)
    "\u2065\ufff0-\ufff8\U000e0000\U000e0002-\U000e001f\U000e0080-\U000e00ff"
    "\U000e01f0-\U000e0fff"
    "]"
)


class Trouble(str):
    """Text that names where the server keeps its files or which hosts it reaches (the detail
    of a storage error, an unreadable file): for operators. Rendered for a reader who is not
    signed in as :attr:`PUBLIC` (:func:`ironroot.web._app` does it for every value a
    template prints), so a public page never says where the server keeps its files."""

    __slots__ = ()
    PUBLIC: Final = "cannot be read now (operators who sign in see why); try again shortly"


def visible(text: str) -> str:
    """``text`` with every invisible, reordering or control character written as
    ``[U+XXXX]`` (module docs)."""
    return _HIDDEN.sub(lambda found: f"[U+{ord(found.group()):04X}]", text)


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
