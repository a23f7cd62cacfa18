"""Transparent Statements (RFC 9943, SCRAPI): a Signed Statement with its receipts.

The receipts travel in the statement's unprotected header ``394`` as an array of byte strings,
so adding them changes neither the signed bytes nor the log entry. Verification here covers the
receipts against the statement's log entry; the statement's own signature is an issuer trust
decision (``kid``, ``x5chain``, ``did:x509``) that the caller makes with :class:`Sign1` and
:func:`verify_x5chain`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits
from ironroot.cose._headers import RECEIPTS
from ironroot.cose._receipt import Receipt, verify_receipt
from ironroot.cose._sign1 import decode_sign1
from ironroot.cose._statement import SignedStatement
from ironroot.crypto import Verifier
from ironroot.errors import (
    BadSignature,
    InvalidProof,
    IronrootError,
    LimitExceeded,
    MalformedReceipt,
    MalformedStatement,
    UnknownIssuer,
)

__all__ = [
    "TransparentStatement",
    "make_transparent",
    "on_trusted_log",
    "verify_transparent_statement",
]

# Room for the receipts on top of the statement's own size limit: an ML-DSA-87 receipt is
# under 5 kB, so 16 kB per receipt is generous.
_RECEIPT_BYTES: Final = 16384


def _outer_limits(limits: Limits) -> Limits:
    return dataclasses.replace(
        limits, max_bytes=limits.max_bytes + limits.max_receipts * _RECEIPT_BYTES
    )


def make_transparent(
    statement: bytes, receipts: Sequence[bytes], limits: Limits = DEFAULT_LIMITS
) -> bytes:
    """Add ``receipts`` to ``statement``'s unprotected header 394 (keeping any already there).

    Raises ``MalformedStatement`` or ``MalformedReceipt`` if either does not parse.
    """
    msg = decode_sign1(statement, _outer_limits(limits), True, MalformedStatement)
    SignedStatement._from_sign1(msg, limits)
    if not receipts:
        raise MalformedReceipt("at least one receipt is needed")
    merged = list(_receipt_list(msg.unprotected.get(RECEIPTS, ()), limits))
    for receipt in receipts:
        if not isinstance(receipt, bytes):
            raise MalformedReceipt("a receipt must be bytes")
        Receipt.parse(receipt, limits)
        if receipt not in merged:
            merged.append(receipt)
    if len(merged) > limits.max_receipts:
        raise LimitExceeded(f"{len(merged)} receipts exceed the limit of {limits.max_receipts}")
    unprotected = dict(msg.unprotected)
    unprotected[RECEIPTS] = merged
    return dataclasses.replace(msg, unprotected=MappingProxyType(unprotected)).encode()


def _receipt_list(value: object, limits: Limits) -> tuple[bytes, ...]:
    if not isinstance(value, list | tuple):
        raise MalformedStatement("receipts (394) must be an array of byte strings")
    if len(value) > limits.max_receipts:
        raise LimitExceeded(f"{len(value)} receipts exceed the limit of {limits.max_receipts}")
    for item in value:
        if not isinstance(item, bytes):
            raise MalformedStatement("receipts (394) must be an array of byte strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class TransparentStatement:
    """A Signed Statement and the receipts it carries (receipts not yet verified)."""

    statement: SignedStatement
    receipts: tuple[bytes, ...]

    @classmethod
    def parse(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> TransparentStatement:
        """Parse; ``MalformedStatement`` if the statement is malformed or has no receipts."""
        msg = decode_sign1(data, _outer_limits(limits), True, MalformedStatement)
        statement = SignedStatement._from_sign1(msg, limits)
        if RECEIPTS not in msg.unprotected:
            raise MalformedStatement("a Transparent Statement carries receipts in header 394")
        receipts = _receipt_list(msg.unprotected[RECEIPTS], limits)
        if not receipts:
            raise MalformedStatement("a Transparent Statement needs at least one receipt")
        return cls(statement=statement, receipts=receipts)


def verify_transparent_statement(
    data: bytes,
    keys: Mapping[bytes, Verifier],
    *,
    require_all: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    issuer: str | None = None,
    now: float | None = None,
) -> TransparentStatement:
    """Verify the receipts of a Transparent Statement against its log entry.

    With ``require_all`` every receipt must verify (the first failure is raised); without it,
    one verifying receipt suffices and, if none does, the first failure is raised. ``issuer``
    and ``now`` are :func:`verify_receipt`'s, for every receipt: the transparency service
    ``keys`` belong to, and the time (POSIX seconds) no receipt may be issued after.
    """
    parsed = TransparentStatement.parse(data, limits)
    entry = parsed.statement.log_entry()
    failures: list[IronrootError] = []
    for receipt in parsed.receipts:
        try:
            verify_receipt(Receipt.parse(receipt, limits), entry, keys, issuer=issuer, now=now)
        except IronrootError as exc:
            if require_all:
                raise
            failures.append(exc)
        else:
            if not require_all:
                return parsed
    if failures:
        raise failures[0]
    return parsed


def on_trusted_log(
    data: bytes,
    service_keys: Mapping[bytes, Verifier],
    what: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    issuer: str | None = None,
    now: float | None = None,
    require_all: bool = False,
) -> TransparentStatement:
    """The Transparent Statement ``data`` once one of its receipts (with ``require_all``:
    every one) verifies under a trusted service key, over exactly its entry; else
    ``UnknownIssuer`` ``untrusted-service`` or ``InvalidProof`` ``receipt-not-for-statement``,
    naming ``what``. With ``issuer`` the receipt's CWT ``iss`` must name that service
    (``UnknownIssuer`` ``untrusted-service``); with ``now`` (POSIX seconds) it may not be
    issued after it (``VerificationFailed`` ``receipt-from-the-future``, ``receipt-expired``:
    :func:`verify_receipt`). Every relying party that pins its transparency service's issuer
    (``service_issuer``: the platform's update checks, the audit, a fleet's desired state and
    endorsements, RIMs, SAFE reviews, reference values) refuses a receipt of another service
    with this one check."""
    try:
        return verify_transparent_statement(
            data, service_keys, require_all=require_all, limits=limits, issuer=issuer, now=now
        )
    except UnknownIssuer as exc:  # verify_receipt's untrusted-service, named for ``what``
        raise UnknownIssuer(
            f"no receipt of {what} is by a trusted transparency service ({exc.detail})",
            code=exc.code,
        ) from exc
    except (BadSignature, InvalidProof) as exc:
        raise InvalidProof(
            f"no receipt proves {what} is on the log: {exc.detail}",
            code="receipt-not-for-statement",
        ) from exc
