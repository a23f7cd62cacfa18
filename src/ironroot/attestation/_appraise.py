"""Appraisal: evidence claims + endorsements + policy + nonce + time → an EAR.

:func:`appraise` is pure. It builds the policy's CEL variables from the verified claims and
the endorsements, evaluates the policy once, and turns the failed rules into the AR4SI trust
vector (each category takes the worst code of its failed rules; a category none of whose rules
failed takes the policy's affirming code, unless a gate rule failed) with one reason line per
failed rule. ``ear.status`` is the worst tier of the vector.

:func:`appraise_evidence` is the whole verifier: it verifies the evidence bytes (RoT quote,
SEV-SNP report, Azure HCL report, TDX quote) and appraises the claims. Evidence that does not
verify still gets an EAR, whose vector says why (:data:`VERIFICATION_FAILURES`):

=====================================  ===================  ===========================
error                                  category             code
=====================================  ===================  ===========================
CertificateRevoked, CertificateExpired instance-identity    96 untrustworthy_instance
ChainNotTrusted (unknown root)         instance-identity    97 unrecognized_instance
EndorsementMismatch (VCEK TCB/chip)    hardware             96 contraindicated_hw
StaleNonce (another nonce)             instance-identity    96 untrustworthy_instance
BadSignature, other VerificationFailed instance-identity    99 crypto_failed
MalformedInput (does not parse)        instance-identity    1 unexpected_evidence
any other IronrootError                instance-identity    -1 verifier_malfunction
=====================================  ===================  ===========================

CEL variables (see ``docs/attestation.md``): the claims (``format``, ``measurements`` and
``report_data`` as lower-case hex, ``svns``, ``identity``, ``debug``, ``signer``, ``raw``) and
what appraisal derived: ``components`` (the measurements that must be on the log),
``unmatched`` (those that are not, "name digest…"), ``svn`` (the format's SVN claim, 0 if
none), ``min_svn`` (the logged minimum, 0 if none), ``root`` and ``root_trusted``,
``nonce_ok`` (``report_data`` equals the nonce, or the nonce zero-padded to its length),
``firmware_hash`` (``sha384:<hex>``), ``reviews`` (``[{provider, issuer, max_cvss, issues}]``),
``worst_cvss`` and ``cvss_threshold``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ironroot import __version__
from ironroot.attestation._ear import (
    AR4SI,
    Appraisal,
    AttestationResult,
    VerifierId,
    tier_of,
)
from ironroot.attestation._endorsements import Endorsements
from ironroot.attestation._policy import DEFAULT_POLICY, AppraisalPolicy
from ironroot.attestation._rot_evidence import (
    ROT_QUOTE_FORMAT,
    RotChainCache,
    verify_rot_quote,
)
from ironroot.attestation._spdm_evidence import SPDM_FORMAT, verify_spdm
from ironroot.attestation.evidence import (
    EvidenceClaims,
    SnpChainCache,
    TdxChainCache,
    VerifyOptions,
    decode_evidence,
    detect_format,
    verify_evidence,
)
from ironroot.errors import (
    CertificateExpired,
    CertificateRevoked,
    ChainNotTrusted,
    EndorsementMismatch,
    IronrootError,
    MalformedEvidence,
    MalformedInput,
    StaleNonce,
    VerificationFailed,
)

__all__ = [
    "DEFAULT_VERIFIER_ID",
    "VERIFICATION_FAILURES",
    "EvidenceCaches",
    "appraise",
    "appraise_evidence",
    "appraise_failure",
    "detect_evidence_format",
    "verify_evidence_bytes",
]

DEFAULT_VERIFIER_ID: Final = VerifierId(developer="Ironroot", build=f"ironroot {__version__}")
_ROT_MARKER: Final = b"\x66format\x70ironroot-quote/1"  # "format": "ironroot-quote/1"
_SPDM_MARKER: Final = b"\x66format\x78\x18ironroot-spdm-evidence/1"
_PINNED_ROOTS: Final = {"snp": "AMD", "azure-hcl": "AMD", "tdx": "Intel SGX"}

VERIFICATION_FAILURES: Final[tuple[tuple[type[IronrootError], str, int], ...]] = (
    (CertificateRevoked, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (CertificateExpired, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (ChainNotTrusted, "instance-identity", AR4SI.UNRECOGNIZED_INSTANCE),
    (EndorsementMismatch, "hardware", AR4SI.CONTRAINDICATED_HARDWARE),
    (StaleNonce, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (VerificationFailed, "instance-identity", AR4SI.CRYPTO_VALIDATION_FAILED),
    (MalformedInput, "instance-identity", AR4SI.UNEXPECTED_EVIDENCE),
    (IronrootError, "instance-identity", AR4SI.VERIFIER_MALFUNCTION),
)
"""Error class → (category, code) for evidence that does not verify; the first match wins."""


def _worse(a: int | None, b: int) -> int:
    if a is None:
        return b
    ka, kb = (tier_of(a).severity, abs(a)), (tier_of(b).severity, abs(b))
    return a if ka >= kb else b


def _fresh(report_data: bytes, nonce: bytes | None) -> bool:
    if not nonce:
        return False
    if len(report_data) < len(nonce):
        return False
    padded = nonce + bytes(len(report_data) - len(nonce))
    return hmac.compare_digest(report_data, padded)


def _firmware_hash(digest: bytes | None) -> tuple[str, bytes] | None:
    if digest is None:
        return None
    alg = {48: "sha384", 64: "sha512"}.get(len(digest))
    return None if alg is None else (alg, digest)


def _context(
    evidence: EvidenceClaims,
    endorsements: Endorsements,
    policy: AppraisalPolicy,
    nonce: bytes | None,
) -> dict[str, Any]:
    fmt = evidence.format
    components = policy.components.get(fmt, ())
    unmatched: list[str] = []
    floors: list[int] = []
    store = endorsements.reference_values
    for name in components:
        digest = evidence.measurements.get(name)
        if digest is None:
            unmatched.append(f"{name} (not measured)")
            continue
        refs = store.matching(name, digest)
        if not refs:
            unmatched.append(f"{name} {digest.hex()[:16]}…")
            continue
        floors.extend(f for f in (store.minimum_svn(r) for r in refs) if f is not None)
    svn_name = policy.svn_claim.get(fmt)
    svn = evidence.svns.get(svn_name, 0) if svn_name is not None else 0
    fw_name = policy.firmware_hash.get(fmt)
    fw = _firmware_hash(evidence.measurements.get(fw_name) if fw_name is not None else None)
    reviews = endorsements.reviews_for(*fw) if fw is not None else ()
    cvss = [float(r.max_open_cvss or 0.0) for r in reviews]
    review_values = [
        {
            "provider": r.provider_kid,
            "issuer": r.issuer,
            "max_cvss": score,
            "issues": len(r.report.audit.issues),
        }
        for r, score in zip(reviews, cvss, strict=True)
    ]
    if fmt in (ROT_QUOTE_FORMAT, SPDM_FORMAT):
        # Evidence that names the root it verified to (its SHA-256): trusted if configured.
        root = evidence.identity.get("root", "")
        root_trusted = bool(root) and root in endorsements.trusted_roots
    else:
        pinned = _PINNED_ROOTS.get(fmt)
        root = f"built-in {pinned} root" if pinned else ""
        root_trusted = pinned is not None
    claims = _annotated(evidence)
    if "raw" in policy.variables:
        claims["raw"] = dict(evidence.raw)
    return {
        **claims,
        "components": list(components),
        "unmatched": unmatched,
        "svn": svn,
        "min_svn": max(floors, default=0),
        "root": root or "none",
        "root_trusted": root_trusted,
        "nonce_ok": _fresh(evidence.report_data, nonce),
        "firmware_hash": f"{fw[0]}:{fw[1].hex()}" if fw is not None else "none",
        "reviews": review_values,
        "worst_cvss": max(cvss, default=0.0),
        "cvss_threshold": policy.cvss_threshold,
    }


def _annotated(evidence: EvidenceClaims) -> dict[str, Any]:
    """The claims without ``raw``, JSON-ready (bytes as lower-case hex)."""
    return {
        "format": evidence.format,
        "measurements": {name: value.hex() for name, value in evidence.measurements.items()},
        "report_data": evidence.report_data.hex(),
        "debug": evidence.debug,
        "svns": dict(evidence.svns),
        "identity": dict(evidence.identity),
        "signer": evidence.signer,
    }


def _result(
    label: str,
    appraisal: Appraisal,
    *,
    nonce: bytes | None,
    now: datetime,
    lifetime: int | None,
    verifier_id: VerifierId,
) -> AttestationResult:
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    iat = int(now.timestamp())
    return AttestationResult(
        iat=iat,
        exp=iat + lifetime if lifetime is not None else None,
        verifier_id=verifier_id,
        submods={label: appraisal},
        nonce=nonce if nonce is not None and 8 <= len(nonce) <= 64 else None,
    )


def appraise(
    evidence: EvidenceClaims,
    endorsements: Endorsements,
    policy: AppraisalPolicy = DEFAULT_POLICY,
    *,
    nonce: bytes | None,
    now: datetime,
    lifetime: int | None = None,
    verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
) -> AttestationResult:
    """Appraise verified ``evidence``; the submodule is labelled with its format."""
    context = _context(evidence, endorsements, policy, nonce)
    failures = policy.evaluate(context)
    vector: dict[str, int] = {}
    for failure in failures:
        category = failure.rule.category
        vector[category] = _worse(vector.get(category), failure.rule.code)
    if not any(f.rule.gate for f in failures):
        for category, code in policy.affirmations(evidence.format).items():
            vector.setdefault(category, code)
    if not vector:
        vector["instance-identity"] = AR4SI.NO_CLAIM
    appraisal = Appraisal.from_vector(
        vector,
        policy_id=policy.policy_id,
        reasons=[f.reason for f in failures],
        evidence=_annotated(evidence),
    )
    return _result(
        evidence.format,
        appraisal,
        nonce=nonce,
        now=now,
        lifetime=lifetime,
        verifier_id=verifier_id,
    )


def appraise_failure(
    error: IronrootError,
    *,
    format: str,
    policy: AppraisalPolicy = DEFAULT_POLICY,
    nonce: bytes | None,
    now: datetime,
    lifetime: int | None = None,
    verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
) -> AttestationResult:
    """The EAR for evidence that did not verify (see :data:`VERIFICATION_FAILURES`)."""
    category, code = next((c, v) for cls, c, v in VERIFICATION_FAILURES if isinstance(error, cls))
    appraisal = Appraisal.from_vector(
        {category: code},
        policy_id=policy.policy_id,
        reasons=[f"evidence: {error.code}: {error.detail}"],
    )
    return _result(
        format or "unknown",
        appraisal,
        nonce=nonce,
        now=now,
        lifetime=lifetime,
        verifier_id=verifier_id,
    )


@dataclass(frozen=True, slots=True)
class EvidenceCaches:
    """Caches of already-verified certificate chains, one per evidence kind."""

    rot: RotChainCache = field(default_factory=RotChainCache)
    snp: SnpChainCache = field(default_factory=SnpChainCache)
    tdx: TdxChainCache = field(default_factory=TdxChainCache)


def detect_evidence_format(data: bytes) -> str:
    """``"ironroot"`` for a RoT quote, else the hardware evidence format of the bytes."""
    if data[:1] == b"\xa3" and _ROT_MARKER in data:
        return ROT_QUOTE_FORMAT
    if data[:1] == b"\xa5" and _SPDM_MARKER in data:
        return SPDM_FORMAT
    return detect_format(decode_evidence(data))


def verify_evidence_bytes(
    data: bytes,
    *,
    format: str = "auto",
    nonce: bytes | None,
    now: datetime,
    vendor_roots: Sequence[bytes] = (),
    certificates: Sequence[bytes] = (),
    crls: Sequence[bytes] = (),
    allow_trailing: bool = False,
    caches: EvidenceCaches | None = None,
) -> EvidenceClaims:
    """Verify evidence of any supported format; return its claims or raise."""
    fmt = detect_evidence_format(data) if format == "auto" else format
    if fmt == ROT_QUOTE_FORMAT:
        if nonce is None:
            raise StaleNonce("a RoT quote is verified against the nonce it answers: none given")
        return verify_rot_quote(
            data,
            nonce=nonce,
            trust_anchors=vendor_roots,
            now=now,
            cache=caches.rot if caches is not None else None,
        )
    if fmt == SPDM_FORMAT:
        if nonce is None:
            raise StaleNonce("SPDM evidence is verified against the nonce it answers: none given")
        return verify_spdm(data, nonce=nonce, roots=(*vendor_roots, *certificates), now=now)
    options = VerifyOptions(
        now=now,
        certificates=tuple(certificates),
        crls=tuple(crls),
        allow_trailing=allow_trailing,
        snp_cache=caches.snp if caches is not None else None,
        tdx_cache=caches.tdx if caches is not None else None,
    )
    return verify_evidence(data, options, format=fmt)


def appraise_evidence(
    data: bytes,
    endorsements: Endorsements,
    policy: AppraisalPolicy = DEFAULT_POLICY,
    *,
    format: str = "auto",
    nonce: bytes | None,
    now: datetime,
    certificates: Sequence[bytes] = (),
    crls: Sequence[bytes] = (),
    allow_trailing: bool = False,
    lifetime: int | None = None,
    caches: EvidenceCaches | None = None,
    verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
) -> AttestationResult:
    """Verify ``data`` and appraise it: always an EAR, whose vector says why it failed."""
    fmt = format
    try:
        if fmt == "auto":
            fmt = detect_evidence_format(data)
        claims = verify_evidence_bytes(
            data,
            format=fmt,
            nonce=nonce,
            now=now,
            vendor_roots=endorsements.vendor_roots,
            certificates=certificates,
            crls=crls,
            allow_trailing=allow_trailing,
            caches=caches,
        )
    except IronrootError as exc:
        if isinstance(exc, MalformedEvidence) and fmt == "auto":
            fmt = "unknown"
        return appraise_failure(
            exc,
            format=fmt,
            policy=policy,
            nonce=nonce,
            now=now,
            lifetime=lifetime,
            verifier_id=verifier_id,
        )
    return appraise(
        claims,
        endorsements,
        policy,
        nonce=nonce,
        now=now,
        lifetime=lifetime,
        verifier_id=verifier_id,
    )
