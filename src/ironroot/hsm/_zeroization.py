"""Zeroization: an officer's command or a tamper event wipes every secret this object holds
and destroys the sealed store, after committing a zeroized anchor.
"""

from __future__ import annotations

import gc

from ironroot.hsm._audit_buffer import NO_IDENTITY
from ironroot.hsm._document import zero
from ironroot.hsm._model import Session
from ironroot.hsm._permissions import Permissions
from ironroot.hsm._state import PendingRecord

__all__ = ["Zeroization"]


class Zeroization(Permissions):
    """``zeroize`` and ``tamper``."""

    def zeroize(self, session: Session) -> None:
        """Zeroize on an officer's command (same effect as :meth:`tamper`). Under dual
        control its record's key is ``quorum-<n>`` (:meth:`_dual_control_key`)."""
        with self._lock:
            with self._operation(session, "zeroize") as op:
                op.key = self._dual_control_key()
            self._zeroize(None)

    def _dual_control_key(self) -> str | None:
        """The key of a zeroize or tamper record: ``quorum-<n>`` with the officer quorum the
        log's records were kept under (this HSM's, or a zeroized predecessor's it continues,
        the larger), ``None`` without dual control. A successor initialized on the device
        reads it and never prunes these records (``Hsm.prune_audit``): else the one officer
        who zeroized and initialized it again would remove what the quorum kept."""
        floor = max(self._quorum, self._prior_quorum)
        return f"quorum-{floor}" if floor > 1 else None

    def tamper(self) -> None:
        """A tamper event: zeroize everything, irrecoverably. No session is needed."""
        with self._lock:
            if self._state == "zeroized":
                return
            self._zeroize("tamper")

    def _zeroize(self, event: str | None) -> None:
        """Wipe everything; ``event`` is recorded first (an officer's zeroize already was).
        A zeroized anchor is committed before the store is destroyed, so a copy of the store
        put back afterwards does not open."""
        try:
            if self._state == "operational":
                if event is not None:
                    self._pending.append(
                        PendingRecord(
                            self._now(), NO_IDENTITY, event, self._dual_control_key(), "ok"
                        )
                    )
                self._flush_audit()
                self._commit(store=False, zeroized=True)
        finally:
            for key in self._keys.values():
                key.wipe()
            if self._attestation is not None:
                self._attestation.wipe()
            for ident in self._identities.values():
                zero(ident.hash)
            zero(self._secret)
            zero(self._audit_key)
            self._keys.clear()
            self._identities.clear()
            self._sessions.clear()
            self._attestation = None
            self._pending.clear()
            self._state = "zeroized"
            gc.collect()
            self._storage.destroy_store()
