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
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import ironroot

__all__ = ["KILLER", "run_killer", "some_points"]

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


def run_killer(
    killer: Path, argv: Sequence[str], *, script: Path | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run ``killer`` (a file holding :data:`KILLER`) with ``argv`` and ``env`` added, on this
    checkout's ``ironroot`` (``script`` instead of the CLI when given); its output must hold no
    ``internal-error`` (a traceback's code), nor a traceback from ``script``."""
    if script is not None:
        env = {**env, "IRONROOT_TEST_KILL_SCRIPT": str(script)}
    src = str(Path(ironroot.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [sys.executable, str(killer), *argv],
        env={**os.environ, "PYTHONPATH": path, **env},
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
