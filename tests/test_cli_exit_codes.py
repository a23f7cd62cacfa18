"""Every verb, found from the parser itself (not a hand list), given bad input files: it exits
1 or 2 with one line on stderr, never a traceback, and with ``--json`` prints one JSON object
``{"ok": false, "error": {...}}``.

For each verb that reads a file, each file argument in turn gets: a path that does not exist,
an empty file, a directory, a file of the wrong type (text that is no key, certificate,
CBOR or JSON the verb expects), a named pipe nobody writes to (the verb must not wait for a
writer) and ``/dev/zero`` (the verb must stop reading at its size limit). The verb's other
required arguments get something plausible (an existing file of the same wrong type, a word,
a number, a loopback URL nothing listens on). Output arguments (``--out`` and the like) get a
fresh path in the test's directory. Verbs that serve forever are left out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_parsers import reuse_parsers
from ironroot.cli._main import GROUPS, build_parser

_SERVERS = {"serve"}
_OUTPUT_HINTS = ("out", "write", "save", "dest")
_WRONG = b"this is not what the verb reads\n"
_CASES = ("missing", "empty", "directory", "wrong-type", "fifo", "endless")
# directories a verb creates (it is right to succeed on a path that does not exist yet)
_CREATED = {
    ("spdm", "device-init", "dir"),
    ("attest", "init", "data"),
    ("keyrelease", "demo", "workdir"),
    ("witness", "init", "data"),
}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _leaves(child, (*path, name))
    if parser.get_default("func") is not None:
        yield path, parser


def _verbs() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    found = []
    for group in GROUPS:
        for path, leaf in _leaves(build_parser([group])):
            if path and path[-1] not in _SERVERS:
                found.append((path, leaf))
    return found


_VERBS = _verbs()


def _is_output(action: argparse.Action) -> bool:
    return any(h in action.dest for h in _OUTPUT_HINTS) or action.dest == "workdir"


def _file_args(leaf: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in leaf._actions if a.type is Path and not _is_output(a)]


def _value(action: argparse.Action, tmp: Path, file: Path) -> str:
    if action.type is Path:
        return str(tmp / f"out-{action.dest}") if _is_output(action) else str(file)
    if action.choices:
        return str(next(iter(action.choices)))
    if action.type is int:
        return "1"
    if "url" in action.dest or "register" in action.dest:
        return "http://127.0.0.1:9"  # the discard port: nothing listens
    if "nonce" in action.dest or "hex" in action.dest or "measurement" in action.dest:
        return "00" * 32
    return "x"


def _argv(
    path: tuple[str, ...],
    leaf: argparse.ArgumentParser,
    target: argparse.Action,
    bad: Path,
    tmp: Path,
    filler: Path,
) -> list[str]:
    argv = list(path)
    for action in leaf._actions:
        if isinstance(action, argparse._HelpAction) or action.dest in ("json", "func"):
            continue
        given = bad if action is target else filler
        if not action.option_strings:
            if action.nargs in ("*", "?"):
                if action is target:
                    argv.append(str(bad))
                continue
            argv.append(_value(action, tmp, given))
        elif action.required or action is target:
            argv += [action.option_strings[-1], _value(action, tmp, given)]
    return argv


def _bad_input(case: str, tmp: Path) -> Path:
    target = tmp / f"input-{case}"
    if case == "empty":
        target.write_bytes(b"")
    elif case == "directory":
        target.mkdir()
    elif case == "wrong-type":
        target.write_bytes(_WRONG)
    elif case == "fifo":
        os.mkfifo(target)
    elif case == "endless":
        return Path("/dev/zero")
    return target


class _Stuck(BaseException):  # not caught by main as a bug of the verb
    pass


@contextlib.contextmanager
def _watchdog(where: str, seconds: int = 120) -> Iterator[None]:
    """Turn a verb that waits forever (on a pipe nobody writes to) into a failure."""

    def stuck(_signum: int, _frame: object) -> None:
        raise _Stuck(f"{where}: still running after {seconds} s (waiting on its input?)")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


_PARAMS = [
    pytest.param(path, leaf, arg.dest, id=f"{' '.join(path)}:{arg.dest}")
    for path, leaf in _VERBS
    for arg in _file_args(leaf)
    if (*path, arg.dest) not in _CREATED
]


def test_every_group_has_verbs_and_most_read_files() -> None:
    assert {path[0] for path, _leaf in _VERBS} == set(GROUPS) - {"serve"}
    assert len(_PARAMS) > 60


@pytest.mark.parametrize(("path", "leaf", "dest"), _PARAMS)
def test_bad_input_files_exit_1_or_2_without_a_traceback(
    path: tuple[str, ...],
    leaf: argparse.ArgumentParser,
    dest: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ironroot.cli import main

    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL", "not-the-credential")  # never prompt
    monkeypatch.setenv("IRONROOT_HSM_ROT_DEVICE", str(tmp_path / "no-rot"))
    monkeypatch.chdir(tmp_path)
    reuse_parsers(monkeypatch)  # each group's parser built once: eight runs per test
    target = next(a for a in leaf._actions if a.dest == dest)
    filler = tmp_path / "filler"
    filler.write_bytes(_WRONG)
    for case in _CASES:
        bad = _bad_input(case, tmp_path)
        for as_json in (False, True):
            argv = _argv(path, leaf, target, bad, tmp_path, filler)
            if as_json:
                argv.append("--json")
            out, err = io.StringIO(), io.StringIO()
            where = f"{' '.join(argv)} ({case})"
            with (
                _watchdog(where),
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
            ):
                try:
                    code = main(argv)
                except SystemExit as exc:  # argparse: a usage error
                    code = exc.code if isinstance(exc.code, int) else 2
            assert code in (1, 2), f"{where}: exit {code}\n{out.getvalue()}{err.getvalue()}"
            assert "Traceback" not in err.getvalue(), where
            assert "internal-error" not in err.getvalue(), f"{where}: a bug\n{err.getvalue()}"
            if (as_json and code != 2) or (as_json and out.getvalue().strip()):
                doc = json.loads(out.getvalue())
                assert doc["ok"] is False, where
                assert set(doc["error"]) >= {"code", "message", "check"}, where
