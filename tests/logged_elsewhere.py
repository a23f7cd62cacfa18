"""A Signed Statement made transparent by hand: the only entry of a one-entry log, with a real
receipt (RFC 9942, RFC 9162 inclusion proof) signed by a service key. For statements a live
Ironroot service would refuse to register (a non-integer CWT ``exp``, dates outside the
test's clock) but another log may hold, and for tests that need receipts without a service."""

from __future__ import annotations

import time

from ironroot.cose import (
    InclusionProof,
    SignedStatement,
    build_receipt,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import Algorithm, PrivateKey, Verifier
from ironroot.merkle import leaf_hash


class OneEntryLogs:
    """A transparency service's receipt key (fresh, ES384) and issuer: each statement given
    is logged as the only entry of a one-entry log of its own, under that key."""

    def __init__(self, issuer: str = "https://other.example") -> None:
        self.key = PrivateKey.generate(Algorithm.ES384)
        self.issuer = issuer

    @property
    def keys(self) -> dict[bytes, Verifier]:
        """The receipt keys that verify its receipts (``kid`` → key)."""
        return {self.key.kid: self.key.public_key}

    def receipt(self, statement: bytes, iat: int | None = None) -> bytes:
        """A receipt of time ``iat`` (default now) for ``statement`` (a Signed Statement)."""
        when = int(time.time()) if iat is None else iat
        protected = receipt_protected_header(self.key.algorithm, self.key.kid, self.issuer, when)
        root = leaf_hash(SignedStatement.parse(statement).log_entry())
        signature = self.key.sign(receipt_to_be_signed(protected, root))
        return build_receipt(protected, signature, InclusionProof(1, 0, ()))

    def transparent(self, statement: bytes, iat: int | None = None) -> bytes:
        """``statement`` with one receipt of time ``iat`` (default now)."""
        return make_transparent(statement, [self.receipt(statement, iat)])


def logged_elsewhere(statement: bytes, iat: int) -> tuple[bytes, dict[bytes, Verifier]]:
    """``statement`` with one receipt of time ``iat``, and the receipt keys that verify it."""
    logs = OneEntryLogs()
    return logs.transparent(statement, iat), logs.keys
