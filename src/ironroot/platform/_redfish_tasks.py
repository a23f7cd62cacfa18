"""Redfish tasks: long operations (firmware updates) run in a worker thread and reported.

A :class:`Task` is what ``/redfish/v1/TaskService/Tasks/{id}`` shows (the ``Task`` schema):
``TaskState`` (``New`` → ``Running`` → ``Completed`` | ``Exception``), ``TaskStatus``
(``OK``, ``Warning``, ``Critical``), ``PercentComplete``, ``StartTime``/``EndTime`` and the
``Messages`` gathered on the way (registry messages, :mod:`._redfish_messages`), plus the
request that started it (``Payload``) and the account that sent it (``owner``).
:class:`TaskStore` keeps the last :data:`MAX_TASKS` tasks in memory, thread-safely: the worker
thread changes a task, the event loop reads snapshots. Each task also keeps the answer its task
monitor gives once it has ended (the status and body of the finished operation).

A task's id is 16 random hex digits, never a count: the tasks live in memory only, so a
count would start again at ``1`` after a restart, and a client polling the task (or task
monitor) it started before would be shown another client's task under the same URI. A
random id is unique across restarts (as good as 64 random bits are) and names no other task.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ironroot.errors import NotFound, Overloaded

__all__ = ["MAX_TASKS", "Task", "TaskStore"]

MAX_TASKS: Final = 32
RUNNING: Final = frozenset({"New", "Starting", "Running"})


def _time(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Task:
    """A snapshot of one task."""

    id: str
    name: str
    state: str
    status: str
    start: str
    percent: int = 0
    end: str | None = None
    messages: tuple[Mapping[str, Any], ...] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)
    result: tuple[int, Mapping[str, Any]] | None = None
    """The task monitor's answer once the task has ended: HTTP status and body."""
    owner: str = ""
    """The id of the account whose request started the task."""

    @property
    def running(self) -> bool:
        return self.state in RUNNING


class TaskStore:
    """The service's tasks (see the module documentation)."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}

    def create(self, name: str, payload: Mapping[str, Any], *, owner: str = "") -> Task:
        """A new task in state ``New``, started by the account ``owner`` (``Overloaded`` when
        :data:`MAX_TASKS` tasks are still running)."""
        with self._lock:
            if len(self._tasks) >= MAX_TASKS:
                ended = [t for t in self._tasks.values() if not t.running]
                if not ended:
                    raise Overloaded(f"{MAX_TASKS} tasks are running", retry_after=30)
                del self._tasks[ended[0].id]
            ident = secrets.token_hex(8)
            while ident in self._tasks:  # pragma: no cover - one chance in 2^64 per task
                ident = secrets.token_hex(8)
            task = Task(
                ident,
                name,
                "New",
                "OK",
                _time(self._clock()),
                payload=dict(payload),
                owner=owner,
            )
            self._tasks[task.id] = task
            return task

    def get(self, ident: str) -> Task:
        with self._lock:
            task = self._tasks.get(ident)
        if task is None:
            raise NotFound(f"no task {ident!r}", code="task")
        return task

    def tasks(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    def change(
        self,
        ident: str,
        *,
        state: str | None = None,
        status: str | None = None,
        percent: int | None = None,
        messages: Sequence[Mapping[str, Any]] = (),
        result: tuple[int, Mapping[str, Any]] | None = None,
    ) -> Task:
        """Move a task on: its state, status, progress, new messages; an ended state
        (``Completed``, ``Exception``, ``Killed``, ``Cancelled``) sets ``EndTime``."""
        with self._lock:
            task = self._tasks[ident]
            new_state = state or task.state
            task = replace(
                task,
                state=new_state,
                status=status or task.status,
                percent=task.percent if percent is None else max(task.percent, percent),
                messages=(*task.messages, *messages),
                end=task.end or (None if new_state in RUNNING else _time(self._clock())),
                result=result or task.result,
            )
            self._tasks[ident] = task
            return task
