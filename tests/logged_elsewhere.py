"""A Signed Statement made transparent by hand: the only entry of a one-entry log, with a real
receipt (RFC 9942, RFC 9162 inclusion proof) signed by a fresh service key. For statements a
live Ironroot service would refuse to register (a non-integer CWT ``exp``, dates outside the
test's clock) but another log may hold."""

from __future__ import annotations

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


def logged_elsewhere(statement: bytes, iat: int) -> tuple[bytes, dict[bytes, Verifier]]:
    """``statement`` with one receipt of time ``iat``, and the receipt keys that verify it."""
    key = PrivateKey.generate(Algorithm.ES384)
    protected = receipt_protected_header(key.algorithm, key.kid, "https://other.example", iat)
    root = leaf_hash(SignedStatement.parse(statement).log_entry())
    signature = key.sign(receipt_to_be_signed(protected, root))
    receipt = build_receipt(protected, signature, InclusionProof(1, 0, ()))
    return make_transparent(statement, [receipt]), {key.kid: key.public_key}
