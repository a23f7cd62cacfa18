"""SFRs on the transparency service: the Signed Statement that publishes one, and the query
"which verified reviews cover this firmware hash, and what do they leave open?".

Publishing wraps the signed SFR, unchanged, as the payload of a SCITT Signed Statement whose
``sub`` is the reviewed firmware hash (``sha384:<hex>``, else ``sha512:<hex>``) and whose content
type says which form it is (``application/vnd.ocp.sfr+jws`` or ``+cose``). A Signed Statement
is a log entry of at most 65,535 bytes, so an SFR too large for that (one with a very large
source manifest) cannot be published this way and raises ``PayloadTooLarge``.

A review found on the log counts only when all of this holds: the statement is an SFR statement,
its receipts verify against the service's keys (when they are given) and, with
``service_issuer``, name that transparency service in their CWT ``iss`` (``UnknownIssuer``
``untrusted-service``, the platform's check: :func:`ironroot.cose.on_trusted_log`), the SFR
inside verifies
against the review-provider keys, and the statement's ``sub`` is one of the SFR's own firmware
hashes. The SFR's signature is what makes a review trustworthy; the receipts make it public.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from ironroot.cose import (
    SignedStatement,
    TransparentStatement,
    create_statement,
    on_trusted_log,
    verify_transparent_statement,
)
from ironroot.crypto import Signer, Verifier
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedInput,
    MalformedReport,
    VerificationFailed,
)
from ironroot.safe._keys import ProviderKeys, check_now
from ironroot.safe._model import DEFAULT_SAFE_LIMITS, SafeLimits, ShortFormReport
from ironroot.safe._verify import (
    SFR_COSE_CONTENT_TYPE,
    SFR_JWS_CONTENT_TYPE,
    ReportFormat,
    inspect_report,
    report_format,
    verify_report,
)

__all__ = [
    "Review",
    "firmware_subject",
    "has_issue_at_or_above",
    "max_open_cvss",
    "parse_firmware_hash",
    "review_from_statement",
    "reviews_for",
    "sfr_statement",
]

_SIZES: Final = {"sha384": 48, "sha512": 64}
_BY_HEX_LENGTH: Final = {96: "sha384", 128: "sha512"}
_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_SFR_TYPES: Final = frozenset((SFR_JWS_CONTENT_TYPE, SFR_COSE_CONTENT_TYPE))


def parse_firmware_hash(text: str) -> tuple[str, bytes]:
    """``sha384:<hex>``, ``sha512:<hex>`` or bare hex (96 or 128 digits, optional ``0x``)."""
    value = text.strip()
    alg: str | None = None
    if ":" in value:
        alg, value = value.split(":", 1)
        alg = alg.lower().replace("-", "")
        if alg not in _SIZES:
            raise MalformedInput(f"unknown firmware hash algorithm {alg!r} (sha384 or sha512)")
    if value[:2] in ("0x", "0X"):
        value = value[2:]
    if not _HEX.fullmatch(value) or len(value) % 2:
        raise MalformedInput("the firmware hash is not hex")
    alg = alg or _BY_HEX_LENGTH.get(len(value))
    if alg is None or len(value) != 2 * _SIZES[alg]:
        raise MalformedInput("a firmware hash is a SHA-384 (96 hex digits) or SHA-512 (128)")
    return alg, bytes.fromhex(value)


def firmware_subject(report: ShortFormReport) -> str:
    """The statement ``sub`` for a report: its SHA-384 firmware hash, else its SHA-512."""
    hashes = report.firmware_hashes()
    for alg in ("sha384", "sha512"):
        if alg in hashes:
            return f"{alg}:{hashes[alg].hex()}"
    raise MalformedReport("the report has no full-length SHA-384 or SHA-512 firmware hash")


def sfr_statement(
    sfr: bytes,
    signer: Signer,
    *,
    iss: str,
    providers: ProviderKeys | None = None,
    now: dt.datetime | None = None,
    limits: SafeLimits = DEFAULT_SAFE_LIMITS,
) -> bytes:
    """A Signed Statement publishing ``sfr`` (signed JWS/JWT or COSE), ready to register.

    With ``providers`` the SFR must verify first (a report that does not verify is never
    published); without, it is only parsed, to find its firmware hash.
    """
    if providers is not None:
        report = verify_report(sfr, providers, now=now, limits=limits).report
    else:
        report = inspect_report(sfr, limits).report
    fmt = report_format(sfr)
    content_type = SFR_COSE_CONTENT_TYPE if fmt == "cose" else SFR_JWS_CONTENT_TYPE
    payload = bytes(sfr).strip() if fmt == "jws" else bytes(sfr)
    return create_statement(
        signer, payload, iss=iss, sub=firmware_subject(report), content_type=content_type
    )


@dataclass(frozen=True, slots=True)
class Review:
    """A verified SFR found on the log, with the statement that published it."""

    report: ShortFormReport
    format: ReportFormat
    provider_kid: str
    issuer: str
    subject: str
    receipts_verified: bool
    not_before: int | None = None
    expires_at: int | None = None
    """The statement's own CWT ``nbf`` and ``exp`` (``None``: absent): the review counts from
    ``nbf`` and before ``exp``, besides its report's dates. ``expires_at`` is earlier when the
    provider certificate whose key verified the SFR ends first (its ``notAfter`` plus one
    second: the review no longer counts once the certificate has expired)."""

    @property
    def max_open_cvss(self) -> float | None:
        """The highest CVSS score among the open issues; ``None`` when none is open."""
        return self.report.max_cvss

    def counts_at(self, now: dt.datetime) -> bool:
        """Whether the review counts at ``now``: its report's ``nbf`` and its statement's
        reached, neither ``exp`` (nor its provider certificate's end, in ``expires_at``). A
        review read once and kept is asked again at each use."""
        check_now(now)
        t = now.timestamp()
        starts = (self.report.not_before, self.not_before)
        ends = (self.report.expires_at, self.expires_at)
        return all(s is None or t >= s for s in starts) and all(e is None or t < e for e in ends)

    def has_issue_at_or_above(self, threshold: float) -> bool:
        """Whether any open issue scores ``threshold`` or more (its
        :attr:`~ironroot.safe.Issue.effective_score`: the stated score, or its vector's base
        score when higher).

        ``threshold`` must be a CVSS score, 0.0 to 10.0 (``ConfigError`` otherwise): NaN
        compares false with every score and would pass every review.
        """
        limit = _threshold(threshold)
        return any(issue.effective_score >= limit for issue in self.report.audit.issues)


def _threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError("a CVSS threshold must be a number")
    if not 0.0 <= value <= 10.0:  # false for NaN; no math.isfinite(): an int overflows it
        raise ConfigError("a CVSS threshold must be 0.0 to 10.0")
    return float(value)


def max_open_cvss(review: Review) -> float | None:
    """The highest CVSS score among the review's open issues; ``None`` when none is open."""
    return review.max_open_cvss


def has_issue_at_or_above(review: Review, threshold: float) -> bool:
    """Whether any open issue of the review scores ``threshold`` or more."""
    return review.has_issue_at_or_above(threshold)


def review_from_statement(
    data: bytes,
    providers: ProviderKeys,
    *,
    service_keys: Mapping[bytes, Verifier] | None = None,
    now: dt.datetime | None = None,
    limits: SafeLimits = DEFAULT_SAFE_LIMITS,
    service_issuer: str | None = None,
) -> Review:
    """Verify one Transparent (or plain Signed) Statement carrying an SFR; raise if it fails.

    With ``service_keys`` the statement must carry receipts and every receipt must verify
    (given ``now``, none issued more than 300 s after it: ``VerificationFailed``
    ``receipt-from-the-future``); without, receipts are not checked (``receipts_verified``
    is then ``False``); with ``service_issuer`` too, every receipt must name that
    transparency service (``UnknownIssuer`` ``untrusted-service``; without keys it is
    ``ConfigError``: nothing would check it). Given ``now``,
    the statement's own CWT ``exp``/``nbf`` hold as the report's do (``VerificationFailed``
    ``report-expired`` / ``report-not-yet-valid``); either one not an integer is
    ``MalformedStatement``, whatever ``now``.
    """
    check_now(now)
    if service_issuer is not None and service_keys is None:
        raise ConfigError("a service issuer is checked in receipts: give the service keys too")
    if service_keys is not None:
        at = None if now is None else now.timestamp()
        statement = verify_transparent_statement(data, service_keys, now=at).statement
        if service_issuer is not None:
            what = f"the review of {statement.claims.sub!r}"
            on_trusted_log(
                data, service_keys, what, issuer=service_issuer, now=at, require_all=True
            )
    else:
        try:
            statement = TransparentStatement.parse(data).statement
        except MalformedInput:
            statement = SignedStatement.parse(data)
    if statement.content_type not in _SFR_TYPES:
        raise MalformedReport(f"statement content type {statement.content_type!r} is not an SFR")
    not_before, expires_at = statement.validity  # MalformedStatement: not integers
    if now is not None:
        try:
            statement.check_validity(now)
        except VerificationFailed as exc:
            expired = exc.code == "statement-expired"
            raise VerificationFailed(
                f"the review is {'expired' if expired else 'not yet valid'} "
                f"(the statement's CWT {'exp' if expired else 'nbf'})",
                code="report-expired" if expired else "report-not-yet-valid",
            ) from exc
    verified = verify_report(statement.payload, providers, now=now, limits=limits)
    expected = SFR_COSE_CONTENT_TYPE if verified.format == "cose" else SFR_JWS_CONTENT_TYPE
    if statement.content_type != expected:
        raise MalformedReport("the statement's content type does not match the SFR inside")
    subjects = {
        f"{alg}:{digest.hex()}" for alg, digest in verified.report.firmware_hashes().items()
    }
    if statement.claims.sub.lower() not in subjects:
        raise VerificationFailed(
            "the statement's subject is not a firmware hash of the SFR it carries",
            code="subject-mismatch",
        )
    periods = providers.validity(verified.key)
    if periods:
        # the certificate that verified it (at now), or the latest: a review read once and
        # kept (Endorsements) stops counting when its provider's certificate expires
        ends = [b for a, b in periods if now is None or a <= now <= b] or [b for _a, b in periods]
        cert_end = int(max(ends).timestamp()) + 1
        expires_at = cert_end if expires_at is None else min(expires_at, cert_end)
    return Review(
        report=verified.report,
        format=verified.format,
        provider_kid=verified.kid,
        issuer=statement.claims.iss,
        subject=statement.claims.sub,
        receipts_verified=service_keys is not None,
        not_before=not_before,
        expires_at=expires_at,
    )


def reviews_for(
    firmware_hash: str,
    statements: Iterable[bytes],
    *,
    providers: ProviderKeys,
    service_keys: Mapping[bytes, Verifier] | None = None,
    now: dt.datetime | None = None,
    limits: SafeLimits = DEFAULT_SAFE_LIMITS,
    service_issuer: str | None = None,
) -> list[Review]:
    """The verified reviews of ``firmware_hash`` among ``statements``, newest first.

    Statements that are not SFRs, or that fail any check of :func:`review_from_statement`, are
    skipped: they are not reviews. An empty ``providers`` store therefore finds nothing.
    ``service_issuer``: :func:`review_from_statement`'s (a receipt naming another service
    is not a review's).
    """
    alg, digest = parse_firmware_hash(firmware_hash)
    check_now(now)  # a fault of the caller, not of a statement: raised, not skipped
    if service_issuer is not None and service_keys is None:
        raise ConfigError("a service issuer is checked in receipts: give the service keys too")
    found: list[Review] = []
    for data in statements:
        try:
            review = review_from_statement(
                data,
                providers,
                service_keys=service_keys,
                now=now,
                limits=limits,
                service_issuer=service_issuer,
            )
        except IronrootError:
            continue
        if review.report.firmware_hashes().get(alg) == digest:
            found.append(review)
    found.sort(
        key=lambda r: r.report.audit.completion_date or dt.date.min,
        reverse=True,
    )
    return found
