"""Sign and verify Short Form Reports in both published forms.

* **JWS / JWT**: the JSON report as the payload of a compact JWS (``*.jws``, ``*.jwt``; the
  payload is a JWT claims set, so ``iat``/``exp``/``nbf`` are honoured when ``now`` is given).
* **COSE**: the CoRIM-profile report as the payload of a COSE_Sign (tag 98), as Tetrel Security
  signs the Microsoft 2026 reports, or of a COSE_Sign1 (tag 18), as the OCP library does.
  Each signer is found by its ``kid``; every signer whose key is known must verify, and at least
  one must be known.

The signature is always checked before the report itself is parsed, so a tampered report is a
``BadSignature`` whatever the tampering did to its content. Then the report's ``audit.srp``
must name the provider whose key signed it (:meth:`ProviderKeys.check_srp`, ``srp-mismatch``),
and, given ``now``, it must not come from the future: a JWT ``iat`` later than ``now`` plus
:data:`CLOCK_SKEW` (5 minutes), or a completion date that has not yet begun anywhere on Earth
(UTC+14) at that time, is ``report-future-dated``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Final, Literal

from ironroot.cose import (
    CONTENT_TYPE,
    COSE_SIGN1_TAG,
    COSE_SIGN_TAG,
    KID,
    CoseSign,
    Limits,
    Sign1,
    cose_sign,
)
from ironroot.crypto import Algorithm, PublicKey, Signer
from ironroot.errors import (
    AlgorithmNotAccepted,
    LimitExceeded,
    MalformedInput,
    MalformedReport,
    UnknownIssuer,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.safe._corim import build_sfr_corim, parse_sfr_corim
from ironroot.safe._jws import parse_compact_jws, sign_compact_jws
from ironroot.safe._keys import ProviderKeys, check_now
from ironroot.safe._model import (
    DEFAULT_SAFE_LIMITS,
    SafeLimits,
    ShortFormReport,
    load_json,
    parse_report_object,
)

__all__ = [
    "CLOCK_SKEW",
    "CORIM_CONTENT_TYPE",
    "SFR_COSE_CONTENT_TYPE",
    "SFR_JWS_CONTENT_TYPE",
    "ReportFormat",
    "UnverifiedReport",
    "VerifiedReport",
    "inspect_report",
    "report_format",
    "sign_report",
    "verify_report",
]

ReportFormat = Literal["jws", "cose"]
SFR_JWS_CONTENT_TYPE: Final = "application/vnd.ocp.sfr+jws"
SFR_COSE_CONTENT_TYPE: Final = "application/vnd.ocp.sfr+cose"
CORIM_CONTENT_TYPE: Final = "application/rim+cbor"
_CONTENT_TYPES: Final[dict[str, str]] = {"jws": SFR_JWS_CONTENT_TYPE, "cose": SFR_COSE_CONTENT_TYPE}
_ACCEPTED_COSE: Final = frozenset((Algorithm.ES384, Algorithm.ES512))
CLOCK_SKEW: Final = dt.timedelta(minutes=5)
"""How far a report's issue time may be ahead of ``now`` (the signer's clock may run fast)."""
_EARLIEST_ZONE: Final = 14 * 3600  # seconds: at UTC+14 a calendar date begins first


@dataclass(frozen=True, slots=True)
class VerifiedReport:
    """A report whose signature verified with the provider key its ``kid`` names."""

    report: ShortFormReport
    format: ReportFormat
    kid: str
    algorithm: Algorithm
    key: PublicKey

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class UnverifiedReport:
    """A report read without checking its signature (for display and routing only)."""

    report: ShortFormReport
    format: ReportFormat
    kid: str


def report_format(data: bytes) -> ReportFormat:
    """``"cose"`` for a CBOR-tagged COSE message, ``"jws"`` for compact JWS text."""
    head = bytes(data[:3])
    if head[:1] == bytes((0xC0 | COSE_SIGN1_TAG,)) or head[:2] == bytes((0xD8, COSE_SIGN_TAG)):
        return "cose"
    return "jws"


def _kid_text(kid: bytes) -> str:
    try:
        return kid.decode("utf-8")
    except UnicodeDecodeError:
        return kid.hex()


def _check_times(report: ShortFormReport, now: dt.datetime | None) -> None:
    if now is None:
        return
    t = now.timestamp()
    latest = t + CLOCK_SKEW.total_seconds()
    if report.issued_at is not None and report.issued_at > latest:
        raise VerificationFailed(
            f"the report was issued in the future (JWT iat {report.issued_at}, now "
            f"{int(t)}, allowed clock skew {int(CLOCK_SKEW.total_seconds())} s)",
            code="report-future-dated",
        )
    completed = report.audit.completion_date
    # A date without a time zone: refused only once it has begun nowhere yet, so that a
    # review finished this morning east of UTC is not refused while UTC is still yesterday.
    if completed is not None:
        begins = dt.datetime.combine(completed, dt.time(), dt.UTC).timestamp() - _EARLIEST_ZONE
        if begins > latest:
            raise VerificationFailed(
                f"the review's completion date {completed.isoformat()} is in the future",
                code="report-future-dated",
            )
    if report.expires_at is not None and t >= report.expires_at:
        raise VerificationFailed(
            "the report has expired (JWT exp, CoRIM rim-validity not-after)",
            code="report-expired",
        )
    if report.not_before is not None and t < report.not_before:
        raise VerificationFailed(
            "the report is not yet valid (JWT nbf, CoRIM rim-validity not-before)",
            code="report-not-yet-valid",
        )


def _verify_jws(
    data: bytes, providers: ProviderKeys, now: dt.datetime | None, limits: SafeLimits
) -> VerifiedReport:
    jws = parse_compact_jws(data, limits)
    key = jws.verify(providers)
    report = parse_report_object(load_json(jws.payload, limits, "JWS payload"), limits)
    providers.check_srp(key, report.audit.srp)
    if now is not None:
        providers.check_validity(key, now)
    _check_times(report, now)
    return VerifiedReport(report, "jws", jws.kid, key.algorithm, key)


_MAX_SIGNERS: Final = 8
"""Signers of one COSE SFR: the review provider's, and room for countersignatures."""


