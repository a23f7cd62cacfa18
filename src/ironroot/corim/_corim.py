"""CoRIM (draft-ietf-rats-corim §4): the unsigned map (tag 501) and the signed COSE_Sign1 form.

``corim-map = {0: id, 1: [+ tags], ? 2: dependent-rims, ? 3: profile, ? 4: rim-validity,
? 5: entities, * extensions}``. Tags are ``506`` CoMIDs (parsed), or ``505`` CoSWID and ``508``
CoTL tags (kept as their bytes). A signed CoRIM is a COSE_Sign1 whose protected header carries
``alg``, content type ``application/rim+cbor`` and the corim-meta map (``8``, a byte string
holding ``{0: {0: signer-name, ? 1: signer-uri}, ? 1: {? 0: not-before, 1: not-after}}``)
and/or CWT claims (``15``: ``iss`` text, the signer; ``sub`` text; ``exp`` and ``nbf`` numbers);
its payload is the tagged unsigned CoRIM. A protected ``crit`` (2) may name those headers
(content type, kid, corim-meta, CWT claims); any other critical header is refused when the
signed CoRIM is parsed (RFC 9052 §3.1), since its values and dates are read even where its
signature is not checked. Signing and verifying go through :mod:`ironroot.cose`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import cbor2

from ironroot.corim._codec import (
    CORIM_LIMITS,
    as_bytes,
    as_list,
    as_map,
    as_text,
    decode,
    freeze,
    is_int,
    tagged,
)
from ironroot.corim._comid import (
    COMID_TAG,
    TAG_OID,
    Comid,
    Digest,
    Entity,
    Tagged,
    _encode_uri,
    _extensions,
    _uri,
)
from ironroot.cose import ALG, CONTENT_TYPE, CRIT, CWT_CLAIMS, KID, Sign1, encode_cbor, sign1
from ironroot.crypto import Algorithm, Signer, Verifier
from ironroot.errors import LimitExceeded, MalformedCorim, MalformedInput, UnsupportedAlgorithm

__all__ = [
    "CORIM_CONTENT_TYPE",
    "CORIM_META",
    "CORIM_TAG",
    "Corim",
    "CorimMeta",
    "Locator",
    "OpaqueTag",
    "SignedCorim",
    "Validity",
    "sign_corim",
]

CORIM_TAG: Final = 501
CORIM_META: Final = 8  # COSE header parameter: corim-meta
CORIM_CONTENT_TYPE: Final = "application/rim+cbor"
TAG_COSWID: Final = 505
TAG_COTL: Final = 508
TAG_EPOCH_TIME: Final = 1
_EMPTY: Final[Mapping[object, object]] = MappingProxyType({})


def _time(value: object, what: str, *, ceiling: bool = False) -> int:
    """``#6.1(int / float)`` (RFC 8949 §3.4.2) as whole seconds since the epoch: a float is
    rounded down, or up with ``ceiling`` (a not-before), so a window never widens."""
    content = tagged(value, TAG_EPOCH_TIME, what)
    if is_int(content):
        return content
    if isinstance(content, float) and math.isfinite(content):
        return math.ceil(content) if ceiling else math.floor(content)
    raise MalformedCorim(f"{what} must be an integer or a finite float")


@dataclass(frozen=True, slots=True)
class Validity:
    """``validity-map``: optional not-before, required not-after (whole epoch seconds; a
    float time is read inwards: not-before rounded up, not-after down)."""

    not_after: int
    not_before: int | None = None

    @classmethod
    def parse(cls, value: object) -> Validity:
        obj = as_map(value, "validity-map")
        if set(obj) - {0, 1} or 1 not in obj:
            raise MalformedCorim("validity-map must be {? 0: not-before, 1: not-after}")
        not_before = _time(obj[0], "not-before", ceiling=True) if 0 in obj else None
        not_after = _time(obj[1], "not-after")
        if not_before is not None and not_after < not_before:
            raise MalformedCorim("validity not-after is before not-before")
        return cls(not_after, not_before)

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = {1: cbor2.CBORTag(TAG_EPOCH_TIME, self.not_after)}
        if self.not_before is not None:
            out[0] = cbor2.CBORTag(TAG_EPOCH_TIME, self.not_before)
        return out


@dataclass(frozen=True, slots=True)
class Locator:
    """``corim-locator-map``: where a dependent RIM is, with optional thumbprints."""

    href: tuple[str, ...]
    thumbprint: tuple[Digest, ...] = ()

    @classmethod
    def parse(cls, value: object) -> Locator:
        obj = as_map(value, "corim-locator-map")
        if set(obj) - {0, 1} or 0 not in obj:
            raise MalformedCorim("corim-locator-map must be {0: href, ? 1: thumbprint}")
        href = obj[0]
        hrefs = (
            tuple(_uri(h, "href") for h in as_list(href, "href"))
            if isinstance(href, list | tuple)
            else (_uri(href, "href"),)
        )
        thumbprint: tuple[Digest, ...] = ()
        if 1 in obj:
            raw = as_list(obj[1], "thumbprint")
            if raw and isinstance(raw[0], list | tuple):
                thumbprint = tuple(Digest.parse(d, "thumbprint") for d in raw)
            else:
                thumbprint = (Digest.parse(raw, "thumbprint"),)
        return cls(hrefs, thumbprint)

    def to_cbor(self) -> dict[object, object]:
        if not self.href:
            raise MalformedCorim("a locator needs an href")
        uris = [_encode_uri(h) for h in self.href]
        out: dict[object, object] = {0: uris[0] if len(uris) == 1 else uris}
        if self.thumbprint:
            digests = [d.to_cbor() for d in self.thumbprint]
            out[1] = digests[0] if len(digests) == 1 else digests
        return out


@dataclass(frozen=True, slots=True)
class OpaqueTag:
    """A CoSWID (505) or CoTL (508) tag inside a CoRIM, kept as its encoded bytes."""

    tag: int
    data: bytes

    def to_cbor(self) -> cbor2.CBORTag:
        return cbor2.CBORTag(self.tag, self.data)


# The protected headers a signed CoRIM's reader processes (beside alg and crit): those its
# crit (RFC 9052 §3.1) may name.
_UNDERSTOOD: Final = frozenset({CONTENT_TYPE, KID, CORIM_META, CWT_CLAIMS})
_CWT_ISS: Final = 1
_CWT_SUB: Final = 2
_CWT_TIMES: Final = ((4, "exp"), (5, "nbf"))


def _cwt_claims(value: object) -> Mapping[object, object]:
    """``cwt-claims``: ``{1: iss tstr, ? 2: sub tstr, ? 4: exp, ? 5: nbf, * int => any}``,
    exp and nbf integers or finite floats (RFC 8392 NumericDate)."""
    claims = as_map(value, "CWT claims")
    if not isinstance(claims.get(_CWT_ISS), str):
        raise MalformedCorim("CWT claims need iss (1), the signer, as text")
    if _CWT_SUB in claims and not isinstance(claims[_CWT_SUB], str):
        raise MalformedCorim("CWT claim sub (2) must be text")
    for label, name in _CWT_TIMES:
        if label not in claims:
            continue
        time = claims[label]
        if not (is_int(time) or (isinstance(time, float) and math.isfinite(time))):
            raise MalformedCorim(f"CWT claim {label} is not an integer or a finite float ({name})")
    frozen = freeze(claims)
    assert isinstance(frozen, Mapping)
    return frozen


def _corim_id(value: object) -> str | bytes:
    if isinstance(value, str):
        return value
    return as_bytes(value, "corim id (text or 16-byte UUID)", (16,))


def _profile(value: object) -> str | Tagged:
    if isinstance(value, cbor2.CBORTag) and value.tag == TAG_OID:
        return Tagged.parse(value, frozenset({TAG_OID}), "profile")
    return _uri(value, "profile")


def _tag(value: object) -> Comid | OpaqueTag:
    if not isinstance(value, cbor2.CBORTag) or value.tag not in (COMID_TAG, TAG_COSWID, TAG_COTL):
        raise MalformedCorim("a CoRIM tag must be a 505 CoSWID, 506 CoMID or 508 CoTL tag")
    data = as_bytes(value.value, f"tag {value.tag} content")
    if value.tag == COMID_TAG:
        return Comid.from_value(decode(data, "CoMID"))
    decode(data, f"tag {value.tag}")  # well-formed CBOR, kept opaque
    return OpaqueTag(value.tag, data)


@dataclass(frozen=True, slots=True)
class Corim:
    """An unsigned CoRIM (``corim-map``)."""

    id: str | bytes
    tags: tuple[Comid | OpaqueTag, ...]
    dependent_rims: tuple[Locator, ...] = ()
    profile: str | Tagged | None = None
    rim_validity: Validity | None = None
    entities: tuple[Entity, ...] = ()
    extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @property
    def comids(self) -> tuple[Comid, ...]:
        return tuple(t for t in self.tags if isinstance(t, Comid))

    @classmethod
    def from_value(cls, value: object) -> Corim:
        """From a decoded ``501(corim-map)``."""
        obj = as_map(tagged(value, CORIM_TAG, "unsigned CoRIM"), "corim-map")
        if 0 not in obj or 1 not in obj:
            raise MalformedCorim("corim-map needs id (0) and tags (1)")
        return cls(
            id=_corim_id(obj[0]),
            tags=tuple(_tag(t) for t in as_list(obj[1], "tags")),
            dependent_rims=tuple(Locator.parse(r) for r in as_list(obj[2], "dependent-rims"))
            if 2 in obj
            else (),
            profile=_profile(obj[3]) if 3 in obj else None,
            rim_validity=Validity.parse(obj[4]) if 4 in obj else None,
            entities=tuple(Entity.parse(e) for e in as_list(obj[5], "entities"))
            if 5 in obj
            else (),
            extensions=_extensions(obj, frozenset({0, 1, 2, 3, 4, 5})),
        )

    @classmethod
    def parse(cls, data: bytes) -> Corim:
        """Parse ``501(corim-map)``; ``MalformedCorim`` (or ``LimitExceeded``) on any fault."""
        return cls.from_value(decode(data, "CoRIM"))

    def to_cbor(self) -> cbor2.CBORTag:
        if not self.tags:
            raise MalformedCorim("a CoRIM needs at least one tag")
        out: dict[object, object] = dict(self.extensions)
        out[0] = self.id
        out[1] = [t.to_tag() if isinstance(t, Comid) else t.to_cbor() for t in self.tags]
        if self.dependent_rims:
            out[2] = [r.to_cbor() for r in self.dependent_rims]
        if self.profile is not None:
            out[3] = (
                self.profile.to_cbor()
                if isinstance(self.profile, Tagged)
                else _encode_uri(self.profile)
            )
        if self.rim_validity is not None:
            out[4] = self.rim_validity.to_cbor()
        if self.entities:
            out[5] = [e.to_cbor() for e in self.entities]
        return cbor2.CBORTag(CORIM_TAG, out)

    def encode(self) -> bytes:
        """Deterministic CBOR of ``501(corim-map)``."""
        return encode_cbor(self.to_cbor())


@dataclass(frozen=True, slots=True)
class CorimMeta:
    """``corim-meta-map``: who signed, and the signature's validity (epoch seconds)."""

    signer_name: str
    signer_uri: str | None = None
    signature_validity: Validity | None = None
    signer_extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def parse(cls, data: object) -> CorimMeta:
        obj = as_map(decode(as_bytes(data, "corim-meta"), "corim-meta"), "corim-meta-map")
        if set(obj) - {0, 1} or 0 not in obj:
            raise MalformedCorim("corim-meta-map must be {0: signer, ? 1: signature-validity}")
        signer = as_map(obj[0], "corim-signer-map")
        if 0 not in signer:
            raise MalformedCorim("corim-signer-map lacks signer-name (0)")
        return cls(
            as_text(signer[0], "signer-name"),
            _uri(signer[1], "signer-uri") if 1 in signer else None,
            Validity.parse(obj[1]) if 1 in obj else None,
            _extensions(signer, frozenset({0, 1})),
        )

    def encode(self) -> bytes:
        signer: dict[object, object] = dict(self.signer_extensions)
        signer[0] = self.signer_name
        if self.signer_uri is not None:
            signer[1] = _encode_uri(self.signer_uri)
        out: dict[object, object] = {0: signer}
        if self.signature_validity is not None:
            out[1] = self.signature_validity.to_cbor()
        return encode_cbor(out)


