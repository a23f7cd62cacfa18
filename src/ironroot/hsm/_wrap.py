"""Key-wrapping formats: ML-KEM + AES key wrap, RSA-AES-KEY-WRAP, and AES key wrap.

Pure functions over ``cryptography`` key objects and bytes, so both the HSM and the party at
the other end (a TEE receiving a released key, a test, another HSM) use the same code. The
wrapped *target* is the key's wrapped form (``_material``: raw value of a secret key, PKCS#8
PrivateKeyInfo DER of a private key). AES key wrap with padding is RFC 5649 (the library's
``aes_key_wrap_with_padding``); every KEK is AES-256.

**ML-KEM + AES-KWP** (Ironroot's format, version 1)::

    wrapped = header ‖ kem_ciphertext ‖ AES-KWP(KEK, target)
    header  = "IRKW" ‖ 0x01 (version) ‖ kem (0x01 ML-KEM-768, 0x02 ML-KEM-1024)
              ‖ key type code (1 byte, table below) ‖ 0x00              8 bytes
    kem_ciphertext                                                     1088 or 1568 bytes
    KEK = HKDF-SHA-384(IKM = ML-KEM shared secret, salt = empty,
                       info = "ironroot/hsm/kem-wrap/v1" ‖ header ‖ SHA-384(ek), L = 32)

where ``ek`` is the recipient's encapsulation key (FIPS 203 raw form), so the KEK is bound to
the recipient and to the header (version, KEM and key type cannot be swapped). Key type codes:
EC-P256 1, EC-P384 2, Ed25519 3, ML-DSA-44 4, ML-DSA-65 5, ML-DSA-87 6, ML-KEM-768 7,
ML-KEM-1024 8, RSA-3072 9, AES-256 10, HMAC-SHA-384 11.

**RSA-AES-KEY-WRAP** (PKCS#11 v2.40 CKM_RSA_AES_KEY_WRAP, as Azure Key Vault's BYOK
"RSA-AES-KEY-WRAP-256" / CKM_RSA_AES_KEY_WRAP uses it)::

    wrapped = RSA-OAEP(SHA-256, MGF1-SHA-256, no label)(K) ‖ AES-KWP(K, target)

with ``K`` a fresh AES-256 key; the first part is as long as the RSA modulus (2048 to 4096
bits). The key type is not in the blob: the importer names it.

**AES-KWP** with an AES-256 wrapping key: ``AES-KWP(wrapping key, target)``.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, padding, rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ironroot.crypto import check_wrapping_key
from ironroot.errors import LimitExceeded, MalformedInput, UnsupportedAlgorithm, VerificationFailed
from ironroot.hsm._material import KemPrivate, KemPublic
from ironroot.hsm._model import KeyType

__all__ = [
    "KEY_TYPE_CODES",
    "aes_kwp_unwrap",
    "aes_kwp_wrap",
    "load_recipient",
    "unwrap_key_kem",
    "unwrap_key_rsa_aes",
    "wrap_key_kem",
    "wrap_key_rsa_aes",
]

MAGIC: Final = b"IRKW"
VERSION: Final = 1
HEADER_SIZE: Final = 8
KEM_INFO: Final = b"ironroot/hsm/kem-wrap/v1"
MAX_WRAPPED: Final = 16 * 1024
_KEM_CT_SIZE: Final = {1: 1088, 2: 1568}
_KEM_EK_SIZE: Final = {1184: 1, 1568: 2}
KEY_TYPE_CODES: Final = {
    KeyType.EC_P256: 1,
    KeyType.EC_P384: 2,
    KeyType.ED25519: 3,
    KeyType.ML_DSA_44: 4,
    KeyType.ML_DSA_65: 5,
    KeyType.ML_DSA_87: 6,
    KeyType.ML_KEM_768: 7,
    KeyType.ML_KEM_1024: 8,
    KeyType.RSA_3072: 9,
    KeyType.AES_256: 10,
    KeyType.HMAC_SHA384: 11,
}
_KEY_TYPES_BY_CODE: Final = {code: kt for kt, code in KEY_TYPE_CODES.items()}
_RSA_MIN_BITS: Final = 2048
_RSA_MAX_BITS: Final = 4096


def _oaep() -> padding.OAEP:
    return padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def _kek(shared: bytes, header: bytes, ek: bytes) -> bytes:
    info = KEM_INFO + header + hashlib.sha384(ek).digest()
    return HKDF(hashes.SHA384(), 32, None, info).derive(shared)


def _kem_code(ek: bytes) -> int:
    code = _KEM_EK_SIZE.get(len(ek))
    if code is None:  # unreachable for library keys
        raise UnsupportedAlgorithm("not an ML-KEM-768 or ML-KEM-1024 key")
    return code


def wrap_key_kem(recipient: KemPublic, key_type: KeyType, target: bytes | bytearray) -> bytes:
    """Wrap ``target`` (a key's wrapped form) to an ML-KEM public key (format above)."""
    ek = recipient.public_bytes_raw()
    header = MAGIC + bytes((VERSION, _kem_code(ek), KEY_TYPE_CODES[key_type], 0))
    shared, ciphertext = recipient.encapsulate()
    kek = _kek(shared, header, ek)
    return header + ciphertext + keywrap.aes_key_wrap_with_padding(kek, bytes(target))


def unwrap_key_kem(private: KemPrivate, wrapped: bytes) -> tuple[KeyType, bytearray]:
    """Unwrap the ML-KEM format: the key type and the target bytes.

    ``MalformedInput`` for a blob that is not this format (or for another KEM);
    ``VerificationFailed`` when the key wrap's integrity check fails (wrong recipient or
    altered bytes).
    """
    if not isinstance(wrapped, bytes | bytearray):
        raise MalformedInput("a wrapped key must be bytes")
    if len(wrapped) > MAX_WRAPPED:
        raise LimitExceeded(f"a wrapped key is at most {MAX_WRAPPED} bytes")
    header = bytes(wrapped[:HEADER_SIZE])
    if len(header) != HEADER_SIZE or header[:4] != MAGIC:
        raise MalformedInput("not an ML-KEM wrapped key (no IRKW header)")
    version, kem, code, reserved = header[4:]
    if version != VERSION or reserved != 0:
        raise MalformedInput(f"unsupported ML-KEM wrap version {version}")
    key_type = _KEY_TYPES_BY_CODE.get(code)
    if key_type is None:
        raise MalformedInput(f"unknown key type code {code}")
    ek = private.public_key().public_bytes_raw()
    if kem != _kem_code(ek):
        raise MalformedInput("the wrapped key is for another ML-KEM parameter set")
    end = HEADER_SIZE + _KEM_CT_SIZE[kem]
    ciphertext = bytes(wrapped[HEADER_SIZE:end])
    body = bytes(wrapped[end:])
    if len(ciphertext) != _KEM_CT_SIZE[kem] or len(body) < 16 or len(body) % 8:
        raise MalformedInput("the ML-KEM wrapped key is truncated")
    try:
        shared = private.decapsulate(ciphertext)
    except ValueError as exc:
        raise MalformedInput("invalid ML-KEM ciphertext") from exc
    try:
        target = keywrap.aes_key_unwrap_with_padding(_kek(shared, header, ek), body)
    except keywrap.InvalidUnwrap as exc:
        raise VerificationFailed("the wrapped key does not unwrap with this key") from exc
    return key_type, bytearray(target)


def wrap_key_rsa_aes(recipient: rsa.RSAPublicKey, target: bytes | bytearray) -> bytes:
    """CKM_RSA_AES_KEY_WRAP: RSA-OAEP-SHA-256 of a fresh AES-256 key, then AES-KWP."""
    if not _RSA_MIN_BITS <= recipient.key_size <= _RSA_MAX_BITS:
        raise UnsupportedAlgorithm("an RSA wrapping key has 2048 to 4096 bits")
    ephemeral = bytearray(secrets.token_bytes(32))
    try:
        head = recipient.encrypt(bytes(ephemeral), _oaep())
        return head + keywrap.aes_key_wrap_with_padding(bytes(ephemeral), bytes(target))
    finally:
        ephemeral[:] = bytes(len(ephemeral))


def unwrap_key_rsa_aes(private: rsa.RSAPrivateKey, wrapped: bytes) -> bytearray:
    """Undo :func:`wrap_key_rsa_aes`; ``MalformedInput`` for a bad layout, ``VerificationFailed``
    when OAEP or the key wrap integrity check fails."""
    if not isinstance(wrapped, bytes | bytearray):
        raise MalformedInput("a wrapped key must be bytes")
    if len(wrapped) > MAX_WRAPPED:
        raise LimitExceeded(f"a wrapped key is at most {MAX_WRAPPED} bytes")
    size = (private.key_size + 7) // 8
    head, body = bytes(wrapped[:size]), bytes(wrapped[size:])
    if len(head) != size or len(body) < 16 or len(body) % 8:
        raise MalformedInput("the RSA-AES wrapped key has the wrong length")
    try:
        ephemeral = bytearray(private.decrypt(head, _oaep()))
    except ValueError as exc:
        raise VerificationFailed("the wrapped key does not unwrap with this key") from exc
    try:
        if len(ephemeral) != 32:
            raise VerificationFailed("the RSA-AES wrapped key's AES key is not 256 bits")
        return bytearray(keywrap.aes_key_unwrap_with_padding(bytes(ephemeral), body))
    except keywrap.InvalidUnwrap as exc:
        raise VerificationFailed("the wrapped key does not unwrap with this key") from exc
    finally:
        ephemeral[:] = bytes(len(ephemeral))


def aes_kwp_wrap(kek: bytes | bytearray, target: bytes | bytearray) -> bytes:
    """RFC 5649 AES key wrap with padding under an AES-256 key."""
    return keywrap.aes_key_wrap_with_padding(bytes(kek), bytes(target))


def aes_kwp_unwrap(kek: bytes | bytearray, wrapped: bytes) -> bytearray:
    if not isinstance(wrapped, bytes | bytearray):
        raise MalformedInput("a wrapped key must be bytes")
    if len(wrapped) > MAX_WRAPPED:
        raise LimitExceeded(f"a wrapped key is at most {MAX_WRAPPED} bytes")
    if len(wrapped) < 16 or len(wrapped) % 8:
        raise MalformedInput("an AES-KWP wrapped key is a multiple of 8 bytes, at least 16")
    try:
        return bytearray(keywrap.aes_key_unwrap_with_padding(bytes(kek), bytes(wrapped)))
    except keywrap.InvalidUnwrap as exc:
        raise VerificationFailed("the wrapped key does not unwrap with this key") from exc


def load_recipient(der: bytes) -> KemPublic | rsa.RSAPublicKey:
    """An outside wrapping key from its SubjectPublicKeyInfo (DER or PEM): ML-KEM or RSA."""
    if not isinstance(der, bytes) or not der or len(der) > MAX_WRAPPED:
        raise MalformedInput("a recipient public key is SubjectPublicKeyInfo DER or PEM")
    try:
        if der.lstrip().startswith(b"-----"):
            key = serialization.load_pem_public_key(der)
        else:
            key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise MalformedInput("not a SubjectPublicKeyInfo") from exc
    except _LibraryUnsupported as exc:
        raise UnsupportedAlgorithm("unsupported recipient public key") from exc
    if isinstance(key, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey | rsa.RSAPublicKey):
        check_wrapping_key(key)  # MalformedInput degenerate-wrapping-key
        return key
    raise UnsupportedAlgorithm("a recipient (wrapping) key is ML-KEM or RSA")
