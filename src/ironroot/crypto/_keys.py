"""In-memory keys for the classical and ML-DSA algorithms, COSE_Key encoding and RFC 9679 kids.

A :class:`PublicKey` is a :class:`~ironroot.crypto.Verifier`; a :class:`PrivateKey` is a
:class:`~ironroot.crypto.Signer`. Both are bound to one :class:`Algorithm` (a P-384 key is an
ES384 key and nothing else), so an algorithm/key mismatch cannot happen after construction.

COSE_Key (RFC 9052 §7, RFC 9053 §7, draft-ietf-cose-dilithium for AKP):
EC2 ``{1: 2, 3: alg, -1: crv, -2: x, -3: y}``, OKP ``{1: 1, 3: alg, -1: 6, -2: x}``,
AKP ``{1: 7, 3: alg, -1: pub}``. Thumbprints (RFC 9679) hash the deterministic CBOR of only the
required members: EC2 kty, crv, x, y; OKP kty, crv, x; AKP kty, alg, pub.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final, Union

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ironroot.crypto._algorithms import Algorithm
from ironroot.errors import BadSignature, MalformedInput, UnsupportedAlgorithm

__all__ = [
    "PrivateKey",
    "PublicKey",
    "cose_key_thumbprint",
]

# COSE key parameters
KTY: Final = 1
KID: Final = 2
ALG: Final = 3
KTY_OKP: Final = 1
KTY_EC2: Final = 2
KTY_AKP: Final = 7
KTY_HSS_LMS: Final = 5
CRV: Final = -1
X: Final = -2
Y: Final = -3
PUB: Final = -1
CRV_P256: Final = 1
CRV_P384: Final = 2
CRV_P521: Final = 3
CRV_ED25519: Final = 6

_CryptoPublic = Union[
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    mldsa.MLDSA44PublicKey,
    mldsa.MLDSA65PublicKey,
    mldsa.MLDSA87PublicKey,
]
_CryptoPrivate = Union[
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    mldsa.MLDSA44PrivateKey,
    mldsa.MLDSA65PrivateKey,
    mldsa.MLDSA87PrivateKey,
]

_EC: Final[dict[Algorithm, tuple[type[ec.EllipticCurve], hashes.HashAlgorithm, int, int]]] = {
    # alg: (curve, hash, coordinate bytes, COSE crv)
    Algorithm.ES256: (ec.SECP256R1, hashes.SHA256(), 32, CRV_P256),
    Algorithm.ES384: (ec.SECP384R1, hashes.SHA384(), 48, CRV_P384),
    Algorithm.ES512: (ec.SECP521R1, hashes.SHA512(), 66, CRV_P521),
}
_EC_BY_CURVE: Final = {curve.name: alg for alg, (curve, _, _, _) in _EC.items()}
_EC_BY_CRV: Final = {crv: alg for alg, (_, _, _, crv) in _EC.items()}
_MLDSA_PRIVATE: Final[dict[Algorithm, type[_CryptoPrivate]]] = {
    Algorithm.ML_DSA_44: mldsa.MLDSA44PrivateKey,
    Algorithm.ML_DSA_65: mldsa.MLDSA65PrivateKey,
    Algorithm.ML_DSA_87: mldsa.MLDSA87PrivateKey,
}
_MLDSA_PUBLIC: Final[dict[Algorithm, type[_CryptoPublic]]] = {
    Algorithm.ML_DSA_44: mldsa.MLDSA44PublicKey,
    Algorithm.ML_DSA_65: mldsa.MLDSA65PublicKey,
    Algorithm.ML_DSA_87: mldsa.MLDSA87PublicKey,
}
_EDDSA: Final = (Algorithm.EDDSA, Algorithm.ED25519)


def _algorithm_of_public(key: object, hint: Algorithm | None) -> Algorithm:
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_BY_CURVE.get(key.curve.name)
        if alg is None:
            raise UnsupportedAlgorithm(f"unsupported curve {key.curve.name}")
        if hint is not None and hint != alg:
            raise UnsupportedAlgorithm(f"{key.curve.name} key cannot be used for {hint.label}")
        return alg
    if isinstance(key, ed25519.Ed25519PublicKey):
        if hint is not None and hint not in _EDDSA:
            raise UnsupportedAlgorithm(f"Ed25519 key cannot be used for {hint.label}")
        return hint or Algorithm.EDDSA
    for alg, cls in _MLDSA_PUBLIC.items():
        if isinstance(key, cls):
            if hint is not None and hint != alg:
                raise UnsupportedAlgorithm(f"{alg.label} key cannot be used for {hint.label}")
            return alg
    raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")


def cose_key_thumbprint(cose_key: Mapping[int, object]) -> bytes:
    """RFC 9679 thumbprint: SHA-256 of the deterministic CBOR of the required members."""
    kty = cose_key.get(KTY)
    if kty == KTY_EC2:
        members = (KTY, CRV, X, Y)
    elif kty == KTY_OKP:
        members = (KTY, CRV, X)
    elif kty == KTY_AKP:
        members = (KTY, ALG, PUB)
    elif kty == KTY_HSS_LMS:
        members = (KTY, PUB)
    else:
        raise UnsupportedAlgorithm(f"no thumbprint rule for COSE key type {kty!r}")
    try:
        required = {m: cose_key[m] for m in members}
    except KeyError as exc:
        raise MalformedInput(f"COSE_Key lacks required member {exc.args[0]}") from exc
    return hashlib.sha256(cbor2.dumps(required, canonical=True)).digest()


class PublicKey:
    """A public key bound to one algorithm: a :class:`~ironroot.crypto.Verifier`."""

    __slots__ = ("_algorithm", "_key", "_kid")

    def __init__(self, key: _CryptoPublic, algorithm: Algorithm | None = None) -> None:
        self._algorithm = _algorithm_of_public(key, algorithm)
        self._key = key
        self._kid = cose_key_thumbprint(self.to_cose_key(include_alg=False))

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def kid(self) -> bytes:
        return self._kid

    @property
    def raw(self) -> _CryptoPublic:
        """The underlying ``cryptography`` key, for X.509 building and other library calls."""
        return self._key

    def verifier(self) -> PublicKey:
        return self

    def verify(self, signature: bytes, data: bytes) -> None:
        key = self._key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                _, digest, size, _ = _EC[self._algorithm]
                if len(signature) != 2 * size:
                    raise BadSignature(f"{self._algorithm.label} signature must be {2 * size} bytes")
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
            else:
                key.verify(signature, data)
        except InvalidSignature:
            raise BadSignature(f"{self._algorithm.label} signature does not verify") from None

    # --- encodings ------------------------------------------------------------------------

    def to_cose_key(self, *, include_alg: bool = True, include_kid: bool = False) -> dict[int, object]:
        key = self._key
        out: dict[int, object]
        if isinstance(key, ec.EllipticCurvePublicKey):
            _, _, size, crv = _EC[self._algorithm]
            numbers = key.public_numbers()
            out = {
                KTY: KTY_EC2,
                CRV: crv,
                X: numbers.x.to_bytes(size, "big"),
                Y: numbers.y.to_bytes(size, "big"),
            }
        elif isinstance(key, ed25519.Ed25519PublicKey):
            out = {KTY: KTY_OKP, CRV: CRV_ED25519, X: key.public_bytes_raw()}
        else:
            # AKP: alg is a required member (the thumbprint covers it).
            return {
                KTY: KTY_AKP,
                ALG: self._algorithm.cose_id,
                PUB: self.raw_bytes(),
                **({KID: self._kid} if include_kid else {}),
            }
        if include_alg:
            out[ALG] = self._algorithm.cose_id
        if include_kid:
            out[KID] = self._kid
        return out

    def raw_bytes(self) -> bytes:
        """The raw public key: ML-DSA encoded key, Ed25519 32 bytes, EC uncompressed point."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePublicKey):
            return key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_der(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_cose_key(cls, cose_key: Mapping[int, object]) -> PublicKey:
        """Parse a COSE_Key map; raises ``MalformedInput`` or ``UnsupportedAlgorithm``."""
        kty = cose_key.get(KTY)
        alg_id = cose_key.get(ALG)
        hint = Algorithm.from_cose_id(alg_id) if alg_id is not None else None
        try:
            if kty == KTY_EC2:
                crv = cose_key.get(CRV)
                alg = _EC_BY_CRV.get(crv) if isinstance(crv, int) else None
                if alg is None:
                    raise UnsupportedAlgorithm(f"unsupported EC2 curve {crv!r}")
                curve, _, size, _ = _EC[alg]
                x, y = cose_key.get(X), cose_key.get(Y)
                if not isinstance(x, bytes) or not isinstance(y, bytes):
                    raise MalformedInput("EC2 COSE_Key needs byte-string x and y")
                if len(x) != size or len(y) != size:
                    raise MalformedInput("EC2 COSE_Key coordinates have the wrong length")
                point = ec.EllipticCurvePublicNumbers(
                    int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
                )
                return cls(point.public_key(), hint or alg)
            if kty == KTY_OKP:
                if cose_key.get(CRV) != CRV_ED25519:
                    raise UnsupportedAlgorithm("only Ed25519 OKP keys are supported")
                x = cose_key.get(X)
                if not isinstance(x, bytes):
                    raise MalformedInput("OKP COSE_Key needs a byte-string x")
                return cls(ed25519.Ed25519PublicKey.from_public_bytes(x), hint or Algorithm.EDDSA)
            if kty == KTY_AKP:
                if hint is None or hint not in _MLDSA_PUBLIC:
                    raise UnsupportedAlgorithm("AKP COSE_Key needs an ML-DSA alg")
                pub = cose_key.get(PUB)
                if not isinstance(pub, bytes):
                    raise MalformedInput("AKP COSE_Key needs a byte-string pub")
                ml_cls = _MLDSA_PUBLIC[hint]
                return cls(ml_cls.from_public_bytes(pub), hint)  # type: ignore[attr-defined]
        except ValueError as exc:
            raise MalformedInput(f"invalid COSE_Key: {exc}") from exc
        raise UnsupportedAlgorithm(f"unsupported COSE key type {kty!r}")

    @classmethod
    def from_pem(cls, data: bytes, algorithm: Algorithm | None = None) -> PublicKey:
        """Load a SubjectPublicKeyInfo from PEM (or DER, detected)."""
        try:
            if data.lstrip().startswith(b"-----"):
                key = serialization.load_pem_public_key(data)
            else:
                key = serialization.load_der_public_key(data)
        except (ValueError, TypeError) as exc:
            raise MalformedInput(f"not a public key: {exc}") from exc
        return cls(key, algorithm)  # type: ignore[arg-type]

    from_der = from_pem

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._kid == self._kid

    def __hash__(self) -> int:
        return hash(self._kid)

    def __repr__(self) -> str:
        return f"PublicKey({self._algorithm.label}, kid={self._kid.hex()[:16]}…)"


class PrivateKey:
    """A private key bound to one algorithm: a :class:`~ironroot.crypto.Signer`."""

    __slots__ = ("_algorithm", "_digest", "_key", "_public", "_size")

    def __init__(self, key: _CryptoPrivate, algorithm: Algorithm | None = None) -> None:
        self._public = PublicKey(key.public_key(), algorithm)
        self._algorithm = self._public.algorithm
        self._key = key
        ec_params = _EC.get(self._algorithm)
        self._digest = ec_params[1] if ec_params else None
        self._size = ec_params[2] if ec_params else 0

    @classmethod
    def generate(cls, algorithm: Algorithm) -> PrivateKey:
        if algorithm in _EC:
            return cls(ec.generate_private_key(_EC[algorithm][0]()), algorithm)
        if algorithm in _EDDSA:
            return cls(ed25519.Ed25519PrivateKey.generate(), algorithm)
        if algorithm in _MLDSA_PRIVATE:
            return cls(_MLDSA_PRIVATE[algorithm].generate(), algorithm)  # type: ignore[attr-defined]
        raise UnsupportedAlgorithm(f"{algorithm.label} keys are not in-memory keys")

    @classmethod
    def from_mldsa_seed(cls, algorithm: Algorithm, seed: bytes) -> PrivateKey:
        """Derive an ML-DSA key deterministically from a 32-byte seed (FIPS 204 ξ)."""
        if algorithm not in _MLDSA_PRIVATE:
            raise UnsupportedAlgorithm(f"{algorithm.label} is not ML-DSA")
        if len(seed) != 32:
            raise MalformedInput("ML-DSA seed must be 32 bytes")
        return cls(_MLDSA_PRIVATE[algorithm].from_seed_bytes(seed), algorithm)  # type: ignore[attr-defined]

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def kid(self) -> bytes:
        return self._public.kid

    @property
    def public_key(self) -> PublicKey:
        return self._public

    @property
    def raw(self) -> _CryptoPrivate:
        """The underlying ``cryptography`` key, for X.509 building and other library calls."""
        return self._key

    def verifier(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            assert self._digest is not None
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(self._digest)))
            return r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")
        return key.sign(data)

    def to_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with ``password`` when given."""
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc
        )

    @classmethod
    def from_pem(
        cls, data: bytes, algorithm: Algorithm | None = None, password: bytes | None = None
    ) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise MalformedInput(f"not a private key (or wrong password): {exc}") from exc
        return cls(key, algorithm)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"PrivateKey({self._algorithm.label}, kid={self.kid.hex()[:16]}…)"
