"""Quorum approvals bound to one operation (``Hsm.approve``), consumed once.

An approval names one dual-control operation: its kind, its target (the identity, key handle,
verifier, recipient, record number or quorum it acts on; none for ``migrate``, ``backup`` and
``restore``) and a digest of all its arguments. The approving officers authenticate for it;
it is kept in memory with the session that asked for it, until the HSM's clock passes
``HsmConfig.approval_lifetime`` or that session ends; the one operation of that session whose
kind, target and arguments match it consumes it. The digest is SHA-256 over deterministic
CBOR of ``[operation, arguments…]`` (a role by its value, key users sorted): kept in memory
only and never recorded, since the arguments may hold a credential or a sealing secret.

This module is pure: the request, the grant and the refusal codes; ``_permissions`` keeps the
grants and checks them.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from ironroot.cose import encode_cbor
from ironroot.errors import MalformedInput

__all__ = [
    "APPROVAL_CONSUMED",
    "APPROVAL_EXPIRED",
    "KEY_MISMATCH",
    "MAX_GRANTS",
    "OPERATION_MISMATCH",
    "PARAMETERS_MISMATCH",
    "Approval",
    "Grant",
    "request",
    "shown_target",
]

APPROVAL_CONSUMED: Final = "approval-consumed"
APPROVAL_EXPIRED: Final = "approval-expired"
OPERATION_MISMATCH: Final = "approval-operation-mismatch"
KEY_MISMATCH: Final = "approval-key-mismatch"
PARAMETERS_MISMATCH: Final = "approval-parameters-mismatch"
MAX_GRANTS: Final = 16
"""The most approvals one session holds, unused, at a time (``LimitExceeded`` past it)."""

# operation -> (the arguments it takes after the session, whether the first is its target)
_ARGUMENTS: Final[dict[str, tuple[int, bool]]] = {
    "identity-add": (3, True),  # name, role, credential
    "identity-unlock": (1, True),
    "identity-remove": (1, True),
    "key-users": (2, True),  # handle, users
    "delete": (1, True),
    "migrate": (1, False),  # new sealing secret
    "backup": (0, False),
    "restore": (1, False),  # the backup
    "verifier-add": (2, True),  # name, public key
    "verifier-remove": (1, True),
    "recipient-add": (2, True),
    "recipient-remove": (1, True),
    "audit-prune": (1, True),  # before
    "officer-quorum": (1, True),  # quorum
}


def _canonical(value: object) -> object:
    """``value`` as deterministic CBOR takes it: text, integers and bytes as they are, an
    enum by its value, a collection (key users) sorted, ``None`` as null."""
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, enum.Enum):
        return _canonical(value.value)
    if isinstance(value, Iterable):
        items = [_canonical(v) for v in value]
        if all(isinstance(v, str) for v in items):
            return sorted(items)  # type: ignore[type-var]
        return items
    raise MalformedInput(f"an approved operation's argument cannot be {type(value).__name__}")


def shown_target(target: str | None) -> str:
    """``target`` as an error message repeats it: whole up to 64 characters, else its first
    16 and an ellipsis (a caller's argument, of any length)."""
    if target is None:
        return "-"
    return target if len(target) <= 64 else f"{target[:16]}…"


def request(operation: str, arguments: tuple[object, ...]) -> tuple[str | None, bytes]:
    """The target and the digest of ``operation`` run with ``arguments`` (those after the
    session, in the method's order). ``MalformedInput`` for an operation not under dual
    control or the wrong number of arguments."""
    shape = _ARGUMENTS.get(operation) if isinstance(operation, str) else None
    if shape is None:
        raise MalformedInput(f"{str(operation)[:64]!r} is not an operation under dual control")
    count, targeted = shape
    if len(arguments) != count:
        raise MalformedInput(f"{operation} takes {count} argument(s), not {len(arguments)}")
    target = arguments[0] if targeted else None
    shown = None if target is None else str(_canonical(target))
    digest = hashlib.sha256(encode_cbor([operation, *map(_canonical, arguments)])).digest()
    return shown, digest


@dataclass(frozen=True, slots=True)
class Approval:
    """What the officers approved (``Hsm.approve``): one ``operation`` on ``target`` with the
    arguments given, by ``approvers``, usable by the session that asked until ``expires``
    (POSIX seconds, the HSM's clock). Informational: the HSM keeps the approval itself."""

    operation: str
    target: str | None
    approvers: tuple[str, ...]
    expires: int


@dataclass(frozen=True, slots=True)
class Grant:
    """An approval as the HSM keeps it, with its digest (never shown)."""

    approval: Approval
    digest: bytes = field(repr=False)

    def matches(self, operation: str, target: str | None, digest: bytes) -> bool:
        a = self.approval
        return (
            a.operation == operation
            and a.target == target
            and hmac.compare_digest(self.digest, digest)
        )
