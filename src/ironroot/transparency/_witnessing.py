"""Publishing only witnessed checkpoints: the service's side of c2sp.org/tlog-witness.

With ``[[log.witnesses]]`` and ``witness_quorum = k`` in ``ironroot.toml``, the service
publishes a checkpoint (``GET /checkpoint``) only once k of its n witnesses cosigned it. A
background thread, :class:`CheckpointWitnessing`, wakes whenever the log integrates a batch,
submits the latest checkpoint to every witness at once (add-checkpoint, with the consistency
proof from the size that witness last cosigned: 0 the first time, then what a 409 says),
checks each answer's cosignatures against that witness's configured key, and when k verify
(a cosignature dated more than ``FUTURE_SKEW`` seconds after the service's clock does not
count: a witness cannot vouch for a time that has not come), publishes the log's checkpoint
with those cosignature lines appended. Until then the previous witnessed checkpoint stays
published (none at all before the first: ``/checkpoint`` answers 503), and the submission
is retried with backoff.

The published checkpoint is kept in ``<data>/witnessed-checkpoint`` (written atomically), so
a restarted service serves it at once; it is checked against the log's key, the quorum and
the log's own tree at its size when loaded, and left out (logged) if it does not verify.

A witness that answers 422 ``fork-detected`` or a 409 with a size larger than the log's says
that it saw another tree for this origin: that is logged as an error, loudly; the other
witnesses still count.
"""

from __future__ import annotations

import concurrent.futures
import hmac
import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited, write_atomic
from ironroot.errors import ForkDetected, IronrootError, OldSizeMismatch
from ironroot.log import Checkpoint, LogView, Note, NoteSignature
from ironroot.transparency._config import WitnessEndpoint
from ironroot.witness import WitnessClient, WitnessPolicy

__all__ = ["WITNESSED_CHECKPOINT", "CheckpointWitnessing"]

WITNESSED_CHECKPOINT: Final = "witnessed-checkpoint"
_BACKOFF_FIRST: Final = 0.2
_BACKOFF_MAX: Final = 30.0
_MAX_NOTE: Final = 1 << 20

_log = logging.getLogger("ironroot.transparency")


def _wall_clock() -> int:
    return int(time.time())


class CheckpointWitnessing:
    """Gets the log's checkpoints cosigned by a quorum of witnesses; publishes those that are."""

    def __init__(
        self,
        log: LogView,
        witnesses: Sequence[WitnessEndpoint],
        quorum: int,
        *,
        data_dir: Path | None = None,
        timeout: float = 10.0,
        verify: ssl.SSLContext | bool = True,
        clock: Callable[[], int] = _wall_clock,
    ) -> None:
        self._log = log
        self._clock = clock
        self._policy = WitnessPolicy(tuple(w.verifier for w in witnesses), quorum)
        self._clients = [
            WitnessClient(w.url, verifiers=(w.verifier,), timeout=timeout, verify=verify)
            for w in witnesses
        ]
        self._known: list[int | None] = [None] * len(self._clients)
        self._path = None if data_dir is None else Path(data_dir) / WITNESSED_CHECKPOINT
        self._lock = threading.Lock()
        self._published: bytes | None = None
        self._published_size = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, len(self._clients)), thread_name_prefix="ironroot-witnessing"
        )
        self._load()

    # --- state ------------------------------------------------------------------------------

    @property
    def policy(self) -> WitnessPolicy:
        return self._policy

    def published(self) -> bytes | None:
        """The latest checkpoint cosigned by the quorum (``None`` before the first)."""
        with self._lock:
            return self._published

    @property
    def published_size(self) -> int:
        """Its tree size (-1 before the first)."""
        with self._lock:
            return self._published_size

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            note = read_limited(self._path, _MAX_NOTE)
            cosigned = self._policy.check(
                note, self._log.note_verifiers, origin=self._log.origin, now=self._clock()
            )
        except (IronrootError, OSError) as exc:
            _log.error("%s does not verify and is not served: %s", self._path, exc)
            return
        if cosigned.checkpoint.size > self._log.tree_size:
            _log.error("%s is beyond the log's tree and is not served", self._path)
            return
        if not hmac.compare_digest(
            cosigned.checkpoint.root, self._log.root(cosigned.checkpoint.size)
        ):
            # another tree of this origin (the log restored or rebuilt beside an old file):
            # serving it would publish a fork of the log's own making
            _log.error(
                "%s is not the log's tree at size %d and is not served",
                self._path,
                cosigned.checkpoint.size,
            )
            return
        self._published, self._published_size = note, cosigned.checkpoint.size

    # --- one round --------------------------------------------------------------------------

    def _submit(self, index: int, note: bytes, size: int) -> tuple[NoteSignature, ...]:
        client = self._clients[index]
        try:
            lines, _ = client.cosign(
                note,
                lambda old: self._log.consistency_proof(old, size),
                old_size=self._known[index],
            )
        except OldSizeMismatch as exc:
            self._known[index] = None
            if exc.size <= size:  # it moved on meanwhile (another submitter): the next round
                _log.warning(
                    "the witness %s cosigned size %d of %s meanwhile; retrying at the next round",
                    client.url,
                    exc.size,
                    self._log.origin,
                )
                return ()
            _log.error(
                "the witness %s has cosigned size %d of %s, more than the log's %d: it has seen "
                "another tree for this origin (a fork, or a log restored from an old backup)",
                client.url,
                exc.size,
                self._log.origin,
                size,
            )
            return ()
        except ForkDetected as exc:
            self._known[index] = None
            _log.error("the witness %s reports a fork of %s: %s", client.url, self._log.origin, exc)
            return ()
        except IronrootError as exc:
            self._known[index] = None
            _log.warning("the witness %s did not cosign size %d: %s", client.url, size, exc)
            return ()
        self._known[index] = size
        return lines

    def witness_once(self) -> bool:
        """Submit the log's latest checkpoint to every witness; publish it if the quorum
        cosigned. True when the latest checkpoint is published (now or before)."""
        note = self._log.checkpoint()
        parsed = Note.parse(note)
        checkpoint = Checkpoint.parse(parsed.body)
        with self._lock:
            if self._published is not None and checkpoint.size <= self._published_size:
                return True
        futures = [
            self._pool.submit(self._submit, i, note, checkpoint.size)
            for i in range(len(self._clients))
        ]
        lines: list[NoteSignature] = []
        for future in futures:
            lines.extend(future.result())
        if not lines:
            return False
        combined = Note(parsed.body, parsed.signatures + tuple(lines)).encode()
        try:
            self._policy.check(
                combined, self._log.note_verifiers, origin=self._log.origin, now=self._clock()
            )
        except IronrootError as exc:
            _log.warning("the checkpoint at size %d is not published yet: %s", checkpoint.size, exc)
            return False
        if self._path is not None:
            write_atomic(self._path, combined, mode=0o644)
        with self._lock:
            if checkpoint.size > self._published_size:
                self._published, self._published_size = combined, checkpoint.size
        _log.info(
            "published the checkpoint at size %d with %d cosignatures", checkpoint.size, len(lines)
        )
        return True

    # --- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="ironroot-witnessing", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                done = self.witness_once()
            except IronrootError as exc:
                _log.warning("witnessing failed: %s", exc)
                done = False
            except Exception:  # a bug: keep publishing what can be, say why
                _log.exception("witnessing failed unexpectedly")
                done = False
            if done:
                backoff = _BACKOFF_FIRST
                self._log.wait_for_growth(self.published_size, timeout=1.0)
            else:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    def close(self) -> None:
        self._stop.set()
        self._log.wake()  # the thread may be waiting for the log to grow
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.close()
