"""Vendor and owner keys as the manifest stores them, their hashes, and the descriptor hash.

Stored forms (what the key hashes cover):

* ECC P-384: ``x ‖ y``, 48 bytes each, big-endian (96 bytes);
* ML-DSA-87: the FIPS 204 encoded public key (2,592 bytes);
* LMS: the RFC 8554 LMS public key ``lms type ‖ lmots type ‖ I ‖ T[1]`` (48 bytes for N24),
  i.e. the HSS public key without its leading level count, which is always 1 here.

A key hash is SHA-384 of the stored form. The vendor key descriptor hash (the value fused into
the device) is SHA-384 of both descriptors exactly as laid out in the preamble, unused slots
included, as in Caliptra. The owner key hash is SHA-384 of the owner key region as laid out
(ECC key ‖ PQC key slot).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from ironroot.crypto import (
    LMS_PARAMETER_SETS,
    Algorithm,
    LmsPublicKey,
    PublicKey,
    Verifier,
)
from ironroot.errors import MalformedFirmware, MalformedInput, UnsupportedAlgorithm
from ironroot.firmware._manifest import (
    ECC_KEY_SIZE,
    KEY_DESCRIPTOR_VERSION,
    LMS_KEY_SIZE,
    MAX_ECC_KEYS,
    MAX_PQC_KEYS,
    MLDSA87_KEY_SIZE,
    KeyDescriptor,
    PqcKeyType,
)

__all__ = [
    "ecc_key_bytes",
    "ecc_verifier",
    "key_descriptor_hash",
    "key_hash",
    "make_descriptors",
    "pqc_key_bytes",
    "pqc_verifier",
]

_COSE_EC2 = 2
_COSE_P384 = 2


def key_hash(stored: bytes) -> bytes:
    """SHA-384 of a key's stored form."""
    return hashlib.sha384(stored).digest()


def ecc_key_bytes(key: Verifier) -> bytes:
    """The stored form (``x ‖ y``) of an ECDSA P-384 public key."""
    if not isinstance(key, PublicKey) or key.algorithm is not Algorithm.ES384:
        raise UnsupportedAlgorithm("vendor and owner ECC keys must be ECDSA P-384 (ES384)")
    cose = key.to_cose_key(include_alg=False)
    x, y = cose[-2], cose[-3]
    assert isinstance(x, bytes)
    assert isinstance(y, bytes)
    return x + y


def pqc_key_bytes(key: Verifier, key_type: PqcKeyType) -> bytes:
    """The stored form of an ML-DSA-87 or LMS public key, checked against ``key_type``."""
    if key_type is PqcKeyType.MLDSA:
        if not isinstance(key, PublicKey) or key.algorithm is not Algorithm.ML_DSA_87:
            raise UnsupportedAlgorithm("this product's PQC keys are ML-DSA-87")
        return key.raw_bytes()
    if not isinstance(key, LmsPublicKey):
        raise UnsupportedAlgorithm("this product's PQC keys are LMS")
    params = key.parameter_set
    if key.levels != 1 or params is None or params.n != 24:
        raise UnsupportedAlgorithm("LMS firmware keys are single-tree SHA256-N24 keys")
    return key.raw_bytes()[4:]


@functools.lru_cache(maxsize=64)
def ecc_verifier(stored: bytes) -> PublicKey:
    """An ES384 verifier for a stored ``x ‖ y`` key; ``MalformedFirmware`` if not on P-384.

    Cached (keys are immutable values): loading a P-384 point validates it, which costs
    about as much as hashing the whole header, and a device verifies with the same few keys.
    """
    if len(stored) != ECC_KEY_SIZE:
        raise MalformedFirmware("ECC key has the wrong size")
    half = ECC_KEY_SIZE // 2
    try:
        return PublicKey.from_cose_key(
            {1: _COSE_EC2, -1: _COSE_P384, -2: stored[:half], -3: stored[half:]}
        )
    except (MalformedInput, UnsupportedAlgorithm) as exc:
        raise MalformedFirmware(f"ECC key is not a P-384 point: {exc.detail}") from exc


@functools.lru_cache(maxsize=64)
def pqc_verifier(stored: bytes, key_type: PqcKeyType) -> Verifier:
    """An ML-DSA-87 or HSS/LMS verifier for a stored PQC key (cached like the ECC keys)."""
    try:
        if key_type is PqcKeyType.MLDSA:
            if len(stored) != MLDSA87_KEY_SIZE:
                raise MalformedFirmware("ML-DSA-87 key has the wrong size")
            return PublicKey.from_cose_key({1: 7, 3: Algorithm.ML_DSA_87.cose_id, -1: stored})
        if len(stored) != LMS_KEY_SIZE:
            raise MalformedFirmware("LMS key has the wrong size")
        return LmsPublicKey((1).to_bytes(4, "big") + stored)
    except MalformedFirmware:
        raise
    except (MalformedInput, UnsupportedAlgorithm) as exc:
        raise MalformedFirmware(f"PQC key does not parse: {exc.detail}") from exc


def lms_parameter_set_name(stored: bytes) -> str | None:
    """The parameter set name of a stored LMS key, if it is one Ironroot knows."""
    lms_type = int.from_bytes(stored[0:4], "big")
    lmots_type = int.from_bytes(stored[4:8], "big")
    for name, params in LMS_PARAMETER_SETS.items():
        if (params.lms_type, params.lmots_type) == (lms_type, lmots_type):
            return name
    return None


def make_descriptors(
    ecc_keys: Sequence[Verifier], pqc_keys: Sequence[Verifier], key_type: PqcKeyType
) -> tuple[KeyDescriptor, KeyDescriptor]:
    """The ECC and PQC key descriptors listing ``ecc_keys`` and ``pqc_keys`` in order."""
    if not 1 <= len(ecc_keys) <= MAX_ECC_KEYS:
        raise MalformedFirmware(f"a product has 1–{MAX_ECC_KEYS} ECC keys, not {len(ecc_keys)}")
    if not 1 <= len(pqc_keys) <= MAX_PQC_KEYS:
        raise MalformedFirmware(f"a product has 1–{MAX_PQC_KEYS} PQC keys, not {len(pqc_keys)}")
    ecc_hashes = tuple(key_hash(ecc_key_bytes(k)) for k in ecc_keys)
    pqc_hashes = tuple(key_hash(pqc_key_bytes(k, key_type)) for k in pqc_keys)
    for name, hashes in (("ECC", ecc_hashes), ("PQC", pqc_hashes)):
        if len(set(hashes)) != len(hashes):
            raise MalformedFirmware(f"the {name} key list names one key twice")
    return (
        KeyDescriptor(KEY_DESCRIPTOR_VERSION, 0, ecc_hashes),
        KeyDescriptor(KEY_DESCRIPTOR_VERSION, int(key_type), pqc_hashes),
    )


def key_descriptor_hash(
    ecc_keys: Sequence[Verifier], pqc_keys: Sequence[Verifier], pqc_type: PqcKeyType | str
) -> bytes:
    """The vendor key descriptor hash to fuse for a product with these keys."""
    key_type = PqcKeyType.parse(pqc_type)
    ecc, pqc = make_descriptors(ecc_keys, pqc_keys, key_type)
    return hashlib.sha384(ecc.encode(MAX_ECC_KEYS) + pqc.encode(MAX_PQC_KEYS)).digest()
