"""Self-tests: power-up known-answer tests (KATs) and the pairwise-consistency test.

A :class:`Kat` is data — a mechanism name, fixed inputs and the expected output — so the table
the HSM runs at power-up is a constructor argument: tests pass a table with one byte changed to
drive the module into its error state, and nothing global can be patched. Every mechanism the
HSM offers has a KAT: SHA-384, HMAC-SHA-384, HKDF-SHA-384, AES-256-GCM (encrypt and decrypt),
AES key wrap with and without padding, ECDSA P-256/P-384 and ML-DSA-44/65/87 verification of a
fixed signature (ML-DSA also re-derives its key from a fixed seed), Ed25519 signing (EdDSA is
deterministic, so signing is checked), ML-KEM-768/1024 decapsulation of a fixed ciphertext, and
RSA-OAEP (SHA-256) decryption. Inputs and outputs are in ``_kat_data``.

The pairwise-consistency test runs on every generated key pair: sign-then-verify for signing
keys, encapsulate-then-decapsulate for ML-KEM, encrypt-then-decrypt (OAEP) for RSA.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from cryptography.exceptions import InvalidKey, InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import IronrootError
from ironroot.hsm import _kat_data as v
from ironroot.hsm._material import KeyObject

__all__ = ["DEFAULT_KATS", "Kat", "SelfTestFailure", "pairwise_consistency", "run_kats"]


class SelfTestFailure(Exception):
    """Internal: a self-test failed (the boundary turns this into its error state)."""


@dataclass(frozen=True, slots=True)
class Kat:
    """One known-answer test: ``mechanism`` applied to ``inputs`` must give ``expected``."""

    name: str
    mechanism: str
    inputs: Mapping[str, bytes] = field(repr=False)
    expected: bytes = field(repr=False)


def _kat(name: str, mechanism: str, expected: bytes, **inputs: bytes) -> Kat:
    return Kat(name, mechanism, MappingProxyType(inputs), expected)


_GCM_KEY: Final = bytes.fromhex("feffe9928665731c6d6a8f9467308308" * 2)
_GCM_IV: Final = bytes.fromhex("cafebabefacedbaddecaf888")
_GCM_PT: Final = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
_GCM_AAD: Final = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
_GCM_CT: Final = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
    "76fc6ece0f4e1768cddf8853bb2d551b"
)

DEFAULT_KATS: Final[tuple[Kat, ...]] = (
    _kat(
        "SHA-384",
        "sha384",
        bytes.fromhex(
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
            "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
        ),
        message=b"abc",
    ),
    _kat(
        "HMAC-SHA-384",
        "hmac-sha384",
        bytes.fromhex(
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47"
            "e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"
        ),
        key=b"Jefe",
        message=b"what do ya want for nothing?",
    ),
    _kat(
        "HKDF-SHA-384",
        "hkdf-sha384",
        v.HKDF_OKM,
        ikm=bytes([0x0B] * 22),
        salt=bytes(range(13)),
        info=bytes(range(0xF0, 0xFA)),
    ),
    _kat(
        "AES-256-GCM encrypt",
        "aes-gcm-encrypt",
        _GCM_CT,
        key=_GCM_KEY,
        nonce=_GCM_IV,
        plaintext=_GCM_PT,
        aad=_GCM_AAD,
    ),
    _kat(
        "AES-256-GCM decrypt",
        "aes-gcm-decrypt",
        _GCM_PT,
        key=_GCM_KEY,
        nonce=_GCM_IV,
        ciphertext=_GCM_CT,
        aad=_GCM_AAD,
    ),
    _kat(
        "AES-KW",
        "aes-kw",
        bytes.fromhex(
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21"
        ),
        kek=bytes(range(32)),
        key=bytes.fromhex("00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f"),
    ),
    _kat(
        "AES-KWP",
        "aes-kwp",
        bytes.fromhex("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"),
        kek=bytes.fromhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"),
        key=bytes.fromhex("c37b7e6492584340bed12207808941155068f738"),
    ),
    _kat("ECDSA P-256", "ecdsa-p256-verify", v.P256_SIG, public=v.P256_PUB, message=v.KAT_MESSAGE),
    _kat("ECDSA P-384", "ecdsa-p384-verify", v.P384_SIG, public=v.P384_PUB, message=v.KAT_MESSAGE),
    _kat(
        "Ed25519",
        "ed25519-sign",
        bytes.fromhex(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ),
        private=bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
        message=b"",
    ),
    _kat(
        "ML-DSA-44",
        "ml-dsa-44-verify",
        v.MLDSA44_SIG,
        seed=hashlib.sha256(b"ironroot kat MLDSA44").digest(),
        public_sha256=v.MLDSA44_PUB_SHA256,
        message=v.KAT_MESSAGE,
    ),
    _kat(
        "ML-DSA-65",
        "ml-dsa-65-verify",
        v.MLDSA65_SIG,
        seed=hashlib.sha256(b"ironroot kat MLDSA65").digest(),
        public_sha256=v.MLDSA65_PUB_SHA256,
        message=v.KAT_MESSAGE,
    ),
    _kat(
        "ML-DSA-87",
        "ml-dsa-87-verify",
        v.MLDSA87_SIG,
        seed=hashlib.sha256(b"ironroot kat MLDSA87").digest(),
        public_sha256=v.MLDSA87_PUB_SHA256,
        message=v.KAT_MESSAGE,
    ),
    _kat(
        "ML-KEM-768",
        "ml-kem-768-decapsulate",
        v.MLKEM768_SS,
        seed=hashlib.sha512(b"ironroot kat MLKEM768").digest(),
        ciphertext=v.MLKEM768_CT,
    ),
    _kat(
        "ML-KEM-1024",
        "ml-kem-1024-decapsulate",
        v.MLKEM1024_SS,
        seed=hashlib.sha512(b"ironroot kat MLKEM1024").digest(),
        ciphertext=v.MLKEM1024_CT,
    ),
    _kat(
        "RSA-OAEP-SHA-256",
        "rsa-oaep-sha256-decrypt",
        b"ironroot kat rsa-oaep",
        private=v.RSA_PKCS8,
        ciphertext=v.RSA_CT,
    ),
)


def _oaep() -> padding.OAEP:
    return padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def _ecdsa(curve: ec.EllipticCurve, alg: Algorithm) -> Callable[[Mapping[str, bytes]], bytes]:
    def run(i: Mapping[str, bytes]) -> bytes:
        public = ec.EllipticCurvePublicKey.from_encoded_point(curve, i["public"])
        PublicKey(public, alg).verify(i["signature"], i["message"])
        return i["signature"]

    return run


def _mldsa(
    cls: type[mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey],
) -> Callable[[Mapping[str, bytes]], bytes]:
    def run(i: Mapping[str, bytes]) -> bytes:
        key = cls.from_seed_bytes(i["seed"]).public_key()
        if hashlib.sha256(key.public_bytes_raw()).digest() != i["public_sha256"]:
            raise SelfTestFailure("the key derived from the fixed seed is not the expected key")
        key.verify(i["signature"], i["message"])
        return i["signature"]

    return run


def _mlkem(
    cls: type[mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey],
) -> Callable[[Mapping[str, bytes]], bytes]:
    def run(i: Mapping[str, bytes]) -> bytes:
        return cls.from_seed_bytes(i["seed"]).decapsulate(i["ciphertext"])

    return run


def _rsa_oaep(i: Mapping[str, bytes]) -> bytes:
    # The committed KAT key is a constant: its (slow) primality validation adds nothing here.
    key = serialization.load_der_private_key(
        i["private"], password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SelfTestFailure("the RSA KAT key is not an RSA key")
    return key.decrypt(i["ciphertext"], _oaep())


_MECHANISMS: Final[dict[str, Callable[[Mapping[str, bytes]], bytes]]] = {
    "sha384": lambda i: hashlib.sha384(i["message"]).digest(),
    "hmac-sha384": lambda i: hmac.new(i["key"], i["message"], "sha384").digest(),
    "hkdf-sha384": lambda i: HKDF(hashes.SHA384(), 42, i["salt"], i["info"]).derive(i["ikm"]),
    "aes-gcm-encrypt": lambda i: AESGCM(i["key"]).encrypt(i["nonce"], i["plaintext"], i["aad"]),
    "aes-gcm-decrypt": lambda i: AESGCM(i["key"]).decrypt(i["nonce"], i["ciphertext"], i["aad"]),
    "aes-kw": lambda i: keywrap.aes_key_wrap(i["kek"], i["key"]),
    "aes-kwp": lambda i: keywrap.aes_key_wrap_with_padding(i["kek"], i["key"]),
    "ecdsa-p256-verify": _ecdsa(ec.SECP256R1(), Algorithm.ES256),
    "ecdsa-p384-verify": _ecdsa(ec.SECP384R1(), Algorithm.ES384),
    "ed25519-sign": lambda i: ed25519.Ed25519PrivateKey.from_private_bytes(i["private"]).sign(
        i["message"]
    ),
    "ml-dsa-44-verify": _mldsa(mldsa.MLDSA44PrivateKey),
    "ml-dsa-65-verify": _mldsa(mldsa.MLDSA65PrivateKey),
    "ml-dsa-87-verify": _mldsa(mldsa.MLDSA87PrivateKey),
    "ml-kem-768-decapsulate": _mlkem(mlkem.MLKEM768PrivateKey),
    "ml-kem-1024-decapsulate": _mlkem(mlkem.MLKEM1024PrivateKey),
    "rsa-oaep-sha256-decrypt": _rsa_oaep,
}
# Verification KATs take the expected signature as an input: the check is that it verifies.
_VERIFY_SUFFIX: Final = "-verify"


def run_kats(kats: tuple[Kat, ...]) -> None:
    """Run every KAT; raise ``SelfTestFailure`` naming the first that fails.

    An empty table fails: a module that tested nothing must not enter its approved state.
    """
    if not kats:
        raise SelfTestFailure("the known-answer test table is empty")
    for kat in kats:
        run = _MECHANISMS.get(kat.mechanism)
        if run is None:
            raise SelfTestFailure(f"KAT {kat.name}: unknown mechanism {kat.mechanism!r}")
        inputs = dict(kat.inputs)
        if kat.mechanism.endswith(_VERIFY_SUFFIX):
            inputs["signature"] = kat.expected
        try:
            output = run(inputs)
        except (
            IronrootError,
            InvalidSignature,
            InvalidTag,
            InvalidKey,
            ValueError,
            TypeError,
            KeyError,
        ) as exc:
            raise SelfTestFailure(f"KAT {kat.name} failed") from exc
        if not hmac.compare_digest(output, kat.expected):
            raise SelfTestFailure(f"KAT {kat.name}: output differs from the known answer")


PairwiseTest = Callable[[KeyObject], None]


def pairwise_consistency(obj: KeyObject) -> None:
    """The pairwise-consistency test of a new key pair; ``SelfTestFailure`` if it fails."""
    try:
        if isinstance(obj, PrivateKey):
            message = b"ironroot hsm pairwise-consistency test"
            obj.public_key.verify(obj.sign(message), message)
        elif isinstance(obj, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
            shared, ciphertext = obj.public_key().encapsulate()
            if not hmac.compare_digest(obj.decapsulate(ciphertext), shared):
                raise SelfTestFailure("ML-KEM decapsulation does not give the shared secret")
        elif isinstance(obj, rsa.RSAPrivateKey):
            message = b"ironroot hsm pairwise-consistency test"
            if obj.decrypt(obj.public_key().encrypt(message, _oaep()), _oaep()) != message:
                raise SelfTestFailure("RSA-OAEP decryption does not give the message")
    except (IronrootError, InvalidSignature, ValueError) as exc:
        raise SelfTestFailure("pairwise-consistency test failed") from exc
