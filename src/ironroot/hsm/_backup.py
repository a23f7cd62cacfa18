"""Migration and backup of the sealed store (crypto officer): re-seal to another secret,
take the sealed store out, and restore it as a new generation.
"""

from __future__ import annotations

import hmac

from ironroot.crypto import PublicKey
from ironroot.errors import Conflict, MalformedInput, SealedStoreError
from ironroot.hsm._document import decode_store, zero
from ironroot.hsm._identities import LOCKOUT_TIMED, time_untimed_lockouts
from ironroot.hsm._model import Role, Session
from ironroot.hsm._permissions import Permissions
from ironroot.hsm._release import TrustedVerifier
from ironroot.hsm._state import PendingRecord
from ironroot.hsm._storage import check_secret, unseal

__all__ = ["MigrationAndBackup"]


class MigrationAndBackup(Permissions):
    """``migrate``, ``backup`` and ``restore``."""

    def migrate(self, session: Session, new_sealing_secret: bytes) -> None:
        """Re-seal the key store to ``new_sealing_secret`` (crypto officer): after this only
        that secret (another device, or new firmware) opens it."""
        with self._lock:
            with self._operation(session, "migrate", arguments=(new_sealing_secret,)):
                new = bytearray(check_secret(new_sealing_secret))
            old, self._secret = self._secret, new
            zero(old)
            self._persist()

    def backup(self, session: Session) -> bytes:
        """The sealed key store (crypto officer): it opens only where this device's sealing
        secret is known, so no key leaves the boundary by this path. Putting the file back
        in place later is a rollback and is refused at power-up (``StoreRolledBack``): a
        backup comes back only through :meth:`restore`."""
        with self._lock:
            with self._operation(session, "backup"):
                pass
            self._persist()
            sealed = self._storage.read_store()
            if sealed is None:
                raise SealedStoreError("the key store is gone")
            return sealed

    def restore(self, session: Session, backup: bytes) -> None:
        """Restore a :meth:`backup` of this HSM (crypto officer), saying so: its identities,
        keys and installed verifiers replace the current ones, as a new store generation; the
        audit log, its key and the root of trust's counter go on (``restore`` is audited, and
        nothing of the log is rolled back). The officer quorum in force stays (the backup's
        is not restored: a pair's restore of a backup made at quorum 1 does not leave every
        officer to act alone); a backup with fewer unlocked crypto officers than it is
        ``Conflict`` (after it no dual-control operation could ever be done).
        ``SealedStoreError`` for a backup that does not open with this device's sealing
        secret, ``Conflict`` for another HSM's. Every session
        ends, the caller's included. A backup written before timed lockouts has each lock that
        failed logins set made a timed lockout from now (``_identities``), audited."""
        with self._lock:
            with self._operation(session, "restore", arguments=(backup,)):
                data = self._check_data(backup, "backup")
                try:
                    doc = decode_store(unseal(bytes(self._secret), data))
                except MalformedInput as exc:
                    raise SealedStoreError(
                        "the backup opened but is not a key store of this version"
                    ) from exc
                zero(doc.audit_key)
                identities = {i.name: i for i in doc.identities}
                now = self._now()
                timed = time_untimed_lockouts(identities, doc.untimed, self._config, now)
                try:
                    if not hmac.compare_digest(doc.hsm_id, self._hsm_id):
                        raise Conflict("the backup belongs to another HSM")
                    officers = sum(
                        1 for i in identities.values() if i.role is Role.OFFICER and not i.locked
                    )
                    if officers < self._quorum:
                        raise Conflict(
                            f"the backup holds {officers} unlocked crypto officer(s), fewer "
                            f"than the quorum of {self._quorum} in force: no dual-control "
                            "operation could be done after it; lower the quorum first"
                        )
                except Conflict:
                    for key in doc.keys:
                        key.wipe()
                    for ident in doc.identities:
                        zero(ident.hash)
                    raise
                for key in self._keys.values():
                    key.wipe()
                for ident in self._identities.values():
                    zero(ident.hash)
                self._identities = identities
                self._keys = {k.handle: k for k in doc.keys}
                self._verifiers = {
                    name: (TrustedVerifier(name, PublicKey.from_der(der)), der)
                    for name, der in doc.verifiers
                }
                self._recipients = dict(doc.recipients)
            for name in timed:
                self._pending.append(PendingRecord(now, name, LOCKOUT_TIMED, None, "ok"))
            self._sessions.clear()
            self._persist()
