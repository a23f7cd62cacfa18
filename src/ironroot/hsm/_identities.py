"""Identities and lockout: scrypt credentials compared in constant time, sessions, the
failed-login count that locks an identity out for a while (``HsmConfig.lockout_duration``,
doubling up to ``max_lockout_duration``; by the HSM's clock), and the officer's identity
management (including the lock only an officer lifts).

A lockout from failed logins is temporary so that whoever can try logins cannot lock out the
last crypto officer for good (no one would be left to unlock it); while it lasts even the
right credential gets ``Unauthorized``, the answer a wrong one gets, so guessing stays stopped.

Stores written before timed lockouts kept one flag, ``locked``, for both locks: an officer's,
and the one ``max_failed_logins`` wrong credentials set for good (leaving ``failures`` at
that count, since no failure counts while locked; an officer's lock leaves it below, as an
officer's unlock set it to 0). :func:`time_untimed_lockouts` makes the second a timed lockout
when such a store is loaded (power-up, or ``restore`` of such a backup): else an identity, the
last officer too, stayed locked out for good. The HSM audits each one
(``LOCKOUT_TIMED``) and commits the store at once, through the same commit as every other
change (a crash before the store is written leaves the old store, which the next power-up
converts again; one after, a store that power-up rolls forward).
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ironroot.errors import (
    Conflict,
    IdentityLocked,
    LimitExceeded,
    MalformedInput,
    NotFound,
    RoleNotPermitted,
    Unauthorized,
)
from ironroot.hsm._approvals import MAX_GRANTS, Approval, Grant, request
from ironroot.hsm._audit_buffer import NO_IDENTITY, approval_subject
from ironroot.hsm._document import IdentityRecord, zero
from ironroot.hsm._model import MAX_QUORUM, HsmConfig, Role, Session, check_name
from ironroot.hsm._permissions import Permissions
from ironroot.hsm._state import PendingRecord

__all__ = ["LOCKOUT_TIMED", "Identities", "time_untimed_lockouts"]

MIN_CREDENTIAL: Final = 8
MAX_CREDENTIAL: Final = 1024
_DUMMY_SALT: Final = bytes(16)
_LOGIN_APPROVERS_DEPRECATED: Final = (
    "Hsm.login(..., approvers=...) is deprecated and will be removed: the approvers approve "
    "whichever dual-control operation the session runs first; have them approve the operation "
    "with its arguments instead (Hsm.approve)"
)
LOCKOUT_TIMED: Final = "lockout-timed"
"""The audit operation of a lock from failed logins, in a store written before timed
lockouts, made a timed lockout on load (the record's identity is the one locked out)."""


def _approvals(identity: object, approvers: object) -> tuple[tuple[str, bytes], ...]:
    """``approvers`` as ``(name, credential)`` pairs, checked for shape: at most
    ``MAX_QUORUM - 1``, each name once and not the identity logging in."""
    if isinstance(approvers, str | bytes) or not isinstance(approvers, Sequence):
        raise MalformedInput("approvers are a list of (name, credential) pairs")
    pairs: list[tuple[str, bytes]] = []
    for pair in approvers:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            raise MalformedInput("an approver is a (name, credential) pair")
        pairs.append(pair)
    if len(pairs) > MAX_QUORUM - 1:
        raise MalformedInput(f"at most {MAX_QUORUM - 1} approvers")
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names) or identity in names:
        raise MalformedInput("each crypto officer approves a login once, and not its own")
    return tuple(pairs)


def lockout_end(config: HsmConfig, lockouts: int, now: int) -> int:
    """When the ``lockouts``-th lockout in a row (from 1), starting at ``now``, ends:
    ``lockout_duration`` doubled for each one before, at most ``max_lockout_duration``."""
    doubled = config.lockout_duration << min(lockouts - 1, 32)
    return now + min(doubled, config.max_lockout_duration)


