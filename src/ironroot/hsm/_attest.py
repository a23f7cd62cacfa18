"""Key attestation: an HSM-signed statement that a key lives in the HSM with given attributes.

The statement is a COSE_Sign1 (tag 18) signed by the HSM's attestation key, with protected
header ``{1: alg, 3: "application/vnd.ironroot.hsm-key-attestation+cbor", 33: [attestation
certificate, device certificate, ..., issuers]}`` and a deterministic-CBOR payload::

    {
      "hsm":        bstr,            ; the HSM's id (also the attestation cert's serialNumber)
      "handle":     tstr,            ; the key's handle
      "type":       tstr,            ; key type, e.g. "EC-P384", "ML-KEM-768", "AES-256"
      "attributes": {"usages": [+ tstr], "exportable": bool, "label": tstr,
                     "release_policy": tstr / null},
      "local":      bool,            ; generated inside the HSM (false: imported by unwrap,
                                     ; or derived from a key that was)
      "iat":        uint,            ; POSIX seconds
      "pub":        bstr / null,     ; SubjectPublicKeyInfo DER of an asymmetric key
      "cose_key":   COSE_Key / null, ; the public COSE_Key of a signing key
      "nonce":      bstr / null      ; the relying party's nonce, when it gave one
    }

:func:`verify_key_attestation` validates the device chain (``x5chain[1:]``) to a trust anchor
with :func:`ironroot.cose.verify_x5chain`, checks that the device certificate issued the
attestation certificate, verifies the signature with the attestation key, and parses the
claims strictly.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ironroot.cose import CONTENT_TYPE, X5CHAIN, Limits, Sign1, decode_cbor, sign1, verify_x5chain
from ironroot.cose import encode_cbor as _encode
from ironroot.crypto import PublicKey, Signer
from ironroot.errors import (
    ChainNotTrusted,
    MalformedInput,
    StaleNonce,
    UnsupportedAlgorithm,
)
from ironroot.hsm._certs import check_issued_by, load_certificate
from ironroot.hsm._model import KeyAttributes, KeyInfo, KeyType

__all__ = [
    "ATTESTATION_CONTENT_TYPE",
    "AttestationChain",
    "KeyAttestation",
    "sign_key_attestation",
    "verify_attestation_chain",
    "verify_key_attestation",
]

ATTESTATION_CONTENT_TYPE: Final = "application/vnd.ironroot.hsm-key-attestation+cbor"
ATTESTATION_LIMITS: Final = Limits(max_bytes=256 * 1024, max_x5chain=8)
MAX_NONCE: Final = 64
_CLAIMS: Final = frozenset(
    {"hsm", "handle", "type", "attributes", "local", "iat", "pub", "cose_key", "nonce"}
)


@dataclass(frozen=True, slots=True)
class KeyAttestation:
    """A verified key attestation."""

    hsm_id: bytes
    handle: str
    key_type: KeyType
    attributes: KeyAttributes
    generated_inside: bool
    issued_at: int
    public_der: bytes | None = field(repr=False)
    public_key: PublicKey | None
    nonce: bytes | None
    attestation_key: PublicKey
    device_key: PublicKey


def sign_key_attestation(
    signer: Signer,
    chain: Sequence[bytes],
    *,
    hsm_id: bytes,
    info: KeyInfo,
    now: int,
    nonce: bytes | None,
) -> bytes:
    """The attestation statement for ``info`` (see the module docstring)."""
    if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) > MAX_NONCE):
        raise MalformedInput(f"an attestation nonce is at most {MAX_NONCE} bytes")
    claims = {
        "hsm": hsm_id,
        "handle": info.handle,
        "type": info.key_type.value,
        "attributes": info.attributes.to_map(),
        "local": info.generated_inside,
        "iat": now,
        "pub": info.public_der,
        "cose_key": info.public_key.to_cose_key() if info.public_key else None,
        "nonce": nonce,
    }
    protected: dict[object, object] = {
        CONTENT_TYPE: ATTESTATION_CONTENT_TYPE,
        X5CHAIN: list(chain),
    }
    return sign1(signer, _encode(claims), protected).encode()


@dataclass(frozen=True, slots=True)
class SignedByHsm:
    """A COSE_Sign1 whose signature verified with an HSM's attestation key, that key certified
    by a device chain to a trust anchor: its payload, both keys and the attestation
    certificate (which names the HSM)."""

    payload: bytes
    attestation_key: PublicKey
    device_key: PublicKey
    certificate: x509.Certificate

    def check_hsm(self, hsm_id: object, what: str) -> bytes:
        """``hsm_id`` (the payload's ``hsm`` claim), checked to be the HSM the attestation
        certificate names (``MalformedInput``, ``ChainNotTrusted``)."""
        if not isinstance(hsm_id, bytes) or not hsm_id:
            raise MalformedInput(f"{what} claim hsm must be non-empty bytes")
        serials = self.certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        if len(serials) != 1 or serials[0].value != hsm_id.hex():
            raise ChainNotTrusted(f"the {what} certificate is for another HSM")
        return hsm_id


def open_hsm_statement(
    statement: bytes,
    *,
    content_type: str,
    what: str,
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
) -> SignedByHsm:
    """Verify a statement an HSM signed with its attestation key (``content_type``, protected
    ``x5chain`` [attestation certificate, device chain …], attached payload) against device
    trust anchors ``roots`` at ``now``; the errors of :func:`verify_key_attestation`."""
    msg = Sign1.decode(statement, ATTESTATION_LIMITS)
    if msg.protected.get(CONTENT_TYPE) != content_type:
        raise MalformedInput(f"not an HSM {what} (content type)")
    chain = msg.protected.get(X5CHAIN)
    if (
        not isinstance(chain, list)
        or len(chain) < 2
        or not all(isinstance(c, bytes) for c in chain)
    ):
        raise MalformedInput(f"an HSM {what} carries x5chain [attestation cert, device chain]")
    if msg.payload is None:
        raise MalformedInput(f"an HSM {what} has an attached payload")
    # the device key signs the attestation certificate, not this statement: a device CA
    # (keyCertSign alone) may be the chain's leaf
    device_key = verify_x5chain(chain[1:], roots, now, ATTESTATION_LIMITS, leaf_signs=False)
    attestation_cert = load_certificate(chain[0])
    check_issued_by(attestation_cert, load_certificate(chain[1]), now)
    attestation_key = _public_of(attestation_cert)
    msg.verify(attestation_key)
    return SignedByHsm(msg.payload, attestation_key, device_key, attestation_cert)


@dataclass(frozen=True, slots=True)
class AttestationChain:
    """A verified attestation chain: the HSM it names, its attestation key, the device key
    that certified it, and the chain's certificates (DER, the attestation certificate
    first)."""

    hsm_id: bytes
    attestation_key: PublicKey
    device_key: PublicKey
    certificates: tuple[bytes, ...]


def verify_attestation_chain(
    chain: Sequence[bytes], *, roots: Sequence[x509.Certificate], now: dt.datetime
) -> AttestationChain:
    """Verify an HSM's attestation chain (DER, as :attr:`Hsm.attestation_chain` gives it and
    a statement's ``x5chain`` carries it: the attestation certificate, then the device chain)
    against device trust anchors ``roots`` at ``now``, as :func:`verify_key_attestation`
    verifies a statement's: the device chain validates to a root (its leaf may be a device
    key that is no CA), the device key issued the attestation certificate, which names the
    HSM. ``MalformedInput``, ``ChainNotTrusted``, ``CertificateExpired``."""
    if (
        not isinstance(chain, Sequence)
        or len(chain) < 2
        or not all(isinstance(c, bytes) for c in chain)
    ):
        raise MalformedInput("an HSM attestation chain is [attestation cert, device chain …]")
    device_key = verify_x5chain(chain[1:], roots, now, ATTESTATION_LIMITS, leaf_signs=False)
    attestation_cert = load_certificate(chain[0])
    check_issued_by(attestation_cert, load_certificate(chain[1]), now)
    serials = attestation_cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    try:
        hsm_id = bytes.fromhex(str(serials[0].value)) if len(serials) == 1 else b""
    except ValueError:
        hsm_id = b""
    if not hsm_id:
        raise ChainNotTrusted("the attestation certificate names no HSM (serialNumber)")
    return AttestationChain(hsm_id, _public_of(attestation_cert), device_key, tuple(chain))


def _public_of(cert: x509.Certificate) -> PublicKey:
    try:
        return PublicKey.from_der(
            cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
    except UnsupportedAlgorithm as exc:
        raise ChainNotTrusted("the attestation certificate's key is not a signing key") from exc


def _claims(payload: bytes) -> Mapping[str, object]:
    value = decode_cbor(payload, ATTESTATION_LIMITS)
    if not isinstance(value, dict) or set(value) != _CLAIMS:
        raise MalformedInput("key attestation claims must be a map of exactly the nine claims")
    return value


def _optional_bytes(value: object, what: str) -> bytes | None:
    if value is not None and not isinstance(value, bytes):
        raise MalformedInput(f"attestation claim {what} must be bytes or null")
    return value


def verify_key_attestation(
    statement: bytes,
    *,
    roots: Sequence[x509.Certificate],
    now: dt.datetime,
    nonce: bytes | None = None,
) -> KeyAttestation:
    """Verify a key attestation against device trust anchors ``roots`` at ``now``.

    Raises ``MalformedInput`` for bad structure or claims, ``ChainNotTrusted`` /
    ``CertificateExpired`` for the chain, ``BadSignature`` / ``AlgorithmNotAccepted`` for the
    signature, and ``StaleNonce`` when ``nonce`` is given and the statement answers another.
    """
    signed = open_hsm_statement(
        statement,
        content_type=ATTESTATION_CONTENT_TYPE,
        what="key attestation",
        roots=roots,
        now=now,
    )
    claims = _claims(signed.payload)
    hsm_id = signed.check_hsm(claims["hsm"], "attestation")
    handle, type_name, local, iat = (
        claims["handle"],
        claims["type"],
        claims["local"],
        claims["iat"],
    )
    if not isinstance(handle, str) or not isinstance(type_name, str):
        raise MalformedInput("attestation claims handle and type must be text")
    if not isinstance(local, bool):
        raise MalformedInput("attestation claim local must be a bool")
    if isinstance(iat, bool) or not isinstance(iat, int) or iat < 0:
        raise MalformedInput("attestation claim iat must be a non-negative integer")
    key_type = KeyType.parse(type_name)
    attributes = KeyAttributes.from_map(claims["attributes"])
    public_der = _optional_bytes(claims["pub"], "pub")
    claimed_nonce = _optional_bytes(claims["nonce"], "nonce")
    cose_key = claims["cose_key"]
    public_key = None
    if cose_key is not None:
        if not isinstance(cose_key, dict):
            raise MalformedInput("attestation claim cose_key must be a map or null")
        public_key = PublicKey.from_cose_key(cose_key)
        if public_der is None or public_key.to_der() != public_der:
            raise MalformedInput("attestation claims pub and cose_key disagree")
    if key_type.is_secret != (public_der is None):
        raise MalformedInput("attestation claim pub does not fit the key type")
    if (key_type.signature_algorithm is None) != (public_key is None):
        raise MalformedInput("attestation claim cose_key does not fit the key type")
    if nonce is not None and (
        claimed_nonce is None or not hmac.compare_digest(nonce, claimed_nonce)
    ):
        raise StaleNonce("the key attestation answers another nonce")
    return KeyAttestation(
        hsm_id=hsm_id,
        handle=handle,
        key_type=key_type,
        attributes=attributes,
        generated_inside=local,
        issued_at=iat,
        public_der=public_der,
        public_key=public_key,
        nonce=claimed_nonce,
        attestation_key=signed.attestation_key,
        device_key=signed.device_key,
    )
