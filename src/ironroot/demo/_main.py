"""``python -m ironroot.demo`` (``make demo``): the story, the attacks, the table, the report."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.markup import escape

from ironroot.demo._acts import ACTS, Act
from ironroot.demo._attacks import ATTACKS, Attack, AttackResult, run_attack
from ironroot.demo._report import build_report
from ironroot.demo._ui import Narrator
from ironroot.demo._world import Story, utc_now
from ironroot.errors import IronrootError

__all__ = ["main", "run_story"]

_log = logging.getLogger("ironroot.demo")

_MIN_NODES = 3
"""The attacks each use a node of their own among the first and last three."""


_MIN_WIDTH = 40
"""A console narrower than this cannot show the story (at 0, nothing at all is printed)."""


def _log_to(story: Story, path: Path) -> None:
    """The services' log lines (a fork found, a refused request) go to ``path``, not the
    console: the story tells what they mean."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("ironroot", "uvicorn", "httpx")]
    saved = [(logger, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False

    def restore() -> None:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()

    story.stack.callback(restore)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ironroot.demo",
        description="The datacenter story on the embedded default (SQLite), in a temporary "
        "directory: a vendor releases and logs firmware and a PFM, a SAFE lab reviews it, a "
        "fleet is built, booted, attested and admitted, a BMC update rolls out, a "
        "confidential VM gets its key, a confidential AI VM whose GPU is attested against "
        "logged RIMs gets its model weights and an auditor verifies a node offline; then staged "
        "attacks, each refused with its exact error, in a final table. Exit 0 when every "
        "act ran and every attack was refused, 1 otherwise (what `make demo` runs).",
    )
    parser.add_argument("--nodes", type=int, default=12, help="fleet size (default 12; at least 3)")
    parser.add_argument(
        "--wave-size", type=int, default=4, help="nodes per rollout wave (default 4)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small fleet (3 nodes, waves of 2): the test size"
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="write the report as JSON (docs/demo.md); '-': to stdout, the story on stderr",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="leave the services running (and the dashboard, when installed) until Ctrl-C",
    )
    parser.add_argument(
        "--workdir", type=Path, help="work in DIR (kept) instead of a temporary directory"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="console width when there is no terminal (40 to 1000)",
    )
    return parser


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, IronrootError):
        return {
            "class": type(exc).__name__,
            "code": exc.code,
            "check": exc.check,
            "message": exc.detail,
        }
    return {"class": type(exc).__name__, "code": None, "check": None, "message": str(exc)}


def _run_acts(story: Story, acts: Sequence[Act]) -> list[dict[str, Any]]:
    """Run the acts in order; stop at the first that fails (the next ones build on it)."""
    done: list[dict[str, Any]] = []
    for number, act in enumerate(acts, 1):
        story.ui.act(number, act.title, act.story)
        started = time.monotonic()
        entry: dict[str, Any] = {"name": act.name, "title": act.title}
        try:
            act.run(story)
        except Exception as exc:  # a failed act ends the story: shown, never a traceback
            _log.exception("act %s failed", act.name)  # the traceback goes to demo.log
            story.ui.refused(
                f"[bold red]act {act.name} failed:[/bold red] {escape(type(exc).__name__)}: "
                f"{escape(str(exc))}"
            )
            done.append(
                {
                    **entry,
                    "ok": False,
                    "seconds": round(time.monotonic() - started, 3),
                    "facts": {},
                    "error": _error(exc),
                }
            )
            return done
        done.append(
            {
                **entry,
                "ok": True,
                "seconds": round(time.monotonic() - started, 3),
                "facts": _facts_of(story, act),
                "error": None,
            }
        )
    return done


def _facts_of(story: Story, act: Act) -> dict[str, Any]:
    """What ``act`` established (``story.facts[act.name]``), for the report."""
    value = story.facts.get(act.name, {})
    return dict(value) if isinstance(value, dict) else {}


def _run_attacks(story: Story, attacks: Sequence[Attack]) -> list[AttackResult]:
    ui = story.ui
    ui.act(
        len(ACTS) + 1,
        f"{len(attacks)} staged attacks",
        "Each attack is really attempted through the product path; it must be refused with "
        "its exact typed error. One that is not refused fails the demo.",
    )
    results: list[AttackResult] = []
    for attack in attacks:
        result = run_attack(story, attack)
        results.append(result)
        if result.refused:
            ui.say(
                f"[green]✔ refused[/green] {escape(attack.title)} — [dim]{escape(attack.layer)}: "
                f"{escape(result.error_class or '')} {escape(result.error_code or '')}[/dim]"
            )
        else:
            ui.say(
                f"[bold red]NOT REFUSED[/bold red] {escape(attack.title)}: expected "
                f"{escape(attack.expected)}, got {escape(str(result.error_class))} / "
                f"{escape(str(result.error_code))}: {escape(result.message)}"
            )
    ui.attack_table(results)
    return results


def run_story(story: Story) -> tuple[list[dict[str, Any]], list[AttackResult]]:
    """Every act, then (when they all ran) every attack."""
    acts = _run_acts(story, ACTS)
    if not all(a["ok"] for a in acts):
        return acts, []
    return acts, _run_attacks(story, ATTACKS)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the story stops, its services stop, exit 128 + 15."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminated(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM ignored for the duration (the services' shutdown)."""
    held = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)