def time_untimed_lockouts(
    identities: dict[str, IdentityRecord], untimed: frozenset[str], config: HsmConfig, now: int
) -> tuple[str, ...]:
    """Make each lock that failed logins set in a store written before timed lockouts
    (``untimed``: those identities) a timed lockout from ``now``, the first of the schedule;
    returns their names, sorted. Such a lock is ``locked`` with ``failures`` at
    ``max_failed_logins`` or more; a lock with fewer failures is an officer's and stays.
    (Under that version an officer's lock of an identity already locked out after failed
    logins changed nothing, so it reads as the failure-set lock it was.)"""
    timed = []
    for name in sorted(untimed):
        ident = identities.get(name)
        if ident is None or not ident.locked or ident.failures < config.max_failed_logins:
            continue
        ident.locked = False
        ident.failures = 0
        ident.lockouts = 1
        ident.locked_until = lockout_end(config, 1, now)
        timed.append(name)
    return tuple(timed)


class Identities(Permissions):
    """Log in and out; add, lock, unlock, remove and list identities."""

    def _hash_credential(self, credential: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(credential)

    def _new_identity(self, name: str, role: Role, credential: bytes) -> IdentityRecord:
        if not isinstance(credential, bytes | bytearray) or not (
            MIN_CREDENTIAL <= len(credential) <= MAX_CREDENTIAL
        ):
            raise MalformedInput(f"a credential is {MIN_CREDENTIAL} to {MAX_CREDENTIAL} bytes")
        c = self._config
        salt = secrets.token_bytes(16)
        digest = self._hash_credential(bytes(credential), salt, c.scrypt_n, c.scrypt_r, c.scrypt_p)
        return IdentityRecord(
            name, role, salt, bytearray(digest), c.scrypt_n, c.scrypt_r, c.scrypt_p
        )

    def login(
        self,
        identity: str,
        credential: bytes,
        approvers: Sequence[tuple[str, bytes]] = (),
    ) -> Session:
        """Authenticate ``identity``; ``Unauthorized`` for a wrong credential or an unknown
        identity — locked or not, so the answer says nothing about an identity to someone who
        does not hold its credential — and for any credential while the identity is locked out
        after failed logins; ``IdentityLocked`` for an identity an officer locked presented
        with its right credential (not while it is locked out: an officer's lock does not stop
        failed logins from counting, else guesses against a locked identity would go on
        without end until that answer named the right one). Every attempt is audited
        durably.

        ``approvers`` (deprecated, ``DeprecationWarning``: use :meth:`approve`, which binds
        the approval to one operation and its arguments) — ``(name, credential)`` of other
        crypto officers — make a crypto officer's session meet a quorum of
        ``1 + len(approvers)`` officers, which the dual-control operations need once the HSM's
        :attr:`officer_quorum` is above 1, for its first dual-control operation only, whichever
        it is (a second is ``approval-consumed``). Each
        approver is authenticated as a login is (audited ``approve``; a wrong credential counts
        towards its lockout, with the same answers); an approver that is not a crypto officer
        is ``RoleNotPermitted``; a repeated name, or approvers on a session that is not a
        crypto officer's, ``MalformedInput``. No session is made unless every one passes."""
        if approvers:
            warnings.warn(_LOGIN_APPROVERS_DEPRECATED, DeprecationWarning, stacklevel=2)
        self._check_state()
        pairs = _approvals(identity, approvers)
        for _name, secret in ((identity, credential), *pairs):
            if not isinstance(secret, bytes | bytearray) or len(secret) > MAX_CREDENTIAL:
                raise MalformedInput(f"a credential is at most {MAX_CREDENTIAL} bytes")
        with self._lock:
            ident = self._authenticate(identity, credential, "login")
            if pairs and ident.role is not Role.OFFICER:
                raise MalformedInput("only a crypto officer's login takes approvers")
            for name, secret in pairs:
                approver = self._authenticate(name, secret, "approve")
                if approver.role is not Role.OFFICER:
                    self._record(approver.name, "approve", None, RoleNotPermitted.code)
                    raise RoleNotPermitted(f"approver {name!r} is not a crypto officer")
            names = tuple(name for name, _ in pairs)
            token = secrets.token_bytes(32)
            self._sessions[token] = (ident.name, ident.role, names)
            return Session(ident.name, ident.role, token, names)

    def _authenticate(
        self, identity: str, credential: bytes, operation: str, subject: str | None = None
    ) -> IdentityRecord:
        """The identity ``credential`` authenticates (:meth:`login`'s answers), audited as
        ``operation`` (its records' key ``subject``: what an approver approves); failures
        counted, a success resets them."""
        ident = self._identities.get(identity) if isinstance(identity, str) else None
        if ident is None:
            c = self._config
            self._hash_credential(bytes(credential), _DUMMY_SALT, c.scrypt_n, c.scrypt_r, 1)
            self._record(NO_IDENTITY, operation, subject, Unauthorized.code)
            raise Unauthorized("unknown identity or wrong credential")
        now = self._now()
        locked_out = now < ident.locked_until
        try:
            Scrypt(salt=ident.salt, length=32, n=ident.n, r=ident.r, p=ident.p).verify(
                bytes(credential), bytes(ident.hash)
            )
        except InvalidKey:
            if locked_out:
                self._record(ident.name, operation, subject, Unauthorized.code)
                raise Unauthorized("unknown identity or wrong credential") from None
            # An identity an officer locked counts its failures too: its right credential
            # answers IdentityLocked, so uncounted guesses would find it, unhindered.
            ident.failures += 1
            if ident.failures >= self._config.max_failed_logins:
                self._lock_out(ident, now)
            self._pending.append(
                PendingRecord(now, ident.name, operation, subject, Unauthorized.code)
            )
            self._persist()
            raise Unauthorized("unknown identity or wrong credential") from None
        if locked_out:  # the auditor learns it; the caller gets a wrong credential's answer
            self._record(ident.name, operation, subject, IdentityLocked.code)
            raise Unauthorized("unknown identity or wrong credential")
        if ident.locked:
            self._record(ident.name, operation, subject, IdentityLocked.code)
            raise IdentityLocked(
                f"identity {ident.name!r} is locked: a crypto officer must unlock it"
            )
        if ident.failures or ident.locked_until or ident.lockouts:
            ident.failures = ident.locked_until = ident.lockouts = 0
            self._pending.append(PendingRecord(self._now(), ident.name, operation, subject, "ok"))
            self._persist()
        else:
            self._record(ident.name, operation, subject, "ok")
        return ident

    def _lock_out(self, ident: IdentityRecord, now: int) -> None:
        """Lock ``ident`` out from ``now`` (its failures start again from 0 when it ends)."""
        ident.lockouts += 1
        ident.locked_until = lockout_end(self._config, ident.lockouts, now)
        ident.failures = 0
        self._end_sessions(ident.name)

    def _time_untimed_lockouts(self, untimed: frozenset[str]) -> None:
        """:func:`time_untimed_lockouts` on the loaded identities; each one audited and the
        store committed (with the records) before this returns."""
        now = self._now()
        timed = time_untimed_lockouts(self._identities, untimed, self._config, now)
        for name in timed:
            self._end_sessions(name)
            self._pending.append(PendingRecord(now, name, LOCKOUT_TIMED, None, "ok"))
        if timed:
            self._persist()

    def logout(self, session: Session) -> None:
        with self._lock, self._operation(session, "logout"):
            self._sessions.pop(session.token, None)
            self._prune_approvals()

    def _end_sessions(self, name: str) -> None:
        """End ``name``'s sessions, and those it approved (the approval was its)."""
        for token, (who, _role, approvers) in list(self._sessions.items()):
            if who == name or name in approvers:
                del self._sessions[token]
        for grants in self._grants.values():
            grants[:] = [g for g in grants if name not in g.approval.approvers]
        self._prune_approvals()

    def _prune_approvals(self) -> None:
        """Forget the approvals of sessions that ended (they end with their session)."""
        for held in (self._grants, self._consumed):
            for token in [t for t in held if t not in self._sessions]:
                del held[token]
        self._spent_logins.intersection_update(self._sessions)

    def approve(
        self,
        session: Session,
        operation: str,
        *arguments: object,
        approvers: Sequence[tuple[str, bytes]],
    ) -> Approval:
        """Approve one run of the dual-control ``operation`` with ``arguments`` (those its
        method takes after the session, in order: ``approve(s, "delete", handle, …)`` for
        ``delete(s, handle)``) for ``session``, a crypto officer's, by ``approvers``: the
        ``(name, credential)`` of other crypto officers, each authenticated as a login's
        approvers are (audited ``approve``, its key the operation and its target). The HSM
        keeps the approval with the session until :attr:`HsmConfig.approval_lifetime` passes
        or the session ends; that one run of the operation consumes it (``_approvals``).
        ``MalformedInput`` for an operation not under dual control, the wrong number of
        arguments, or no approver, before anyone authenticates; ``LimitExceeded`` past
        ``MAX_GRANTS`` unused approvals. Audited ``approval`` under the session's identity."""
        self._check_state()
        asking = session.identity if isinstance(session, Session) else None
        pairs = _approvals(asking, approvers)
        for _name, secret in pairs:
            if not isinstance(secret, bytes | bytearray) or len(secret) > MAX_CREDENTIAL:
                raise MalformedInput(f"a credential is at most {MAX_CREDENTIAL} bytes")
        target, digest = request(operation, arguments)
        if not pairs:
            raise MalformedInput("an approval names at least one approving crypto officer")
        subject = approval_subject(operation, target)
        with self._lock, self._operation(session, "approval", subject):
            self._prune_approvals()
            now = self._now()
            grants = [g for g in self._grants.get(session.token, []) if now < g.approval.expires]
            if len(grants) >= MAX_GRANTS:
                raise LimitExceeded(f"a session holds at most {MAX_GRANTS} unused approvals")
            for name, secret in pairs:
                approver = self._authenticate(name, secret, "approve", subject)
                if approver.role is not Role.OFFICER:
                    self._record(approver.name, "approve", subject, RoleNotPermitted.code)
                    raise RoleNotPermitted(f"approver {name!r} is not a crypto officer")
            names = tuple(name for name, _ in pairs)
            approval = Approval(operation, target, names, now + self._config.approval_lifetime)
            self._grants[session.token] = [*grants, Grant(approval, digest)]
            return approval

    def set_officer_quorum(self, session: Session, quorum: int) -> None:
        """Require ``quorum`` crypto officers — an approval by ``quorum - 1`` others — for
        every dual-control operation (``DUAL_CONTROL``), this change included (crypto officer,
        under the quorum in force). ``MalformedInput`` outside 1 to ``MAX_QUORUM``;
        ``Conflict`` above the number of unlocked crypto officers, who could then never meet
        it. Sealed in the store; audited ``officer-quorum``, key ``quorum-<n>``."""
        if isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= MAX_QUORUM:
            raise MalformedInput(f"the officer quorum is an integer from 1 to {MAX_QUORUM}")
        with self._lock, self._operation(session, "officer-quorum", arguments=(quorum,)) as op:
            op.key = f"quorum-{quorum}"
            officers = len(self._unlocked_officers())
            if quorum > officers:
                raise Conflict(
                    f"a quorum of {quorum} needs as many unlocked crypto officers: there are "
                    f"{officers}"
                )
            self._quorum = quorum
        self._persist_locked()

    def _unlocked_officers(self) -> list[IdentityRecord]:
        return [i for i in self._identities.values() if i.role is Role.OFFICER and not i.locked]

    def _check_quorum_kept(self, ident: IdentityRecord, change: str) -> None:
        """``Conflict`` if taking ``ident`` away (locked or removed) leaves fewer unlocked
        crypto officers than the quorum (then no one could ever meet it again)."""
        if ident.role is not Role.OFFICER or ident.locked:
            return
        left = len(self._unlocked_officers()) - 1
        if self._quorum > 1 and left < self._quorum:
            raise Conflict(
                f"{change} {ident.name!r} would leave {left} unlocked crypto officer(s), fewer "
                f"than the quorum of {self._quorum}: add an officer or lower the quorum first"
            )

    def _identity(self, name: str) -> IdentityRecord:
        ident = self._identities.get(name)
        if ident is None:
            raise NotFound(f"no identity {name!r}")
        return ident

    def add_identity(self, session: Session, name: str, role: Role, credential: bytes) -> None:
        """Add an identity (crypto officer); ``Conflict`` if the name is taken."""
        with (
            self._lock,
            self._operation(session, "identity-add", arguments=(name, role, credential)),
        ):
            check_name(name)
            if not isinstance(role, Role):
                raise MalformedInput("role must be a Role")
            if name in self._identities:
                raise Conflict(f"identity {name!r} already exists")
            self._identities[name] = self._new_identity(name, role, credential)
        self._persist_locked()

    def lock_identity(self, session: Session, name: str) -> None:
        """Lock an identity and end its sessions (crypto officer)."""
        with self._lock, self._operation(session, "identity-lock"):
            ident = self._identity(name)
            if ident.name == session.identity:
                raise Conflict("an officer cannot lock itself")
            self._check_quorum_kept(ident, "locking")
            ident.locked = True
            self._end_sessions(name)
        self._persist_locked()

    def unlock_identity(self, session: Session, name: str) -> None:
        """Unlock an identity, end a lockout from failed logins and reset its failure count
        (crypto officer)."""
        with self._lock, self._operation(session, "identity-unlock", arguments=(name,)):
            ident = self._identity(name)
            ident.locked = False
            ident.failures = ident.locked_until = ident.lockouts = 0
        self._persist_locked()

    def remove_identity(self, session: Session, name: str) -> None:
        """Remove an identity (crypto officer); the last unlocked officer cannot go."""
        with self._lock, self._operation(session, "identity-remove", arguments=(name,)):
            ident = self._identity(name)
            if ident.role is Role.OFFICER and self._unlocked_officers() == [ident]:
                raise Conflict("the last unlocked crypto officer cannot be removed")
            self._check_quorum_kept(ident, "removing")
            named = sorted(
                k.handle for k in self._keys.values() if name in (k.attributes.users or ())
            )
            if named:
                # an identity added later under the name would inherit these keys
                raise Conflict(
                    f"identity {name!r} is a user of key(s) {', '.join(named)}: take it off "
                    f"them first (`set_key_users`)"
                )
            zero(ident.hash)
            del self._identities[name]
            self._end_sessions(name)
        self._persist_locked()

    def identities(self, session: Session) -> tuple[tuple[str, Role, bool], ...]:
        """``(name, role, locked)`` of every identity (crypto officer); ``locked`` is an
        officer's lock (:meth:`lockouts` lists the timed lockouts of failed logins)."""
        with self._lock, self._operation(session, "identity-list"):
            return tuple(
                (i.name, i.role, i.locked)
                for i in sorted(self._identities.values(), key=lambda i: i.name)
            )

    def lockouts(self, session: Session) -> dict[str, int]:
        """The identities locked out now after failed logins, with when each lockout ends
        (POSIX seconds, the HSM's clock) (crypto officer)."""
        with self._lock, self._operation(session, "identity-list"):
            now = self._now()
            return {
                i.name: i.locked_until for i in self._identities.values() if now < i.locked_until
            }