def _cose_limits(limits: SafeLimits) -> Limits:
    cap = limits.cose_cap
    return Limits(max_bytes=cap, max_depth=limits.max_depth, max_items=1024)


def _decode_cose(data: bytes, limits: SafeLimits) -> CoseSign | Sign1:
    cap = limits.cose_cap
    if len(data) > cap:  # refused whole, before a byte of it becomes an object
        raise LimitExceeded(f"COSE report of {len(data)} bytes exceeds {cap}")
    try:
        if report_format(data) != "cose":
            raise MalformedReport("a COSE SFR must be a tagged COSE_Sign (98) or COSE_Sign1 (18)")
        if data[:1] == bytes((0xC0 | COSE_SIGN1_TAG,)):
            msg: CoseSign | Sign1 = Sign1.decode(data, _cose_limits(limits))
        else:
            msg = CoseSign.decode(data, _cose_limits(limits))
    except (MalformedReport, LimitExceeded):
        raise
    except MalformedInput as exc:
        raise MalformedReport(f"not a COSE SFR: {exc.detail}") from exc
    if msg.payload is None:
        raise MalformedReport("the COSE SFR payload must be attached")
    if isinstance(msg, CoseSign):
        # Each signer with a known kid is verified: copies of one published signature would
        # each verify, at a millisecond of ECDSA apiece.
        if len(msg.signatures) > _MAX_SIGNERS:
            raise LimitExceeded(
                f"the COSE SFR has {len(msg.signatures)} signatures, more than {_MAX_SIGNERS}"
            )
        if len({s.encode() for s in msg.signatures}) != len(msg.signatures):
            raise MalformedReport("the COSE SFR carries one signature twice")
    return msg


def _cose_key(providers: ProviderKeys, kid: bytes) -> PublicKey:
    key = providers.lookup(kid)
    if key.algorithm not in _ACCEPTED_COSE:
        raise AlgorithmNotAccepted(f"SFR keys are ES384 or ES512, not {key.algorithm.label}")
    return key


def _verify_cose(
    data: bytes, providers: ProviderKeys, now: dt.datetime | None, limits: SafeLimits
) -> VerifiedReport:
    msg = _decode_cose(data, limits)
    verified: list[tuple[str, PublicKey]] = []
    unknown: UnknownIssuer | None = None
    try:
        if isinstance(msg, Sign1):
            kid = msg.protected.get(KID, msg.unprotected.get(KID))
            if not isinstance(kid, bytes) or not kid:
                raise MalformedReport("the COSE_Sign1 SFR has no byte-string kid (4)")
            key = _cose_key(providers, kid)
            msg.verify(key)
            verified.append((_kid_text(kid), key))
        else:
            for signature in msg.signatures:
                sig_kid = signature.kid
                if sig_kid is None:
                    continue
                try:
                    key = _cose_key(providers, sig_kid)
                except UnknownIssuer as exc:
                    unknown = unknown or exc
                    continue
                msg.verify_signature(signature, key)
                verified.append((_kid_text(sig_kid), key))
    except MalformedInput as exc:
        if isinstance(exc, MalformedReport | LimitExceeded | UnsupportedAlgorithm):
            raise
        raise MalformedReport(exc.detail) from exc
    if not verified:
        raise unknown or UnknownIssuer("no signer of the COSE SFR names a kid")
    payload = msg.payload
    assert payload is not None  # _decode_cose rejects detached payloads
    report = parse_sfr_corim(payload, limits)
    # The provider is a signer whose key is the provider's own (others may countersign).
    refusal: VerificationFailed | None = None
    chosen: tuple[str, PublicKey] | None = None
    for candidate in verified:
        try:
            providers.check_srp(candidate[1], report.audit.srp)
        except VerificationFailed as exc:
            refusal = refusal or exc
        else:
            chosen = candidate
            break
    if chosen is None:
        assert refusal is not None
        raise refusal
    kid_text, key = chosen
    if now is not None:
        providers.check_validity(key, now)
    _check_times(report, now)
    return VerifiedReport(report, "cose", kid_text, key.algorithm, key)


