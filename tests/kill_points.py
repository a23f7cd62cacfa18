"""The child process of the ``kill -9`` tests: ``python KILLER ARGS…`` runs the CLI (``ironroot
ARGS…``), or a script of the test's (``IRONROOT_TEST_KILL_SCRIPT=path``: ``path ARGS…``, for a
library call no verb makes), with an audit hook that kills the process (SIGKILL) at the *k*-th
file operation that can change state (an ``open`` for writing, a rename, a remove, a truncate,
a chmod):

* ``IRONROOT_TEST_KILL_AT=k`` — the operation to die at (0: never);
* ``IRONROOT_TEST_KILL_AFTER_REPLACING=name`` — instead, die right after a rename or replace
  onto a path ending in ``name`` has landed;
* ``IRONROOT_TEST_KILL_TALLY=file`` — write how many such operations the run made (to sweep
  them all).

A sweep runs the CLI once per operation, a hundred times or more, and a fresh interpreter
spends most of each run importing ironroot and cryptography before the first operation.
:class:`KillServer` imports them once and forks a child per run: each child is a process of its
own that runs :data:`KILLER` unchanged (the same hook, the same ``runpy`` start of the CLI) and
dies by the same SIGKILL; only the imports it would have redone are inherited.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import ironroot

__all__ = ["KILLER", "SQLITE_COMMITS", "KillServer", "run_killer", "some_points"]

KILLER = textwrap.dedent(
    """
    import atexit, os, signal, sys, runpy

    limit = int(os.environ.get("IRONROOT_TEST_KILL_AT", "0"))
    after = os.environ.get("IRONROOT_TEST_KILL_AFTER_REPLACING", "")
    tally = os.environ.get("IRONROOT_TEST_KILL_TALLY")
    seen = 0
    busy = False
    CHANGES = ("os.rename", "os.replace", "os.remove", "os.unlink", "os.truncate", "os.chmod")

    def hook(event, args):
        global seen, busy
        if busy:
            return
        if after and event in ("os.rename", "os.replace") and str(args[1]).endswith(after):
            busy = True
            os.replace(args[0], args[1])  # the write lands; the process dies right after it
            os.kill(os.getpid(), signal.SIGKILL)
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if not writes:
                return
        elif event not in CHANGES:
            return
        seen += 1
        if seen == limit:
            os.kill(os.getpid(), signal.SIGKILL)

    if tally:
        atexit.register(lambda: open(tally, "w").write(str(seen)))
    script = os.environ.get("IRONROOT_TEST_KILL_SCRIPT")
    sys.addaudithook(hook)
    if script:
        sys.argv = [script, *sys.argv[1:]]
        runpy.run_path(script, run_name="__main__")
    else:
        sys.argv = ["ironroot", *sys.argv[1:]]
        runpy.run_module("ironroot", run_name="__main__", alter_sys=True)
    """
)


SQLITE_COMMITS = textwrap.dedent(
    """
    import atexit, os, signal, sqlite3

    _commit_limit = int(os.environ.get("IRONROOT_TEST_KILL_COMMIT", "0"))
    _commit_after = os.environ.get("IRONROOT_TEST_KILL_COMMIT_AFTER") == "1"
    _commit_tally = os.environ.get("IRONROOT_TEST_KILL_COMMITS")
    _commits = 0

    class _Killing(sqlite3.Connection):
        def execute(self, sql, *args):
            global _commits
            if not isinstance(sql, str) or sql.strip().upper() != "COMMIT":
                return super().execute(sql, *args)
            _commits += 1
            if _commits == _commit_limit and not _commit_after:
                os.kill(os.getpid(), signal.SIGKILL)
            done = super().execute(sql, *args)
            if _commits == _commit_limit:
                os.kill(os.getpid(), signal.SIGKILL)
            return done

    _connect = sqlite3.connect

    def _connect_killing(*args, **kwargs):
        kwargs.setdefault("factory", _Killing)
        return _connect(*args, **kwargs)

    sqlite3.connect = _connect_killing
    if _commit_tally:
        atexit.register(lambda: open(_commit_tally, "w").write(str(_commits)))
    """
)
"""The start of a script of a test's (``IRONROOT_TEST_KILL_SCRIPT``) that kills its process
(SIGKILL) at a SQLite commit, which :data:`KILLER`'s audit hook cannot see (SQLite writes its
files from C): every connection opened afterwards counts its ``COMMIT`` statements, and the
process dies right before the ``IRONROOT_TEST_KILL_COMMIT``-th (0: never), or right after it
returned with ``IRONROOT_TEST_KILL_COMMIT_AFTER=1``; ``IRONROOT_TEST_KILL_COMMITS=file``: write
how many the run made."""


# The server: imports the modules named after the killer's path, then reads one JSON request a
# line ({"argv", "env", "stdout", "stderr", "timeout"}) and answers each with the return code of
# a forked child that ran KILLER (negative: the signal that ended it, as subprocess reports).
# A child's input is /dev/null and its output goes to the files named; it ends as an
# interpreter does (SystemExit's code, atexit handlers, flushed streams) and never returns into
# the server's loop.
_SERVER = textwrap.dedent(
    """
    import atexit, importlib, json, os, select, signal, sys, traceback

    with open(sys.argv[1]) as f:
        KILLER = compile(f.read(), sys.argv[1], "exec")
    for name in sys.argv[2:]:
        importlib.import_module(name)
    # A module a child imports writes no bytecode cache: written by the first run only, it
    # would be an operation counted in that run and in no later one.
    sys.dont_write_bytecode = True
    requests, replies = sys.stdin.buffer, sys.stdout

    def child(ask):
        code = 1
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            sys.stdin = open(os.devnull)
            for fd, path in ((1, ask["stdout"]), (2, ask["stderr"])):
                out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(out, fd)
                os.close(out)
            os.environ.update(ask["env"])
            sys.argv = ["killer", *ask["argv"]]
            try:
                exec(KILLER, {"__name__": "__main__", "__builtins__": __builtins__})
                code = 0
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)

    for line in requests:
        ask = json.loads(line)
        replies.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(ask)
        ended = os.pidfd_open(pid)
        finished = bool(select.select([ended], [], [], ask["timeout"])[0])
        if not finished:
            os.kill(pid, signal.SIGKILL)
        os.close(ended)
        status = os.waitpid(pid, 0)[1]
        answer = {"returncode": os.waitstatus_to_exitcode(status), "timed_out": not finished}
        replies.write(json.dumps(answer) + "\\n")
        replies.flush()
    """
)


class KillServer:
    """Runs :data:`KILLER` like :func:`run_killer`, in children forked from one process that
    imported ``preload`` (module names) once: ``with KillServer(directory, preload) as killer:
    killer.run(argv, IRONROOT_TEST_KILL_AT="3")``. ``directory`` holds the scripts and each
    run's output. Environment variables a module reads when imported keep the server's values."""

    def __init__(self, directory: Path, preload: Sequence[str] = ("ironroot.cli",)) -> None:
        self._directory = directory
        self._preload = tuple(preload)
        self._server: subprocess.Popen[bytes] | None = None
        self._runs = 0

    def __enter__(self) -> KillServer:
        killer, server = self._directory / "killer.py", self._directory / "kill-server.py"
        killer.write_text(KILLER)
        server.write_text(_SERVER)
        self._server = subprocess.Popen(
            [sys.executable, str(server), str(killer), *self._preload],
            env={**os.environ, "PYTHONPATH": _pythonpath()},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        server, requests, replies = self._pipes()
        self._server = None
        requests.close()
        try:
            server.wait(timeout=30)
        finally:
            if server.returncode is None:
                server.kill()
                server.wait()
            replies.close()
        assert server.returncode == 0 or kind is not None, server.returncode

    def run(
        self, argv: Sequence[str], *, script: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[bytes]:
        """One run of the CLI with ``argv`` and ``env`` added, in a new child (``script``
        instead of the CLI when given, as :func:`run_killer`); its output must hold no
        ``internal-error`` (a traceback's code), nor a traceback from ``script``."""
        if script is not None:
            env = {**env, "IRONROOT_TEST_KILL_SCRIPT": str(script)}
        server, requests, replies = self._pipes()
        self._runs += 1
        out = self._directory / f"run-{self._runs}.out"
        err = self._directory / f"run-{self._runs}.err"
        ask = {"argv": list(argv), "env": env, "stdout": str(out), "stderr": str(err)}
        requests.write(json.dumps({**ask, "timeout": 120}).encode() + b"\n")
        requests.flush()
        line = replies.readline()
        assert line, f"the kill server ended ({server.poll()})"
        answer = json.loads(line)
        done = subprocess.CompletedProcess(
            ["killer", *argv], answer["returncode"], out.read_bytes(), err.read_bytes()
        )
        out.unlink()
        err.unlink()
        assert not answer["timed_out"], done
        assert b"internal-error" not in done.stdout + done.stderr, done
        assert script is None or b"Traceback" not in done.stderr, done
        return done

    def _pipes(self) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]:
        server = self._server
        assert server is not None, "KillServer runs inside its with block"
        assert server.stdin is not None
        assert server.stdout is not None
        return server, server.stdin, server.stdout


