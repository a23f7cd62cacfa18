"""The TEE's wrapping key, and how attestation evidence binds it (with the key service's nonce).

**Canonical encoding.** A wrapping key is an ML-KEM-768, ML-KEM-1024 or RSA (3072 or 4096
bit, exponent 65537) public key. Whatever form it arrives in (SubjectPublicKeyInfo DER or PEM;
an RSA JWK ``{"kty": "RSA", "n", "e"}``), its canonical encoding is the DER
SubjectPublicKeyInfo as re-encoded by ``cryptography`` (RFC 5280; for ML-KEM the algorithm
OID 2.16.840.1.101.3.4.4.2 / .3 with absent parameters, and the 1184- or 1568-byte
encapsulation key as the BIT STRING, per the LAMPS ML-KEM certificate profile).

**Report data** (the 64-byte nonce / user-data field a TEE's evidence signs: SEV-SNP
``REPORT_DATA``, TDX ``REPORTDATA``, the Ironroot RoT quote's ``nonce``)::

    report_data = nonce (32 bytes, issued by the key service) ‖ SHA-256(canonical SPKI DER)

The first half makes the evidence fresh for one release (the key service's single-use
challenge, as the Trustee KBS issues one before it accepts evidence); the second half binds the
key the secret will be wrapped to. Two halves rather than one hash of both so a refusal can say
which one is wrong: ``StaleNonce`` (code ``nonce-mismatch``) or ``KeyBindingMismatch``.

**A confidential VM and its GPUs** (one composite EAR: submodules ``cvm``, ``gpu0`` …
``gpu{n-1}``) answer the composite rule of :mod:`ironroot.ear._composite` under the
challenge ``N = nonce ‖ SHA-256(canonical SPKI DER)`` (the 64 bytes above, which the EAR
carries as ``eat_nonce``): the CVM's report data is ``cvm_nonce(N, n)`` (exact, or zero-padded
to 64 bytes) and GPU ``i``'s is ``gpu_nonce(N, i)``. So the CVM's signed report commits to the
release nonce, the wrapping key, how many GPUs it brings and each GPU's nonce, and a GPU
report from an earlier release or another VM's session answers another nonce.
:func:`check_composite_binding` checks it: ``StaleNonce`` / ``KeyBindingMismatch`` for an
``eat_nonce`` with another nonce or key, ``StaleNonce`` (code ``nonce-mismatch``) for a CVM
or a GPU that answers another challenge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, rsa
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from ironroot._json import unique_members
from ironroot.crypto import check_wrapping_key
from ironroot.ear import answers_composite, gpu_nonce
from ironroot.errors import (
    KeyBindingMismatch,
    LimitExceeded,
    MalformedInput,
    StaleNonce,
    UnsupportedAlgorithm,
)

__all__ = [
    "NONCE_SIZE",
    "REPORT_DATA_SIZE",
    "WRAPPING_KEY_KINDS",
    "WrappingKey",
    "bind_report_data",
    "check_binding",
    "check_composite_binding",
]

NONCE_SIZE: Final = 32
REPORT_DATA_SIZE: Final = 64
WRAPPING_KEY_KINDS: Final = ("ML-KEM-768", "ML-KEM-1024", "RSA-3072", "RSA-4096")
_MAX_KEY: Final = 16 * 1024
_MAX_JWK_NUMBER: Final = 1024  # base64url characters: a 4096-bit n is 683
_RSA_BITS: Final = frozenset((3072, 4096))
_JWK_PRIVATE: Final = frozenset(("d", "p", "q", "dp", "dq", "qi", "oth"))  # RFC 7518 §6.3.2
_JWK_WRAP_OPS: Final = frozenset(("wrapKey", "encrypt"))  # RFC 7517 §4.3
# RFC 7517 §4.4 / RFC 7518 §4.1: the RSA key-encryption algorithms a JWK's alg may name
_JWK_WRAP_ALGS: Final = frozenset(
    ("RSA-OAEP-256", "RSA-OAEP", "RSA1_5", "RSA-OAEP-384", "RSA-OAEP-512")
)

PublicWrappingKey = mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey | rsa.RSAPublicKey


def _kind(key: object) -> str:
    """The kind of a wrapping key (``UnsupportedAlgorithm`` for any other key, or an RSA key
    of another size or exponent); whether it is degenerate is asked apart, once."""
    if isinstance(key, mlkem.MLKEM768PublicKey):
        return "ML-KEM-768"
    if isinstance(key, mlkem.MLKEM1024PublicKey):
        return "ML-KEM-1024"
    if not isinstance(key, rsa.RSAPublicKey):
        raise UnsupportedAlgorithm("a wrapping key is ML-KEM-768, ML-KEM-1024 or RSA")
    if key.key_size not in _RSA_BITS or key.public_numbers().e != 65537:
        raise UnsupportedAlgorithm("an RSA wrapping key is 3072 or 4096 bits with e = 65537")
    return f"RSA-{key.key_size}"


def _spki(key: PublicWrappingKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _from_jwk(jwk: Mapping[str, Any]) -> PublicWrappingKey:
    if jwk.get("kty") != "RSA":
        raise UnsupportedAlgorithm("a JWK wrapping key is an RSA key (kty RSA)")
    if not _JWK_PRIVATE.isdisjoint(jwk):  # any one of them gives the private key away
        raise MalformedInput("the wrapping key JWK holds private parameters")
    # bounded before they are read: a JWK map (a request's wrapping_key) had no bound but
    # the request's, and reading a 300 KB n took a quarter of a second
    if any(isinstance(jwk.get(m), str) and len(jwk[m]) > _MAX_JWK_NUMBER for m in ("n", "e")):
        raise LimitExceeded(
            f"a wrapping key JWK's n and e are at most {_MAX_JWK_NUMBER} characters each"
        )
    # RFC 7517 4.2/4.3: a key its owner declared for other uses (signatures) is not one to
    # encrypt a released key to; a TEE's encryption key says "enc" or "encrypt"/"wrapKey".
    if "use" in jwk and jwk["use"] != "enc":
        raise MalformedInput(f"the wrapping key JWK is for use {str(jwk['use'])[:40]!r}, not 'enc'")
    ops = jwk.get("key_ops")
    if ops is not None and (
        not isinstance(ops, list)
        or not _JWK_WRAP_OPS.intersection(o for o in ops if isinstance(o, str))
    ):
        raise MalformedInput("the wrapping key JWK's key_ops allow neither wrapKey nor encrypt")
    # RFC 7517 4.4: alg names the one algorithm the key is for; RS256 or PS256 declares a
    # signing key, no more one to wrap to than one of use "sig"
    alg = jwk.get("alg", "RSA-OAEP-256")
    if not isinstance(alg, str) or alg not in _JWK_WRAP_ALGS:
        raise MalformedInput(
            f"the wrapping key JWK is for alg {str(alg)[:40]!r}, not an RSA "
            "key-encryption algorithm"
        )
    try:
        key = RSAKey.import_key(dict(jwk)).raw_value
    except (JoseError, ValueError, TypeError) as exc:
        raise MalformedInput(f"not an RSA public JWK: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise MalformedInput("not an RSA public JWK")
    return key


def _load(value: bytes | str | Mapping[str, Any]) -> PublicWrappingKey:
    if isinstance(value, Mapping):
        return _from_jwk(value)
    data = value.encode("utf-8") if isinstance(value, str) else value
    if not isinstance(data, bytes) or not data:
        raise MalformedInput("a wrapping key is SubjectPublicKeyInfo (DER or PEM) or a JWK")
    if len(data) > _MAX_KEY:
        raise LimitExceeded(f"a wrapping key is at most {_MAX_KEY} bytes")
    stripped = data.strip()
    try:
        if stripped.startswith(b"{"):
            try:
                jwk = json.loads(stripped, object_pairs_hook=unique_members)  # each name once
            except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
                raise MalformedInput("the wrapping key is not a JSON JWK") from exc
            if not isinstance(jwk, dict):
                raise MalformedInput("a JWK is a JSON object")
            return _from_jwk(jwk)
        if stripped.startswith(b"-----"):
            key = serialization.load_pem_public_key(stripped)
        else:
            key = serialization.load_der_public_key(data)
    except ValueError as exc:
        raise MalformedInput("the wrapping key is not a SubjectPublicKeyInfo") from exc
    except _LibraryUnsupported as exc:
        raise UnsupportedAlgorithm("unsupported wrapping key algorithm") from exc
    if not isinstance(key, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey | rsa.RSAPublicKey):
        raise UnsupportedAlgorithm("a wrapping key is ML-KEM-768, ML-KEM-1024 or RSA")
    return key


@dataclass(frozen=True, slots=True)
class WrappingKey:
    """A TEE's public wrapping key in its canonical form (``spki``: DER SubjectPublicKeyInfo),
    checked when it is made, however it is made (:meth:`parse`, or the constructor):
    ``UnsupportedAlgorithm`` for a key of another kind, ``MalformedInput`` code
    ``degenerate-wrapping-key`` for a degenerate one (``ironroot.crypto.check_wrapping_key``),
    ``MalformedInput`` for an ``spki`` or ``kind`` that is not ``key``'s. So a release
    checks its key once, where the key enters, and every later step (the key service, the
    HSM, the wrap) trusts a ``WrappingKey`` it is given."""

    spki: bytes = field(repr=False)
    kind: str
    key: PublicWrappingKey = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        kind = _kind(self.key)
        check_wrapping_key(self.key)  # the one check of this key (class docs)
        if self.kind != kind:
            raise MalformedInput(f"the wrapping key is {kind}, not {str(self.kind)[:40]!r}")
        if not isinstance(self.spki, bytes) or self.spki != _spki(self.key):
            raise MalformedInput(
                "the wrapping key's spki is not the canonical SubjectPublicKeyInfo of its key"
            )

    @classmethod
    def parse(cls, value: bytes | str | Mapping[str, Any]) -> WrappingKey:
        """From SPKI DER or PEM, or an RSA JWK (mapping or JSON text)."""
        key = _load(value)
        return cls(spki=_spki(key), kind=_kind(key), key=key)

    @property
    def digest(self) -> bytes:
        """SHA-256 of the canonical SPKI DER: the second half of the report data."""
        return hashlib.sha256(self.spki).digest()

    def to_pem(self) -> str:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def _nonce(nonce: object) -> bytes:
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise StaleNonce(
            f"a key release nonce is {NONCE_SIZE} bytes from POST /keys/challenge",
            code="nonce-unknown",
        )
    return nonce


def bind_report_data(nonce: bytes, key: WrappingKey) -> bytes:
    """The 64 bytes of report data that bind ``nonce`` and ``key`` (module docs)."""
    return _nonce(nonce) + key.digest


def check_binding(report_data: bytes, *, nonce: bytes, key: WrappingKey) -> None:
    """Raise unless ``report_data`` is :func:`bind_report_data` of ``nonce`` and ``key``.

    ``StaleNonce`` (code ``nonce-mismatch``) when it answers another nonce (or is not 64
    bytes), ``KeyBindingMismatch`` when it binds another wrapping key.
    """
    _nonce(nonce)
    if not isinstance(report_data, bytes) or len(report_data) != REPORT_DATA_SIZE:
        raise StaleNonce(
            f"the evidence's report data is not {REPORT_DATA_SIZE} bytes of nonce ‖ key digest",
            code="nonce-mismatch",
        )
    if not hmac.compare_digest(report_data[:NONCE_SIZE], nonce):
        raise StaleNonce("the evidence answers another nonce", code="nonce-mismatch")
    if not hmac.compare_digest(report_data[NONCE_SIZE:], key.digest):
        raise KeyBindingMismatch("the evidence binds another wrapping key than the request's")


def check_composite_binding(
    challenge: bytes | None,
    cvm_report_data: bytes | None,
    gpu_report_data: Sequence[bytes | None],
    *,
    nonce: bytes,
    key: WrappingKey,
) -> None:
    """Raise unless a composite answers the release of ``nonce`` to ``key`` (module docs).

    ``challenge`` is the EAR's ``eat_nonce``, ``cvm_report_data`` the CVM's report data and
    ``gpu_report_data`` each GPU's, in order (``None`` for a GPU whose evidence did not
    verify at all: its submodule is not affirming, which the release refuses on its own).
    """
    if challenge is None:
        raise StaleNonce(
            "a composite EAR carries its challenge as eat_nonce; this one has none",
            code="nonce-mismatch",
        )
    check_binding(challenge, nonce=nonce, key=key)
    if cvm_report_data is None or not answers_composite(
        cvm_report_data, challenge, len(gpu_report_data)
    ):
        raise StaleNonce(
            f"the CVM's report data does not commit to this release and its "
            f"{len(gpu_report_data)} GPU nonces",
            code="nonce-mismatch",
        )
    for index, data in enumerate(gpu_report_data):
        if data is not None and not hmac.compare_digest(data, gpu_nonce(challenge, index)):
            raise StaleNonce(
                f"gpu{index}'s evidence answers another challenge (an earlier release or "
                "another VM's session)",
                code="nonce-mismatch",
            )
