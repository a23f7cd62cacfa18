"""Endorsements: reference values and SAFE reviews, counted only when they are on the log.

A reference value reaches the verifier as a Transparent Statement (a vendor's Signed Statement
with content type ``application/rim+cbor`` and the transparency service's receipts). It counts
only when all of this holds (:func:`reference_values_from_statement`):

1. every receipt verifies against the configured transparency-service keys
   (``verify_transparent_statement``: ``InvalidProof``, ``BadSignature``, ``UnknownIssuer``,
   ``MalformedReceipt``), and, given ``now``, none is issued more than 300 s after it
   (``VerificationFailed`` ``receipt-from-the-future``, whatever ``outside_validity``); an
   empty key set trusts nothing (``UnknownIssuer``); with ``service_issuer`` every receipt
   also names that transparency service in its CWT ``iss`` (``UnknownIssuer``
   ``untrusted-service``, the platform's check: :func:`ironroot.cose.on_trusted_log`);
2. where vendor keys are configured for the statement's ``iss``, the statement's signature
   verifies under one of them (``UnknownIssuer`` when none is configured for that issuer,
   ``BadSignature``), and a payload that is itself a signed CoRIM (COSE_Sign1) verifies too;
   with or without vendor keys (the logged statement vouches for the signed CoRIM's bytes,
   its dates included), given ``now``, it is inside the signature validity its corim-meta
   states and its CWT claims ``exp``/``nbf``, integers (``MalformedCorim``)
   (``VerificationFailed``, code ``rim-expired``);
3. the CoRIM parses (``MalformedCorim``) and, given ``now``, is inside its ``rim-validity``
   (``VerificationFailed``, code ``rim-expired``), and so is the statement itself: ``now``
   before its own CWT ``exp`` and at or after its ``nbf`` (RFC 8392; ``VerificationFailed``
   ``rim-expired``; either one not an integer: ``MalformedStatement``, whatever ``now``);
4. the statement's issuer may publish reference values for the product of every triple it
   carries: a configured :class:`ReferencePublisher` names the triple's CoRIM class vendor (and
   model, when it names one) and lists the issuer. Anything else — another issuer, a product
   no publisher names, a triple without a class vendor — refuses the whole statement
   (``UnknownIssuer``, code ``publisher-not-allowed``). No publishers accept nothing: a
   verifier never takes reference values from whoever the log happens to accept (a review lab,
   another vendor). The issuer (``iss``) is what the transparency service's registration
   policy bound to the statement's key; pin the keys too with ``vendor_keys``.

Its reference-value triples become :class:`ReferenceValue` entries: environment (class vendor,
model, layer, index; instance and group), measurement key (``mkey``), digests and SVN, and the
span they count in (steps 2 and 3: the appraisal checks it again, at its own ``now``).
:class:`ReferenceValues` answers the appraisal's two questions: which logged values does this
digest match, and what is the logged minimum SVN of that environment — the highest minimum any
logged triple for the same environment and ``mkey`` states, so a vendor raises the floor by
publishing a newer release. A logged CoMID stops counting when a later one of the same issuer
supersedes it (draft-ietf-rats-corim §5.1.3: its ``linked-tags`` say it ``replaces`` it, or it
is a greater ``tag-version`` of the same tag-id): a withdrawn tag stays on the log, and its
values would otherwise match evidence for ever.

A GPU's reference values are NVIDIA's SWID-tag RIMs, taken the same way: a Transparent
Statement of content type ``application/swid+xml`` among the reference statements is a RIM
(:func:`ironroot.rim.carries_rim`) and counts only when :func:`rim_from_statement` holds —
receipts verify (a bare RIM or a statement without receipt: ``no-receipt``), the RIM's
XML-DSig signature and chain to NVIDIA's RIM root verify and are valid at ``now``
(:func:`ironroot.rim.logged_rim_from_statement`), and the statement's issuer is a configured
publisher for the RIM's manufacturer and model (``PlatformManufacturerStr``,
``PlatformModel``: ``"NVIDIA Corporation"``, ``"GH100"``), the same ``[[attestation.products]]``
rule as for CoRIM. They land in :attr:`Endorsements.rims` (:class:`ironroot.rim.LoggedRims`).

SAFE reviews come the same way (:func:`ironroot.safe.review_from_statement` with the service
keys): only a review whose receipts and SFR signature verify is kept. RIMs and reviews are held
to ``service_issuer`` too, when it is given.

:meth:`Endorsements.build` collects both from statement bytes and records every statement (and
vendor root) it refused, with its file name and the reason, in ``rejected`` and as a logged
warning, instead of failing the whole set: one bad file never stops the verifier.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.serialization import Encoding

from ironroot._fileio import load_each
from ironroot.attestation.evidence import EvidenceClaims
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    Comid,
    Corim,
    Environment,
    Measurement,
    SignedCorim,
    Tagged,
    Validity,
    is_full_digest,
)
from ironroot.cose import SignedStatement, on_trusted_log, verify_transparent_statement
from ironroot.crypto import Verifier, load_certificate
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedCertificate,
    MalformedCorim,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.rim import LoggedRim, LoggedRims, carries_rim, logged_rim_from_statement
from ironroot.rot import parse_certificate
from ironroot.safe import ProviderKeys, Review, review_from_statement

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "Endorsements",
    "ReferencePublisher",
    "ReferenceValue",
    "ReferenceValues",
    "publishers_of_release",
    "reference_values_from_statement",
    "reviews_from_statements",
    "rim_from_statement",
]

_COSE_SIGN1: Final = 0xD2
_TAG_UEID: Final = 550
_TAG_SUPPLEMENTS: Final = 0  # linked-tag-map tag-rel: supplements
_TAG_REPLACES: Final = 1  # linked-tag-map tag-rel: replaces
_log = logging.getLogger("ironroot.attestation")


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """One logged reference measurement (from a CoRIM reference-value triple)."""

    mkey: str
    digests: tuple[tuple[int | str, bytes], ...]
    svn: int | None = None
    svn_minimum: bool = False
    vendor: str | None = None
    model: str | None = None
    layer: int | None = None
    index: int | None = None
    issuer: str = ""
    subject: str = ""
    instance: Tagged | None = None
    group: Tagged | None = None
    not_before: int | None = None
    not_after: int | None = None
    """When the value counts (epoch seconds, both inclusive; ``None``: open): the CoRIM's
    ``rim-validity``, the statement's own CWT ``nbf``/``exp`` and, for a signed CoRIM, its
    signature validity and CWT ``nbf``/``exp``.
    Checked when the statement is read and again at each appraisal."""
    debug: bool | None = None
    """The measurement's ``is-debug`` flag (``None``: not stated): the evidence's ``debug``
    claim must equal it (:meth:`refusal`)."""
    unchecked: tuple[str, ...] = ()
    """What else the measurement states that no appraisal compares with evidence
    (``raw-value``, flags other than ``is-debug``, ``authorized-by``, its environment's
    ``class-id``, …) or that no evidence can match (differing digests of one algorithm): a
    value stating any of it never matches (:meth:`matches`): the verifier cannot tell whether
    evidence meets it.
    Its SVN still counts towards its environment's minimum."""
    tag_id: str | bytes | None = None
    """The ``tag-id`` of the CoMID that states the value (``None``: not read from a CoMID)."""
    tag_version: int = 0
    """That CoMID's ``tag-version`` (absent: 0, the initial version)."""
    replaces: tuple[str | bytes, ...] = ()
    """The tag ids that CoMID ``replaces`` (``linked-tags`` with ``tag-rel`` 1): their values
    from the same issuer are disregarded (:class:`ReferenceValues`)."""
    tag_digest: bytes | None = None
    """SHA-256 of that CoMID's deterministic encoding: two CoMIDs of one issuer, tag-id and
    tag-version that differ are neither in force (:class:`ReferenceValues`)."""
    svn_required: bool = False
    """Whether the value matches only evidence of the SVN it states, so that a value stating
    none matches nothing (:meth:`refusal`): how a verifier reads a release whose component
    digests do not cover the header that states its SVN (a device's, a BMC's), where only
    the SVN the release states binds that header to it. Off: a value stating no SVN matches
    any."""

    def refusal(self, *, svn: int, debug: bool) -> str | None:
        """Why this value, whose digest matched, does not match evidence with SVN claim
        ``svn`` and ``debug``: an exact SVN (CoRIM tag 552 or a bare uint; a minimum, 553, is
        the floor :meth:`ReferenceValues.minimum_svn` reports) other than ``svn``, no SVN
        where one is required (:attr:`svn_required`), or an ``is-debug`` flag other than
        ``debug``; ``None`` when it matches."""
        if self.debug is not None and self.debug != debug:
            return f"for debug {'on' if self.debug else 'off'}"
        if self.svn is None and self.svn_required:
            return f"for no stated SVN, the evidence claims {svn}"
        if self.svn is not None and not self.svn_minimum and self.svn != svn:
            return f"for SVN {self.svn} exactly, the evidence claims {svn}"
        return None

    def valid_at(self, now: dt.datetime) -> bool:
        """Whether the value counts at ``now``."""
        t = int(now.timestamp())
        return (self.not_before is None or t >= self.not_before) and (
            self.not_after is None or t <= self.not_after
        )

    @property
    def environment(self) -> tuple[object, ...]:
        """The product component this value is for: (vendor, model, layer, index, mkey)."""
        return (self.vendor, self.model, self.layer, self.index, self.mkey)

    def matches(self, digest: bytes) -> bool:
        """Whether ``digest`` is one of the logged digests, compared only under a full-length
        SHA-2 or SHA-3 algorithm whose size it has (a truncated or unknown algorithm never
        matches), and never for a value that states what appraisal does not compare
        (:attr:`unchecked`)."""
        return not self.unchecked and any(
            value == digest and is_full_digest(alg, value) for alg, value in self.digests
        )


