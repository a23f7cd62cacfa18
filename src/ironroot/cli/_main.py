"""Entry point: ``ironroot <group> <verb>``, one module per verb group.

Each group module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int`` on each verb. This module is the one output and error layer they share:

* **Exit codes:** 0 success; 1 a verification or policy failure; 2 a usage error, malformed
  input, or input that is missing or unreadable (a file, a directory where a file belongs).
  Every ``IronrootError`` becomes one line on stderr and its ``exit_code``; an ``OSError`` from
  reading input is exit 2 (``input-unavailable``), one from a peer that cannot be reached
  exit 1 (``unreachable``); Ctrl-C is one ``interrupted`` line (exit 130); anything else
  unexpected is one ``internal-error`` line (exit 1), never a traceback.
* **``--json``:** every verb that prints a result takes it (added here to any that does not
  declare it), and then stdout carries exactly one JSON object, whether the verb succeeded or
  not: ``{"ok": true, ...the verb's members}`` (a verb that prints JSON keeps its members, a
  list becomes ``"result"``, text becomes ``"output"``), or on failure
  ``{"ok": false, "error": {"code", "message", "check"}}`` (``check``: the named check that
  failed, or ``null``) — with the one-line message on stderr as well.
* **Logging:** ``-v``/``--verbose`` (info; twice, debug), ``--log-level``, ``--log-format
  text|json`` before the group configure Ironroot's log lines on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import select
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ironroot import __version__
from ironroot._text import shown
from ironroot.cli._help import apply_help
from ironroot.cli._input import forget_secrets, note_named_as_folder
from ironroot.errors import InputUnavailable, IronrootError, Unreachable

# Command → (module under ironroot.cli, one-line help), in the order `--help` lists them. Only
# the module of the group being run is imported: a command pays for its own layer, not for
# every layer (tests/test_cli_main.py checks this table against each module's own parser).
GROUPS: Final[Mapping[str, tuple[str, str]]] = {
    "key": ("keys", "generate and inspect keys"),
    "statement": ("statement", "sign, register and verify Signed Statements"),
    "log": ("log", "check transparency logs"),
    "serve": ("serve", "run the transparency service"),
    "firmware": ("firmware", "build, sign, verify, inspect and publish firmware bundles"),
    "rot": ("rot", "silicon root of trust: DICE identities"),
    "spdm": ("spdm", "SPDM devices and verifiers on the spdm-emu wire"),
    "safe": ("safe", "OCP SAFE Short Form Reports: sign, verify, publish, query"),
    "rim": ("rim", "NVIDIA GPU reference manifests (RIMs): verify, register, appraise"),
    "evidence": ("evidence", "verify attestation evidence offline"),
    "attest": ("attest", "the attestation verifier (EAR results)"),
    "hsm": ("hsm", "the built-in HSM"),
    "keyrelease": ("keyrelease", "secure key release to attested TEEs"),
    "platform": ("platform", "the platform: a DC-SCM RoT and BMC, its flash, updates, PFMs"),
    "fleet": ("fleet", "a fleet of nodes: manufacture, registry, admission"),
    "audit": ("audit", "a node's audit bundle: export it, verify it offline"),
    "witness": ("witness", "run a C2SP tlog-witness; have a log's checkpoint cosigned"),
    "monitor": ("monitor", "follow transparency logs: consistency, watched statements, forks"),
    "dashboard": ("dashboard", "the dashboard: fleet, log, reviews, keys and alerts as web pages"),
    "completion": ("completion", "print a shell completion script"),
    "demo": ("demo", "the datacenter story, then staged attacks refused with their exact errors"),
}


INTERRUPTED: Final = "stopped by Ctrl-C (SIGINT)"
"""The message of exit 130 (code ``interrupted``): a file the verb was writing is not left
half-written (outputs are renamed into place whole), nor is one it had not yet written."""


class _Parser(argparse.ArgumentParser):
    """argparse that exits with 2 on usage errors (its default) and prints one line; when the
    command line asks for ``--json``, the JSON failure object goes to stdout too (a script
    reading stdout gets one object for a usage error as for any other failure). An empty
    path (``--out ""``) is a usage error, not the current folder."""

    json_errors = False

    def error(self, message: str) -> None:  # type: ignore[override]
        if _Parser.json_errors:
            print(_failure("usage", message, None))
        self.print_usage(sys.stderr)
        print(f"ironroot: error: {message}", file=sys.stderr)
        raise SystemExit(2)

    def _get_value(self, action: argparse.Action, arg_string: str) -> Any:
        # An empty word (an unset shell variable) is no path: Path("") is the current folder.
        if action.type is Path and not arg_string:
            raise argparse.ArgumentError(action, "an empty path names no file")
        if action.type is Path and arg_string.endswith("/"):  # Path drops it: remembered
            note_named_as_folder(Path(arg_string))
        return super()._get_value(action, arg_string)


_VALUED: Final = frozenset({"--log-level", "--log-format"})
"""The options before the group that take a value: the word after one is its value."""


def _selected(argv: Sequence[str]) -> str | None:
    """The group ``argv`` runs: its first word that is neither an option nor the value of one
    (``--log-level debug``)."""
    words = iter(argv)
    for word in words:
        if "=" not in word and any(len(word) > 6 and v.startswith(word) for v in _VALUED):
            next(words, None)  # argparse takes an unambiguous prefix too (--log-l debug)
        elif not word.startswith("-"):
            return word if word in GROUPS else None
    return None


_NO_RESULT: Final = frozenset({"serve", "tamper", "completion", "dashboard"})
"""Verbs that print no result (a service runs; the HSM is zeroized): no ``--json`` is added."""


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every verb parser under ``parser`` (those that set ``func``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _leaves(child)
    if parser.get_default("func") is not None:
        yield parser


def _add_json(parser: argparse.ArgumentParser) -> None:
    for leaf in _leaves(parser):
        name = leaf.prog.rsplit(" ", 1)[-1]
        if name in _NO_RESULT or any("--json" in a.option_strings for a in leaf._actions):
            continue
        leaf.add_argument(
            "--json", action="store_true", help="print one JSON object on stdout, even on failure"
        )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the group it runs is built in full (the others are
    listed by name and help), so only that group's module is imported. Without, every group."""
    parser = _Parser(
        prog="ironroot",
        description="Ironroot: defense-in-depth, silicon to systems.",
        epilog="exit codes: 0 ok, 1 a verification or policy failure, 2 usage or input errors",
    )
    parser.add_argument("--version", action="version", version=f"ironroot {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log info (-v) or debug (-vv) lines"
    )
    parser.add_argument(
        "--log-level", dest="global_log_level", help="debug, info, warning or error (warning)"
    )
    parser.add_argument(
        "--log-format",
        dest="global_log_format",
        choices=("text", "json"),
        help="log lines as text or JSON (text)",
    )
    sub = parser.add_subparsers(dest="group", metavar="<group>", parser_class=_Parser)
    selected = _selected(argv) if argv is not None else None
    for command, (module_name, help_text) in GROUPS.items():
        if argv is not None and command != selected:
            sub.add_parser(command, help=help_text)
            continue
        module = importlib.import_module(f"ironroot.cli.{module_name}")
        module.register(sub)
    _add_json(parser)
    apply_help(parser)
    return parser


