"""The witness: c2sp.org/tlog-witness add-checkpoint, checked step by step.

:meth:`Witness.add_checkpoint` takes a request body and returns the cosignature lines, or
raises the error whose HTTP status the spec names, in the spec's order:

1. the body does not parse, or ``old`` is larger than the checkpoint's size:
   :class:`MalformedInput` (400);
2. the checkpoint's origin is not a configured log: :class:`UnknownLog` (404);
3. no signature from the log's keys, or one by them that fails, or signature lines that do not
   parse under a checkpoint of a configured log: :class:`UntrustedCheckpoint` (403);
4. ``old`` is not the size of the latest checkpoint cosigned for that origin (0 if none):
   :class:`OldSizeMismatch` carrying that size (409, body ``<size>\\n``);
5. a size-0 checkpoint whose root is not the empty tree's, proof lines with ``old 0`` or with
   equal sizes, or a consistency proof that does not verify: :class:`InconsistentCheckpoint`
   (422); :class:`ForkDetected` (a subclass, also 422) when the request's proof itself proves
   a fork (it leads to the new root but not to the old one); a different root at the cosigned
   size, checked before any proof line: :class:`RootMismatch` (a ``ForkDetected`` answered
   ``409 Conflict``, as the spec says). Each is kept as evidence with both signed notes, each
   with only the log's signature lines (anyone can add others to the request's to make a
   variant, and each cosigning of the stored one dates its witness lines anew);
6. otherwise the witness cosigns with each of its keys, stores the new checkpoint (the log's
   verified signatures and its own cosignatures) with a compare-and-set, and only then
   answers. A concurrent request that got there first turns this one into a 409. The
   cosignatures are dated now, or at the last cosignature of that origin if the clock is
   behind it by at most ``FUTURE_SKEW`` (a clock gone back never dates a larger tree before
   a smaller one); further behind, :class:`ClockSkew` (503) and nothing is cosigned.

Pure but for the store and the clock, which are passed in.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.errors import (
    BadSignature,
    ClockSkew,
    ConfigError,
    ForkDetected,
    InconsistentCheckpoint,
    InvalidProof,
    IronrootError,
    MalformedInput,
    OldSizeMismatch,
    UnknownIssuer,
    UnknownLog,
    UntrustedCheckpoint,
)
from ironroot.log import Checkpoint, Note, NoteSignature, NoteVerifier, open_note
from ironroot.merkle import EMPTY_ROOT, verify_consistency
from ironroot.witness._cosignature import (
    COSIGNATURE_TYPE_MLDSA44,
    FUTURE_SKEW,
    CosignatureVerifier,
    Cosigner,
)
from ironroot.witness._fork import ForkProof, fork_roots
from ironroot.witness._protocol import AddCheckpoint
from ironroot.witness._store import Evidence, StoredCheckpoint, WitnessStore

__all__ = ["Witness", "WitnessedLog"]

_log = logging.getLogger("ironroot.witness")
_ECHOED: Final = 100
"""How much of an unknown origin a refusal names."""
_SUBTREE_MAX: Final = 255


@dataclass(frozen=True, slots=True)
class WitnessedLog:
    """A log the witness cosigns: its ``origin`` and the keys its checkpoints carry."""

    origin: str
    verifiers: tuple[NoteVerifier, ...]

    def __post_init__(self) -> None:
        Checkpoint(self.origin, 0, EMPTY_ROOT)  # a valid origin line
        if not self.verifiers:
            raise ConfigError(f"the log {self.origin!r} has no checkpoint key")
        seen: set[tuple[str, bytes]] = set()
        for v in self.verifiers:
            # signed-note: a name and key id identify one key. A second would be served as a
            # second copy of the log's line, or (another key) hide the first from every check.
            if (v.name, v.key_id) in seen:
                raise ConfigError(
                    f"the log {self.origin!r} names the checkpoint key "
                    f"{v.name}+{v.key_id.hex()} twice (one name and key id, one key)"
                )
            seen.add((v.name, v.key_id))

    @classmethod
    def from_vkeys(cls, origin: str, vkeys: Iterable[str]) -> WitnessedLog:
        return cls(origin, tuple(NoteVerifier.from_vkey(v) for v in vkeys))


class RootMismatch(ForkDetected):
    """A checkpoint of the size the witness cosigned last with another root: a fork, which
    c2sp.org/tlog-witness answers with ``409 Conflict`` (the problem still says
    ``fork-detected``; its body is no ``text/x.tlog.size``, whose size would be the client's
    own ``old`` and send it round again). ``cosigned`` is the note the witness serves for that
    size, which the answer carries (a ``checkpoint`` member)."""

    http_status = 409

    def __init__(self, detail: str = "", *, code: str | None = None, cosigned: bytes) -> None:
        super().__init__(detail, code=code)
        self.cosigned = cosigned


def _wall_clock() -> int:
    return int(time.time())


class Witness:
    """Cosigns checkpoints of ``logs`` with ``cosigners``, keeping its state in ``store``."""

    def __init__(
        self,
        name: str,
        cosigners: Sequence[Cosigner],
        logs: Iterable[WitnessedLog],
        store: WitnessStore,
        *,
        clock: Callable[[], int] = _wall_clock,
    ) -> None:
        if not cosigners:
            raise ConfigError("a witness needs at least one cosigning key")
        if any(c.name != name for c in cosigners):
            raise ConfigError("every cosigning key of a witness carries the witness's name")
        own = {(c.name, c.verifier().key_id) for c in cosigners}
        if len(own) != len(cosigners):
            raise ConfigError("a witness's cosigning keys must be distinct")
        # subtree/v1 (ML-DSA-44) spells the witness's name and the origin with a one-byte length
        subtree = any(c.verifier().signature_type == COSIGNATURE_TYPE_MLDSA44 for c in cosigners)
        if subtree and len(name.encode("utf-8")) > _SUBTREE_MAX:
            raise ConfigError(
                f"an ML-DSA-44 witness's name is at most {_SUBTREE_MAX} bytes (subtree/v1)"
            )
        self.name = name
        self._cosigners = tuple(cosigners)
        self._logs: dict[str, WitnessedLog] = {}
        for log in logs:
            if log.origin in self._logs:
                raise ConfigError(f"the log {log.origin!r} is configured twice")
            if subtree and len(log.origin.encode("utf-8")) > _SUBTREE_MAX:
                # every checkpoint of it would be refused as if the request were malformed
                raise ConfigError(
                    f"an ML-DSA-44 witness cosigns logs whose origin is at most {_SUBTREE_MAX} "
                    f"bytes (subtree/v1), not {log.origin[:_ECHOED]!r}…"
                )
            if any((v.name, v.key_id) in own for v in log.verifiers):
                # Its signature line and ours would carry one name and key id: the note the
                # witness keeps and serves could not be parsed again (signed-note allows one
                # line per key), and the log's line would read as our cosignature.
                raise ConfigError(
                    f"the log {log.origin!r} names a checkpoint key with the name and key id "
                    "of one of this witness's cosigning keys"
                )
            self._logs[log.origin] = log
        self._store = store
        self._clock = clock

    @property
    def verifiers(self) -> tuple[CosignatureVerifier, ...]:
        """The witness's public keys (their ``vkey`` strings are what logs configure)."""
        return tuple(c.verifier() for c in self._cosigners)

    @property
    def logs(self) -> tuple[WitnessedLog, ...]:
        return tuple(self._logs.values())

    @property
    def store(self) -> WitnessStore:
        return self._store

    def latest(self, origin: str) -> StoredCheckpoint | None:
        """The latest checkpoint cosigned for ``origin`` (``None`` if none yet)."""
        return self._store.latest(origin)

    def evidence(self) -> list[Evidence]:
        return self._store.evidence()

    def close(self) -> None:
        self._store.close()

    # --- add-checkpoint ---------------------------------------------------------------------

    def _log_of(self, checkpoint: Checkpoint) -> WitnessedLog:
        log = self._logs.get(checkpoint.origin)
        if log is None:
            # the client's text, as long as a note: named by its start
            named = checkpoint.origin[:_ECHOED] + ("…" if len(checkpoint.origin) > _ECHOED else "")
            raise UnknownLog(f"this witness does not witness the log {named!r}")
        return log

    def _open(self, request: AddCheckpoint) -> tuple[WitnessedLog, Checkpoint, Note]:
        try:
            note = Note.parse(request.checkpoint)
        except MalformedInput as exc:
            # A checkpoint body that parses under signature lines that do not (a signature
            # that is not canonical base64, say): for a known origin, the signature failed
            # (403, as the spec and other witnesses answer); otherwise the request is bad.
            body, sep, _ = request.checkpoint.rpartition(b"\n\n")
            try:
                checkpoint = Checkpoint.parse(body + b"\n") if sep else None
            except MalformedInput:
                checkpoint = None
            if checkpoint is None:
                raise
            self._log_of(checkpoint)
            raise UntrustedCheckpoint(
                f"the checkpoint of {checkpoint.origin} has signatures that do not parse: "
                f"{exc.detail}"
            ) from exc
        checkpoint = Checkpoint.parse(note.body)
        log = self._log_of(checkpoint)
        try:
            open_note(request.checkpoint, log.verifiers)
        except (BadSignature, UnknownIssuer) as exc:
            raise UntrustedCheckpoint(
                f"the checkpoint of {checkpoint.origin} does not verify: {exc.detail}"
            ) from exc
        return log, checkpoint, note

    @staticmethod
    def _signed(log: WitnessedLog, note: Note) -> Note:
        """``note`` with only the log's signature lines, which verified (a repeated one
        once), in the order of the log's keys: what the witness keeps, to serve or as
        evidence. The lines of other keys are anyone's to add, and the order of the log's
        lines anyone's to change, so a note that kept either would be a new note with every
        variant."""
        first: dict[tuple[str, bytes], NoteSignature] = {}
        for s in note.signatures:
            first.setdefault((s.name, s.key_id), s)
        ordered = (first.get((v.name, v.key_id)) for v in log.verifiers)
        return Note(body=note.body, signatures=tuple(s for s in ordered if s is not None))

    def _as_signed(self, log: WitnessedLog, current: StoredCheckpoint) -> bytes:
        """The cosigned checkpoint as the log signed it, without the witness's cosignatures:
        what evidence keeps of it. Each cosigning of one checkpoint dates the note the
        witness serves anew, and a refusal kept once per served note would be kept again
        after each (anyone can have the witness cosign its latest checkpoint again)."""
        try:
            signed = self._signed(log, Note.parse(current.note))
        except MalformedInput:  # not a note this witness wrote: kept as it is
            return current.note
        # a note signed by a key the log no longer lists is kept as it is, cosignatures too
        return signed.encode() if signed.signatures else current.note

    def add_checkpoint(self, body: bytes) -> tuple[NoteSignature, ...]:
        """Check and cosign one add-checkpoint request (see the module docs)."""
        parsed = AddCheckpoint.parse(body)
        log, checkpoint, note = self._open(parsed)
        signed = self._signed(log, note)
        request = AddCheckpoint(parsed.old_size, parsed.proof, signed.encode())
        if request.old_size > checkpoint.size:
            raise MalformedInput(
                f"the old size {request.old_size} is larger than the checkpoint's {checkpoint.size}"
            )
        current = self._store.latest(log.origin)
        size = 0 if current is None else current.size
        if request.old_size != size:
            raise OldSizeMismatch(
                f"the latest checkpoint cosigned for {log.origin} has size {size}, not "
                f"{request.old_size}",
                size=size,
            )
        self._check_consistent(log, current, checkpoint, request)
        now = self._dated(log, current)
        lines = tuple(c.cosign(note.body, now) for c in self._cosigners)
        # What monitors are served: the log's signatures that verified, then ours.
        served = Note(body=note.body, signatures=signed.signatures + lines).encode()
        self._store.advance(
            current, StoredCheckpoint(log.origin, checkpoint.size, checkpoint.root, served, now)
        )
        _log.info("cosigned %s at size %d", log.origin, checkpoint.size)
        return lines

    def _dated(self, log: WitnessedLog, current: StoredCheckpoint | None) -> int:
        """The time to date the cosignatures with: now, but never before the last cosignature
        of the log. A cosignature dated t says its tree is the largest seen for the log as of t
        (c2sp.org/tlog-cosignature): one dated before the last would say that a smaller tree
        was the largest after this one was seen. A clock behind the last by at most what
        verifiers take as skew dates it at the last; further behind is :class:`ClockSkew`."""
        now = self._clock()
        last = 0 if current is None else current.updated
        if now >= last:
            return now
        if last - now > FUTURE_SKEW:
            raise ClockSkew(
                f"this witness's clock ({now}) is {last - now} s behind its last cosignature of "
                f"{log.origin} ({last}): it cosigns nothing of it until the clock is right, "
                "rather than date a cosignature back, or far ahead of the clock"
            )
        _log.warning(
            "the clock is %d s behind the last cosignature of %s: dated at that one",
            last - now,
            log.origin,
        )
        return last

    def _check_consistent(
        self,
        log: WitnessedLog,
        current: StoredCheckpoint | None,
        checkpoint: Checkpoint,
        request: AddCheckpoint,
    ) -> None:
        if checkpoint.size == 0 and not hmac.compare_digest(checkpoint.root, EMPTY_ROOT):
            raise InconsistentCheckpoint("a checkpoint of size 0 must have the empty tree's root")
        if request.old_size == 0:
            if request.proof:
                raise InconsistentCheckpoint("a request from size 0 carries no consistency proof")
            return
        assert current is not None  # old_size == current size > 0
        try:
            if current.size == checkpoint.size:
                # the roots first: two signed trees of one size are a fork whatever proof
                # lines come with the second (kept as a fork's proof, not as a bad proof)
                if not hmac.compare_digest(current.root, checkpoint.root):
                    raise self._fork(
                        log, current, checkpoint, request, "a different root at the cosigned size"
                    )
                if request.proof:
                    raise InvalidProof("equal sizes need an empty consistency proof")
                return
            verify_consistency(
                current.size, checkpoint.size, request.proof, current.root, checkpoint.root
            )
        except InvalidProof as exc:
            raise self._inconsistent(log, current, checkpoint, request, exc) from exc

    def _fork(
        self,
        log: WitnessedLog,
        current: StoredCheckpoint,
        checkpoint: Checkpoint,
        request: AddCheckpoint,
        why: str,
    ) -> ForkDetected:
        proof = ForkProof(
            origin=log.origin,
            first=self._as_signed(log, current),
            second=request.checkpoint,
            proof=request.proof if current.size != checkpoint.size else (),
            detected_by=self.name,
            detected_at=self._clock(),
        )
        detail = f"the log {log.origin} forked: {why} (size {current.size})"
        if self._keep("fork", log, current, request, detail, proof.encode()):
            _log.error("%s; both signed checkpoints are kept as the proof", detail)
        if current.size == checkpoint.size:
            return RootMismatch(detail, cosigned=current.note)
        return ForkDetected(detail)

    def _inconsistent(
        self,
        log: WitnessedLog,
        current: StoredCheckpoint,
        checkpoint: Checkpoint,
        request: AddCheckpoint,
        exc: IronrootError,
    ) -> InconsistentCheckpoint:
        if current.size < checkpoint.size and current.size & (current.size - 1):
            # A first size that is not a power of two: the RFC proof starts with the seed
            # subtree, so it is in explicit form and may itself prove the fork.
            try:
                fr, sr = fork_roots(current.size, checkpoint.size, request.proof)
            except InvalidProof:
                pass
            else:
                if hmac.compare_digest(sr, checkpoint.root) and not hmac.compare_digest(
                    fr, current.root
                ):
                    return self._fork(
                        log,
                        current,
                        checkpoint,
                        request,
                        f"the tree of size {checkpoint.size} does not extend the cosigned one",
                    )
        detail = (
            f"the checkpoint of {log.origin} at size {checkpoint.size} is not shown consistent "
            f"with the cosigned size {current.size}: {exc.detail}"
        )
        if self._keep("inconsistent", log, current, request, detail, request.encode()):
            _log.warning("%s", detail)
        return InconsistentCheckpoint(detail)

    def _keep(
        self,
        kind: str,
        log: WitnessedLog,
        current: StoredCheckpoint,
        request: AddCheckpoint,
        detail: str,
        data: bytes,
    ) -> bool:
        """Keep the evidence of a refusal; whether it is news (first kept now, or not kept at
        all): a refusal replayed with the same two checkpoints is logged at INFO, once
        at its first arrival at WARNING or ERROR, so a client replaying it cannot flood the
        log at those levels."""
        try:
            evidence_id, added = self._store.add_evidence(
                log.origin,
                kind,
                detail,
                self._as_signed(log, current),
                request.checkpoint,
                data,
                self._clock(),
            )
        except IronrootError as exc:  # the refusal stands; say the evidence was not kept
            _log.error("could not keep the evidence (%s): %s", kind, exc.detail)
            return True
        if not added and evidence_id == 0:
            _log.info("%s (not kept: the evidence of this log holds enough such refusals)", detail)
        elif not added:
            _log.info("%s (replayed: evidence %d is kept already)", detail, evidence_id)
        return added