@dataclass(frozen=True, slots=True)
class SignedCorim:
    """A structurally valid signed CoRIM (``COSE-Sign1-corim``); see :meth:`verify`."""

    sign1: Sign1
    corim: Corim
    algorithm: Algorithm
    meta: CorimMeta | None
    cwt_claims: Mapping[object, object] | None
    kid: bytes | None

    @classmethod
    def parse(cls, data: bytes) -> SignedCorim:
        """Parse a tag-18 COSE_Sign1 whose payload is an attached tagged CoRIM."""
        try:
            msg = Sign1.decode(data, CORIM_LIMITS)
            algorithm = msg.algorithm
        except (MalformedInput, UnsupportedAlgorithm) as exc:
            if isinstance(exc, MalformedCorim | LimitExceeded):
                raise
            raise MalformedCorim(f"signed CoRIM: {exc.detail}") from exc
        protected = msg.protected
        # A header the signer marked critical and this reader does not process: fail now,
        # not at verify(), since a CoRIM's values and dates are read where its signature is
        # not checked (RFC 9052 §3.1). Those it processes may be critical.
        critical = protected.get(CRIT, ())
        assert isinstance(critical, list | tuple)  # Sign1.decode checked its shape
        for label in critical:
            if label != ALG and label not in _UNDERSTOOD:
                raise MalformedCorim(f"signed CoRIM: critical header {label!r} is not understood")
        msg = dataclasses.replace(msg, understood=_UNDERSTOOD)
        if protected.get(CONTENT_TYPE) != CORIM_CONTENT_TYPE:
            raise MalformedCorim(f"signed CoRIM content type must be {CORIM_CONTENT_TYPE}")
        if CORIM_META not in protected and CWT_CLAIMS not in protected:
            raise MalformedCorim("signed CoRIM needs corim-meta (8) or CWT claims (15)")
        if msg.payload is None:
            raise MalformedCorim("signed CoRIM payload is detached")
        headers = protected if KID in protected else msg.unprotected
        kid = as_bytes(headers[KID], "kid") if KID in headers else None
        return cls(
            sign1=msg,
            corim=Corim.parse(msg.payload),
            algorithm=algorithm,
            meta=CorimMeta.parse(protected[CORIM_META]) if CORIM_META in protected else None,
            cwt_claims=_cwt_claims(protected[CWT_CLAIMS]) if CWT_CLAIMS in protected else None,
            kid=kid,
        )

    def verify(self, verifier: Verifier) -> None:
        """Return ``None`` if the signature verifies under ``verifier``; raise otherwise."""
        self.sign1.verify(verifier)

    @classmethod
    def verify_bytes(cls, data: bytes, verifier: Verifier) -> SignedCorim:
        """Parse and verify in one call; returns the parsed value."""
        signed = cls.parse(data)
        signed.verify(verifier)
        return signed


def sign_corim(
    corim: Corim,
    signer: Signer,
    *,
    meta: CorimMeta | None = None,
    cwt_claims: Mapping[object, object] | None = None,
    include_kid: bool = True,
) -> bytes:
    """Sign ``corim`` as a ``COSE-Sign1-corim``; at least one of ``meta``/``cwt_claims``."""
    if meta is None and cwt_claims is None:
        raise MalformedCorim("a signed CoRIM needs corim-meta or CWT claims")
    protected: dict[object, object] = {CONTENT_TYPE: CORIM_CONTENT_TYPE}
    if include_kid:
        protected[KID] = signer.kid
    if meta is not None:
        protected[CORIM_META] = meta.encode()
    if cwt_claims is not None:
        protected[CWT_CLAIMS] = dict(cwt_claims)
    return sign1(signer, corim.encode(), protected).encode()
