"""Text from outside the program in what a verb prints: a path, a node's reason, a
statement's issuer, a server's problem detail.

:func:`shown` (from :mod:`ironroot._text`) for plain lines: control, reordering and invisible
characters as their code points (``[U+001B]``, ``[U+200B]``), so no escape sequence reaches
the terminal and no name looks like another. :func:`markup` for what rich renders (table titles
and cells, ``Console.print``): the same, and rich's ``[...]`` markup escaped, so a name with
``[/bold]`` in it is shown as written instead of failing the verb or restyling its output.
:func:`rich_console` is the console a verb prints rich output on: with ``:emoji:`` codes off,
so a name holding ``:white_check_mark:`` cannot draw a check mark of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ironroot._text import shown

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["markup", "rich_console", "shown"]


def markup(text: object) -> str:
    """``text`` (``str()`` of it) as rich markup that renders as exactly that text, shown."""
    from rich.markup import escape

    return escape(shown(str(text)))


def rich_console(**options: Any) -> Console:
    """A ``rich`` console for a verb's output (``options`` as ``Console`` takes them), with
    ``:emoji:`` codes left as written: what it prints comes partly from outside."""
    from rich.console import Console

    return Console(emoji=False, **options)
