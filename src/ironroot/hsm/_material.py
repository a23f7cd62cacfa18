"""Key material inside the boundary: generation, the stored form, and the wrapped form.

Every key keeps one *stored form* in a ``bytearray`` (so zeroization can overwrite it) and,
for speed, the ``cryptography`` object built from it:

=================  ===============================================  =========================
key type           stored form                                      wrapped (exported) form
=================  ===============================================  =========================
EC P-256 / P-384   private scalar, big-endian, 32 / 48 bytes        PKCS#8 PrivateKeyInfo DER
Ed25519            RFC 8032 private key, 32 bytes                   PKCS#8 (RFC 8410) DER
ML-DSA-44/65/87    FIPS 204 seed ξ, 32 bytes                        PKCS#8 DER (seed form)
ML-KEM-768/1024    FIPS 203 seed d ‖ z, 64 bytes                    PKCS#8 DER (seed form)
RSA-3072           PKCS#8 PrivateKeyInfo DER                        PKCS#8 DER
AES-256            32 bytes                                         the 32 bytes
HMAC-SHA-384       48 bytes                                         the 48 bytes
=================  ===============================================  =========================

The wrapped form is what PKCS#11 CKM_RSA_AES_KEY_WRAP and Azure Key Vault's BYOK wrap: the
raw value of a secret key, the PKCS#8 PrivateKeyInfo of a private key.
"""

from __future__ import annotations

import secrets
from typing import Final, TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ironroot.crypto import PrivateKey, PublicKey
from ironroot.errors import MalformedInput, UnsupportedAlgorithm
from ironroot.hsm._model import KeyType

__all__ = [
    "KemPrivate",
    "KemPublic",
    "KeyObject",
    "generate_material",
    "load_material",
    "material_from_wrapped",
    "public_der",
    "signing_public",
    "wrapped_form",
]

KemPrivate: TypeAlias = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey
KemPublic: TypeAlias = mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey
KeyObject: TypeAlias = PrivateKey | KemPrivate | rsa.RSAPrivateKey | AESGCM | None

_CURVES: Final = {KeyType.EC_P256: (ec.SECP256R1(), 32), KeyType.EC_P384: (ec.SECP384R1(), 48)}
_MldsaPrivate: TypeAlias = (
    mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
)
_MLDSA: Final[dict[KeyType, type[_MldsaPrivate]]] = {
    KeyType.ML_DSA_44: mldsa.MLDSA44PrivateKey,
    KeyType.ML_DSA_65: mldsa.MLDSA65PrivateKey,
    KeyType.ML_DSA_87: mldsa.MLDSA87PrivateKey,
}
_MLKEM: Final[dict[KeyType, type[KemPrivate]]] = {
    KeyType.ML_KEM_768: mlkem.MLKEM768PrivateKey,
    KeyType.ML_KEM_1024: mlkem.MLKEM1024PrivateKey,
}
_SECRET_SIZE: Final = {KeyType.AES_256: 32, KeyType.HMAC_SHA384: 48}
_RSA_BITS: Final = 3072
_RSA_EXPONENT: Final = 65537


def generate_material(key_type: KeyType) -> tuple[bytearray, KeyObject]:
    """A fresh key of ``key_type``: its stored form and its library object."""
    if key_type in _CURVES:
        curve, size = _CURVES[key_type]
        ec_key = ec.generate_private_key(curve)
        scalar = ec_key.private_numbers().private_value.to_bytes(size, "big")
        alg = key_type.signature_algorithm
        return bytearray(scalar), PrivateKey(ec_key, alg)
    if key_type is KeyType.ED25519:
        ed_key = ed25519.Ed25519PrivateKey.generate()
        return bytearray(ed_key.private_bytes_raw()), PrivateKey(ed_key)
    if key_type in _MLDSA:
        seed = bytearray(secrets.token_bytes(32))
        return seed, load_material(key_type, seed)
    if key_type in _MLKEM:
        seed = bytearray(secrets.token_bytes(64))
        return seed, load_material(key_type, seed)
    if key_type is KeyType.RSA_3072:
        rsa_key = rsa.generate_private_key(_RSA_EXPONENT, _RSA_BITS)
        der = rsa_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return bytearray(der), rsa_key
    secret = bytearray(secrets.token_bytes(_SECRET_SIZE[key_type]))
    return secret, load_material(key_type, secret)