def _logging(args: argparse.Namespace) -> None:
    level = args.global_log_level or {0: None, 1: "info"}.get(args.verbose, "debug")
    if level is None and args.global_log_format is None:
        return
    from ironroot.http._logging import configure_logging

    configure_logging(level or "warning", args.global_log_format or "text")


def _as_json(captured: str, code: int) -> dict[str, Any]:
    """The verb's own output as the members of the one JSON object (see the module docs)."""
    text = captured.strip()
    try:
        value = json.loads(text) if text else None
    except ValueError:
        value = None
        if text:
            return {"ok": code == 0, "output": text}
    if isinstance(value, dict):
        return {"ok": code == 0, **value} if "ok" not in value else value
    if value is None:
        return {"ok": code == 0}
    return {"ok": code == 0, "result": value}


def error_object(exc: IronrootError) -> dict[str, str | None]:
    """The ``error`` member of every ``--json`` failure: ``{"code", "message", "check"}``."""
    return {"code": exc.code, "message": exc.detail, "check": exc.check}


def _failure(code: str, message: str, check: str | None) -> str:
    return json.dumps({"ok": False, "error": {"code": code, "message": message, "check": check}})


def _os_error(exc: OSError) -> IronrootError:
    """An operating-system error no verb turned into a typed one: a peer that cannot be
    reached (exit 1), or input that is missing or unreadable (exit 2)."""
    if isinstance(exc, ConnectionError | TimeoutError) or type(exc).__name__ == "gaierror":
        return Unreachable.of("the peer", exc)
    where = f"{exc.filename}: " if exc.filename else ""
    return InputUnavailable(f"{where}{(exc.strerror or str(exc) or 'I/O error').lower()}")


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    forget_secrets()  # what the previous command of this process read is not this one's
    _Parser.json_errors = "--json" in words
    if sys.stderr is None:  # closed (2>&-): a failure's line must not land on stdout instead
        sys.stderr = _Discarded()
    try:
        parser = build_parser(words)
        args = parser.parse_args(words)
    except KeyboardInterrupt:  # Ctrl-C while the verb's modules load
        print(f"ironroot: interrupted: {INTERRUPTED}", file=sys.stderr)
        if _Parser.json_errors:
            print(_failure("interrupted", INTERRUPTED, None))
        return 130
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    if sys.stdout is None:  # closed (>&-): refuse a verb whose result would be lost
        if getattr(args, "json", None) is not None:
            message = "stdout is closed: the result could not be printed"
            print(f"ironroot: input-unavailable: {message}", file=sys.stderr)
            return 2
        sys.stdout = _Discarded()  # a service, which prints no result
    as_json = bool(getattr(args, "json", False))
    out = io.StringIO() if as_json else None
    error: tuple[str, str, str | None] | None = None
    stdout = sys.stdout  # an output written onto stdout sends the verb's lines to stderr
    try:
        _logging(args)
        with contextlib.redirect_stdout(out) if out is not None else contextlib.nullcontext():
            code = int(func(args))
    except IronrootError as exc:
        error, code = (exc.code, exc.detail, exc.check), exc.exit_code
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            return _reader_went_away()
        typed = _os_error(exc)
        error, code = (typed.code, typed.detail, None), typed.exit_code
    except KeyboardInterrupt:  # Ctrl-C: one line (the --json object too), never a traceback
        error, code = ("interrupted", INTERRUPTED, None), 130
    except RecursionError:
        error, code = ("malformed", "the input is nested too deeply", None), 2
    except Exception as exc:  # a bug: one line that says so, never a traceback
        message = f"unexpected {type(exc).__name__}: {exc} (a bug in ironroot: please report it)"
        error, code = ("internal-error", message, None), 1
    sys.stdout = stdout
    try:
        if error is not None:
            print(f"ironroot: {error[0]}: {shown(error[1])}", file=sys.stderr)
        if out is not None:
            result = _as_json(out.getvalue(), code)
            print(_failure(*error) if error is not None else json.dumps(result))
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_went_away()
    except OSError as exc:  # stdout is a full disk (/dev/full), a file over its size limit
        return _result_lost(exc, code)
    return code


class _Discarded(io.TextIOBase):
    """The stand-in for a standard stream that was closed before the command started."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def _stdout_gone() -> bool:
    """Whether the reader of stdout has closed it (a pipe with no reader polls as an error),
    rather than a peer of the verb's (a socket) having gone away."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no file behind stdout (a StringIO)
        return False


def _result_lost(exc: OSError, code: int) -> int:
    """stdout could not take what the verb printed (``ENOSPC``, ``EFBIG``, ``EIO``): one line
    on stderr, and exit 2 for a verb that had succeeded (its result is lost, as when stdout is
    closed); a failure keeps its own code. What stays buffered is dropped, so that the
    interpreter's own flush at exit does not raise again."""
    reason = (exc.strerror or str(exc) or "I/O error").lower()
    print(
        f"ironroot: input-unavailable: stdout: {reason}: the result could not be printed",
        file=sys.stderr,
    )
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return code or 2


def _reader_went_away() -> int:
    """The reader of stdout closed it (``| head``): stop quietly, as a shell tool does, and
    keep the interpreter's own flush at exit from raising again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1