@dataclass(frozen=True, slots=True)
class ReferencePublisher:
    """Who may publish reference values for one product: the statement issuers (``iss``)
    allowed for CoRIM class ``vendor`` and ``model`` (``None``: every model of the vendor).

    ``evidence`` says which evidence the product's values apply to: ``(claim, value)`` pairs
    that must all hold, ``format`` naming the evidence format and any other claim an identity
    claim of the evidence (``root``, the SHA-256 of the vendor CA the chain reached; ``product``,
    ``vendor_ca``, …). Left empty, the values apply to any evidence only while they are the
    only product's values the endorsements hold (:meth:`Endorsements.applies`)."""

    vendor: str
    model: str | None
    issuers: frozenset[str]
    evidence: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        pairs = dict(self.evidence)
        if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in pairs.items()):
            raise ConfigError("a product's evidence selector maps claim names to text")
        object.__setattr__(self, "evidence", tuple(sorted(pairs.items())))

    def allows(self, value: ReferenceValue) -> bool:
        return (
            value.vendor == self.vendor
            and (self.model is None or value.model == self.model)
            and value.issuer in self.issuers
        )

    def selects(self, evidence: EvidenceClaims) -> bool:
        """Whether ``evidence`` is of this product by its selector (never, without one)."""
        return bool(self.evidence) and all(
            (evidence.format if name == "format" else evidence.identity.get(name)) == value
            for name, value in self.evidence
        )