def load_material(key_type: KeyType, stored: bytearray | bytes) -> KeyObject:
    """The library object for a stored form; ``MalformedInput`` if it does not fit the type."""
    data = bytes(stored)
    try:
        if key_type in _CURVES:
            curve, size = _CURVES[key_type]
            if len(data) != size:
                raise MalformedInput(f"a {key_type.value} scalar is {size} bytes")
            ec_key = ec.derive_private_key(int.from_bytes(data, "big"), curve)
            return PrivateKey(ec_key, key_type.signature_algorithm)
        if key_type is KeyType.ED25519:
            return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(data))
        if key_type in _MLDSA:
            return PrivateKey(_MLDSA[key_type].from_seed_bytes(data), key_type.signature_algorithm)
        if key_type in _MLKEM:
            return _MLKEM[key_type].from_seed_bytes(data)
        if key_type is KeyType.RSA_3072:
            # The stored form was validated when it entered (generated here, or checked by
            # material_from_wrapped) and comes back sealed, so the slow check is skipped.
            rsa_key = serialization.load_der_private_key(
                data, password=None, unsafe_skip_rsa_key_validation=True
            )
            if not isinstance(rsa_key, rsa.RSAPrivateKey) or rsa_key.key_size != _RSA_BITS:
                raise MalformedInput("not an RSA-3072 private key")
            return rsa_key
        if len(data) != _SECRET_SIZE[key_type]:
            raise MalformedInput(f"a {key_type.value} key is {_SECRET_SIZE[key_type]} bytes")
        return AESGCM(data) if key_type is KeyType.AES_256 else None
    except (ValueError, TypeError) as exc:
        raise MalformedInput(f"invalid {key_type.value} key material") from exc
    except _LibraryUnsupported as exc:
        raise UnsupportedAlgorithm(f"unsupported {key_type.value} key material") from exc


def public_der(obj: KeyObject) -> bytes | None:
    """SubjectPublicKeyInfo DER of an asymmetric key; ``None`` for a secret key."""
    if isinstance(obj, PrivateKey):
        return obj.public_key.to_der()
    if obj is None or isinstance(obj, AESGCM):
        return None
    return obj.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def signing_public(obj: KeyObject) -> PublicKey | None:
    return obj.public_key if isinstance(obj, PrivateKey) else None


def wrapped_form(key_type: KeyType, stored: bytearray, obj: KeyObject) -> bytearray:
    """The bytes a wrap mechanism encrypts (see the table in the module docstring)."""
    if key_type.is_secret or key_type is KeyType.RSA_3072:
        return bytearray(stored)
    raw = obj.raw if isinstance(obj, PrivateKey) else obj
    if raw is None or isinstance(raw, AESGCM | rsa.RSAPrivateKey):  # unreachable by type
        raise UnsupportedAlgorithm(f"{key_type.value} has no PKCS#8 form")
    return bytearray(
        raw.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _seed_of(key: _MldsaPrivate | KemPrivate) -> bytearray:
    try:
        return bytearray(key.private_bytes_raw())
    except ValueError as exc:  # an expanded-only key: no seed to keep
        raise MalformedInput("an unwrapped ML-DSA/ML-KEM key must be in seed form") from exc


def material_from_wrapped(key_type: KeyType, plaintext: bytes) -> bytearray:
    """The stored form of an unwrapped key; ``MalformedInput`` if it is not a ``key_type``."""
    if key_type.is_secret:
        if len(plaintext) != _SECRET_SIZE[key_type]:
            raise MalformedInput(
                f"an unwrapped {key_type.value} key must be {_SECRET_SIZE[key_type]} bytes"
            )
        return bytearray(plaintext)
    try:
        key = serialization.load_der_private_key(plaintext, password=None)
    except (ValueError, TypeError) as exc:
        raise MalformedInput("the unwrapped key is not a PKCS#8 private key") from exc
    except _LibraryUnsupported as exc:
        raise UnsupportedAlgorithm("the unwrapped key is of an unsupported type") from exc
    if key_type in _CURVES:
        curve, size = _CURVES[key_type]
        if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == curve.name:
            return bytearray(key.private_numbers().private_value.to_bytes(size, "big"))
    elif key_type is KeyType.ED25519:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return bytearray(key.private_bytes_raw())
    elif key_type in _MLDSA or key_type in _MLKEM:
        expected: type[_MldsaPrivate | KemPrivate] = _MLDSA.get(key_type) or _MLKEM[key_type]
        if isinstance(key, expected):
            return _seed_of(key)
    elif isinstance(key, rsa.RSAPrivateKey) and key.key_size == _RSA_BITS:
        return bytearray(plaintext)
    raise MalformedInput(f"the unwrapped key is not a {key_type.value} key")


def check_wrapped_material(key_type: KeyType, plaintext: bytes) -> None:
    """``MalformedInput`` (or ``UnsupportedAlgorithm``) unless ``plaintext`` — what a wrap
    mechanism carried — is a ``key_type`` key in its wrapped form (module docs' table): for a
    receiver outside the boundary, such as a TEE, that must not take one type for another."""
    stored = material_from_wrapped(key_type, plaintext)
    stored[:] = bytes(len(stored))