def _replace_unencodable() -> None:
    """A console that cannot show a character (an ASCII ``PYTHONIOENCODING``, a C locale
    without UTF-8 mode) shows ``?`` for it: the story's dashes and check marks never stop the
    demo with a ``UnicodeEncodeError``."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")


def _make_workdir(workdir: Path) -> Path:
    """``--workdir``, made (with its parents) when missing, or a usage error: it must be an
    empty directory this process can write in. A directory an earlier run used (finished,
    failed or interrupted) is refused as it is, never resumed or overwritten."""
    if workdir.exists() and not workdir.is_dir():
        _parser().error(f"--workdir {workdir} is not a directory")
    if workdir.is_dir() and any(workdir.iterdir()):
        _parser().error(
            f"--workdir {workdir} is not empty (an earlier run's files?): give a new or an "
            "empty directory, or remove that one"
        )
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _parser().error(f"--workdir {workdir} cannot be created: {exc.strerror}")
    if not os.access(workdir, os.W_OK | os.X_OK):
        _parser().error(f"--workdir {workdir} is not writable")
    return workdir.resolve()


def _claim_workdir(work: Path) -> None:
    """Claim the (empty) work directory by creating ``demo.log`` exclusively: of two runs
    started at once into one directory, both of which found it empty, one runs and the other
    is refused, rather than both writing the same files."""
    try:
        (work / "demo.log").open("x", encoding="utf-8").close()
    except FileExistsError:
        _parser().error(f"--workdir {work} is in use by another run (its demo.log exists)")
    except OSError as exc:
        _parser().error(f"cannot write {work / 'demo.log'}: {exc.strerror}")


def _check_report_path(path: Path) -> None:
    """``--json FILE`` checked before the story runs: not a directory, its folder made."""
    if path.is_dir():
        _parser().error(f"--json {path} is a directory: give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _parser().error(f"--json {path}: its folder cannot be created: {exc.strerror}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        _parser().error(f"--json {path}: its folder is not writable")


def _write_report(ui: Narrator, path: Path, report: dict[str, Any]) -> bool:
    """Write the report (whole or not at all); a failure is told, and fails the demo."""
    from ironroot.cli._output import write_output  # whole or not at all, never a key

    text = json.dumps(report, indent=2) + "\n"
    try:
        if str(path) == "-":
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_output(path, text.encode("utf-8"))
    except (IronrootError, OSError) as exc:
        why = exc.detail if isinstance(exc, IronrootError) else (exc.strerror or str(exc))
        ui.refused(f"[bold red]report not written[/bold red] to {escape(str(path))}: {escape(why)}")
        return False
    if str(path) != "-":
        ui.say(f"report written to {escape(str(path))}")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    nodes, wave = (3, 2) if args.quick else (args.nodes, args.wave_size)
    if nodes < _MIN_NODES or nodes > 1000:
        _parser().error(f"--nodes is {_MIN_NODES} to 1000")
    if wave < 1:
        _parser().error("--wave-size is 1 or more")
    if args.width is not None and not _MIN_WIDTH <= args.width <= 1000:
        _parser().error(f"--width is {_MIN_WIDTH} to 1000 columns")
    _replace_unencodable()
    to_stdout = args.json is not None and str(args.json) == "-"
    if args.json is not None and not to_stdout:
        _check_report_path(args.json)
    # with --json -, standard output carries the report alone: the story is told on stderr
    ui = Narrator(sys.stderr if to_stdout else None, width=args.width)
    if args.workdir is not None:
        work = _make_workdir(args.workdir)
        _claim_workdir(work)
    else:
        try:
            work = Path(tempfile.mkdtemp(prefix="ironroot-demo-"))
        except OSError as exc:
            _parser().error(f"cannot make a temporary directory ({exc.strerror}): use --workdir")
    started = utc_now()
    story = Story(work, ui, nodes=nodes, wave_size=wave)
    try:
        _log_to(story, work / "demo.log")
    except OSError as exc:
        _parser().error(f"cannot write {work / 'demo.log'}: {exc.strerror}")
    ui.title(
        "Ironroot — defense in depth, silicon to systems",
        f"The datacenter story: {nodes} nodes on the embedded store, in {work}",
    )
    services: dict[str, str] = {}
    ok = False
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # `kill` stops it as Ctrl-C does (signals reach the main thread only)
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        acts, results = run_story(story)
        ok = all(a["ok"] for a in acts) and bool(results) and all(r.refused for r in results)
        seconds = ui.elapsed()
        if ok and args.serve:
            from ironroot.demo._serve import service_urls

            services = service_urls(story)
        report = build_report(
            started=started,
            seconds=seconds,
            settings={"nodes": nodes, "wave_size": wave},
            acts=acts,
            attacks=results,
            services=services,
        )
        if args.json is not None and not _write_report(ui, args.json, report):
            ok = False
        refused = sum(r.refused for r in results)
        if ok:
            ui.console.print(
                f"\n[bold green]demo complete[/bold green] in {seconds:.0f} s: "
                f"{len(acts)} acts, {refused}/{len(results)} attacks refused with their "
                "exact errors"
            )
        else:
            ui.console.print(
                f"\n[bold red]demo FAILED[/bold red] after {seconds:.0f} s: "
                f"{sum(a['ok'] for a in acts)}/{len(ACTS)} acts ran, "
                f"{refused}/{len(results)} attacks refused"
            )
        if ok and args.serve:
            from ironroot.demo._serve import serve

            serve(story, services)
        return 0 if ok else 1
    except KeyboardInterrupt as exc:
        ui.console.print("\ninterrupted")
        return 128 + (exc.signum if isinstance(exc, _Terminated) else signal.SIGINT)
    finally:
        if main_thread:
            with _signals_held():  # a second Ctrl-C must not cut the services' shutdown short
                story.close()
            signal.signal(signal.SIGTERM, previous)
        else:
            story.close()
        if args.workdir is None and ok and not args.keep and not args.serve:
            shutil.rmtree(work, ignore_errors=True)
        elif args.workdir is None:
            why = "" if ok else " (demo.log has the details of a failure)"
            ui.console.print(f"[dim]the demo's files are kept in {work}{why}[/dim]")
