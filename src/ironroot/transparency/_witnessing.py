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

**What the witnesses remember: a floor kept off the host.** ``<data>/signed-checkpoint``
restored together with the database (the whole data directory put back from an older copy) is
no floor: the log would start from the restored tree and sign another tree at sizes it already
published. At start, before the log writes (:meth:`CheckpointWitnessing.check_witnesses`,
called by the service's ``start``), every witness is asked at once what it cosigned of the
origin, by the protocol's own exchange: add-checkpoint with the log's latest checkpoint and its
own size as ``old``. A witness at that size with that root cosigns it again (200); one behind
answers 409 with its smaller size (kept as the ``old`` of the next round); one ahead answers
409 with its larger size, and one that cosigned another root at the log's size
``fork-detected``: both say that the log does not extend what they cosigned. That size is only
a number, unsigned: one faulty or malicious witness must not stop a log. So when the witnesses
that say so reach the quorum (k, counted by name as :class:`WitnessPolicy` counts), the log is
held as rolled back (``refuse``: :meth:`ironroot.log.Log.refuse_writes`, every registration 503
``store-rolled-back``; :attr:`refused` says why and ``GET /checkpoint`` answers the same);
fewer is a warning, and :attr:`witnesses_ahead` (a metric) counts them. Every round counts the
same answers, so a quorum that could not be reached at start still holds the log when it
answers later. A witness that does not answer tells nothing: the check fails open for it (a log
is not stopped by its witnesses being down; it publishes nothing meanwhile). The check returns
as soon as the answers decide it (k names ahead, or fewer than k names left that could be) and
at the latest ``witness_timeout`` after it began, however many witnesses hang or trickle their
answers (each request's whole answer is due within that time too); the answers still out are
counted before the first witnessing round. Any answer that does not say a size or a fork —
malformed, ``5xx``, a redirect (never followed), a cosignature by a key other than the
witness's configured one — tells nothing either: only a quorum's 409s and ``fork-detected``
hold the log.
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
        refuse: Callable[[str], None] | None = None,
    ) -> None:
        self._log = log
        self._clock = clock
        self._refuse = refuse
        self._policy = WitnessPolicy(tuple(w.verifier for w in witnesses), quorum)
        self._names = [w.verifier.name for w in witnesses]
        # what each witness last said of a tree the log does not extend (by index)
        self._ahead: dict[int, str] = {}
        self._ahead_said: frozenset[int] = frozenset()  # the set last logged
        self._refused: str | None = None
        self._clients = [
            WitnessClient(w.url, verifiers=(w.verifier,), timeout=timeout, verify=verify)
            for w in witnesses
        ]
        self._known: list[int | None] = [None] * len(self._clients)
        self._timeout = timeout
        # the start check's requests still out when it was decided (each ends within timeout)
        self._probing: list[concurrent.futures.Future[bool]] = []
        self._probed_size = 0
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

    @property
    def witnesses_ahead(self) -> int:
        """How many witnesses (by name) last said they cosigned a tree the log does not
        extend: a larger size, or another root (module docs)."""
        with self._lock:
            return len({self._names[i] for i in self._ahead})

    @property
    def refused(self) -> str | None:
        """Why the log is held as rolled back on the witnesses' word (``None`` while not)."""
        with self._lock:
            return self._refused

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
                self._heard(index, None)
                _log.warning(
                    "the witness %s cosigned size %d of %s meanwhile; retrying at the next round",
                    client.url,
                    exc.size,
                    self._log.origin,
                )
                return ()
            self._ahead_of(index, exc.size, size)
            return ()
        except ForkDetected as exc:
            self._known[index] = None
            self._forked(index, exc)
            return ()
        except IronrootError as exc:
            self._known[index] = None
            _log.warning("the witness %s did not cosign size %d: %s", client.url, size, exc)
            return ()
        self._known[index] = size
        self._heard(index, None)
        return lines

    # --- what the witnesses remember --------------------------------------------------------

    def _heard(self, index: int, report: str | None) -> None:
        """Record what witness ``index`` said: ``report`` when it cosigned a tree the log does
        not extend, ``None`` when it is behind or at the log's tree."""
        with self._lock:
            if report is None:
                self._ahead.pop(index, None)
            else:
                self._ahead[index] = report

    def _ahead_of(self, index: int, theirs: int, size: int) -> None:
        url = self._clients[index].url
        self._heard(index, f"{url} (size {theirs})")
        _log.error(
            "the witness %s has cosigned size %d of %s, more than the log's %d: it has seen "
            "another tree for this origin (a fork, or a log restored from an old backup)",
            url,
            theirs,
            self._log.origin,
            size,
        )

    def _forked(self, index: int, exc: ForkDetected) -> None:
        url = self._clients[index].url
        self._heard(index, f"{url} (another root: {exc.code})")
        _log.error("the witness %s reports a fork of %s: %s", url, self._log.origin, exc)

    def _probe(self, index: int, note: bytes, size: int) -> bool:
        """Ask witness ``index`` what it cosigned of the origin (module docs), the whole
        answer within ``timeout``; whether it said the log does not extend it."""
        client = self._clients[index]
        try:
            client.add_checkpoint(note, size, total=self._timeout)
        except OldSizeMismatch as exc:
            if exc.size > size:
                self._ahead_of(index, exc.size, size)
                return True
            self._known[index] = exc.size  # the next round's old size
            self._heard(index, None)
            return False
        except ForkDetected as exc:
            self._forked(index, exc)
            return True
        except IronrootError as exc:
            _log.warning(
                "the witness %s did not say what it cosigned of %s: %s",
                client.url,
                self._log.origin,
                exc,
            )
            return False
        self._known[index] = size
        self._heard(index, None)
        return False

    def _decided(self, said: dict[int, bool]) -> bool:
        """Whether the answers so far (by index: ahead or not) decide the check whatever the
        others say: the quorum ahead (by name), or too few names left that could be."""
        quorum = self._policy.quorum
        if len({self._names[i] for i, ahead in said.items() if ahead}) >= quorum:
            return True
        could = {name for i, name in enumerate(self._names) if said.get(i, True)}
        return len(could) < quorum

    def check_witnesses(self) -> str | None:
        """Ask every witness what it cosigned of the origin, all at once, and hold the log
        (``refuse``) when the quorum of them cosigned a tree the log does not extend (module
        docs); why, or ``None``. Called before the log writes. It returns as soon as the
        answers decide it either way (the quorum ahead, or too few witnesses left to make
        one), and at the latest ``timeout`` after it began: a witness that has not answered
        by then tells nothing. Answers that come after it returned are counted before the
        next round (:meth:`witness_once`)."""
        note = self._log.checkpoint()
        size = Checkpoint.parse(Note.parse(note).body).size
        deadline = time.monotonic() + self._timeout
        asked = {
            self._pool.submit(self._probe, i, note, size): i for i in range(len(self._clients))
        }
        said: dict[int, bool] = {}
        pending = set(asked)
        while pending and not self._decided(said):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            done, pending = concurrent.futures.wait(
                pending, timeout=left, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                said[asked[future]] = future.result()
        if not self._decided(said):
            for future in pending:
                _log.warning(
                    "the witness %s did not answer within witness_timeout (%g s) at start: it "
                    "tells nothing of %s (not counted as ahead)",
                    self._clients[asked[future]].url,
                    self._timeout,
                    self._log.origin,
                )
        with self._lock:
            self._probing, self._probed_size = list(pending), size
        return self._judge(size)

    def _settle(self) -> None:
        """Wait for the start check's requests still out (each within ``timeout``) and count
        what they said, before a round asks the same witnesses again."""
        with self._lock:
            probing, self._probing = self._probing, []
        if not probing:
            return
        for future in probing:
            future.result()
        self._judge(self._probed_size)

    def _judge(self, size: int) -> str | None:
        """Hold the log if the witnesses that last said it does not extend what they cosigned
        are the quorum; a warning (once per change) if fewer are."""
        with self._lock:
            ahead = dict(sorted(self._ahead.items()))
            said = frozenset(ahead)
            changed, self._ahead_said = said != self._ahead_said, said
            refused = self._refused
        if refused is not None:
            return refused
        names = {self._names[i] for i in ahead}
        total, quorum = len(set(self._names)), self._policy.quorum
        if not names:
            return None
        lead = (
            f"{len(names)} of the {total} witnesses (the quorum is {quorum}) have cosigned a "
            f"tree of {self._log.origin} that the local one (size {size}) does not extend: "
            + ", ".join(ahead.values())
        )
        if len(names) < quorum:
            if changed:
                _log.warning(
                    "%s; fewer than the quorum (%d): the log goes on (one witness's word is "
                    "unsigned), but check the witnesses and this data directory",
                    lead,
                    quorum,
                )
            return None
        detail = (
            f"{lead}. The data directory (its database and signed-checkpoint together) was "
            "restored from an older copy, or another service signs this log: refusing to "
            "write (it would fork the log). Restore a copy that holds the cosigned tree, or "
            "start a new log (another origin)"
        )
        with self._lock:
            if self._refused is None:
                self._refused = detail
            detail = self._refused
        if self._refuse is not None:
            self._refuse(detail)
        else:
            _log.error("%s", detail)
        return detail

    def witness_once(self) -> bool:
        """Submit the log's latest checkpoint to every witness; publish it if the quorum
        cosigned. True when the latest checkpoint is published (now or before)."""
        self._settle()
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
        if self._judge(checkpoint.size) is not None:
            return False
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
