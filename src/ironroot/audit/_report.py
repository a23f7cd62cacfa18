"""The audit report: each step of the chain of trust, what it established or why it broke,
for a terminal (rich) and for people (one self-contained HTML page, no script, no fetch).

What a report shows comes in part from the bundle, which the node itself sealed and may have
written to attack whoever verifies it: the node, class and platform of its index, values of
its JSON members in the steps' lines and in error details. So every text a report holds is
made safe to show when the report is made (:func:`ironroot._text.shown`, the list of
characters the dashboard shows too): control characters (a terminal's escape sequences, line
breaks that would forge lines), bidirectional controls, characters that draw nothing (a
zero-width space that makes one node's name look like another's) and lone surrogates (which
JSON escapes can spell, and which no UTF-8 file or terminal can hold) appear as their code
points, ``[U+001B]``, ``[U+200B]``.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ironroot._text import shown as _shown
from ironroot.errors import IronrootError

__all__ = ["STEP_STATUSES", "AuditReport", "AuditStep", "render_console", "render_html"]

STEP_STATUSES: Final = ("ok", "failed", "skipped", "not-run")
"""``ok``: the step holds; ``failed``: it broke; ``skipped``: the bundle records why it has
nothing to check (an absent EAR or HSM) or the trust gives nothing to check it with;
``not-run``: an earlier step it needs failed."""

_MARKS: Final = {"ok": "✓", "failed": "✗", "skipped": "–", "not-run": "·"}
_STYLES: Final = {"ok": "green", "failed": "bold red", "skipped": "yellow", "not-run": "dim"}


@dataclass(frozen=True, slots=True)
class AuditStep:
    """One step: ``name`` (stable, e.g. ``firmware:bmc``), a ``title`` for people, its
    ``status``, the ``lines`` it established, and the typed ``error`` when it failed."""

    name: str
    title: str
    status: str
    lines: tuple[str, ...] = ()
    error: IronrootError | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(_shown(line) for line in self.lines))
        if self.error is not None:  # its detail may quote the bundle: shown as the lines are
            self.error.detail = _shown(self.error.detail)
            self.error.args = (self.error.detail,)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "lines": list(self.lines),
            "error": None
            if self.error is None
            else {
                "code": self.error.code,
                "class": type(self.error).__name__,
                "message": self.error.detail,
                "check": self.error.check,
            },
        }


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Every step of one verification, in order, and what the bundle says it is about."""

    bundle_sha384: str
    steps: tuple[AuditStep, ...]
    node: str | None = None
    node_class: str | None = None
    platform: str | None = None
    exported_at: str | None = None
    judged_at: str | None = None
    hsm_records: Mapping[str, Any] | None = None
    """How far the signed HSM audit checkpoints reach: ``in_bundle`` (whether the bundle holds
    the HSM's audit chain) and ``require_signed`` (the trust's
    ``require_signed_hsm_records``), and once the chain verified ``records`` (in the bundle),
    ``first`` (the first one's seq), ``signed`` (those a verified signed checkpoint covers),
    ``unsigned`` (those after the last one: nothing signed vouches for them) and
    ``all_signed``; ``None`` when the ``hsm`` step did not get that far."""
    exported_no_earlier_than: str | None = None
    """The newest time (RFC 3339) a party the trust names signed in what the steps verified:
    the export cannot be earlier. ``exported_at`` is only the exporter's word; ``None`` when
    nothing signed bounds it."""
    caveats: tuple[str, ...] = ()
    """What the verification cannot tell, whatever the steps say: that the export time is
    the exporter's word (and what signed data bounds it), that the trust does not pair
    receipt keys with their logs."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "caveats", tuple(_shown(c) for c in self.caveats))
        if self.hsm_records is not None:
            object.__setattr__(self, "hsm_records", MappingProxyType(dict(self.hsm_records)))
        for name in ("node", "node_class", "platform"):  # the sealed index's text
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _shown(value))

    @property
    def ok(self) -> bool:
        return all(step.status != "failed" for step in self.steps)

    @property
    def failure(self) -> AuditStep | None:
        """The first step that broke (what ``verify`` raises), or ``None``."""
        return next((s for s in self.steps if s.status == "failed"), None)

    @property
    def unchecked(self) -> tuple[str, ...]:
        """The steps that checked nothing (``skipped``, ``not-run``): a report with no step
        failed holds only for the others."""
        return tuple(s.name for s in self.steps if s.status in ("skipped", "not-run"))

    def step(self, name: str) -> AuditStep:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> dict[str, Any]:
        failure = self.failure
        return {
            "ok": self.ok,
            "unchecked": list(self.unchecked),
            "bundle_sha384": self.bundle_sha384,
            "node": self.node,
            "class": self.node_class,
            "platform": self.platform,
            "exported_at": self.exported_at,
            "judged_at": self.judged_at,
            "steps": [s.to_json() for s in self.steps],
            "error": None if failure is None else failure.to_json()["error"],
            "hsm_records": None if self.hsm_records is None else dict(self.hsm_records),
            "exported_no_earlier_than": self.exported_no_earlier_than,
            "caveats": list(self.caveats),
        }


def render_console(report: AuditReport, console: Any) -> None:
    """Print the report on a ``rich.console.Console``: each step with its mark and lines,
    then a summary table. What the bundle says is printed as written: its rich markup
    escaped, and no ``:emoji:`` code replaced (``:white_check_mark:`` stays text)."""
    from rich.markup import escape
    from rich.table import Table

    def show(text: object) -> None:  # rich's :emoji: codes would rewrite a bundle's text
        console.print(text, emoji=False)

    show(
        f"[bold]Audit of {escape(report.node or '?')}[/bold] "
        f"(class {escape(report.node_class or '?')}, platform {escape(report.platform or '?')})"
    )
    show(
        f"exported {escape(report.exported_at or '?')}, judged as of "
        f"{escape(report.judged_at or '?')}; bundle SHA-384 {report.bundle_sha384[:32]}…"
    )
    for caveat in report.caveats:
        show(f"[yellow]note:[/yellow] {escape(caveat)}")
    for number, step in enumerate(report.steps, start=1):
        style = _STYLES[step.status]
        show(
            f"[{style}]{_MARKS[step.status]} {number:2}. {escape(step.title)}[/{style}] "
            f"[dim]({escape(step.name)})[/dim]"
        )
        for line in step.lines:
            show(f"       {escape(line)}")
        if step.error is not None:
            show(f"       [bold red]{escape(step.error.code)}: {escape(step.error.detail)}[/]")
    table = Table(title="chain of trust")
    for column in ("step", "result"):
        table.add_column(column)
    for step in report.steps:
        table.add_row(step.name, f"[{_STYLES[step.status]}]{step.status}[/]")
    show(table)
    failure = report.failure
    if failure is None and not report.unchecked:
        show("[bold green]every step holds[/bold green]")
    elif failure is None:
        show(f"[bold yellow]no step failed; not checked: {', '.join(report.unchecked)}[/]")
    else:
        show(f"[bold red]broken at {escape(failure.name)}[/bold red]")


_CSS: Final = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;color:#1b1f24}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
.ok{color:#1a7f37}.failed{color:#cf222e;font-weight:bold}.skipped{color:#9a6700}
.not-run{color:#6e7781}code{font-size:.85em;word-break:break-all}
ul{margin:.2rem 0 .2rem 1rem;padding:0}.error{color:#cf222e}
.verdict{padding:.6rem;border-radius:.3rem;font-weight:bold}
.verdict.ok{background:#dafbe1}.verdict.failed{background:#ffebe9}
"""


