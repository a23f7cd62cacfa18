"""A child process held still at one write, for the tests of two processes racing over one
directory: ``python PAUSER ARGS…`` runs the CLI (``ironroot ARGS…``), or a script of the
test's (``IRONROOT_TEST_PAUSE_SCRIPT=path``: ``path ARGS…``), with an audit hook that stops the
process right before the first rename or link onto a path ending in
``IRONROOT_TEST_PAUSE_BEFORE`` (the write has been decided and its temporary file is whole,
but it has not landed): it makes ``<IRONROOT_TEST_PAUSE_DIR>/paused`` and waits until
``<IRONROOT_TEST_PAUSE_DIR>/go`` exists. The test does what the other process would do
meanwhile, then lets it go (:class:`PausedProcess`). Nothing here measures time: the waits end
on files, and a child that ends instead of pausing ends the wait too."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import ironroot

__all__ = ["PAUSER", "PausedProcess", "child_env"]

PAUSER = textwrap.dedent(
    """
    import os, runpy, sys, time

    before = os.environ["IRONROOT_TEST_PAUSE_BEFORE"]
    folder = os.environ["IRONROOT_TEST_PAUSE_DIR"]
    done = False

    def hook(event, args):
        global done
        if done or event not in ("os.rename", "os.replace", "os.link"):
            return
        if not os.fsdecode(args[1]).endswith(before):
            return
        done = True
        open(os.path.join(folder, "paused"), "w").close()
        while not os.path.exists(os.path.join(folder, "go")):
            time.sleep(0.01)

    sys.addaudithook(hook)
    script = os.environ.get("IRONROOT_TEST_PAUSE_SCRIPT")
    if script:
        sys.argv = [script, *sys.argv[1:]]
        runpy.run_path(script, run_name="__main__")
    else:
        sys.argv = ["ironroot", *sys.argv[1:]]
        runpy.run_module("ironroot", run_name="__main__", alter_sys=True)
    """
)


def child_env(**env: str) -> dict[str, str]:
    """This process's environment with ``env`` added, and this checkout's ``ironroot`` first on
    ``PYTHONPATH``: for a child process of the test."""
    src = str(Path(ironroot.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **env}


_WAIT = 120.0  # seconds: only a guard against a child that hangs, never an expectation


class PausedProcess:
    """``with PausedProcess(folder, argv, before="name") as child:`` starts the child and
    returns once it is paused (``AssertionError`` if it ended first, with its output);
    :meth:`resume` lets it go on and returns how it ended. ``folder`` holds the pause files
    and the script (``script``: run instead of the CLI)."""

    def __init__(
        self,
        folder: Path,
        argv: Sequence[str],
        *,
        before: str,
        script: Path | None = None,
    ) -> None:
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        pauser = folder / "pauser.py"
        pauser.write_text(PAUSER)
        env = child_env(IRONROOT_TEST_PAUSE_BEFORE=before, IRONROOT_TEST_PAUSE_DIR=str(folder))
        if script is not None:
            env["IRONROOT_TEST_PAUSE_SCRIPT"] = str(script)
        self._child = subprocess.Popen(
            [sys.executable, str(pauser), *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def __enter__(self) -> PausedProcess:
        deadline = time.monotonic() + _WAIT
        while not (self._folder / "paused").exists():
            if self._child.poll() is not None or time.monotonic() > deadline:
                if self._child.returncode is None:
                    self._child.kill()
                _out, err = self._child.communicate()
                raise AssertionError(f"the child did not pause ({self._child.returncode}): {err!r}")
            time.sleep(0.01)
        return self

    def resume(self) -> subprocess.CompletedProcess[bytes]:
        (self._folder / "go").touch()
        out, err = self._child.communicate(timeout=_WAIT)
        return subprocess.CompletedProcess(self._child.args, self._child.returncode, out, err)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._child.returncode is None:
            (self._folder / "go").touch()
            try:
                self._child.communicate(timeout=_WAIT)
            finally:
                if self._child.returncode is None:
                    self._child.kill()
                    self._child.wait()