def _same_instance(instance: Tagged | None, evidence: EvidenceClaims) -> bool:
    """Whether ``evidence`` is of ``instance`` (``None``: any evidence): a UEID the
    evidence's ``ueid`` identity claim (hex) names."""
    if instance is None:
        return True
    ueid = evidence.identity.get("ueid")
    return (
        instance.tag == _TAG_UEID
        and isinstance(instance.value, bytes)
        and isinstance(ueid, str)
        and ueid == instance.value.hex()
    )


def _product(vendor: str | None, model: str | None) -> str:
    """A product (a class vendor and model) as refusals name it."""
    if vendor is None:
        return "an environment without a class vendor"
    if model is None:
        return f"vendor {vendor!r}"
    return f"vendor {vendor!r} model {model!r}"


def _check_publisher(
    values: Sequence[ReferenceValue], iss: str, publishers: Sequence[ReferencePublisher]
) -> None:
    refused = sorted(
        {_product(v.vendor, v.model) for v in values if not any(p.allows(v) for p in publishers)}
    )
    if refused:
        raise UnknownIssuer(
            f"issuer {iss!r} may not publish reference values for {', '.join(refused)}: "
            "no configured product lists it",
            code="publisher-not-allowed",
        )


def _mkey(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


# What a measurement-values-map may state beyond version, SVN, digests and is-debug, by key.
_UNCHECKED_MVAL: Final = (
    ("raw_value", "raw-value"),
    ("raw_value_mask", "raw-value-mask"),
    ("mac_addr", "mac-addr"),
    ("ip_addr", "ip-addr"),
    ("serial_number", "serial-number"),
    ("ueid", "ueid"),
    ("uuid", "uuid"),
    ("name", "name"),
    ("cryptokeys", "cryptokeys"),
    ("integrity_registers", "integrity-registers"),
    ("int_range", "int-range"),
    ("extensions", "extensions"),
)


def _stated(value: object) -> bool:
    """An optional field that is present: not ``None``, not an empty tuple or map (an empty
    string or byte string is stated)."""
    if isinstance(value, tuple | Mapping):
        return bool(value)
    return value is not None


# Named Information hash algorithm text names (any case) by their IANA ids: one algorithm
# named either way.
_HASH_NAME_IDS: Final = {
    "sha-256": 1, "sha-256-128": 2, "sha-256-120": 3, "sha-256-96": 4, "sha-256-64": 5,
    "sha-256-32": 6, "sha-384": 7, "sha-512": 8, "sha3-224": 9, "sha3-256": 10,
    "sha3-384": 11, "sha3-512": 12,
}  # fmt: skip


def _conflicting_digests(digests: Sequence[tuple[int | str, bytes]]) -> bool:
    """Whether two of ``digests`` are of one algorithm (by id or text name) with different
    values: what the measurement's digest is, is then unknown, and draft-ietf-rats-corim's
    digests comparison (§8.5.6.1.3, as veraison/corim implements it) matches nothing."""
    seen: dict[int | str, bytes] = {}
    for alg, value in digests:
        key = _HASH_NAME_IDS.get(alg.lower(), alg.lower()) if isinstance(alg, str) else alg
        if seen.setdefault(key, value) != value:
            return True
    return False


def _unchecked(measurement: Measurement, environment: Environment) -> tuple[str, ...]:
    """What ``measurement`` (of ``environment``) states that appraisal does not compare with
    evidence, or that no evidence can match (digests of one algorithm that differ). An
    environment's class id names a class no evidence names: the value is for that class."""
    mval = measurement.mval
    out = [label for attr, label in _UNCHECKED_MVAL if _stated(getattr(mval, attr))]
    if environment.class_map is not None and environment.class_map.class_id is not None:
        out.insert(0, "class-id")
    if _conflicting_digests([(d.alg, d.value) for d in mval.digests]):
        out.append("differing digests of one algorithm")
    flags = mval.flags
    if flags is not None:
        out.extend(
            f"flag {f.name.replace('_', '-')}"
            for f in dataclasses.fields(flags)
            if f.name not in ("is_debug", "extensions") and getattr(flags, f.name) is not None
        )
        if flags.extensions:
            out.append("flag extensions")
    if measurement.authorized_by:
        out.append("authorized-by")
    return tuple(out)


def _values(
    corim: Corim, iss: str, sub: str, window: tuple[int | None, int | None] = (None, None)
) -> tuple[ReferenceValue, ...]:
    out: list[ReferenceValue] = []
    for tag in corim.tags:
        if not isinstance(tag, Comid):
            continue
        before = len(out)
        for link in tag.linked_tags:
            if link.rel not in (_TAG_SUPPLEMENTS, _TAG_REPLACES):
                raise MalformedCorim(
                    f"the CoMID {tag.tag_identity.tag_id!r} links {link.tag_id!r} by tag-rel "
                    f"{link.rel}, which base CoRIM does not define (0 supplements, 1 replaces): "
                    "what it does to that tag's values is unknown",
                    code="corim-tag-rel-unknown",
                )
        replaced = tuple(link.tag_id for link in tag.linked_tags if link.rel == _TAG_REPLACES)
        tag_digest = hashlib.sha256(tag.encode()).digest()
        for triple in tag.triples.reference:
            cls = triple.environment.class_map
            for measurement in triple.measurements:
                mkey = _mkey(measurement.mkey)
                mval = measurement.mval
                if mkey is None or not mval.digests:
                    continue
                out.append(
                    ReferenceValue(
                        mkey=mkey,
                        digests=tuple((d.alg, d.value) for d in mval.digests),
                        svn=mval.svn.value if mval.svn is not None else None,
                        svn_minimum=mval.svn.minimum if mval.svn is not None else False,
                        vendor=cls.vendor if cls is not None else None,
                        model=cls.model if cls is not None else None,
                        layer=cls.layer if cls is not None else None,
                        index=cls.index if cls is not None else None,
                        issuer=iss,
                        subject=sub,
                        instance=triple.environment.instance,
                        group=triple.environment.group,
                        not_before=window[0],
                        not_after=window[1],
                        debug=mval.flags.is_debug if mval.flags is not None else None,
                        unchecked=_unchecked(measurement, triple.environment),
                        tag_id=tag.tag_identity.tag_id,
                        tag_version=tag.tag_identity.version or 0,
                        replaces=replaced,
                        tag_digest=tag_digest,
                    )
                )
        if replaced and len(out) == before:
            # What a tag replaces is carried by its values: without one, it withdraws nothing.
            raise MalformedCorim(
                f"the CoMID {tag.tag_identity.tag_id!r} replaces {replaced[0]!r} but states "
                "no reference value Ironroot reads (a measurement with an mkey and a digest): "
                "the replaced tag's values cannot be withdrawn without it",
                code="corim-replaces-nothing-read",
            )
    return tuple(out)


def _vendor_key(
    statement_kid: bytes | None, keys: Sequence[Verifier], signed: SignedStatement | SignedCorim
) -> None:
    """Verify ``signed`` with the key its kid names, else with any key of the issuer."""
    candidates = [k for k in keys if statement_kid is not None and k.kid == statement_kid]
    last: IronrootError | None = None
    for key in candidates or keys:
        try:
            signed.sign1.verify(key)
            return
        except IronrootError as exc:
            last = exc
    raise last or UnknownIssuer("no vendor key verifies the reference values")


def _check_corim_type(statement: SignedStatement) -> None:
    if statement.content_type != CORIM_CONTENT_TYPE:
        raise MalformedCorim(
            f"statement content type {statement.content_type!r} is not {CORIM_CONTENT_TYPE}"
        )


def _within(validity: Validity, now: dt.datetime) -> bool:
    t = int(now.timestamp())
    return t <= validity.not_after and (validity.not_before is None or t >= validity.not_before)


def _corim_of(payload: bytes) -> tuple[Corim, SignedCorim | None]:
    """The CoRIM a statement carries, and its signed envelope when it has one. A CoRIM that
    names a profile is refused (``MalformedCorim`` code ``corim-profile-unknown``): Ironroot
    reads base CoRIM only, and a profile not understood rejects the CoRIM whole
    (draft-ietf-rats-corim §4.1), since it may change what any field means."""
    signed = SignedCorim.parse(payload) if payload[:1] == bytes((_COSE_SIGN1,)) else None
    corim = Corim.parse(payload) if signed is None else signed.corim
    if corim.profile is not None:
        named = (
            f"OID {corim.profile.value.hex()}"
            if isinstance(corim.profile, Tagged) and isinstance(corim.profile.value, bytes)
            else repr(corim.profile)
        )
        raise MalformedCorim(
            f"the CoRIM names the profile {named}, which Ironroot does not implement: a CoRIM "
            "whose profile is not understood is refused whole",
            code="corim-profile-unknown",
        )
    return corim, signed


_CWT_EXP: Final = 4
_CWT_NBF: Final = 5


def _check_cwt_times(
    claims: Mapping[object, object], now: dt.datetime | None, sub: str | None
) -> None:
    """A signed CoRIM's CWT claims ``exp`` and ``nbf`` (RFC 8392), when present: integers
    (``MalformedCorim``, whatever ``now``), and, given ``now``, ``now`` at or after ``nbf`` and
    before ``exp`` (``VerificationFailed`` ``rim-expired``)."""
    for label in (_CWT_EXP, _CWT_NBF):
        value = claims.get(label)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise MalformedCorim(f"the signed CoRIM's CWT claim {label} is not an integer")
    if now is None:
        return
    at = int(now.timestamp())
    exp, nbf = claims.get(_CWT_EXP), claims.get(_CWT_NBF)
    if (isinstance(exp, int) and at >= exp) or (isinstance(nbf, int) and at < nbf):
        raise VerificationFailed(
            f"the signature of the reference values of {sub!r} is outside its validity "
            "(CWT exp/nbf)",
            code="rim-expired",
        )


def _window(
    validities: Sequence[Validity], cwt: Sequence[Mapping[object, object] | None]
) -> tuple[int | None, int | None]:
    """The span (inclusive epoch seconds) inside every validity and every set of CWT claims'
    ``nbf``/``exp`` (the statement's own, and a signed CoRIM's)."""
    starts = [v.not_before for v in validities if v.not_before is not None]
    ends = [v.not_after for v in validities]
    for cwt_claims in cwt:
        if cwt_claims is None:
            continue
        nbf, exp = cwt_claims.get(_CWT_NBF), cwt_claims.get(_CWT_EXP)
        if isinstance(nbf, int) and not isinstance(nbf, bool):
            starts.append(nbf)
        if isinstance(exp, int) and not isinstance(exp, bool):
            ends.append(exp - 1)  # valid before exp
    return max(starts, default=None), min(ends, default=None)


def _check_dating(mode: str, now: dt.datetime | None) -> None:
    """``outside_validity`` is ``"refuse"`` or ``"report"`` (a misspelt mode is no mode), and
    ``now`` is timezone-aware (a naive one would be read as the machine's local time)."""
    if mode not in ("refuse", "report"):
        raise ConfigError('outside_validity is "refuse" or "report"')
    if now is not None and now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")


def reference_values_from_statement(
    data: bytes,
    *,
    service_keys: Mapping[bytes, Verifier],
    vendor_keys: Mapping[str, Sequence[Verifier]] | None = None,
    publishers: Sequence[ReferencePublisher] = (),
    now: dt.datetime | None = None,
    outside_validity: str = "refuse",
    service_issuer: str | None = None,
) -> tuple[ReferenceValue, ...]:
    """The reference values of one Transparent Statement, or the error that refuses it.

    ``publishers`` say which issuers may publish for which products (see the module doc):
    none given, every statement carrying reference values is refused. ``now`` with
    ``outside_validity="refuse"`` (the default) refuses a statement outside its dates
    (``VerificationFailed`` ``rim-expired``); ``outside_validity="report"`` takes it, every
    other check made as before, its values carrying their span (``not_before``/``not_after``),
    so :meth:`ReferenceValue.valid_at` says at ``now`` what was not refused — the platform's
    boot and measurement under ``expired_manifest = "report"``, and a verifier that names the
    expiry in its appraisal instead of dropping the values unseen. A ``now`` without a
    timezone is ``ConfigError``. ``service_issuer``: the transparency service every receipt
    must name (module docs, 1; ``None``: the keys alone decide)."""
    _check_dating(outside_validity, now)
    dated = now if outside_validity == "refuse" else None  # "report": the values carry them
    if not service_keys:
        raise UnknownIssuer(
            "no transparency service keys are configured: nothing is logged",
            code="untrusted-service",
        )
    at = None if now is None else now.timestamp()  # a receipt not from the future, either mode
    statement = verify_transparent_statement(data, service_keys, now=at).statement
    iss, sub = statement.claims.iss, statement.claims.sub
    if service_issuer is not None:
        what = f"the reference values of {sub!r}"
        on_trusted_log(data, service_keys, what, issuer=service_issuer, now=at, require_all=True)
    _check_corim_type(statement)
    keys: Sequence[Verifier] | None = None
    if vendor_keys is not None:
        keys = vendor_keys.get(iss)
        if not keys:
            raise UnknownIssuer(f"no vendor key is configured for issuer {iss!r}")
        _vendor_key(statement.kid, keys, statement)
    statement.validity  # noqa: B018  # raises MalformedStatement for a non-integer exp or nbf
    if dated is not None:
        try:
            statement.check_validity(dated)
        except VerificationFailed as exc:
            raise VerificationFailed(
                f"the statement of the reference values of {sub!r} is outside its validity "
                f"(its CWT exp/nbf: {exc.code})",
                code="rim-expired",
            ) from exc
    corim, signed = _corim_of(statement.payload)
    validities: list[Validity] = []
    cwt_claims: Mapping[object, object] | None = None
    if signed is not None:
        # Its signature is verified only under vendor keys; its dates count either way: the
        # logged statement vouches for these bytes, the dates in them included.
        if keys is not None:
            _vendor_key(signed.kid, keys, signed)
        window = signed.meta.signature_validity if signed.meta is not None else None
        if window is not None:
            validities.append(window)
        cwt_claims = signed.cwt_claims
        if dated is not None and window is not None and not _within(window, dated):
            raise VerificationFailed(
                f"the signature of the reference values of {sub!r} is outside its validity "
                "(corim-meta signature-validity)",
                code="rim-expired",
            )
        if cwt_claims is not None:
            _check_cwt_times(cwt_claims, dated, sub)
    validity = corim.rim_validity
    if dated is not None and validity is not None and not _within(validity, dated):
        raise VerificationFailed(
            f"the reference values of {sub!r} are outside their validity", code="rim-expired"
        )
    if validity is not None:
        validities.append(validity)
    values = _values(corim, iss, sub, _window(validities, (statement.claims.other, cwt_claims)))
    _check_publisher(values, iss, publishers)
    return values


def publishers_of_release(data: bytes) -> tuple[ReferencePublisher, ...]:
    """The products a vendor's release statement (Signed or Transparent Statement of a CoRIM)
    publishes reference values for, each allowing the statement's issuer: what
    ``attest init --release`` writes. Nothing is verified here — the operator chooses to trust
    this release's issuer — but the statement and CoRIM must parse (``MalformedStatement``,
    ``MalformedCorim``), carry reference values, and name a class vendor for each."""
    statement = SignedStatement.parse(data)
    _check_corim_type(statement)
    corim, _ = _corim_of(statement.payload)
    iss = statement.claims.iss
    values = _values(corim, iss, statement.claims.sub)
    if not values:
        raise MalformedCorim("the release carries no reference values")
    products: dict[tuple[str, str | None], None] = {}
    for value in values:
        if value.vendor is None:
            raise MalformedCorim("a reference value of the release names no class vendor")
        products[(value.vendor, value.model)] = None
    return tuple(ReferencePublisher(v, m, frozenset((iss,))) for v, m in products)


def rim_from_statement(
    data: bytes,
    *,
    service_keys: Mapping[bytes, Verifier],
    publishers: Sequence[ReferencePublisher] = (),
    now: dt.datetime,
    rim_roots: Sequence[x509.Certificate] | None = None,
    service_issuer: str | None = None,
) -> LoggedRim:
    """The RIM of one Transparent Statement (:func:`ironroot.rim.logged_rim_from_statement`,
    under ``rim_roots``: by default NVIDIA's pinned RIM root, its receipts naming
    ``service_issuer`` when given), its issuer a publisher of the RIM's manufacturer and model
    (module docs); or the error that refuses it."""
    if not service_keys:
        raise UnknownIssuer(
            "no transparency service keys are configured: nothing is logged",
            code="untrusted-service",
        )
    logged = logged_rim_from_statement(
        data, service_keys=service_keys, now=now, roots=rim_roots, service_issuer=service_issuer
    )
    vendor, model = logged.rim.manufacturer, logged.rim.model
    if not any(
        p.vendor == vendor and p.model in (None, model) and logged.issuer in p.issuers
        for p in publishers
    ):
        raise UnknownIssuer(
            f"issuer {logged.issuer!r} may not publish reference values for vendor {vendor!r} "
            f"model {model!r}: no configured product lists it",
            code="publisher-not-allowed",
        )
    return logged


def _in_force(values: Sequence[ReferenceValue]) -> tuple[ReferenceValue, ...]:
    """``values`` without those of superseded CoMIDs (draft-ietf-rats-corim §5.1.1.2,
    §5.1.3): a tag another tag of the same issuer ``replaces`` ("the information in the
    target MUST be disregarded"), and a tag-id's versions older than the issuer's newest.
    A tag naming itself replaces nothing; tags that replace each other are both gone.

    Two different CoMIDs of one issuer, tag-id and tag-version
    (:attr:`ReferenceValue.tag_digest`) are one tag stated two ways: which one holds is
    unknown, so the values of neither match (:data:`_TWO_WAYS` among their
    :attr:`~ReferenceValue.unchecked`), while the SVN floors of both still count. The same
    CoMID logged twice is one tag; a greater tag-version supersedes both."""
    replaced = {(v.issuer, t) for v in values for t in v.replaces if t != v.tag_id}
    newest: dict[tuple[str, str | bytes], int] = {}
    versions: dict[tuple[str, str | bytes, int], set[bytes | None]] = {}
    for v in values:
        if v.tag_id is not None:
            key = (v.issuer, v.tag_id)
            newest[key] = max(newest.get(key, v.tag_version), v.tag_version)
            versions.setdefault((v.issuer, v.tag_id, v.tag_version), set()).add(v.tag_digest)
    return tuple(
        dataclasses.replace(v, unchecked=(*v.unchecked, _TWO_WAYS))
        if v.tag_id is not None and len(versions[(v.issuer, v.tag_id, v.tag_version)]) > 1
        else v
        for v in values
        if v.tag_id is None
        or ((v.issuer, v.tag_id) not in replaced and v.tag_version >= newest[(v.issuer, v.tag_id)])
    )


_TWO_WAYS: Final = "another CoMID of its tag-id and tag-version"
"""What a value of a tag its issuer logged two ways states that no evidence can match."""


class ReferenceValues:
    """An immutable store of logged reference values, indexed by digest.

    Only values in force are kept: those of a CoMID that another logged CoMID of the same
    issuer replaces, or of which that issuer logged a newer ``tag-version``, are left out
    (:attr:`ReferenceValue.replaces`, :attr:`ReferenceValue.tag_version`)."""

    __slots__ = ("_by_digest", "_floors", "_values")

    def __init__(self, values: Iterable[ReferenceValue] = ()) -> None:
        self._values: tuple[ReferenceValue, ...] = _in_force(tuple(values))
        self._by_digest: dict[bytes, list[ReferenceValue]] = {}
        self._floors: dict[tuple[object, ...], int] = {}
        for value in self._values:
            for digest in {d for alg, d in value.digests if is_full_digest(alg, d)}:
                self._by_digest.setdefault(digest, []).append(value)
            if value.svn is not None:
                env = value.environment
                self._floors[env] = max(self._floors.get(env, value.svn), value.svn)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[ReferenceValue]:
        return iter(self._values)

    def matching(self, mkey: str, digest: bytes) -> tuple[ReferenceValue, ...]:
        """The logged values for measurement ``mkey`` that match ``digest``
        (:meth:`ReferenceValue.matches`)."""
        return tuple(v for v in self.naming(mkey, digest) if not v.unchecked)

    def listing(self, digest: bytes) -> tuple[ReferenceValue, ...]:
        """The logged values, of any measurement, that list ``digest``."""
        return tuple(self._by_digest.get(digest, ()))

    def naming(self, mkey: str, digest: bytes) -> tuple[ReferenceValue, ...]:
        """The logged values for measurement ``mkey`` that list ``digest`` under an algorithm
        :meth:`ReferenceValue.matches` compares, those stating what appraisal does not
        compare included: they match nothing, but the release they describe still sets the
        floor of a device running it."""
        return tuple(v for v in self._by_digest.get(digest, ()) if v.mkey == mkey)

    def minimum_svn(self, value: ReferenceValue) -> int | None:
        """The highest SVN any logged value for ``value``'s environment requires."""
        return self._floors.get(value.environment)


def _root_der(root: bytes) -> bytes:
    """A trusted root's DER (``root`` is PEM or DER): read by the X.509 loader, which keeps
    what it read by its bytes (a device's pinned root, which the SPDM verifier has just used,
    is not parsed again); one it refuses, a RIoT root with ECDSA NULL parameters, by the DICE
    parser (``MalformedCertificate`` for what neither reads). A root's DICE extensions are
    decoded where a quote's chain is checked against it (:func:`ironroot.rot.verify_quote`)."""
    try:
        return load_certificate(root, allow_unsupported=True).public_bytes(Encoding.DER)
    except MalformedCertificate:
        return parse_certificate(root).der


Labelled = bytes | tuple[str, bytes]
"""Statement or certificate bytes, or ``(label, bytes)`` where the label (a file name) names
the item in ``rejected`` and in the logged warning."""


def _labelled(items: Iterable[Labelled], what: str) -> Iterator[_Item]:
    for number, item in enumerate(items):
        if isinstance(item, tuple):
            yield _Item(*item)
        else:
            yield _Item(f"{what} {number}", item)


@dataclass(frozen=True, slots=True)
class _Item:
    label: str
    data: bytes

    def __str__(self) -> str:
        return self.label


def reviews_from_statements(
    statements: Iterable[Labelled],
    *,
    providers: ProviderKeys,
    service_keys: Mapping[bytes, Verifier],
    now: dt.datetime | None = None,
    service_issuer: str | None = None,
) -> tuple[tuple[Review, ...], tuple[str, ...]]:
    """The SAFE reviews among ``statements`` whose receipts (naming ``service_issuer``, when
    given) and SFRs verify; and one line per statement refused (also logged as a warning)."""

    def review(item: _Item) -> Review:
        if not service_keys:
            raise UnknownIssuer("no transparency service keys", code="untrusted-service")
        return review_from_statement(
            item.data,
            providers,
            service_keys=service_keys,
            now=now,
            service_issuer=service_issuer,
        )

    reviews, rejected = load_each(
        _labelled(statements, "review statement"), review, log=_log, what="review"
    )
    return tuple(reviews), tuple(rejected)


@dataclass(frozen=True, slots=True)
class Endorsements:
    """What appraisal compares evidence with: logged reference values, logged GPU RIMs
    (``rims``), logged SAFE reviews and the trusted vendor CA certificates RoT quotes must chain
    to (``vendor_roots``, DER; ``trusted_roots`` holds their SHA-256 fingerprints)."""

    reference_values: ReferenceValues = field(default_factory=ReferenceValues)
    reviews: tuple[Review, ...] = ()
    vendor_roots: tuple[bytes, ...] = ()
    rejected: tuple[str, ...] = ()
    rims: LoggedRims = field(default_factory=LoggedRims)
    products: tuple[ReferencePublisher, ...] = ()
    trusted_roots: frozenset[str] = field(default=frozenset(), init=False)
    _one_product: bool = field(default=True, init=False, repr=False, compare=False)
    _kinds: tuple[frozenset[tuple[str | None, str | None]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )
    _changes: tuple[tuple[float, ...], tuple[float, ...]] = field(
        default=((), ()), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._trust_roots(self.vendor_roots)
        object.__setattr__(self, "products", tuple(self.products))
        kinds = {(v.vendor, v.model) for v in self.reference_values}
        object.__setattr__(self, "_one_product", len(kinds) <= 1)
        # the products (vendor, model) of the values each configured product admits
        object.__setattr__(
            self,
            "_kinds",
            tuple(
                frozenset((v.vendor, v.model) for v in self.reference_values if p.allows(v))
                for p in self.products
            ),
        )
        # When a logged value, RIM or review starts or stops counting: from the instant
        # itself (value starts and ends, which count whole seconds, RIM starts, review nbf and
        # exp), or from just after it (a RIM's chain is valid up to its notAfter, inclusive)
        values = tuple(self.reference_values)
        at = {float(v.not_before) for v in values if v.not_before is not None}
        at |= {float(v.not_after + 1) for v in values if v.not_after is not None}
        at |= {r.rim.not_before.timestamp() for r in self.rims}
        at |= {float(t) for r in self.rims for t in (r.not_before, r.expires_at) if t is not None}
        at |= {float(r.report.not_before) for r in self.reviews if r.report.not_before is not None}
        at |= {float(r.report.expires_at) for r in self.reviews if r.report.expires_at is not None}
        at |= {float(r.not_before) for r in self.reviews if r.not_before is not None}
        at |= {float(r.expires_at) for r in self.reviews if r.expires_at is not None}
        after = {r.rim.not_after.timestamp() for r in self.rims}
        object.__setattr__(self, "_changes", (tuple(sorted(at)), tuple(sorted(after))))

    def _with_vendor_roots(self, roots: Sequence[bytes]) -> Endorsements:
        """These endorsements trusting ``roots`` (PEM or DER) in place of theirs: what
        ``Endorsements(...)`` with ``vendor_roots=roots`` and the rest of these fields makes,
        without deriving again what does not depend on the roots (the products' kinds, when
        values start and stop counting): a fleet's devices each pin their own root beside
        their class's values."""
        copy = object.__new__(Endorsements)
        for name in _ENDORSEMENTS_FIELDS:
            object.__setattr__(copy, name, getattr(self, name))
        copy._trust_roots(roots)
        return copy

    def _trust_roots(self, roots: Sequence[bytes]) -> None:
        """Set ``vendor_roots`` to ``roots`` (PEM or DER) as DER and ``trusted_roots`` to
        their SHA-256 fingerprints."""
        ders = tuple(_root_der(root) for root in roots)
        object.__setattr__(self, "vendor_roots", ders)
        object.__setattr__(
            self, "trusted_roots", frozenset(hashlib.sha256(d).hexdigest() for d in ders)
        )

    def validity_epoch(self, now: dt.datetime) -> int:
        """How many times, up to ``now``, a logged value, RIM or review started or stopped
        counting: two appraisals at times of one epoch compare evidence with the same values
        (what a cache of appraisals is keyed by, beside the endorsements themselves)."""
        t = now.timestamp()
        at, after = self._changes
        return bisect.bisect_right(at, t) + bisect.bisect_left(after, t)

    def applies(self, value: ReferenceValue, evidence: EvidenceClaims) -> bool:
        """Whether logged ``value`` may be compared with ``evidence``: one of the products
        that admitted it (:attr:`products`) selects the evidence; a product without a selector
        does so only while it is the only product with reference values here; and the
        products selecting the evidence admit values of that one product (vendor and model)
        only (:meth:`products_for`; else no value applies). Endorsements made without
        products (a caller that chose the values for its device) apply all.

        Whatever the products, a value whose environment names an instance applies only to
        evidence of that instance: a UEID (tag 550) equal to the evidence's ``ueid`` identity
        claim. Any other instance, and any group, names nothing evidence carries: such a value
        applies to no evidence (it never widens to the whole class)."""
        if value.group is not None or not _same_instance(value.instance, evidence):
            return False
        if not self.products:
            return True
        selecting = self._selecting(evidence)
        if len(frozenset().union(*(self._kinds[i] for i in selecting))) > 1:
            return False  # the evidence is of no one product (:meth:`products_for`)
        return any(self.products[i].allows(value) for i in selecting)

    def _selecting(self, evidence: EvidenceClaims) -> list[int]:
        """The indexes of the products that select ``evidence``."""
        return [
            i
            for i, p in enumerate(self.products)
            if p.selects(evidence) or (not p.evidence and self._one_product)
        ]

    def products_for(self, evidence: EvidenceClaims) -> tuple[str, ...]:
        """The products (``vendor '…' model '…'``, sorted) whose logged values the configured
        products that select ``evidence`` admit. More than one: the evidence, which names
        no product of its own, is of no one product, and no value applies to it
        (:meth:`applies`, fail closed): a device would otherwise be affirmed running the
        release logged for another product of the selector (another model of a vendor-wide
        entry, or another entry selecting the same root). Empty without products."""
        kinds = frozenset().union(*(self._kinds[i] for i in self._selecting(evidence)))
        return tuple(sorted(_product(*kind) for kind in kinds))

    def reviews_for(
        self, alg: str, digest: bytes, *, now: dt.datetime | None = None
    ) -> tuple[Review, ...]:
        """The reviews whose SFR names ``digest`` as its ``alg`` firmware hash; with ``now``,
        only those in force then (``nbf`` reached, ``exp`` not: reviews are read once, when
        the verifier starts, and expire)."""
        return tuple(
            r
            for r in self.reviews
            if r.report.firmware_hashes().get(alg) == digest and (now is None or r.counts_at(now))
        )

    @classmethod
    def build(
        cls,
        *,
        service_keys: Mapping[bytes, Verifier],
        reference_statements: Iterable[Labelled] = (),
        review_statements: Iterable[Labelled] = (),
        providers: ProviderKeys | None = None,
        vendor_keys: Mapping[str, Sequence[Verifier]] | None = None,
        publishers: Sequence[ReferencePublisher] = (),
        vendor_roots: Iterable[Labelled] = (),
        now: dt.datetime | None = None,
        rim_roots: Sequence[x509.Certificate] | None = None,
        outside_validity: str = "refuse",
        service_issuer: str | None = None,
    ) -> Endorsements:
        """Collect endorsements from statement bytes; a statement or vendor root that does not
        load or verify, whatever the error, is left out, logged as a warning and listed in
        ``rejected`` (each item may be labelled with its file name: :data:`Labelled`).

        ``vendor_roots`` are the vendor CA certificates (PEM or DER) RoT quotes must chain to;
        ``publishers`` who may publish reference values for which product (none: no one).
        Reference statements that carry a RIM become ``rims`` (:func:`rim_from_statement`,
        under ``rim_roots``, by default NVIDIA's pinned RIM root; they need ``now``).
        ``outside_validity="report"`` keeps CoRIM reference values outside their dates at
        ``now`` (:func:`reference_values_from_statement`) instead of leaving them out: the
        appraisal judges each value's span at its own ``now`` and names the expiry
        (``… (its logged values have expired)``) where the values would otherwise be unseen.
        Any other value is ``ConfigError``, raised here (not one statement's fault), and so
        is a ``now`` without a timezone. ``service_issuer``: the transparency service whose
        receipts count (the CWT ``iss`` they name); a statement whose receipt names another is
        rejected (``UnknownIssuer`` ``untrusted-service``). ``None``: the keys alone decide.
        """
        _check_dating(outside_validity, now)

        def values_of(item: _Item) -> tuple[ReferenceValue, ...] | LoggedRim:
            if carries_rim(item.data):
                if now is None:
                    raise ConfigError("a RIM is checked at a time: give now")
                return rim_from_statement(
                    item.data,
                    service_keys=service_keys,
                    publishers=publishers,
                    now=now,
                    rim_roots=rim_roots,
                    service_issuer=service_issuer,
                )
            return reference_values_from_statement(
                item.data,
                service_keys=service_keys,
                vendor_keys=vendor_keys,
                publishers=publishers,
                now=now,
                outside_validity=outside_validity,
                service_issuer=service_issuer,
            )

        found, rejected = load_each(
            _labelled(reference_statements, "reference statement"),
            values_of,
            log=_log,
            what="reference values",
        )
        rims = [item for item in found if isinstance(item, LoggedRim)]
        values = [v for group in found if not isinstance(group, LoggedRim) for v in group]
        roots, bad_roots = load_each(
            _labelled(vendor_roots, "vendor root"),
            lambda item: parse_certificate(item.data).der,
            log=_log,
            what="vendor root",
        )
        rejected.extend(bad_roots)
        reviews: tuple[Review, ...] = ()
        if providers is not None:
            reviews, refused = reviews_from_statements(
                review_statements,
                providers=providers,
                service_keys=service_keys,
                now=now,
                service_issuer=service_issuer,
            )
            rejected.extend(refused)
        return cls(
            reference_values=ReferenceValues(values),
            reviews=reviews,
            vendor_roots=tuple(roots),
            rejected=tuple(rejected),
            rims=LoggedRims(rims),
            products=tuple(publishers),
        )

    def ambiguous(self) -> tuple[ReferencePublisher, ...]:
        """The products with a selector whose evidence would be of no one product
        (:meth:`products_for`) whatever it carries: the entry admits values of several
        products (a vendor-wide entry while two of its models have values), or another
        entry with the same selector admits another product's. Evidence selected by
        overlapping selectors of other claims is only found when appraised."""
        found = []
        for p in self.products:
            if not p.evidence:
                continue
            kinds = frozenset().union(
                *(self._kinds[j] for j, q in enumerate(self.products) if q.evidence == p.evidence)
            )
            if len(kinds) > 1:
                found.append(p)
        return tuple(found)

    def unselected(self) -> tuple[ReferencePublisher, ...]:
        """The products whose reference values match no evidence here: they name no evidence
        they are for, beside other products' values (:meth:`applies`)."""
        if self._one_product:
            return ()
        values = tuple(self.reference_values)
        return tuple(
            p for p in self.products if not p.evidence and any(p.allows(v) for v in values)
        )


_ENDORSEMENTS_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Endorsements))
"""Every field of :class:`Endorsements` (:meth:`Endorsements._with_vendor_roots` copies them)."""
