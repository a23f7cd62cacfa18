"""Text from outside the program in what a verb prints: a path, a node's reason, a
statement's issuer, a server's problem detail.

:func:`shown` (from :mod:`ironroot._text`) for plain lines: control characters as escapes, so
no escape sequence reaches the terminal. :func:`markup` for what rich renders (table titles
and cells, ``Console.print``): the same, and rich's ``[...]`` markup escaped, so a name with
``[/bold]`` in it is shown as written instead of failing the verb or restyling its output.
"""

from __future__ import annotations

from ironroot._text import shown

__all__ = ["markup", "shown"]


def markup(text: object) -> str:
    """``text`` (``str()`` of it) as rich markup that renders as exactly that text, shown."""
    from rich.markup import escape

    return escape(shown(str(text)))
