"""How the demo speaks: act headings, narrative lines, facts, progress bars and the attack
table, on a ``rich`` console. Nothing here decides anything; the acts and attacks call it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from ironroot.demo._attacks import AttackResult

__all__ = ["WIDE", "Narrator"]

WIDE = 140
"""Consoles at least this wide show the evidence inside the attack table."""


class Narrator:
    """The demo's voice. ``file`` (default: standard output) receives everything; ``width``
    fixes the width where there is no terminal to ask (tests, ``make demo | tee``)."""

    def __init__(self, file: IO[str] | None = None, *, width: int | None = None) -> None:
        self.console = Console(file=file, highlight=False, soft_wrap=False, width=width)
        self.started = time.monotonic()

    # --- the story --------------------------------------------------------------------------

    def title(self, text: str, subtitle: str) -> None:
        self.console.print(Panel(f"[bold]{text}[/bold]\n{subtitle}", style="bold blue"))

    def act(self, number: int, title: str, story: str) -> None:
        """An act's heading: its number, title and what happens in it."""
        self.console.print()
        self.console.print(
            Panel(
                f"[bold]{title}[/bold]\n[dim]{story}[/dim]",
                title=f"Act {number}",
                title_align="left",
            ),
            style="cyan",
        )

    def say(self, text: str) -> None:
        """One line of the narrative (``rich`` markup allowed; escape outside values)."""
        self.console.print(f"  {text}")

    def fact(self, label: str, value: object) -> None:
        """A value worth seeing (a digest, a URL, a count): never a secret."""
        self.console.print(f"    [dim]{label}:[/dim] {value}", markup=True, highlight=False)

    def ok(self, text: str) -> None:
        self.console.print(f"  [green]✔[/green] {text}")

    def refused(self, text: str) -> None:
        self.console.print(f"  [red]✘[/red] {text}")

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[str], None]]:
        """A progress bar of ``total`` steps; the function yielded advances it by one and
        shows what was just done."""
        bar = Progress(
            SpinnerColumn(),
            TextColumn("  {task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[last]}"),
            console=self.console,
            transient=False,
        )
        with bar:
            task = bar.add_task(description, total=total, last="")

            def advance(last: str) -> None:
                bar.update(task, advance=1, last=last)

            yield advance

    # --- the attacks ------------------------------------------------------------------------

    def attack_table(self, results: Sequence[AttackResult]) -> None:
        """The final table. On a console narrower than :data:`WIDE` the evidence follows the
        table, numbered, so that no error class or code is ever cut short."""
        wide = self.console.width >= WIDE
        table = Table(
            title="Staged attacks: each one really attempted through the product path",
            expand=True,
        )
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("attack", ratio=3, overflow="fold")
        table.add_column("stopped by", ratio=2, overflow="fold")
        longest = max(
            (len(x) for r in results for x in (r.error_class or "", r.error_code or "")),
            default=10,
        )
        table.add_column("error class / code", min_width=longest, no_wrap=True)
        if wide:
            table.add_column("evidence", ratio=4)
        table.add_column("", no_wrap=True)
        for number, result in enumerate(results, 1):
            mark = (
                "[green]refused[/green]" if result.refused else "[bold red]NOT REFUSED[/bold red]"
            )
            got = f"{result.error_class or '—'}\n{result.error_code or '—'}"
            cells = [str(number), result.attack.title, result.attack.layer, got]
            if wide:
                cells.append(result.evidence)
            table.add_row(
                *(escape(c) for c in cells), mark, style=None if result.refused else "red"
            )
        self.console.print()
        self.console.print(table)
        if not wide:
            self.console.print("[bold]evidence[/bold]")
            for number, result in enumerate(results, 1):
                self.console.print(f"[dim]{number:>3}. {escape(result.evidence)}[/dim]")

    def elapsed(self) -> float:
        return time.monotonic() - self.started
