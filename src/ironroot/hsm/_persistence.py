"""Sealed persistence of the HSM: one commit writes the store, its anchor, then the counter.

The document's format is in ``_document``, the sealing in ``_storage``, the anchor and its
rules in ``_anchor``. A write that fails puts the HSM in its error state (a power cut that
only power-up may finish). Flushing the audit buffer before a commit is ``_audit_buffer``'s.
"""

from __future__ import annotations

from collections.abc import Callable

from ironroot.crypto import PublicKey
from ironroot.errors import Conflict, HsmErrorState, StoreRolledBack
from ironroot.hsm._anchor import Anchor, counter_name, seal_anchor
from ironroot.hsm._document import StoreDocument, encode_store
from ironroot.hsm._release import TrustedVerifier
from ironroot.hsm._state import HsmState
from ironroot.hsm._storage import seal

__all__ = ["Persistence"]


class Persistence(HsmState):
    """Commits of the sealed store and its anchor, and the document they seal."""

    def _commit(self, *, store: bool, zeroized: bool = False) -> None:
        """One commit (``_anchor``): the store (when ``store``) takes generation ``c + 1``,
        then the anchor with counter ``c + 1``, then the counter is incremented."""
        self._await_flight()
        secret = bytes(self._secret)
        following = self._generation + 1
        if store:
            sealed = seal(secret, encode_store(self._document(following)))
            self._written(lambda: self._storage.write_store(sealed))
            self._store_generation = following
        anchor = self._sealed_anchor(zeroized=zeroized)
        self._written(lambda: self._storage.write_anchor(anchor))
        self._advance_counter()

    def _sealed_anchor(self, *, zeroized: bool = False) -> bytes:
        """The next commit's anchor (counter ``c + 1``), naming the audit head as it is."""
        anchor = Anchor(
            self._generation + 1,
            self._store_generation,
            self._audit_size,
            self._audit_head,
            zeroized,
            self._hsm_id,
            counter_name(self._storage.counter),
        )
        return seal_anchor(bytes(self._secret), anchor)

    def _await_flight(self) -> None:
        """Wait (under the lock) until no group commit is writing outside the lock
        (``AuditBuffer._make_durable``): two commits never write at once."""
        with self._durable:
            while self._in_flight:
                self._durable.wait()

    def _written(self, write: Callable[[], None]) -> None:
        """Run one write of a commit; if it fails, the HSM enters its error state. A commit
        cut short is a power cut: only power-up may finish it (``check_anchor``). Going on
        would write another store of the same generation as the one already on disk, and
        that copy, put back later, would open (a deleted key back, a lockout cleared). An
        object that no longer holds its storage (``_claim_storage``) writes nothing: it enters
        its error state and raises ``Conflict``."""
        try:
            self._claim_storage()
        except Conflict:
            self._enter_error("another HSM object of this process opened this storage")
            raise
        try:
            write()
        except BaseException as exc:
            self._enter_error(f"a write to the HSM's storage failed: {exc}")
            raise

    def _advance_counter(self) -> None:
        expected = self._generation + 1
        try:
            value = self._storage.counter.increment()
        except BaseException as exc:  # as a failed write (``_written``): power-up finishes it
            self._enter_error(f"the root of trust's counter did not increment: {exc}")
            raise
        if value != expected:
            self._enter_error("the root of trust's counter moved under the HSM")
            raise StoreRolledBack(
                f"the root of trust's counter reads {value}, the HSM expected {expected}: "
                "another process commits to this counter"
            )
        self._generation = value

    def _document(self, generation: int) -> StoreDocument:
        attestation = self._attestation
        if attestation is None:  # unreachable once initialized
            raise HsmErrorState("the HSM has no attestation key")
        return StoreDocument(
            hsm_id=self._hsm_id,
            identities=tuple(self._identities.values()),
            keys=tuple(self._keys.values()),
            attestation=attestation,
            chain=self._chain,
            audit_size=self._audit_size,
            audit_head=self._audit_head,
            audit_key=self._audit_key,
            audit_from=self._audit_from,
            audit_base=self._audit_base,
            audit_base_head=self._audit_base_head,
            audit_segment=self._audit_segment,
            officer_quorum=self._quorum,
            prior_quorum=self._prior_quorum,
            generation=generation,
            verifiers=tuple((name, der) for name, (_v, der) in sorted(self._verifiers.items())),
            recipients=tuple(sorted(self._recipients.items())),
        )

    def _load_document(self, doc: StoreDocument) -> None:
        self._hsm_id = doc.hsm_id
        self._identities = {i.name: i for i in doc.identities}
        self._keys = {k.handle: k for k in doc.keys}
        self._attestation = doc.attestation
        self._chain = doc.chain
        self._audit_key = doc.audit_key
        self._audit_from = doc.audit_from
        self._audit_base = doc.audit_base
        self._audit_base_head = doc.audit_base_head
        if self._config.audit_segment_records is None and doc.audit_segment is not None:
            self._audit_segment = doc.audit_segment  # the HSM's own setting (HsmConfig)
        self._store_generation = doc.generation
        self._quorum = doc.officer_quorum
        self._prior_quorum = doc.prior_quorum
        self._verifiers = {
            name: (TrustedVerifier(name, PublicKey.from_der(der)), der)
            for name, der in doc.verifiers
        }
        self._recipients = dict(doc.recipients)
