"""Permissions: which role may run which operation, and the session check and audit around
every operation (``_operation``).

**Dual control.** With an officer quorum above 1 (``Hsm.set_officer_quorum``), the operations
of :data:`DUAL_CONTROL` — those that change who may do what, which keys exist, which verifiers
and recipients the HSM trusts, or remove records — need a session of that many crypto officers:
an approval of that one operation (``Hsm.approve``: its kind, its target and a digest of its
arguments, consumed by the one run that matches it, expiring after
``HsmConfig.approval_lifetime``), or a login with approvers (deprecated), which approves the
session's first dual-control operation only. One officer alone is refused
(``RoleNotPermitted``, code ``quorum-required``; a misused approval has a code of its own,
``_approvals``), and the refusal audited. Their records name every officer, the session's
identity first, joined by ``+`` (which no identity name holds), as are all the records of such
a session, its refusals included. Left to one officer: locking an
identity and zeroizing (they only take away, and may be urgent), generating a key (a new key:
it leaves only to a recipient or on an EAR of a verifier, both under dual control), and every
read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from ironroot.errors import IronrootError, MalformedInput, RoleNotPermitted, Unauthorized
from ironroot.hsm._approvals import (
    APPROVAL_CONSUMED,
    APPROVAL_EXPIRED,
    KEY_MISMATCH,
    MAX_GRANTS,
    OPERATION_MISMATCH,
    PARAMETERS_MISMATCH,
    request,
    shown_target,
)
from ironroot.hsm._audit import ReleaseBinding
from ironroot.hsm._audit_buffer import NO_IDENTITY, AuditBuffer
from ironroot.hsm._model import Role, Session

__all__ = ["DUAL_CONTROL", "Permissions"]

INTERNAL_ERROR: Final = "internal-error"
"""The result recorded for an operation that failed with an exception that is not an
:class:`~ironroot.errors.IronrootError` (the CLI's and the HTTP layer's name for it too)."""
_QUORUM_REQUIRED: Final = "quorum-required"
_ANY: Final = frozenset(Role)
_OFFICER: Final = frozenset({Role.OFFICER})
_USER: Final = frozenset({Role.USER})
_AUDITOR: Final = frozenset({Role.AUDITOR})
_KEY_READERS: Final = frozenset({Role.OFFICER, Role.USER})
_PERMISSIONS: Final[dict[str, frozenset[Role]]] = {
    "identity-add": _OFFICER,
    "identity-lock": _OFFICER,
    "identity-unlock": _OFFICER,
    "identity-remove": _OFFICER,
    "identity-list": _OFFICER,
    "generate": _OFFICER,
    "delete": _OFFICER,
    "key-users": _OFFICER,
    "migrate": _OFFICER,
    "backup": _OFFICER,
    "restore": _OFFICER,
    "zeroize": _OFFICER,
    "key-list": _KEY_READERS,
    "key-info": _KEY_READERS,
    "attest": _KEY_READERS,
    "sign": _USER,
    "verify": _USER,
    "encrypt": _USER,
    "decrypt": _USER,
    "wrap": _USER,
    "unwrap": _USER,
    "derive": _USER,
    "release": _USER,
    "release-challenge": _USER,
    "verifier-add": _OFFICER,
    "verifier-remove": _OFFICER,
    "verifier-list": _KEY_READERS,
    "recipient-add": _OFFICER,
    "recipient-remove": _OFFICER,
    "recipient-list": _KEY_READERS,
    "audit-read": _AUDITOR,
    "audit-checkpoint": _AUDITOR,
    "audit-prune": _OFFICER,
    "officer-quorum": _OFFICER,
    "approval": _OFFICER,
    "self-test": _ANY,
    "logout": _ANY,
}

DUAL_CONTROL: Final = frozenset(
    {
        "identity-add",
        "identity-unlock",
        "identity-remove",
        "key-users",
        "delete",
        "migrate",
        "backup",
        "restore",
        "verifier-add",
        "verifier-remove",
        "recipient-add",
        "recipient-remove",
        "audit-prune",
        "officer-quorum",
    }
)
"""The operations that need the officer quorum (module docs)."""


# The operations that change the store and whose method commits it (``_persist``) right
# after a success: their record goes in that commit (``AuditBuffer._record``'s
# ``with_store``), never in one of its own before it.
_COMMITTED_WITH_STORE: Final = frozenset(
    {
        *("generate", "derive", "unwrap", "delete", "key-users", "backup", "restore"),
        *("migrate", "recipient-add", "recipient-remove", "verifier-add", "verifier-remove"),
        *("officer-quorum", "identity-add", "identity-lock", "identity-unlock"),
        "identity-remove",
    }
)


class _Op:
    """The audit facts of one operation in progress: a release fills in ``statement``,
    ``recipient`` and ``ear`` (SHA-256 digests) as it learns them, for its record's
    binding."""

    __slots__ = ("actor", "ear", "identity", "key", "recipient", "statement")

    def __init__(self, identity: str, key: str | None, approvers: tuple[str, ...] = ()) -> None:
        self.identity = identity
        self.actor = "+".join((identity, *approvers))  # who the record names
        self.key = key
        self.statement: bytes | None = None
        self.recipient: bytes | None = None
        self.ear: bytes | None = None

    def binding(self, operation: str, granted: bool) -> ReleaseBinding | None:
        """The release binding of this operation's record (``None`` for other operations,
        and for a refusal before any digest was known)."""
        if operation != "release":
            return None
        if granted and self.statement is None:
            return None  # never so: a granted release always has signed its statement
        statement = self.statement if granted else None
        try:
            return ReleaseBinding(statement, self.recipient, self.ear)
        except MalformedInput:  # nothing known: a record without a binding
            return None


class Permissions(AuditBuffer):
    """Authenticate and authorize a session for an operation; audit the outcome."""

    @contextmanager
    def _operation(
        self,
        session: Session,
        operation: str,
        key: str | None = None,
        arguments: tuple[object, ...] = (),
    ) -> Iterator[_Op]:
        """Authenticate and authorize ``session`` for ``operation``; audit the outcome (an
        operation that creates a key sets ``op.key`` so its record names the new handle).
        ``arguments``: a dual-control operation's, after the session, in its method's order
        (what an approval of it is bound to)."""
        self._check_state()
        identity, approvers = self._authorize(session, operation, key, arguments)
        op = _Op(identity, key, approvers)
        try:
            yield op
        except IronrootError as exc:
            if self._state == "operational":
                self._record(op.actor, operation, op.key, exc.code, op.binding(operation, False))
            raise
        except Exception:
            # not one of ours (a library's bug, an unexpected input type): still a refusal,
            # and a release's nonce may be spent by now, so the log says so
            if self._state == "operational":
                self._record(
                    op.actor, operation, op.key, INTERNAL_ERROR, op.binding(operation, False)
                )
            raise
        self._record(
            op.actor,
            operation,
            op.key,
            "ok",
            op.binding(operation, True),
            with_store=operation in _COMMITTED_WITH_STORE,
        )

    def _authorize(
        self,
        session: Session,
        operation: str,
        key: str | None,
        arguments: tuple[object, ...] = (),
    ) -> tuple[str, tuple[str, ...]]:
        """The session's identity and the officers who approved this run, once it may run
        ``operation``."""
        entry = (
            self._sessions.get(session.token)
            if isinstance(session, Session) and isinstance(session.token, bytes)
            else None
        )
        if entry is None or entry != (session.identity, session.role, session.approvers):
            with self._lock:
                self._record(NO_IDENTITY, operation, key, Unauthorized.code)
            raise Unauthorized("no valid session: log in first")
        identity, role, approvers = entry
        actor = "+".join((identity, *approvers))  # a refusal names whom the session's records do
        if role not in _PERMISSIONS[operation]:
            with self._lock:
                self._record(actor, operation, key, RoleNotPermitted.code)
            raise RoleNotPermitted(f"the {role.value} role may not {operation}")
        if operation not in DUAL_CONTROL or self._quorum <= 1:
            return identity, approvers
        with self._lock:
            try:
                return identity, self._quorum_approval(
                    session.token, approvers, operation, arguments
                )
            except IronrootError as exc:
                self._record(actor, operation, key, exc.code)
                raise

    def _quorum_approval(
        self,
        token: bytes,
        approvers: tuple[str, ...],
        operation: str,
        arguments: tuple[object, ...],
    ) -> tuple[str, ...]:
        """The officers approving this one run of a dual-control operation, their approval
        consumed: an approval of the session's that matches it (``_approvals``), else the
        login's, once. Else the refusal that says what was wrong (under the lock)."""
        target, digest = request(operation, arguments)
        shown = shown_target(target)
        what = f"{operation} on {shown}" if target is not None else operation
        now = self._now()
        grants = self._grants.get(token, [])
        live = [g for g in grants if now < g.approval.expires]
        for grant in live:
            if grant.matches(operation, target, digest) and (
                1 + len(grant.approval.approvers) >= self._quorum
            ):
                grants.remove(grant)
                spent = self._consumed.setdefault(token, [])
                spent.append((operation, target, digest))
                del spent[:-MAX_GRANTS]
                return grant.approval.approvers
        officers = 1 + len(approvers)
        if approvers and officers >= self._quorum and token not in self._spent_logins:
            self._spent_logins.add(token)
            return approvers
        if any(g.matches(operation, target, digest) for g in live):
            raise RoleNotPermitted(
                f"the approval of {what} has fewer officers than the quorum of "
                f"{self._quorum} now in force",
                code=_QUORUM_REQUIRED,
            )
        expired = [g for g in grants if g not in live]
        self._grants[token] = live
        if (operation, target, digest) in self._consumed.get(token, ()):
            raise RoleNotPermitted(
                f"this approval of {operation} was consumed by the operation it approved: each "
                "approval runs one operation",
                code=APPROVAL_CONSUMED,
            )
        if any(g.matches(operation, target, digest) for g in expired):
            raise RoleNotPermitted(
                f"the approval of {what} expired (it lasts {self._config.approval_lifetime} s)",
                code=APPROVAL_EXPIRED,
            )
        same = [g.approval for g in live if g.approval.operation == operation]
        if any(a.target == target for a in same):
            raise RoleNotPermitted(
                f"the approval of {what} was for other arguments than these",
                code=PARAMETERS_MISMATCH,
            )
        if same:
            raise RoleNotPermitted(
                f"the approvals this session holds for {operation} are for other targets, "
                f"not {shown}",
                code=KEY_MISMATCH,
            )
        if live:
            held = ", ".join(sorted({g.approval.operation for g in live}))
            raise RoleNotPermitted(
                f"this session holds no approval of {operation} (only of {held})",
                code=OPERATION_MISMATCH,
            )
        if approvers and token in self._spent_logins and officers >= self._quorum:
            raise RoleNotPermitted(
                "the approval this session's login carried was consumed by its first "
                "dual-control operation: ask for an approval of this one (Hsm.approve)",
                code=APPROVAL_CONSUMED,
            )
        raise RoleNotPermitted(
            f"{operation} is under dual control: it needs {self._quorum} crypto officers "
            f"(an approval of it by {self._quorum - 1} other officer(s): Hsm.approve); "
            f"this session has {officers}",
            code=_QUORUM_REQUIRED,
        )
