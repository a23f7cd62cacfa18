"""Key derivation for the DICE layers: the SP 800-108 KDF, and key pairs derived from a CDI.

* :func:`kdf` is NIST SP 800-108r1 KDF in counter mode with HMAC-SHA-384 (``cryptography``'s
  ``KBKDFHMAC``): ``K(i) = HMAC(key, [i]_32 ‖ label ‖ 0x00 ‖ context ‖ [L]_32)``. This is
  Caliptra's ``hmac384_kdf``; every derivation has its own label (Caliptra's names).
* :func:`derive_ecc_p384` turns a CDI into a P-384 key pair by FIPS 186-5 Appendix A.2.1
  ("key pair generation using extra random bits"): ``c`` = 448 bits (384 + 64) of KDF output,
  ``d = (c mod (n − 1)) + 1``. The reduction is written here because ``cryptography`` derives a
  key only from a given scalar; the 64 extra bits keep the bias below 2⁻⁶⁴.
* :func:`derive_mldsa87` uses 32 bytes of KDF output as the FIPS 204 seed ξ
  (``ML-DSA.KeyGen_internal``), through ``PrivateKey.from_mldsa_seed``.

Same CDI and label, same key: that is what makes DICE identities stable across boots, and any
change to what a CDI measured yields unrelated keys.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import ConfigError

__all__ = ["CDI_SIZE", "derive_ecc_p384", "derive_mldsa87", "kdf"]

CDI_SIZE: Final = 48
_P384_ORDER: Final = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)
_ECC_SEED_BYTES: Final = (384 + 64) // 8
_MLDSA_SEED_BYTES: Final = 32


def kdf(key: bytes, label: bytes, context: bytes = b"", length: int = CDI_SIZE) -> bytes:
    """SP 800-108 counter-mode HMAC-SHA-384 KDF (32-bit counter and length, counter first)."""
    if not key:
        raise ConfigError("the KDF key must not be empty")
    if not label:
        raise ConfigError("every derivation needs a label")
    derivation = KBKDFHMAC(
        algorithm=hashes.SHA384(),
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=context,
        fixed=None,
    )
    return derivation.derive(key)


def _ecc_p384_scalar(cdi: bytes, label: bytes) -> int:
    c = int.from_bytes(kdf(cdi, label, length=_ECC_SEED_BYTES), "big")
    return c % (_P384_ORDER - 1) + 1


def derive_ecc_p384(cdi: bytes, label: bytes) -> PrivateKey:
    """The ECDSA P-384 key pair of a layer: FIPS 186-5 A.2.1 from KDF(cdi, label)."""
    d = _ecc_p384_scalar(cdi, label)
    return PrivateKey(ec.derive_private_key(d, ec.SECP384R1()), Algorithm.ES384)


def derive_ecc_p384_as(cdi: bytes, label: bytes, public: PublicKey) -> PrivateKey | None:
    """:func:`derive_ecc_p384`, when its public key is ``public`` (a certificate's, which a
    caller compares with the derived key): the key pair, else ``None``. OpenSSL checks that
    the derived scalar times the base point is ``public`` when it builds the key, so the
    comparison costs that one point multiplication, not another one to compute the derived
    public key first."""
    raw = public.raw
    if not isinstance(raw, ec.EllipticCurvePublicKey) or not isinstance(raw.curve, ec.SECP384R1):
        return None
    d = _ecc_p384_scalar(cdi, label)
    try:
        key = ec.EllipticCurvePrivateNumbers(d, raw.public_numbers()).private_key()
    except ValueError:  # "Invalid EC key": d·G is not the point given
        return None
    return PrivateKey(key, Algorithm.ES384)


def derive_mldsa87(cdi: bytes, label: bytes) -> PrivateKey:
    """The ML-DSA-87 key pair of a layer: seed ξ = KDF(cdi, label), 32 bytes."""
    seed = kdf(cdi, label, length=_MLDSA_SEED_BYTES)
    return PrivateKey.from_mldsa_seed(Algorithm.ML_DSA_87, seed)