_CSP: Final = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()}'; "
    "base-uri 'none'; form-action 'none'"
)
"""Should a value ever reach the page unescaped, the browser still runs no script, fetches
nothing, and applies no style but the page's own (by its SHA-256, not ``'unsafe-inline'``:
an injected ``<style>`` or ``style`` attribute could paint a broken step green or hide the
verdict)."""


def render_html(report: AuditReport) -> str:
    """The same report as one self-contained HTML page (every value escaped, and a content
    security policy that lets the browser run and fetch nothing)."""
    e = html.escape
    failure = report.failure
    unchecked = ", ".join(report.unchecked)
    verdict = (
        '<p class="verdict ok">Every step of the chain of trust holds.</p>'
        if failure is None and not unchecked
        else '<p class="verdict ok">No step failed. Not checked (not present, or nothing trusted '
        f"to check it with): {e(unchecked)}.</p>"
        if failure is None
        else f'<p class="verdict failed">Broken at step {e(failure.name)}: '
        f"{e(failure.error.code if failure.error else '')} — "
        f"{e(failure.error.detail if failure.error else '')}</p>"
    )
    rows = []
    for number, step in enumerate(report.steps, start=1):
        lines = "".join(f"<li>{e(line)}</li>" for line in step.lines)
        error = (
            f'<p class="error"><code>{e(type(step.error).__name__)}</code> '
            f"<code>{e(step.error.code)}</code>: {e(step.error.detail)}</p>"
            if step.error is not None
            else ""
        )
        rows.append(
            f"<tr><td>{number}</td><td><strong>{e(step.title)}</strong><br>"
            f"<code>{e(step.name)}</code></td>"
            f'<td class="{e(step.status)}">{_MARKS[step.status]} {e(step.status)}</td>'
            f"<td><ul>{lines}</ul>{error}</td></tr>"
        )
    facts = [
        ("node", report.node),
        ("class", report.node_class),
        ("platform", report.platform),
        ("exported at (the exporter's word)", report.exported_at),
        ("exported no earlier than (signed)", report.exported_no_earlier_than),
        ("judged as of", report.judged_at),
        ("bundle SHA-384", report.bundle_sha384),
    ]
    header = "".join(
        f"<tr><th>{e(k)}</th><td><code>{e(v or '?')}</code></td></tr>" for k, v in facts
    )
    notes = "".join(f'<p class="skipped">Note: {e(c)}</p>' for c in report.caveats)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>Ironroot audit of {e(report.node or '?')}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>Ironroot audit of {e(report.node or '?')}</h1>"
        f"<table>{header}</table>{verdict}{notes}"
        "<h2>Chain of trust, step by step</h2>"
        "<table><tr><th>#</th><th>step</th><th>result</th><th>what it established</th></tr>"
        + "".join(rows)
        + "</table></body></html>\n"
    )
