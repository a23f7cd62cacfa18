"""The HSM's release statement (``ironroot.hsm._release_statement``): what a TEE and an auditor
check before they take a released key for the HSM's. Every way to pass off another release, or
a release by no HSM under the trusted root, is refused with its exact error."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import cbor2
import pytest
from _hsm_helpers import NOW

from hsm_devices import ReleaseSigner
from ironroot.cose import Sign1, sign1
from ironroot.crypto import PrivateKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    IronrootError,
    KeyBindingMismatch,
    MalformedInput,
    StaleNonce,
)
from ironroot.hsm import KeyType, ReleaseStatement, verify_release_statement
from ironroot.hsm._release_statement import sign_release_statement

RECIPIENT = hashlib.sha256(b"the TEE's wrapping key").digest()
NONCE = bytes(range(32))
WRAPPED = b"w" * 48
SIGNER = ReleaseSigner(NOW)


def _statement(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "key_type": KeyType.AES_256,
        "recipient": RECIPIENT,
        "nonce": NONCE,
        "wrapped": WRAPPED,
    }
    fields.update(changes)
    return SIGNER.sign(**fields)


def _signed_by(key: PrivateKey, hsm_id: bytes) -> bytes:
    """A statement of this release over the test HSM's chain, signed by ``key`` naming
    ``hsm_id``."""
    return sign_release_statement(
        key,
        SIGNER.chain,
        hsm_id=hsm_id,
        handle="k1",
        key_type=KeyType.AES_256,
        recipient=RECIPIENT,
        nonce=NONCE,
        ear=b"e",
        wrapped=WRAPPED,
        now=int(NOW.timestamp()),
    )


def _verify(statement: bytes, **changes: Any) -> ReleaseStatement:
    fields: dict[str, Any] = {
        "roots": SIGNER.roots,
        "now": NOW,
        "wrapped": WRAPPED,
        "recipient": RECIPIENT,
        "nonce": NONCE,
        "key_type": KeyType.AES_256,
    }
    fields.update(changes)
    return verify_release_statement(statement, **fields)


def test_a_statement_of_this_release_verifies() -> None:
    found = _verify(_statement(ear=b"the EAR"))
    assert found.hsm_id == SIGNER.hsm_id
    assert (found.handle, found.key_type, found.issued_at) == (
        "k1",
        KeyType.AES_256,
        int(NOW.timestamp()),
    )
    assert found.ear_digest == hashlib.sha256(b"the EAR").digest()
    assert found.wrapped_digest == hashlib.sha256(WRAPPED).digest()
    assert found.attestation_key == SIGNER.key.public_key


@pytest.mark.parametrize(
    ("changes", "error", "code"),
    [
        # A key of the attacker's own wrapped to the TEE, with a real statement of another one.
        ({"wrapped": b"x" * 48}, KeyBindingMismatch, "release-statement"),
        ({"recipient": hashlib.sha256(b"another TEE").digest()}, KeyBindingMismatch, None),
        ({"nonce": bytes(32)}, StaleNonce, "nonce-mismatch"),
        ({"key_type": KeyType.HMAC_SHA384}, KeyBindingMismatch, "release-statement"),
    ],
)
def test_a_statement_of_another_release_is_refused(
    changes: dict[str, Any], error: type[IronrootError], code: str | None
) -> None:
    with pytest.raises(error) as info:
        _verify(_statement(), **changes)
    assert info.type is error
    assert info.value.code == (code or error.code)


def test_a_statement_by_an_hsm_under_another_root_is_refused() -> None:
    with pytest.raises(ChainNotTrusted):
        _verify(_statement(), roots=ReleaseSigner(NOW).roots)
    with pytest.raises(ChainNotTrusted):
        _verify(_statement(), roots=[])


def test_a_statement_outside_its_chains_validity_is_refused() -> None:
    with pytest.raises(CertificateExpired):
        _verify(_statement(), now=NOW + dt.timedelta(days=4000))


def test_a_statement_signed_by_another_key_is_refused() -> None:
    """The device chain is right, but the signature is not the certified attestation key's."""
    with pytest.raises(BadSignature):
        _verify(_signed_by(ReleaseSigner(NOW).key, SIGNER.hsm_id))


def test_a_statement_naming_another_hsm_is_refused() -> None:
    with pytest.raises(ChainNotTrusted, match="release statement certificate is for another HSM"):
        _verify(_signed_by(SIGNER.key, b"another HSM"))


def test_a_key_attestation_is_not_a_release_statement() -> None:
    """The HSM's other statements are signed by the same key: the content type tells them
    apart, so a key attestation cannot be passed off as a release."""
    attestation = Sign1.decode(_statement())
    protected = dict(attestation.protected)
    protected[3] = "application/vnd.ironroot.hsm-key-attestation+cbor"
    relabelled = sign1(SIGNER.key, attestation.payload or b"", protected).encode()
    with pytest.raises(MalformedInput, match="not an HSM release statement"):
        _verify(relabelled)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("ear"), "exactly the eight claims"),
        (lambda c: c.update(extra=1), "exactly the eight claims"),
        (lambda c: c.update(nonce=b"short"), "claim nonce must be 32 bytes"),
        (lambda c: c.update(handle=7), "handle and type must be text"),
        (lambda c: c.update(iat=-1), "iat must be a non-negative integer"),
        (lambda c: c.update(iat=True), "iat must be a non-negative integer"),
    ],
)
def test_malformed_claims_are_refused(mutate: Any, message: str) -> None:
    original = Sign1.decode(_statement())
    claims = cbor2.loads(original.payload or b"")
    mutate(claims)
    statement = sign1(SIGNER.key, cbor2.dumps(claims, canonical=True), original.protected)
    with pytest.raises(MalformedInput, match=message):
        _verify(statement.encode())
