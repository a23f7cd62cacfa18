"""The log writer's commit pipeline: the next batch is prepared while the last one commits.

The writer thread (:mod:`ironroot.log._log`) prepares an integration batch (the look-up, the
leaf hashes and tiles, the batch's and the checkpoint's signatures) and hands it here; a
thread of the pipeline's own runs the store's write. While that write runs, the writer
prepares the next batch from the tree the first one leaves and hands it over as well: at most
two batches are held, the one being written and the one prepared on top of it. The store's
write spends most of its time off the GIL (SQLite's ``fsync``, PostgreSQL's round trips), so
the writer's CPU and the commit's wait overlap instead of adding up.

Order: a batch's write starts only after the write before it returned, and only if that write
succeeded. When a write fails, the batch prepared on top of it is discarded unwritten (it
starts at a tree size the store never reached; the store's fence would refuse it anyway) and
both go back to the writer (:meth:`CommitPipeline.land`), which reads the stored state back
and takes their entries again. The writer learns of each write's end from :meth:`land`, on its
own thread, and only then resolves that batch's tickets: nothing is acknowledged before the
transaction that holds it committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from ironroot.log._store import LogStore, StoreBatch

__all__ = ["CommitPipeline"]


class _Batched(Protocol):
    @property
    def batch(self) -> StoreBatch: ...


_P = TypeVar("_P", bound=_Batched)


class CommitPipeline(Generic[_P]):
    """Writes prepared batches in order on a thread of its own, at most one at a time.

    Used by one writer thread: it :meth:`push` es a prepared batch (written at once, or held
    until the write before it returned), watches :attr:`landed` and calls :meth:`land` to take
    each write's outcome, in order. ``wake`` is called on the pipeline's thread each time a
    write returns (the writer's condition, to end its wait).
    """

    def __init__(self, store: LogStore, wake: Callable[[], None]) -> None:
        self._store = store
        self._wake = wake
        self._cond = threading.Condition()
        self._flight: _P | None = None  # its write runs, or returned and is not landed yet
        self._next: _P | None = None  # prepared on top of the flight, not written yet
        self._todo: _P | None = None  # handed to the thread
        self._returned = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def busy(self) -> bool:
        """A batch is held (being written, or written and not landed)."""
        return self._flight is not None

    @property
    def full(self) -> bool:
        """Two batches are held: the next one must wait for a landing."""
        return self._next is not None

    @property
    def landed(self) -> bool:
        """The flight's write returned: :meth:`land` will not wait."""
        return self._flight is not None and self._returned

    @property
    def tip(self) -> _P | None:
        """The last batch pushed and not landed: the next one is prepared on top of it."""
        return self._next if self._next is not None else self._flight

    def push(self, prepared: _P) -> None:
        """Write ``prepared`` after the batches held (it was prepared on top of :attr:`tip`)."""
        if self._flight is None:
            self._start(prepared)
        elif self._next is None:
            self._next = prepared
        else:  # pragma: no cover - the writer checks ``full`` first
            raise RuntimeError("the commit pipeline holds two batches already")

    def land(self) -> tuple[_P, BaseException | None, _P | None]:
        """Wait for the flight's write; return it, the error its write raised (``None``: it
        committed) and, after an error, the batch prepared on top of it (discarded unwritten).
        After a success the next batch's write starts before this returns."""
        flight = self._flight
        if flight is None:  # pragma: no cover - the writer checks ``busy`` first
            raise RuntimeError("no batch is being written")
        with self._cond:
            while not self._returned:
                self._cond.wait()
            error = self._error
        following, self._flight, self._next = self._next, None, None
        if error is not None:
            return flight, error, following
        if following is not None:
            self._start(following)
        return flight, None, None

    def close(self) -> None:
        """Stop the thread (after the writer landed every batch)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _start(self, prepared: _P) -> None:
        with self._cond:
            self._flight, self._todo = prepared, prepared
            self._returned, self._error = False, None
            self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ironroot-log-commit")
                self._thread.daemon = True  # as the writer: a write never holds the process
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._todo is None and not self._stopping:
                    self._cond.wait()
                if self._todo is None:
                    return
                prepared, self._todo = self._todo, None
            error: BaseException | None = None
            try:
                self._store.write(prepared.batch)
            except BaseException as exc:  # the writer decides; a non-Exception it raises again
                error = exc
            with self._cond:
                self._error, self._returned = error, True
                self._cond.notify_all()
            self._wake()