def verify_report(
    data: bytes,
    providers: ProviderKeys,
    *,
    now: dt.datetime | None = None,
    limits: SafeLimits = DEFAULT_SAFE_LIMITS,
) -> VerifiedReport:
    """Verify a signed SFR (compact JWS/JWT or COSE) against the review-provider keys.

    Returns the verified report, or raises: ``MalformedReport`` (``LimitExceeded`` for sizes),
    ``AlgorithmNotAccepted``, ``UnknownIssuer``, ``BadSignature``, ``CertificateExpired``
    (given ``now``, outside the validity of the provider certificate the key came from), or
    ``VerificationFailed``:
    ``srp-mismatch`` when the report's ``srp`` is not the provider whose key signed it;
    ``report-expired`` / ``report-not-yet-valid`` for a JWT outside ``exp``/``nbf``, or a
    CoRIM outside its ``rim-validity``, at ``now``; ``report-future-dated`` for a report
    issued after ``now`` plus :data:`CLOCK_SKEW`.
    """
    check_now(now)
    if not isinstance(data, bytes | bytearray):
        raise MalformedReport("a signed report must be bytes")
    data = bytes(data)
    if report_format(data) == "cose":
        return _verify_cose(data, providers, now, limits)
    return _verify_jws(data, providers, now, limits)


def inspect_report(data: bytes, limits: SafeLimits = DEFAULT_SAFE_LIMITS) -> UnverifiedReport:
    """Read a signed SFR **without** checking its signature: who claims to have signed it and
    what it says. For routing and display only; trust needs :func:`verify_report`."""
    data = bytes(data)
    if report_format(data) == "jws":
        jws = parse_compact_jws(data, limits)
        value = load_json(jws.payload, limits, "JWS payload")
        return UnverifiedReport(parse_report_object(value, limits), "jws", jws.kid)
    msg = _decode_cose(data, limits)
    kid: object
    if isinstance(msg, Sign1):
        kid = msg.protected.get(KID, msg.unprotected.get(KID))
    else:
        kid = next((s.kid for s in msg.signatures if s.kid is not None), None)
    payload = msg.payload
    assert payload is not None
    return UnverifiedReport(
        parse_sfr_corim(payload, limits),
        "cose",
        _kid_text(kid) if isinstance(kid, bytes) else "",
    )


def sign_report(
    report_json: bytes,
    signer: Signer,
    kid: str,
    *,
    format: ReportFormat = "jws",
    limits: SafeLimits = DEFAULT_SAFE_LIMITS,
) -> bytes:
    """Sign a JSON SFR: as a compact JWS (the JSON, compacted, as the payload) or as the CoRIM
    profile in a COSE_Sign (tag 98) with ``alg`` and ``kid`` in the signer's protected header.

    The report is parsed first, so a malformed report is never signed (``MalformedReport``);
    the signer must be ES384 or ES512 (``AlgorithmNotAccepted``).
    """
    value = load_json(report_json, limits)
    report = parse_report_object(value, limits)
    if signer.algorithm not in _ACCEPTED_COSE:
        raise AlgorithmNotAccepted(
            f"SFRs are signed with ES384 or ES512, not {signer.algorithm.label}"
        )
    if format == "jws":
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return sign_compact_jws(payload, signer, kid)
    if format != "cose":
        raise MalformedReport(f"unknown SFR format {format!r} (jws or cose)")
    if not kid:
        raise MalformedReport("the kid must name the review provider")
    corim = build_sfr_corim(report)
    message = cose_sign(
        [signer],
        corim,
        protected={CONTENT_TYPE: CORIM_CONTENT_TYPE},
        signer_headers=[({KID: kid.encode("utf-8")}, {})],
    )
    return message.encode()
