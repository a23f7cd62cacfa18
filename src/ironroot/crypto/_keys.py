"""In-memory keys for the classical and ML-DSA algorithms: COSE_Key, JWK, PEM and RFC 9679 kids.

A :class:`PublicKey` is a :class:`~ironroot.crypto.Verifier`; a :class:`PrivateKey` is a
:class:`~ironroot.crypto.Signer`. Both are bound to one :class:`Algorithm` (a P-384 key is an
ES384 key and nothing else), so an algorithm/key mismatch cannot happen after construction.

COSE_Key (RFC 9052 §7, RFC 9053 §7, draft-ietf-cose-dilithium for AKP):
EC2 ``{1: 2, 3: alg, -1: crv, -2: x, -3: y}``, OKP ``{1: 1, 3: alg, -1: 6, -2: x}``,
AKP ``{1: 7, 3: alg, -1: pub}``, HSS-LMS ``{1: 5, 3: -46, -1: pub}`` (RFC 8778 / RFC 9053).
Thumbprints (RFC 9679) hash the deterministic CBOR of only the required members: EC2 kty, crv,
x, y; OKP kty, crv, x; AKP kty, alg, pub; HSS-LMS kty, pub. The thumbprint is the key id (kid)
everywhere in Ironroot; the RFC 7638 JWK thumbprint is never used as a kid.

JWK (RFC 7517, RFC 7518 §6.2 EC, RFC 8037 OKP, draft-ietf-cose-dilithium AKP):
``{"kty": "EC", "crv": "P-384", "x", "y"[, "d"]}``,
``{"kty": "OKP", "crv": "Ed25519", "x"[, "d"]}``,
``{"kty": "AKP", "alg": "ML-DSA-65", "pub"[, "priv"]}`` where ``priv`` is the 32-byte FIPS 204
seed ξ. Every ML-DSA key made here is generated from a fresh random seed (and ``cryptography``
keeps and exports the seed form), so its private JWK can always be written.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Final, NamedTuple, TypeAlias

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ironroot.crypto._algorithms import Algorithm
from ironroot.crypto._jose import b64url_encode, jwk_bytes, jwk_str, parse_jwk
from ironroot.crypto._messages import library_error_text
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

_CryptoPublic: TypeAlias = (
    ec.EllipticCurvePublicKey
    | ed25519.Ed25519PublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
    | mldsa.MLDSA87PublicKey
)
_CryptoPrivate: TypeAlias = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
    | mldsa.MLDSA87PrivateKey
)
_PUBLIC_TYPES: Final = (
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    mldsa.MLDSA44PublicKey,
    mldsa.MLDSA65PublicKey,
    mldsa.MLDSA87PublicKey,
)
_PRIVATE_TYPES: Final = (
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    mldsa.MLDSA44PrivateKey,
    mldsa.MLDSA65PrivateKey,
    mldsa.MLDSA87PrivateKey,
)


class _EcParams(NamedTuple):
    curve: ec.EllipticCurve
    digest: hashes.HashAlgorithm
    size: int  # bytes per coordinate, per scalar and per signature half
    crv: int  # COSE crv
    jwk_crv: str  # JOSE crv
    order: int  # n, the order of the base point (FIPS 186-5 / SEC 2)


class _MlDsaParams(NamedTuple):
    public_type: type
    from_public: Callable[[bytes], _CryptoPublic]
    from_seed: Callable[[bytes], _CryptoPrivate]


_EC: Final[dict[Algorithm, _EcParams]] = {
    Algorithm.ES256: _EcParams(
        ec.SECP256R1(),
        hashes.SHA256(),
        32,
        CRV_P256,
        "P-256",
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    Algorithm.ES384: _EcParams(
        ec.SECP384R1(),
        hashes.SHA384(),
        48,
        CRV_P384,
        "P-384",
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973,
    ),
    Algorithm.ES512: _EcParams(
        ec.SECP521R1(),
        hashes.SHA512(),
        66,
        CRV_P521,
        "P-521",
        0x1FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409,
    ),
}
_EC_BY_CURVE: Final[dict[str, Algorithm]] = {p.curve.name: alg for alg, p in _EC.items()}
_EC_BY_CRV: Final[dict[int, Algorithm]] = {p.crv: alg for alg, p in _EC.items()}
_EC_BY_JWK_CRV: Final[dict[str, Algorithm]] = {p.jwk_crv: alg for alg, p in _EC.items()}
# The ECDSA signature algorithm object of each curve's digest, built once (it holds no state).
_ECDSA: Final[dict[Algorithm, ec.ECDSA]] = {alg: ec.ECDSA(p.digest) for alg, p in _EC.items()}
_MLDSA: Final[dict[Algorithm, _MlDsaParams]] = {
    Algorithm.ML_DSA_44: _MlDsaParams(
        mldsa.MLDSA44PublicKey,
        mldsa.MLDSA44PublicKey.from_public_bytes,
        mldsa.MLDSA44PrivateKey.from_seed_bytes,
    ),
    Algorithm.ML_DSA_65: _MlDsaParams(
        mldsa.MLDSA65PublicKey,
        mldsa.MLDSA65PublicKey.from_public_bytes,
        mldsa.MLDSA65PrivateKey.from_seed_bytes,
    ),
    Algorithm.ML_DSA_87: _MlDsaParams(
        mldsa.MLDSA87PublicKey,
        mldsa.MLDSA87PublicKey.from_public_bytes,
        mldsa.MLDSA87PrivateKey.from_seed_bytes,
    ),
}
_EDDSA: Final = (Algorithm.EDDSA, Algorithm.ED25519)
_MLDSA_SEED_SIZE: Final = 32
_ED25519_SIZE: Final = 32


def ecdsa_low_s(algorithm: Algorithm, signature: bytes) -> bytes:
    """The low-S form of an ECDSA ``r ‖ s`` signature: ``s`` replaced by ``n − s`` when it is
    above ``n / 2``. Both forms verify; the low-S one is canonical, so a signature cannot be
    malleated into a second valid encoding of itself. Non-ECDSA algorithms and signatures of
    the wrong length come back unchanged (verification judges those)."""
    params = _EC.get(algorithm)
    if params is None or len(signature) != 2 * params.size:
        return signature
    s = int.from_bytes(signature[params.size :], "big")
    if s <= params.order // 2 or s >= params.order:  # low already, or not a valid s at all
        return signature
    return signature[: params.size] + (params.order - s).to_bytes(params.size, "big")


def ecdsa_to_der(algorithm: Algorithm, signature: bytes) -> bytes:
    """An ECDSA ``r ‖ s`` signature (COSE, JWS) as the DER ``Ecdsa-Sig-Value`` that X.509,
    OpenSSL and most tools use. ``MalformedInput`` for another algorithm or a wrong length."""
    params = _EC.get(algorithm)
    if params is None:
        raise MalformedInput(f"{algorithm.label} signatures have no DER form (ECDSA only)")
    if len(signature) != 2 * params.size:
        raise MalformedInput(f"{algorithm.label} signature must be {2 * params.size} bytes")
    r = int.from_bytes(signature[: params.size], "big")
    s = int.from_bytes(signature[params.size :], "big")
    return encode_dss_signature(r, s)


def ecdsa_from_der(algorithm: Algorithm, signature: bytes) -> bytes:
    """A DER ``Ecdsa-Sig-Value`` as the fixed ``r ‖ s`` of COSE and JWS; ``MalformedInput``
    for another algorithm, bytes that are not that DER, or values too large for the curve."""
    params = _EC.get(algorithm)
    if params is None:
        raise MalformedInput(f"{algorithm.label} signatures have no DER form (ECDSA only)")
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        raise MalformedInput("not a DER ECDSA signature (SEQUENCE of two INTEGERs)") from None
    if not (0 < r < params.order and 0 < s < params.order):
        raise MalformedInput(f"the DER signature's values are out of range for {algorithm.label}")
    if encode_dss_signature(r, s) != signature:
        raise MalformedInput("the DER signature is not in its one canonical encoding")
    return r.to_bytes(params.size, "big") + s.to_bytes(params.size, "big")


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
    for alg, params in _MLDSA.items():
        if isinstance(key, params.public_type):
            if hint is not None and hint != alg:
                raise UnsupportedAlgorithm(f"{alg.label} key cannot be used for {hint.label}")
            return alg
    raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")


_MAX_SHOWN_LABEL: Final = 64


def check_cbor_labels(
    value: Iterable[object], what: str, error: type[MalformedInput] = MalformedInput
) -> None:
    """``error`` (``"<what> <label> is not an integer or text"``) unless every label of the
    decoded CBOR map ``value`` (or every item of a list of labels, such as COSE's ``crit``) is
    an integer or text, as COSE (RFC 9052 §3, §7), CWT, EAR and CoRIM maps are keyed: a
    decoded map is a Python dict, where the labels ``1.0``, ``true`` and the simple value 1
    are found under ``1``, so a map written with them would be read here while every other
    reader sees no such member. The label is shown in at most :data:`_MAX_SHOWN_LABEL`
    characters of its ``repr``: a message (an HTTP problem's detail) does not echo a byte
    string of 64 KB."""
    for label in value:
        if isinstance(label, bool) or not isinstance(label, int | str):
            shown = repr(label)
            if len(shown) > _MAX_SHOWN_LABEL:
                shown = shown[:_MAX_SHOWN_LABEL] + "…"
            raise error(f"{what} {shown} is not an integer or text")


def cose_int(cose_key: Mapping[int, object], label: int) -> int | None:
    """A COSE_Key member that must be an integer (``kty``, ``crv``), or ``None``: ``2.0`` and
    ``true`` compare equal to ``2`` and ``1`` in Python but are other CBOR values."""
    value = cose_key.get(label)
    return value if type(value) is int else None


def cose_key_thumbprint(cose_key: Mapping[int, object]) -> bytes:
    """RFC 9679 thumbprint: SHA-256 of the deterministic CBOR of the required members."""
    kty = cose_int(cose_key, KTY)
    members: tuple[int, ...]
    if kty == KTY_EC2:
        members = (KTY, CRV, X, Y)
    elif kty == KTY_OKP:
        members = (KTY, CRV, X)
    elif kty == KTY_AKP:
        members = (KTY, ALG, PUB)
    elif kty == KTY_HSS_LMS:
        members = (KTY, PUB)
    else:
        raise UnsupportedAlgorithm(f"no thumbprint rule for COSE key type {cose_key.get(KTY)!r}")
    try:
        required = {m: cose_key[m] for m in members}
    except KeyError as exc:
        raise MalformedInput(f"COSE_Key lacks required member {exc.args[0]}") from exc
    # Every label here is a one-byte CBOR integer, so RFC 8949 §4.2.1 bytewise ordering and
    # cbor2's length-first canonical ordering agree.
    return hashlib.sha256(cbor2.dumps(required, canonical=True)).digest()


def _jwk_algorithm(jwk: Mapping[str, object]) -> Algorithm | None:
    alg = jwk.get("alg")
    if alg is None:
        return None
    if not isinstance(alg, str):
        raise MalformedInput("JWK member 'alg' must be a string")
    return Algorithm.from_label(alg)


def _public_from_jwk(jwk: Mapping[str, object]) -> tuple[_CryptoPublic, Algorithm]:
    """The public key a JWK describes, and its algorithm."""
    kty = jwk_str(jwk, "kty")
    hint = _jwk_algorithm(jwk)
    try:
        if kty == "EC":
            crv = jwk_str(jwk, "crv")
            alg = _EC_BY_JWK_CRV.get(crv)
            if alg is None:
                raise UnsupportedAlgorithm(f"unsupported JWK curve {crv!r}")
            params = _EC[alg]
            x = jwk_bytes(jwk, "x", params.size)
            y = jwk_bytes(jwk, "y", params.size)
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), params.curve
            )
            key: _CryptoPublic = numbers.public_key()
            return key, _algorithm_of_public(key, hint)
        if kty == "OKP":
            crv = jwk_str(jwk, "crv")
            if crv != "Ed25519":
                raise UnsupportedAlgorithm(f"unsupported JWK OKP curve {crv!r}")
            key = ed25519.Ed25519PublicKey.from_public_bytes(jwk_bytes(jwk, "x", _ED25519_SIZE))
            return key, _algorithm_of_public(key, hint)
        if kty == "AKP":
            if hint is None or hint not in _MLDSA:
                raise UnsupportedAlgorithm("AKP JWK needs an ML-DSA 'alg'")
            key = _MLDSA[hint].from_public(jwk_bytes(jwk, "pub"))
            return key, hint
    except ValueError as exc:
        raise MalformedInput(f"invalid JWK: {exc}") from exc
    raise UnsupportedAlgorithm(f"unsupported JWK key type {kty!r}")


class PublicKey:
    """A public key bound to one algorithm: a :class:`~ironroot.crypto.Verifier`."""

    __slots__ = ("_algorithm", "_der", "_key", "_kid", "_raw")

    def __init__(self, key: _CryptoPublic, algorithm: Algorithm | None = None) -> None:
        self._algorithm = _algorithm_of_public(key, algorithm)
        self._key = key
        # The thumbprint and the encodings, computed when first needed and kept (the key is
        # immutable; encoding a P-384 point costs about as much as a tenth of a signature).
        self._kid: bytes | None = None
        self._raw: bytes | None = None
        self._der: bytes | None = None

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def kid(self) -> bytes:
        kid = self._kid
        if kid is None:
            kid = self._kid = cose_key_thumbprint(self.to_cose_key(include_alg=False))
        return kid

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
                params = _EC[self._algorithm]
                size = params.size
                if len(signature) != 2 * size:
                    raise BadSignature(
                        f"{self._algorithm.label} signature must be {2 * size} bytes"
                    )
                r = int.from_bytes(signature[:size], "big")
                s = int.from_bytes(signature[size:], "big")
                key.verify(encode_dss_signature(r, s), data, _ECDSA[self._algorithm])
            else:
                key.verify(signature, data)
        except InvalidSignature:
            raise BadSignature(f"{self._algorithm.label} signature does not verify") from None

    # --- encodings ------------------------------------------------------------------------

    def to_cose_key(
        self, *, include_alg: bool = True, include_kid: bool = False
    ) -> dict[int, object]:
        key = self._key
        out: dict[int, object]
        if isinstance(key, ec.EllipticCurvePublicKey):
            params = _EC[self._algorithm]
            x, y = self._coordinates(params.size)
            out = {KTY: KTY_EC2, CRV: params.crv, X: x, Y: y}
        elif isinstance(key, ed25519.Ed25519PublicKey):
            out = {KTY: KTY_OKP, CRV: CRV_ED25519, X: key.public_bytes_raw()}
        else:
            # AKP: alg is a required member (the thumbprint covers it).
            return {
                KTY: KTY_AKP,
                ALG: self._algorithm.cose_id,
                PUB: self.raw_bytes(),
                **({KID: self.kid} if include_kid else {}),
            }
        if include_alg:
            out[ALG] = self._algorithm.cose_id
        if include_kid:
            out[KID] = self.kid
        return out

    def to_jwk(self, *, include_kid: bool = False) -> dict[str, str]:
        """The public JWK; ``kid`` (when asked for) is the base64url RFC 9679 thumbprint."""
        key = self._key
        out: dict[str, str]
        if isinstance(key, ec.EllipticCurvePublicKey):
            params = _EC[self._algorithm]
            x, y = self._coordinates(params.size)
            out = {"kty": "EC", "crv": params.jwk_crv, "x": b64url_encode(x), "y": b64url_encode(y)}
        elif isinstance(key, ed25519.Ed25519PublicKey):
            out = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key.public_bytes_raw())}
        else:
            out = {"kty": "AKP", "pub": b64url_encode(self.raw_bytes())}
        out["alg"] = self._algorithm.label
        if include_kid:
            out["kid"] = b64url_encode(self.kid)
        return out

    def raw_bytes(self) -> bytes:
        """The raw public key: ML-DSA encoded key, Ed25519 32 bytes, EC uncompressed point."""
        raw = self._raw
        if raw is None:
            key = self._key
            if isinstance(key, ec.EllipticCurvePublicKey):
                raw = key.public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            else:
                raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self._raw = raw
        return raw

    def _coordinates(self, size: int) -> tuple[bytes, bytes]:
        """An EC key's x and y, ``size`` bytes each (from the uncompressed point 04 ‖ x ‖ y)."""
        raw = self.raw_bytes()
        if len(raw) != 1 + 2 * size or raw[0] != 0x04:
            raise MalformedInput("the EC public key does not encode as an uncompressed point")
        return raw[1 : 1 + size], raw[1 + size :]

    def to_pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def to_der(self) -> bytes:
        der = self._der
        if der is None:
            der = self._der = self._key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return der

    @classmethod
    def from_cose_key(cls, cose_key: Mapping[int, object]) -> PublicKey:
        """Parse a COSE_Key map; raises ``MalformedInput`` or ``UnsupportedAlgorithm``."""
        if not isinstance(cose_key, Mapping):
            raise MalformedInput("COSE_Key must be a map")
        check_cbor_labels(cose_key, "COSE_Key label")
        kty = cose_int(cose_key, KTY)
        alg_id = cose_key.get(ALG)
        hint = Algorithm.from_cose_id(alg_id) if alg_id is not None else None
        try:
            if kty == KTY_EC2:
                crv = cose_int(cose_key, CRV)
                alg = _EC_BY_CRV.get(crv) if crv is not None else None
                if alg is None:
                    raise UnsupportedAlgorithm(f"unsupported EC2 curve {crv!r}")
                params = _EC[alg]
                x, y = cose_key.get(X), cose_key.get(Y)
                if not isinstance(x, bytes) or not isinstance(y, bytes):
                    raise MalformedInput("EC2 COSE_Key needs byte-string x and y")
                if len(x) != params.size or len(y) != params.size:
                    raise MalformedInput("EC2 COSE_Key coordinates have the wrong length")
                point = ec.EllipticCurvePublicNumbers(
                    int.from_bytes(x, "big"), int.from_bytes(y, "big"), params.curve
                )
                return cls(point.public_key(), hint or alg)
            if kty == KTY_OKP:
                if cose_int(cose_key, CRV) != CRV_ED25519:
                    raise UnsupportedAlgorithm("only Ed25519 OKP keys are supported")
                x = cose_key.get(X)
                if not isinstance(x, bytes):
                    raise MalformedInput("OKP COSE_Key needs a byte-string x")
                return cls(ed25519.Ed25519PublicKey.from_public_bytes(x), hint or Algorithm.EDDSA)
            if kty == KTY_AKP:
                if hint is None or hint not in _MLDSA:
                    raise UnsupportedAlgorithm("AKP COSE_Key needs an ML-DSA alg")
                pub = cose_key.get(PUB)
                if not isinstance(pub, bytes):
                    raise MalformedInput("AKP COSE_Key needs a byte-string pub")
                return cls(_MLDSA[hint].from_public(pub), hint)
        except ValueError as exc:
            raise MalformedInput(f"invalid COSE_Key: {exc}") from exc
        raise UnsupportedAlgorithm(f"unsupported COSE key type {cose_key.get(KTY)!r}")

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object] | str | bytes) -> PublicKey:
        """Parse a JWK (mapping or JSON text). Private members and ``kid`` are ignored."""
        key, alg = _public_from_jwk(parse_jwk(jwk))
        return cls(key, alg)

    @classmethod
    def from_pem(cls, data: bytes, algorithm: Algorithm | None = None) -> PublicKey:
        """Load a SubjectPublicKeyInfo from PEM (or DER, detected). A PEM that also holds a
        private key is refused: a file of trusted public keys must not carry a secret."""
        if data.lstrip().startswith(b"-----") and b"PRIVATE KEY-----" in data:
            raise MalformedInput("not a public key: the PEM also holds a private key")
        try:
            if data.lstrip().startswith(b"-----"):
                key = serialization.load_pem_public_key(data)
            else:
                key = serialization.load_der_public_key(data)
        except (ValueError, TypeError) as exc:
            raise MalformedInput(f"not a public key: {library_error_text(exc)}") from exc
        except _LibraryUnsupported as exc:
            raise UnsupportedAlgorithm(f"unsupported public key: {exc}") from exc
        if not isinstance(key, _PUBLIC_TYPES):
            raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")
        return cls(key, algorithm)

    from_der = from_pem

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return False
        mine, theirs = self._key, other._key
        if isinstance(mine, ec.EllipticCurvePublicKey) and isinstance(
            theirs, ec.EllipticCurvePublicKey
        ):
            # The same curve and point (what the thumbprint covers for EC2 keys), compared
            # by OpenSSL without encoding either point (which costs ~46 us for P-384).
            return mine == theirs
        return other.kid == self.kid

    def __hash__(self) -> int:
        return hash(self.kid)

    def __repr__(self) -> str:
        return f"PublicKey({self._algorithm.label}, kid={self.kid.hex()[:16]}…)"


