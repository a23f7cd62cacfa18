"""SCITT Signed Statements (RFC 9943 profile of COSE_Sign1) and their log entries.

:meth:`SignedStatement.parse` checks structure only, no trust decisions: tag 18, a protected
``alg`` this suite knows, CWT claims (RFC 9597 header 15) in the protected header with non-empty
text ``iss`` and ``sub``, an attached payload, header value types, and the hash envelope rules
of RFC 9995 (``258`` payload-hash-alg, ``259`` preimage content type, ``260`` payload location,
all protected, never together with content type ``3``, and a payload exactly one digest long).
A header this module reads is never null: a null ``kid`` or ``258`` is not an absent one.
Identity headers (``kid``, ``x5chain``, ``x5t``, content type) must be protected too: a
transparency service must never act on unauthenticated identity; ``x5t`` beside ``x5chain``
must be the thumbprint of its first (leaf) certificate (RFC 9360). Which of them a statement must
carry is a registration-policy decision, not a structural one.

The log entry (ARCHITECTURE "Log entry and leaf") is the statement with an empty unprotected
header, every item in its shortest definite-length form; it is built byte by byte from the
parsed items, so a statement whose outer array used long-form lengths still hashes to one leaf.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final, TypeGuard

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, decode_cbor, encode_bstr, encode_cbor
from ironroot.cose._headers import (
    ALG,
    CONTENT_TYPE,
    CRIT,
    CWT_CLAIMS,
    CWT_EXP,
    CWT_IAT,
    CWT_ISS,
    CWT_NBF,
    CWT_SUB,
    HASH_NAMES,
    HASH_SHA256,
    HASH_SIZES,
    KID,
    PAYLOAD_HASH_ALG,
    PAYLOAD_LOCATION,
    PREIMAGE_CONTENT_TYPE,
    RECEIPTS,
    VDP,
    VDS,
    X5CHAIN,
    X5T,
)
from ironroot.cose._message import check_understood
from ironroot.cose._sign1 import Sign1, decode_sign1, sign1
from ironroot.crypto import Algorithm, Signer, check_cbor_labels, ecdsa_low_s
from ironroot.errors import (
    LimitExceeded,
    MalformedStatement,
    PayloadMissing,
    PayloadTooLarge,
    UnsupportedAlgorithm,
    VerificationFailed,
)

__all__ = ["CwtClaims", "HashEnvelope", "SignedStatement", "create_statement"]

# Labels a statement may list in crit: the ones this module processes.
_UNDERSTOOD: Final = frozenset(
    (
        ALG,
        CRIT,
        CONTENT_TYPE,
        KID,
        CWT_CLAIMS,
        X5CHAIN,
        X5T,
        PAYLOAD_HASH_ALG,
        PREIMAGE_CONTENT_TYPE,
        PAYLOAD_LOCATION,
    )
)
_PROTECTED_ONLY: Final = _UNDERSTOOD - {CRIT, ALG}
_EMPTY: Final[Mapping[object, object]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CwtClaims:
    """CWT claims of a statement: ``iss`` and ``sub`` required, ``iat`` typed, the rest kept."""

    iss: str
    sub: str
    iat: int | None = None
    other: Mapping[object, object] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class HashEnvelope:
    """RFC 9995 hash envelope: the payload is the ``hash_alg`` digest of a preimage."""

    hash_alg: int
    preimage_content_type: str | int | None
    location: str | None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _numeric_date(claims: Mapping[object, object], label: int) -> int | None:
    if label not in claims:
        return None
    value = claims[label]
    if _is_int(value):
        return value
    # null too: an exp written as null is not "no exp" (RFC 8392 NumericDate is a number)
    raise MalformedStatement(f"CWT claim {label} of the statement is not an integer")


def _content_type(value: object, what: str) -> str | int:
    if isinstance(value, str) and value:
        return value
    if _is_int(value) and 0 <= value <= 0xFFFF:
        return value
    raise MalformedStatement(f"{what} must be a non-empty text or a CoAP content format number")


def _claims(value: object) -> CwtClaims:
    if not isinstance(value, Mapping):
        raise MalformedStatement("CWT claims (15) must be a map")
    # before any look-up: 1.0 or true would be found as iss (1) here, by no other verifier
    check_cbor_labels(value, "CWT claim label", MalformedStatement)
    iss, sub, iat = value.get(CWT_ISS), value.get(CWT_SUB), value.get(CWT_IAT)
    if not isinstance(iss, str) or not iss:
        raise MalformedStatement("CWT claim iss (1) must be a non-empty text string")
    if not isinstance(sub, str) or not sub:
        raise MalformedStatement("CWT claim sub (2) must be a non-empty text string")
    if CWT_IAT in value and not _is_int(iat):  # null too: not an absent iat
        raise MalformedStatement("CWT claim iat (6) must be an integer")
    other: dict[object, object] = {}
    for key, claim in value.items():
        if key not in (CWT_ISS, CWT_SUB, CWT_IAT):
            other[key] = claim
    return CwtClaims(iss=iss, sub=sub, iat=iat, other=MappingProxyType(other))


def _x5chain(value: object, limits: Limits) -> tuple[bytes, ...]:
    certs: tuple[object, ...]
    if isinstance(value, bytes):
        certs = (value,)
    elif isinstance(value, list | tuple) and value:
        certs = tuple(value)
    else:
        raise MalformedStatement("x5chain (33) must be a byte string or a non-empty array of them")
    if len(certs) > limits.max_x5chain:
        raise LimitExceeded(f"x5chain of {len(certs)} certificates exceeds {limits.max_x5chain}")
    for cert in certs:
        if not isinstance(cert, bytes) or not cert:
            raise MalformedStatement("x5chain (33) certificates must be non-empty byte strings")
    return certs  # type: ignore[return-value]


def _x5t(value: object) -> tuple[int, bytes]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise MalformedStatement("x5t (34) must be [hash alg, hash]")
    alg, digest = value
    if not (_is_int(alg) or isinstance(alg, str)) or not isinstance(digest, bytes) or not digest:
        raise MalformedStatement("x5t (34) must be [hash alg, hash]")
    if not _is_int(alg):
        raise MalformedStatement("x5t (34) hash algorithm must be an integer id")
    if alg in HASH_SIZES and len(digest) != HASH_SIZES[alg]:
        raise MalformedStatement("x5t (34) hash has the wrong length for its algorithm")
    return alg, digest


def _check_x5t_names_leaf(x5t: tuple[int, bytes], leaf: bytes) -> None:
    """RFC 9360: ``x5t`` identifies the end-entity certificate, which ``x5chain`` carries
    first. Beside a chain, a thumbprint of another certificate (or one that cannot be
    computed here) would name a second signer in the signed header."""
    alg, digest = x5t
    name = HASH_NAMES.get(alg)
    if name is None:
        raise MalformedStatement(
            f"x5t (34) hash algorithm {alg} cannot be checked against x5chain (33)"
        )
    if not hmac.compare_digest(hashlib.new(name, leaf).digest(), digest):
        raise MalformedStatement("x5t (34) does not identify the leaf certificate of x5chain (33)")


def _hash_envelope(protected: Mapping[object, object], payload: bytes) -> HashEnvelope | None:
    hash_alg = protected.get(PAYLOAD_HASH_ALG)
    if hash_alg is None:
        if PREIMAGE_CONTENT_TYPE in protected or PAYLOAD_LOCATION in protected:
            raise MalformedStatement("headers 259/260 require payload-hash-alg (258)")
        return None
    if CONTENT_TYPE in protected:
        raise MalformedStatement("content type (3) must not be present with payload-hash-alg (258)")
    if not _is_int(hash_alg) or hash_alg not in HASH_SIZES:
        raise MalformedStatement(f"unsupported payload-hash-alg {hash_alg!r}")
    if len(payload) != HASH_SIZES[hash_alg]:
        raise MalformedStatement("hash envelope payload length does not match payload-hash-alg")
    pct = protected.get(PREIMAGE_CONTENT_TYPE)
    location = protected.get(PAYLOAD_LOCATION)
    if location is not None and (not isinstance(location, str) or not location):
        raise MalformedStatement("payload location (260) must be a non-empty text string")
    return HashEnvelope(
        hash_alg=hash_alg,
        preimage_content_type=None if pct is None else _content_type(pct, "preimage content type"),
        location=location,
    )


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """A structurally valid Signed Statement (not yet verified, no trust decisions)."""

    sign1: Sign1
    algorithm: Algorithm
    claims: CwtClaims
    kid: bytes | None
    x5chain: tuple[bytes, ...]
    x5t: tuple[int, bytes] | None
    content_type: str | int | None
    hash_envelope: HashEnvelope | None

    @classmethod
    def parse(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> SignedStatement:
        """Parse and check a Signed Statement.

        Raises ``MalformedStatement`` for every structural fault, ``PayloadTooLarge`` when the
        statement is over ``limits.max_bytes`` and ``LimitExceeded`` for other limits.
        """
        msg = decode_sign1(data, limits, True, MalformedStatement)
        return cls._from_sign1(msg, limits)

    @classmethod
    def _from_sign1(cls, msg: Sign1, limits: Limits) -> SignedStatement:
        protected, unprotected = msg.protected, msg.unprotected
        if ALG not in protected:
            raise MalformedStatement("protected header lacks alg (1)")
        try:
            algorithm = Algorithm.from_cose_id(protected[ALG])
        except UnsupportedAlgorithm as exc:
            raise MalformedStatement(exc.detail, code=exc.code) from exc
        # decode_sign1 checked crit's shape (check_headers); here: is each label understood.
        check_understood(protected, _UNDERSTOOD, MalformedStatement)
        if unprotected:  # usually empty: nothing to look for
            for label in _PROTECTED_ONLY:
                if label in unprotected:
                    raise MalformedStatement(f"header {label} must be in the protected header")
        for label in _PROTECTED_ONLY:
            # present means present: {258: null} is no hash envelope a peer would read as absent
            if label in protected and protected[label] is None:
                raise MalformedStatement(f"header {label} must not be null")
        payload = msg.payload
        if payload is None:
            raise PayloadMissing(
                "Signed Statement payload must be present (attached, not detached)"
            )
        if CWT_CLAIMS not in protected:
            raise MalformedStatement("protected header lacks CWT claims (15)")
        claims = _claims(protected[CWT_CLAIMS])
        kid = protected.get(KID)
        if kid is not None and (not isinstance(kid, bytes) or not kid):
            raise MalformedStatement("kid (4) must be a non-empty byte string")
        x5chain = _x5chain(protected[X5CHAIN], limits) if X5CHAIN in protected else ()
        x5t = _x5t(protected[X5T]) if X5T in protected else None
        if x5t is not None and x5chain:
            _check_x5t_names_leaf(x5t, x5chain[0])
        ctype = protected.get(CONTENT_TYPE)
        return cls(
            sign1=dataclasses.replace(msg, understood=_UNDERSTOOD),
            algorithm=algorithm,
            claims=claims,
            kid=kid,
            x5chain=x5chain,
            x5t=x5t,
            content_type=None if ctype is None else _content_type(ctype, "content type (3)"),
            hash_envelope=_hash_envelope(protected, payload),
        )

    @property
    def validity(self) -> tuple[int | None, int | None]:
        """The statement's own CWT ``nbf`` (5) and ``exp`` (4) (RFC 8392; ``None`` where
        absent), integer seconds since the epoch, else ``MalformedStatement``. Parsing checks
        neither: whoever takes the statement for a decision does, at its ``now``
        (:meth:`check_validity`)."""
        return _numeric_date(self.claims.other, CWT_NBF), _numeric_date(self.claims.other, CWT_EXP)

    def check_validity(self, now: datetime, *, leeway: float = 0.0) -> None:
        """Check that the statement is valid at ``now``: before its ``exp`` (RFC 8392, as a
        JWT's: ``now`` must be before it) and at or after its ``nbf``, which may be up to
        ``leeway`` seconds ahead (another clock's skew). Else ``VerificationFailed``,
        code ``statement-expired`` or ``statement-not-yet-valid``; a claim that is not an
        integer is ``MalformedStatement`` (:attr:`validity`). A naive ``now`` is taken as UTC
        (as :func:`verify_x5chain` takes it), never in the process's local time zone."""
        nbf, exp = self.validity
        t = (now.replace(tzinfo=UTC) if now.tzinfo is None else now).timestamp()
        if exp is not None and t >= exp:
            raise VerificationFailed(
                f"statement {self.claims.sub!r} of {self.claims.iss!r} expired at {exp} "
                f"(CWT exp; now {int(t)})",
                code="statement-expired",
            )
        if nbf is not None and t + leeway < nbf:
            raise VerificationFailed(
                f"statement {self.claims.sub!r} of {self.claims.iss!r} is not valid before "
                f"{nbf} (CWT nbf; now {int(t)})",
                code="statement-not-yet-valid",
            )

    @property
    def payload(self) -> bytes:
        payload = self.sign1.payload
        assert payload is not None  # parse() rejects detached payloads
        return payload

    def log_entry(self) -> bytes:
        """Tag 18 ``[protected as received, {}, payload, signature]``, shortest forms.

        An ECDSA signature is put in its low-S form (:func:`ironroot.crypto.ecdsa_low_s`): a
        statement and its malleated twin (``s`` → ``n − s``, which verifies just as well) are
        one log entry with one entry id, so registration stays idempotent."""
        msg = self.sign1
        return b"".join(
            (
                b"\xd2\x84",
                encode_bstr(msg.protected_bytes),
                b"\xa0",
                encode_bstr(self.payload),
                encode_bstr(ecdsa_low_s(self.algorithm, msg.signature)),
            )
        )


def create_statement(
    signer: Signer,
    payload: bytes,
    *,
    iss: str,
    sub: str,
    content_type: str | None = None,
    hash_envelope: bool = False,
    hash_alg: int = HASH_SHA256,
    preimage_content_type: str | None = None,
    location: str | None = None,
    x5chain: Sequence[bytes] | None = None,
    include_kid: bool = True,
    iat: int | None = None,
    exp: int | None = None,
    nbf: int | None = None,
    headers: Mapping[int | str, object] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """Sign a Signed Statement and return its bytes.

    ``iat``, ``exp`` and ``nbf`` are the statement's own CWT claims (whoever takes it for a
    decision reads ``exp``/``nbf``: :meth:`SignedStatement.check_validity`).
    With ``hash_envelope=True`` ``payload`` is the preimage and the statement's payload is its
    ``hash_alg`` digest (RFC 9995); ``content_type`` then must be ``None`` (use
    ``preimage_content_type``). Raises ``MalformedStatement`` for inconsistent arguments and
    ``PayloadTooLarge`` if the statement would not fit a log entry.

    ``headers``: more protected header parameters (a profile's own labels, signed with the
    rest and kept in the log entry; :meth:`SignedStatement.parse` keeps them in
    ``sign1.protected``). A label that this function sets from its arguments (``alg``,
    ``crit``, content type, ``kid``, CWT claims, ``x5chain``, ``x5t``, the hash envelope's)
    or that no statement's protected header holds (receipts ``394``–``396``) is
    ``MalformedStatement``.
    """
    if not isinstance(iss, str) or not iss or not isinstance(sub, str) or not sub:
        raise MalformedStatement("iss and sub must be non-empty text")
    extra: dict[object, object] = {}
    for given, header in (headers or {}).items():
        extra[given] = header
    check_cbor_labels(extra, "header label", MalformedStatement)
    for label in extra:
        if label in _UNDERSTOOD:
            raise MalformedStatement(f"header {label} is set by create_statement, not by headers=")
        if label in (RECEIPTS, VDS, VDP):
            raise MalformedStatement(
                f"header {label} is not a protected header of a Signed Statement"
            )
        if isinstance(label, int) and not -(1 << 64) <= label < 1 << 64:  # a bignum: no label
            shown = label if label.bit_length() <= 128 else f"of {label.bit_length()} bits"
            raise MalformedStatement(
                f"header label {shown} is past CBOR's integers (-2**64 to 2**64 - 1)"
            )
    claims: dict[object, object] = {CWT_ISS: iss, CWT_SUB: sub}
    if iat is not None:
        claims[CWT_IAT] = iat
    if exp is not None:
        claims[CWT_EXP] = exp
    if nbf is not None:
        claims[CWT_NBF] = nbf
    protected: dict[object, object] = {}
    if hash_envelope:
        if content_type is not None:
            raise MalformedStatement("content_type cannot be used with a hash envelope")
        name = HASH_NAMES.get(hash_alg)
        if name is None:
            raise MalformedStatement(f"unsupported payload-hash-alg {hash_alg}")
        payload = hashlib.new(name, payload).digest()
        protected[PAYLOAD_HASH_ALG] = hash_alg
        if preimage_content_type is not None:
            protected[PREIMAGE_CONTENT_TYPE] = preimage_content_type
        if location is not None:
            protected[PAYLOAD_LOCATION] = location
    else:
        if preimage_content_type is not None or location is not None:
            raise MalformedStatement("preimage content type and location need a hash envelope")
        if content_type is not None:
            protected[CONTENT_TYPE] = content_type
    if include_kid:
        protected[KID] = signer.kid
    protected[CWT_CLAIMS] = claims
    if x5chain:
        certs = list(x5chain)
        protected[X5CHAIN] = certs[0] if len(certs) == 1 else certs
    protected.update(extra)
    if extra:  # nothing is signed that parse would refuse: nesting and items within limits
        decode_cbor(encode_cbor(protected), limits)
    encoded = sign1(signer, payload, protected).encode()
    if len(encoded) > limits.max_bytes:
        raise PayloadTooLarge(
            f"statement of {len(encoded)} bytes exceeds {limits.max_bytes}: use a hash envelope"
        )
    return encoded