def _pythonpath() -> str:
    src = str(Path(ironroot.__file__).resolve().parent.parent)
    return os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)


def run_killer(
    killer: Path, argv: Sequence[str], *, script: Path | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run ``killer`` (a file holding :data:`KILLER`) with ``argv`` and ``env`` added, on this
    checkout's ``ironroot`` (``script`` instead of the CLI when given); its output must hold no
    ``internal-error`` (a traceback's code), nor a traceback from ``script``."""
    if script is not None:
        env = {**env, "IRONROOT_TEST_KILL_SCRIPT": str(script)}
    done = subprocess.run(
        [sys.executable, str(killer), *argv],
        env={**os.environ, "PYTHONPATH": _pythonpath(), **env},
        capture_output=True,
        timeout=120,
    )
    assert b"internal-error" not in done.stdout + done.stderr, done
    assert script is None or b"Traceback" not in done.stderr, done
    return done


def some_points(first: int, last: int, count: int) -> list[int]:
    """``count`` of the operations ``first..last`` to kill at, in order: the first and the
    last, and others drawn afresh each run, so that runs cover them all in turn where a sweep
    of every one (two processes each: the killed run and the one that resumes) would take too
    long. An assertion that fails names its point (``IRONROOT_TEST_KILL_AT``) to run again.

    A tally (``IRONROOT_TEST_KILL_TALLY``) counts its own write last: a run's operations are
    ``1..tally - 1``."""
    if last - first + 1 <= count:
        return list(range(first, last + 1))
    drawn = random.sample(range(first + 1, last), count - 2)
    return [first, *sorted(drawn), last]
