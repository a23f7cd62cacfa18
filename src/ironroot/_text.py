"""Text from outside the program, made safe to look at: on a terminal, in a log, on a page.

A node's name in a bundle, a statement's issuer or subject, a server's problem detail, a file
name: such text may have been written to attack whoever reads it. Printed raw, a control
character rewrites the reader's terminal (``ESC [2J`` clears it; other escape sequences move
the cursor, change the title, or hide what follows) and a line break forges a line; a
bidirectional control (U+202E RIGHT-TO-LEFT OVERRIDE and its kin: embeddings, isolates, the
directional marks) reorders what follows it, on a terminal or a page, so that a name reads
as other text than it is (``https://evil.example/\u202eelpmaxe.rodnev//:sptth`` reads as
ending in a vendor's URL); and a character that draws nothing makes two names look the same:
a zero-width space (``node-0001`` and ``node-0001\u200b``), a word joiner, a byte order mark,
a soft hyphen inside a word, a variation selector, a Hangul filler, Unicode tag characters
(an invisible copy of ASCII that can spell a whole word), and the code points Unicode
reserves as default ignorable, not yet assigned, which a browser draws as nothing today.
A lone surrogate (which JSON escapes can spell) no UTF-8 file or terminal can hold.

This module is the one list of those characters, and spells each as its code point,
``[U+202E]``, so what is shown is what the data holds:

* :func:`shown`: every one of them, tab and line breaks too — for one line of text: what the
  CLI prints, the audit report (terminal and HTML), log lines, problem details;
* :func:`visible`: the same but tab, line feed and carriage return, which stay — for a page
  that lays out a payload with them (the dashboard).

Both also spell as its code point a combining mark (Unicode categories Mn and Me) past the
fourth on one letter (:data:`MAX_MARKS`): marks stack, and a letter with 300 accents draws a
column of ink over the lines above it (on a page: another row's issuer, a node's state). No
script's own text puts more than four on a letter.

Text of printable ASCII only, most of what is shown, is returned as it is after one check.
(Markup of a terminal library, such as rich's ``[...]``, is that library's to escape:
``rich.markup.escape``; ``[U+202E]`` is not rich markup.)

Text read, not shown: :func:`strict_hex` reads the bytes that a signed document
gives as hex (a digest, a signature). ``bytes.fromhex`` skips whitespace between bytes, so 96
digits with spaces among them decode to the 48 bytes a field declares and pass its length
check, as text no issuer writes; the reader takes hex digits and nothing else.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["MAX_MARKS", "shown", "strict_hex", "visible"]

MAX_MARKS: Final = 4
"""Combining marks in a row shown as they are (module docs)."""
_MARKS: Final = frozenset({"Mn", "Me"})

_LAYOUT: Final = "\t\n\r"
_HIDDEN_CLASS: Final = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 (but tab, line feed, carriage return), DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks, embeddings, overrides, isolates
    "\u200b-\u200d\u2060-\u2064\ufeff"  # zero-width and invisible operators
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff"  # lone surrogates
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
)
_HIDDEN: Final = re.compile(f"[{_LAYOUT}{_HIDDEN_CLASS}]")
_HIDDEN_BUT_LAYOUT: Final = re.compile(f"[{_HIDDEN_CLASS}]")


def _code_point(found: re.Match[str]) -> str:
    return f"[U+{ord(found.group()):04X}]"


def _tower_cut(text: str) -> str:
    """``text`` with each combining mark past :data:`MAX_MARKS` in a row as its code point."""
    out: list[str] = []
    run = 0
    for c in text:
        if unicodedata.category(c) in _MARKS:
            run += 1
            out.append(c if run <= MAX_MARKS else f"[U+{ord(c):04X}]")
        else:
            run = 0
            out.append(c)
    return "".join(out)


def shown(text: str) -> str:
    """``text`` with every control, reordering or invisible character, tab and line breaks
    included, written as ``[U+XXXX]`` (module docs)."""
    if text.isascii() and text.isprintable():
        return text  # none of the list: as it is (no new string)
    if _HIDDEN.search(text) is not None:
        text = _HIDDEN.sub(_code_point, text)
    return text if text.isascii() else _tower_cut(text)


def visible(text: str) -> str:
    """``text`` with every control, reordering or invisible character but tab, line feed
    and carriage return written as ``[U+XXXX]`` (module docs)."""
    if text.isascii() and text.isprintable():
        return text
    if _HIDDEN_BUT_LAYOUT.search(text) is not None:
        text = _HIDDEN_BUT_LAYOUT.sub(_code_point, text)
    return text if text.isascii() else _tower_cut(text)


def strict_hex(text: str) -> bytes | None:
    """``text`` as bytes when it is hex digits only (an even number of them, no whitespace,
    sign or prefix), else ``None`` (module docs)."""
    if not text.isascii() or not text.isalnum():
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None