class PrivateKey:
    """A private key bound to one algorithm: a :class:`~ironroot.crypto.Signer`."""

    __slots__ = ("_algorithm", "_digest", "_key", "_public", "_size")

    def __init__(self, key: _CryptoPrivate, algorithm: Algorithm | None = None) -> None:
        if not isinstance(key, _PRIVATE_TYPES):
            raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")
        self._public = PublicKey(key.public_key(), algorithm)
        self._algorithm = self._public.algorithm
        self._key = key
        ec_params = _EC.get(self._algorithm)
        self._digest = ec_params.digest if ec_params else None
        self._size = ec_params.size if ec_params else 0

    @classmethod
    def generate(cls, algorithm: Algorithm) -> PrivateKey:
        """A fresh key; ML-DSA keys come from a random 32-byte seed, which stays exportable."""
        if algorithm in _EC:
            return cls(ec.generate_private_key(_EC[algorithm].curve), algorithm)
        if algorithm in _EDDSA:
            return cls(ed25519.Ed25519PrivateKey.generate(), algorithm)
        if algorithm in _MLDSA:
            return cls.from_mldsa_seed(algorithm, secrets.token_bytes(_MLDSA_SEED_SIZE))
        raise UnsupportedAlgorithm(f"{algorithm.label} keys are not in-memory keys")

    @classmethod
    def from_mldsa_seed(cls, algorithm: Algorithm, seed: bytes) -> PrivateKey:
        """Derive an ML-DSA key deterministically from a 32-byte seed (FIPS 204 ξ)."""
        if algorithm not in _MLDSA:
            raise UnsupportedAlgorithm(f"{algorithm.label} is not ML-DSA")
        if len(seed) != _MLDSA_SEED_SIZE:
            raise MalformedInput("ML-DSA seed must be 32 bytes")
        return cls(_MLDSA[algorithm].from_seed(seed), algorithm)

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
            if self._digest is None:  # unreachable: every EC key has a digest
                raise UnsupportedAlgorithm(f"{self._algorithm.label} has no digest")
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(self._digest)))
            raw = r.to_bytes(self._size, "big") + s.to_bytes(self._size, "big")
            return ecdsa_low_s(self._algorithm, raw)  # always the canonical low-S form
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

    def to_jwk(self, *, include_kid: bool = False) -> dict[str, str]:
        """The private JWK: the public members plus ``d`` (EC, OKP) or ``priv`` (AKP seed)."""
        out = self._public.to_jwk(include_kid=include_kid)
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            scalar = key.private_numbers().private_value
            out["d"] = b64url_encode(scalar.to_bytes(self._size, "big"))
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            out["d"] = b64url_encode(key.private_bytes_raw())
        else:
            try:
                seed = key.private_bytes_raw()
            except ValueError as exc:
                raise UnsupportedAlgorithm("this ML-DSA key has no seed to export") from exc
            out["priv"] = b64url_encode(seed)
        return out

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, object] | str | bytes) -> PrivateKey:
        """Parse a private JWK; its public members must match the private key."""
        members = parse_jwk(jwk)
        public, alg = _public_from_jwk(members)
        try:
            key: _CryptoPrivate
            if isinstance(public, ec.EllipticCurvePublicKey):
                params = _EC[alg]
                d = int.from_bytes(jwk_bytes(members, "d", params.size), "big")
                key = ec.derive_private_key(d, params.curve)
            elif isinstance(public, ed25519.Ed25519PublicKey):
                key = ed25519.Ed25519PrivateKey.from_private_bytes(
                    jwk_bytes(members, "d", _ED25519_SIZE)
                )
            else:
                key = _MLDSA[alg].from_seed(jwk_bytes(members, "priv", _MLDSA_SEED_SIZE))
        except ValueError as exc:
            raise MalformedInput(f"invalid private JWK: {exc}") from exc
        private = cls(key, alg)
        if private.public_key != PublicKey(public, alg):
            raise MalformedInput("JWK private and public members do not match")
        return private

    @classmethod
    def from_pem(
        cls, data: bytes, algorithm: Algorithm | None = None, password: bytes | None = None
    ) -> PrivateKey:
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as exc:
            raise MalformedInput(
                f"not a private key (or wrong password): {library_error_text(exc)}"
            ) from exc
        except _LibraryUnsupported as exc:
            raise UnsupportedAlgorithm(f"unsupported private key: {exc}") from exc
        if not isinstance(key, _PRIVATE_TYPES):
            raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")
        return cls(key, algorithm)

    def __repr__(self) -> str:
        return f"PrivateKey({self._algorithm.label}, kid={self.kid.hex()[:16]}…)"
