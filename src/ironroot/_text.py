"""Text from outside the program, made safe to print on a terminal.

A node's name in a bundle, a statement's issuer or subject, a server's problem detail, a file
name: such text may have been written to attack whoever reads it. Printed raw, a control
character rewrites the reader's terminal (``ESC [2J`` clears it; other escape sequences move
the cursor, change the title, or hide what follows) and a line break forges a line; a
bidirectional control (U+202E RIGHT-TO-LEFT OVERRIDE and its kin: embeddings, isolates, the
directional marks) reorders what follows it, on a terminal or a page, so that a name reads
as other text than it is. :func:`shown` spells every control character (C0, DEL, C1),
Unicode line and paragraph separator, bidirectional control and lone surrogate (which JSON
escapes can spell, and which no UTF-8 file or terminal can hold) as its ``\\x``/``\\u``
escape, leaving every other character as it is. (Markup of a terminal library, such as
rich's ``[...]``, is that library's to escape: ``rich.markup.escape``.)
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["shown"]

_UNSHOWN: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def shown(text: str) -> str:
    """``text`` with control characters, bidirectional controls, line separators and lone
    surrogates as escapes (module docs)."""
    if not _UNSHOWN.search(text):
        return text
    return _UNSHOWN.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
