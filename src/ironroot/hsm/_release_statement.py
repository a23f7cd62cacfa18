"""The release statement: what the HSM signs when it releases a key, for the TEE and auditors.

A key release is a trust decision the HSM makes inside its boundary (``ironroot.hsm._release``);
its answer — the key wrapped to the TEE's public key — proves nothing by itself, because anyone
can wrap a key of their choosing to a public key. So with every release the HSM signs, with its
attestation key (the key :meth:`Hsm.attest` signs key attestations with, certified by the HSM's
device identity), a statement of what it released to whom for which request. The TEE checks it
before it uses the key (:meth:`ironroot.keyrelease.tee.TeeKeyPair.unwrap`): a key service that
is not the HSM, or a party between them, cannot hand the TEE a key of its own. An auditor can
check it offline: it names the HSM, the key, the TEE's wrapping key, the nonce and the EAR the
decision rested on.

A COSE_Sign1 (tag 18), protected header ``{1: alg, 3:
"application/vnd.ironroot.hsm-release+cbor", 33: [attestation certificate, device chain …]}``,
and a deterministic-CBOR payload::

    {
      "hsm":       bstr,            ; the HSM's id (the attestation certificate's serialNumber)
      "handle":    tstr,            ; the released key's handle in the HSM
      "type":      tstr,            ; its key type, e.g. "AES-256"
      "recipient": bstr .size 32,   ; SHA-256 of the TEE's wrapping key (canonical SPKI DER)
      "nonce":     bstr .size 32,   ; the release challenge the HSM issued and redeemed
      "ear":       bstr .size 32,   ; SHA-256 of the EAR the release was decided on
      "wrapped":   bstr .size 32,   ; SHA-256 of the wrapped key the HSM returned
      "iat":       uint             ; POSIX seconds, the HSM's clock
    }
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509

from ironroot.cose import CONTENT_TYPE, X5CHAIN, decode_cbor, sign1
from ironroot.cose import encode_cbor as _encode
from ironroot.crypto import PublicKey, Signer
from ironroot.errors import KeyBindingMismatch, MalformedInput, StaleNonce
from ironroot.hsm._attest import ATTESTATION_LIMITS, open_hsm_statement
from ironroot.hsm._model import KeyType

__all__ = [
    "RELEASE_STATEMENT_CONTENT_TYPE",
    "HsmRelease",
    "ReleaseStatement",
    "open_release_statement",
    "sign_release_statement",
    "verify_release_statement",
]

RELEASE_STATEMENT_CONTENT_TYPE: Final = "application/vnd.ironroot.hsm-release+cbor"
_CLAIMS: Final = frozenset({"hsm", "handle", "type", "recipient", "nonce", "ear", "wrapped", "iat"})
_DIGESTS: Final = ("recipient", "nonce", "ear", "wrapped")


@dataclass(frozen=True, slots=True)
class HsmRelease:
    """What :meth:`ironroot.hsm.Hsm.release` returns: the key wrapped to the TEE, the
    release statement the HSM signed over it, and the released key's type (what the
    statement states; ``None`` from a vault that does not say, whose caller then asks)."""

    wrapped: bytes = field(repr=False)
    statement: bytes = field(repr=False)
    key_type: KeyType | None = None


@dataclass(frozen=True, slots=True)
class ReleaseStatement:
    """A verified release statement (see the module documentation)."""

    hsm_id: bytes
    handle: str
    key_type: KeyType
    recipient: bytes
    nonce: bytes
    ear_digest: bytes
    wrapped_digest: bytes
    issued_at: int
    attestation_key: PublicKey


def sign_release_statement(
    signer: Signer,
    chain: Sequence[bytes],
    *,
    hsm_id: bytes,
    handle: str,
    key_type: KeyType,
    recipient: bytes,
    nonce: bytes,
    ear: bytes,
    wrapped: bytes,
    now: int,
) -> bytes:
    """The statement of one release (``recipient``: the wrapping key's SHA-256 digest)."""
    claims = {
        "hsm": hsm_id,
        "handle": handle,
        "type": key_type.value,
        "recipient": recipient,
        "nonce": nonce,
        "ear": hashlib.sha256(ear).digest(),
        "wrapped": hashlib.sha256(wrapped).digest(),
        "iat": now,
    }
    protected: dict[object, object] = {
        CONTENT_TYPE: RELEASE_STATEMENT_CONTENT_TYPE,
        X5CHAIN: list(chain),
    }
    return sign1(signer, _encode(claims), protected).encode()


def _parse(payload: bytes) -> tuple[object, dict[str, bytes], str, str, int]:
    """The ``hsm`` claim (unchecked), the digests by claim name, handle, type and ``iat``."""
    value = decode_cbor(payload, ATTESTATION_LIMITS)
    if not isinstance(value, dict) or set(value) != _CLAIMS:
        raise MalformedInput("a release statement is a map of exactly the eight claims")
    digests: dict[str, bytes] = {}
    for name in _DIGESTS:
        item = value[name]
        if not isinstance(item, bytes) or len(item) != 32:
            raise MalformedInput(f"release statement claim {name} must be 32 bytes")
        digests[name] = item
    handle, type_name, iat = value["handle"], value["type"], value["iat"]
    if not isinstance(handle, str) or not isinstance(type_name, str):
        raise MalformedInput("release statement claims handle and type must be text")
    if isinstance(iat, bool) or not isinstance(iat, int) or iat < 0:
        raise MalformedInput("release statement claim iat must be a non-negative integer")
    return value["hsm"], digests, handle, type_name, iat


def open_release_statement(
    statement: bytes, *, roots: Sequence[x509.Certificate], now: dt.datetime
) -> ReleaseStatement:
    """Verify that an HSM certified to one of ``roots`` signed ``statement`` and return what
    it states, for an auditor who holds the statement but not the wrapped key (the TEE
    checks it against its release with :func:`verify_release_statement`). The errors of
    :func:`ironroot.hsm.verify_key_attestation` (``ChainNotTrusted``, ``CertificateExpired``,
    ``BadSignature``, ``MalformedInput``)."""
    signed = open_hsm_statement(
        statement,
        content_type=RELEASE_STATEMENT_CONTENT_TYPE,
        what="release statement",
        roots=roots,
        now=now,
    )
    hsm, digests, handle, type_name, iat = _parse(signed.payload)
    hsm_id = signed.check_hsm(hsm, "release statement")
    try:
        key_type = KeyType(type_name)
    except ValueError as exc:
        raise MalformedInput(
            f"release statement claim type {type_name[:40]!r} is no key type"
        ) from exc
    return ReleaseStatement(
        hsm_id=hsm_id,
        handle=handle,
        key_type=key_type,
        recipient=digests["recipient"],
        nonce=digests["nonce"],
        ear_digest=digests["ear"],
        wrapped_digest=digests["wrapped"],
        issued_at=iat,
        attestation_key=signed.attestation_key,
    )


def verify_release_statement(
    statement: bytes,
    *,
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    wrapped: bytes,
    recipient: bytes,
    nonce: bytes,
    key_type: KeyType,
) -> ReleaseStatement:
    """Verify that an HSM certified to one of ``roots`` released ``wrapped`` (a key of
    ``key_type``) to the wrapping key whose digest is ``recipient``, for ``nonce``.

    The chain and signature raise as :func:`ironroot.hsm.verify_key_attestation` does
    (``ChainNotTrusted``, ``CertificateExpired``, ``BadSignature``, ``MalformedInput``); a
    statement of another release raises ``KeyBindingMismatch`` (another wrapping key, or code
    ``release-statement`` for other wrapped bytes or another key type) or ``StaleNonce``
    (code ``nonce-mismatch``).
    """
    opened = open_release_statement(statement, roots=roots, now=now)
    if not hmac.compare_digest(opened.recipient, recipient):
        raise KeyBindingMismatch("the HSM released this key to another wrapping key")
    if not hmac.compare_digest(opened.nonce, nonce):
        raise StaleNonce("the HSM released this key for another nonce", code="nonce-mismatch")
    if not hmac.compare_digest(opened.wrapped_digest, hashlib.sha256(wrapped).digest()):
        raise KeyBindingMismatch(
            "the HSM's release statement is for other wrapped bytes", code="release-statement"
        )
    if opened.key_type is not key_type:
        raise KeyBindingMismatch(
            f"the HSM released a {opened.key_type.value} key, the response says {key_type.value}",
            code="release-statement",
        )
    return opened
