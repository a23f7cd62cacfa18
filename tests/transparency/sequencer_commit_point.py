"""Run the ``ironroot`` CLI (``python sequencer_commit_point.py serve …``) with a hook that stops
or kills the process at the *k*-th ``COMMIT`` of an elected sequencer's log write.

The kill-point machinery of ``tests/kill_points.py`` counts file operations; a replica's
sequencer commits its batches to PostgreSQL, which no audit hook sees. This counts the
``COMMIT`` statements :meth:`PostgresLogStore.write` sends on a session named after a lease
holder (``application_name`` ``ironroot-seq-…``: the sequencer's store; the election session and
the registrations' pending rows commit through ``Connection.transaction``, not counted):

* ``IRONROOT_TEST_SEQ_COMMIT=k`` — the write to act at (0 or unset: never);
* ``IRONROOT_TEST_SEQ_AT=before`` — right before its ``COMMIT`` is sent (the transaction open on
  the server, holding the lease row ``FOR KEY SHARE`` and the state row ``FOR UPDATE``), or
  ``after`` — once the ``COMMIT`` has been sent and flushed to the server, before its answer is
  read;
* ``IRONROOT_TEST_SEQ_DO=kill`` (``SIGKILL``) or ``stop`` (``SIGSTOP``: the test resumes it with
  ``SIGCONT``, and the write goes on from there);
* ``IRONROOT_TEST_SEQ_TAKEOVER=n`` — instead, act at the *n*-th election this process wins,
  once its bump of the lease's epoch has executed and before that transaction commits (the
  lease row held ``FOR UPDATE``, the election's advisory lock held).

With ``after``, the process waits a fifth of a second after the flush so that the server has
executed the ``COMMIT`` before the process dies or stops.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time
from typing import Any

import psycopg

_AT = int(os.environ.get("IRONROOT_TEST_SEQ_COMMIT", "0") or "0")
_WHEN = os.environ.get("IRONROOT_TEST_SEQ_AT", "before")
_TAKEOVER = int(os.environ.get("IRONROOT_TEST_SEQ_TAKEOVER", "0") or "0")
_DO = signal.SIGKILL if os.environ.get("IRONROOT_TEST_SEQ_DO", "kill") == "kill" else signal.SIGSTOP
_seen = 0
_elections = 0
_execute = psycopg.Connection.execute


def _sequencer(conn: psycopg.Connection[Any]) -> bool:
    name = conn.info.parameter_status("application_name")
    return name is not None and name.startswith("ironroot-seq-")


def _signal() -> None:
    """The signal, to this thread: a stop sent to the process may be taken by another of its
    threads, and this one sends its ``COMMIT`` before the stop reaches it."""
    signal.pthread_kill(threading.get_ident(), _DO)


def _execute_at_point(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
    global _seen, _elections
    if (
        _TAKEOVER
        and isinstance(query, str)
        and query.startswith("UPDATE sequencer_lease SET epoch")
    ):
        cursor = _execute(self, query, *args, **kwargs)
        _elections += 1
        if _elections == _TAKEOVER:
            _signal()
        return cursor
    if not (_AT and query == "COMMIT" and _sequencer(self)):
        return _execute(self, query, *args, **kwargs)
    _seen += 1
    if _seen != _AT:
        return _execute(self, query, *args, **kwargs)
    if _WHEN == "before":
        _signal()
        return _execute(self, query, *args, **kwargs)
    cursor = _execute(self, query, *args, **kwargs)
    while self.pgconn.flush() != 0:  # everything queued is on the wire, COMMIT included
        time.sleep(0.01)
    time.sleep(0.2)
    _signal()
    return cursor


psycopg.Connection.execute = _execute_at_point  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = ["ironroot", *sys.argv[1:]]
    runpy.run_module("ironroot", run_name="__main__", alter_sys=True)
