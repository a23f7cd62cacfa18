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
CollateralExpired (stale CRL, TCB Info) instance-identity   96 untrustworthy_instance
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
``unmatched`` (those that are not, "name digest…": only values of the one product the
evidence is of count (:meth:`Endorsements.products_for`: when the products selecting it
admit values of several, none does), values that expired since the endorsements were read
do not, nor do values whose exact SVN is not the evidence's ``svn`` or whose ``is-debug``
flag is not its ``debug``, nor values stating what appraisal does not compare: a raw value,
other flags…; and, when every component matched values of one product, one line when no one
logged release lists them all: ``"fmc and runtime as one release (mixed-releases: …)"``,
:func:`ironroot.attestation.common_releases`, so a quote showing release A's FMC with
release B's runtime is ``executables`` 33 like an unlogged component, under any policy
keeping the ``reference-values`` rule), ``svn`` (the format's SVN claim, 0 if none),
``min_svn`` (the logged minimum, 0 if none), ``root`` and ``root_trusted``,
``nonce_ok`` (``report_data`` equals the nonce, or the nonce zero-padded to its length),
``firmware_hash`` (``sha384:<hex>``), ``reviews`` (``[{provider, issuer, max_cvss, issues}]``),
``worst_cvss``, ``cvss_threshold``, ``tcb_status`` (a TDX quote's Intel TCB status when
a TCB Info was given; with a QE Identity alone ``OutOfDate`` when the QE's TCB is, else
``"none"``), ``vmpl`` (an SEV-SNP report's VMPL, -1 for other
formats), ``snp_vmpls`` (the VMPLs the policy accepts: 0 by default) and ``migration_agent``
(an SEV-SNP guest policy allows a migration agent: MIGRATE_MA, bit 18).

Collateral (CRLs, Intel's TDX TCB Info and QE Identity) is given to the formats whose row takes
it and left out for the others. Problems with configured collateral (a file that did not load)
and stale collateral that was allowed are added to the reasons, so an EAR says what its
verification could not rely on.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from cryptography import x509

from ironroot import __version__
from ironroot.attestation._endorsements import Endorsements, ReferenceValue, _product
from ironroot.attestation._policy import (
    DEFAULT_POLICY,
    SVN_RULE,
    AppraisalPolicy,
    RuleFailure,
    fill_reason,
)
from ironroot.attestation._releases import common_releases
from ironroot.attestation.evidence import (
    EVIDENCE_FORMATS,
    CheckLog,
    EvidenceCaches,
    EvidenceClaims,
    TdxCollateral,
    VerifyOptions,
    detect_format,
    verify_evidence,
)
from ironroot.ear import (
    AR4SI,
    Appraisal,
    AttestationResult,
    VerifierId,
    tier_of,
)
from ironroot.errors import (
    CertificateExpired,
    CertificateRevoked,
    ChainNotTrusted,
    CollateralExpired,
    EndorsementMismatch,
    IronrootError,
    KeyBindingMismatch,
    MalformedEvidence,
    MalformedInput,
    StaleNonce,
    VerificationFailed,
)

__all__ = [
    "DEFAULT_VERIFIER_ID",
    "VERIFICATION_FAILURES",
    "appraise",
    "appraise_evidence",
    "appraise_failure",
    "check_nonce",
    "expiry",
]

DEFAULT_VERIFIER_ID: Final = VerifierId(developer="Ironroot", build=f"ironroot {__version__}")
_NONCE_SIZES: Final = range(8, 65)  # an EAR's eat_nonce (RFC 9711): 8 to 64 bytes

VERIFICATION_FAILURES: Final[tuple[tuple[type[IronrootError], str, int], ...]] = (
    (CertificateRevoked, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (CertificateExpired, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (CollateralExpired, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (ChainNotTrusted, "instance-identity", AR4SI.UNRECOGNIZED_INSTANCE),
    (EndorsementMismatch, "hardware", AR4SI.CONTRAINDICATED_HARDWARE),
    (StaleNonce, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
    (KeyBindingMismatch, "instance-identity", AR4SI.UNTRUSTWORTHY_INSTANCE),
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


def _fresh(evidence: EvidenceClaims, nonce: bytes | None) -> bool:
    """The evidence answers ``nonce`` by its format's binding rule, and ``nonce`` is one an
    EAR can carry (8 to 64 bytes: a shorter one is guessed, :func:`check_nonce`)."""
    row = EVIDENCE_FORMATS.get(evidence.format)
    if nonce is None or len(nonce) not in _NONCE_SIZES or row is None or row.binding is None:
        return False
    try:
        row.binding.check(evidence.report_data, nonce, None)
    except IronrootError:
        return False
    return True


def _root(evidence: EvidenceClaims, endorsements: Endorsements) -> tuple[str, bool]:
    """The root the evidence chained to and whether it is trusted: one of its format's
    pinned vendor roots, or one configured in the endorsements (RoT vendor CA, SPDM root)."""
    root = evidence.identity.get("root", "")
    row = EVIDENCE_FORMATS.get(evidence.format)
    if row is not None and root:
        for pinned in row.roots:
            if hmac.compare_digest(pinned.sha256, root):
                return f"built-in {pinned.name}", True
    return root, bool(root) and root in endorsements.trusted_roots


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
    annotated: dict[str, Any] | None = None,
    *,
    now: datetime,
) -> dict[str, Any]:
    fmt = evidence.format
    components = policy.components.get(fmt, ())
    unmatched: list[str] = []
    floors: list[int] = []
    store = endorsements.reference_values
    svn_name = policy.svn_claim.get(fmt)
    svn = evidence.svns.get(svn_name, 0) if svn_name is not None else 0
    accepted: dict[str, list[ReferenceValue]] = {}
    products = endorsements.products_for(evidence)
    for name in components:
        digest = evidence.measurements.get(name)
        if digest is None:
            unmatched.append(f"{name} (not measured)")
            continue
        logged = store.naming(name, digest)
        named = [r for r in logged if endorsements.applies(r, evidence)]
        # the floor of the release the digest names, even when what it states refuses the
        # match (an exact SVN, a raw value…): a device below it is rolled back, not merely
        # unrecognised
        floors.extend(
            f for f in (store.minimum_svn(r) for r in named if r.valid_at(now)) if f is not None
        )
        found = [r for r in named if not r.unchecked]
        current = [r for r in found if r.valid_at(now)]  # read at start-up, still valid now?
        refusals = [r.refusal(svn=svn, debug=evidence.debug) for r in current]
        accepted[name] = [r for r, why in zip(current, refusals, strict=True) if why is None]
        if not accepted[name]:
            unchecked = sorted({u for r in named for u in r.unchecked})
            if current:
                why = f" (its logged values are {'; '.join(sorted({w for w in refusals if w}))})"
            elif found:
                why = " (its logged values have expired)"
            elif unchecked:
                why = f" (its logged values also state {', '.join(unchecked)}: not compared)"
            elif logged and len(products) > 1:
                why = f" (the evidence is of no one product: values of {' and '.join(products)})"
            elif any(r.instance is None and r.group is None for r in logged):
                why = " (its logged values are of another product than the evidence's)"
            else:
                why = ""
            unmatched.append(f"{name} {digest.hex()[:16]}…{why}")
    if not unmatched:
        unmatched.extend(_mixed_releases(accepted))
    fw_name = policy.firmware_hash.get(fmt)
    fw = _firmware_hash(evidence.measurements.get(fw_name) if fw_name is not None else None)
    reviews = endorsements.reviews_for(*fw, now=now) if fw is not None else ()
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
    root, root_trusted = _root(evidence, endorsements)
    claims = dict(annotated) if annotated is not None else _annotated(evidence)
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
        "nonce_ok": _fresh(evidence, nonce),
        "firmware_hash": f"{fw[0]}:{fw[1].hex()}" if fw is not None else "none",
        "reviews": review_values,
        "worst_cvss": max(cvss, default=0.0),
        "cvss_threshold": policy.cvss_threshold,
        "tcb_status": _tcb_status(evidence),
        # Formats whose evidence says whether anti-rollback is on; unknown counts as off.
        "anti_rollback_disabled": evidence.identity.get("anti_rollback") in ("disabled", "unknown"),
        "vmpl": _vmpl(evidence),
        "snp_vmpls": list(policy.snp_vmpls),
        "migration_agent": _migration_agent(evidence),
    }


def _mixed_releases(accepted: Mapping[str, Sequence[ReferenceValue]]) -> list[str]:
    """The ``unmatched`` line when the components, each matching logged values (``accepted``:
    name -> the values it matches), are values of one product (class vendor and model: one
    firmware target) but no one logged release of it lists them all
    (:func:`ironroot.attestation.common_releases`, ``mixed-releases``); else none. Components
    that only values of different products match are not held to one release."""
    if len(accepted) < 2:
        return []
    shared = set.intersection(*({(v.vendor, v.model) for v in vs} for vs in accepted.values()))
    if not shared:
        return []
    product = " or ".join(sorted(_product(*kind) for kind in shared))
    try:
        common_releases(accepted, product=product, measured="the evidence")
    except EndorsementMismatch as exc:
        *first, last = accepted
        return [f"{', '.join(first)} and {last} as one release ({exc.code}: {exc.detail})"]
    return []


_QE_OUT_OF_DATE: Final = "OutOfDate"


def _tcb_status(evidence: EvidenceClaims) -> str:
    """The Intel TCB status a policy reads: the TCB Info's (which already converges the QE's
    status into it), else ``OutOfDate`` when a QE Identity alone was given and says the QE's
    TCB is out of date (Intel's convergence of an unknown platform status with an out-of-date
    QE), else ``"none"``. Giving less collateral must not give a better result."""
    status = evidence.identity.get("tcb_status")
    if isinstance(status, str):
        return status
    if evidence.identity.get("qe_tcb_status") == _QE_OUT_OF_DATE:
        return _QE_OUT_OF_DATE
    return "none"


def _vmpl(evidence: EvidenceClaims) -> int:
    """The VMPL an SEV-SNP report (``snp``, ``azure-hcl``) was requested at; -1 for evidence
    of other formats, which has none."""
    value = evidence.raw.get("vmpl")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return -1


_SNP_FORMATS: Final = frozenset(("snp", "azure-hcl"))


def _migration_agent(evidence: EvidenceClaims) -> bool:
    """Whether the guest may be exported by a migration agent the host brings: an SEV-SNP
    report's guest policy allows one (MIGRATE_MA: the hypervisor associates it at launch), or
    a TDX quote's TDATTRIBUTES say MIGRATABLE (bit 29: a migration TD, bound by the host, may
    export the TD's memory and state; its identity is not in a v4 quote). ``False`` for
    evidence of other formats."""
    if evidence.format == "tdx":
        body = evidence.raw.get("body")
        attributes = body.get("td_attributes") if isinstance(body, Mapping) else None
        return isinstance(attributes, Mapping) and attributes.get("migratable") is True
    if evidence.format not in _SNP_FORMATS:
        return False
    policy = evidence.raw.get("policy")
    return isinstance(policy, Mapping) and policy.get("migrate_ma") is True


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
        "checks": [c.to_dict() for c in evidence.checks],
        "not_checked": [c.to_dict() for c in evidence.not_checked],
    }


def check_nonce(nonce: bytes | None) -> None:
    """``MalformedInput`` unless ``nonce`` is ``None`` or 8 to 64 bytes: what an EAR's
    ``eat_nonce`` carries. A shorter nonce is guessed (a stored report answers a 2-byte one
    once in 65,536), and an EAR whose "fresh" gate passed must carry what it answered."""
    if nonce is not None and len(nonce) not in _NONCE_SIZES:
        raise MalformedInput(f"a nonce is 8 to 64 bytes (an EAR's eat_nonce), not {len(nonce)}")


def expiry(iat: int, lifetime: int | None, valid_until: datetime | None) -> int | None:
    """An EAR's ``exp``: ``lifetime`` seconds after ``iat``, and no later than when what its
    verification relied on stops holding (``valid_until``: a certificate's ``notAfter``, a
    CRL's or Intel collateral's ``nextUpdate``), so an EAR never affirms past its collateral;
    ``None`` without a lifetime."""
    if lifetime is None:
        return None
    exp = iat + lifetime
    if valid_until is not None:
        exp = min(exp, math.floor(valid_until.timestamp()))
    return exp


def _result(
    label: str,
    appraisal: Appraisal,
    *,
    nonce: bytes | None,
    now: datetime,
    lifetime: int | None,
    verifier_id: VerifierId,
    valid_until: datetime | None = None,
) -> AttestationResult:
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    iat = int(now.timestamp())
    return AttestationResult(
        iat=iat,
        exp=expiry(iat, lifetime, valid_until),
        verifier_id=verifier_id,
        submods={label: appraisal},
        nonce=nonce if nonce is not None and len(nonce) in _NONCE_SIZES else None,
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
    notes: Sequence[str] = (),
) -> AttestationResult:
    """Appraise verified ``evidence``; the submodule is labelled with its format. ``notes``
    are reason lines added after the failed rules' (what the verification could not rely
    on). A ``nonce`` that is not 8 to 64 bytes answers nothing (the ``fresh`` gate fails):
    the EAR could not carry it."""
    annotated = _annotated(evidence)  # once: the policy's variables and the EAR's evidence
    context = _context(evidence, endorsements, policy, nonce, annotated, now=now)
    failures = policy.evaluate(context)
    if context["svn"] < context["min_svn"] and not any(f.rule == SVN_RULE for f in failures):
        # rollback below a logged floor is not a policy option: the default's rule, mandatory
        reason = f"{SVN_RULE.name}: {fill_reason(SVN_RULE.reason, context)}"
        failures += (RuleFailure(SVN_RULE, f"{reason} (refused under any policy)"),)
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
        reasons=[*(f.reason for f in failures), *notes],
        evidence=annotated,
    )
    return _result(
        evidence.format,
        appraisal,
        nonce=nonce,
        now=now,
        lifetime=lifetime,
        verifier_id=verifier_id,
        valid_until=evidence.valid_until,
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
    notes: Sequence[str] = (),
) -> AttestationResult:
    """The EAR for evidence that did not verify (see :data:`VERIFICATION_FAILURES`)."""
    category, code = next((c, v) for cls, c, v in VERIFICATION_FAILURES if isinstance(error, cls))
    appraisal = Appraisal.from_vector(
        {category: code},
        policy_id=policy.policy_id,
        reasons=[f"evidence: {error.code}: {error.detail}", *notes],
    )
    return _result(
        format or "unknown",
        appraisal,
        nonce=nonce,
        now=now,
        lifetime=lifetime,
        verifier_id=verifier_id,
    )


def _notes(row_takes: bool, problems: Sequence[str], claims: EvidenceClaims | None) -> list[str]:
    notes = [f"collateral: {p}" for p in problems] if row_takes else []
    stale = claims.raw.get("stale_collateral") if claims is not None else None
    if isinstance(stale, list) and stale:
        listed = "; ".join(f"{item.get('name')} ({item.get('reason')})" for item in stale)
        notes.append(f"collateral: stale, allowed: {listed}")
    return notes


def appraise_evidence(
    data: bytes,
    endorsements: Endorsements,
    policy: AppraisalPolicy = DEFAULT_POLICY,
    *,
    format: str = "auto",
    nonce: bytes | None,
    now: datetime,
    certificates: Sequence[bytes] = (),
    crls: Sequence[bytes | x509.CertificateRevocationList] = (),
    collateral: TdxCollateral | None = None,
    allow_stale_collateral: bool = False,
    collateral_problems: Sequence[str] = (),
    lifetime: int | None = None,
    caches: EvidenceCaches | None = None,
    verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
    checks: CheckLog | None = None,
) -> AttestationResult:
    """Verify ``data`` through the format table and appraise it: always an EAR, whose vector
    says why it failed. The endorsements' vendor roots are the configured roots of formats
    without a pinned vendor root; ``nonce`` is checked by the format's binding rule.

    ``crls`` and ``collateral`` (Intel TDX TCB Info, QE Identity) go to the formats whose row
    takes them; stale ones are refused unless ``allow_stale_collateral``.
    ``collateral_problems`` (configured collateral that did not load) are reported in the
    reasons of the EARs of formats that take collateral. A ``nonce`` that is not 8 to 64
    bytes is ``MalformedInput`` (:func:`check_nonce`)."""
    check_nonce(nonce)
    fmt = format
    takes = False
    claims: EvidenceClaims | None = None
    try:
        if fmt == "auto":
            fmt = detect_format(data)
        row = EVIDENCE_FORMATS.get(fmt)
        takes = row is not None and (row.takes_crls or row.takes_collateral)
        options = VerifyOptions(
            now=now,
            nonce=nonce,
            certificates=tuple(certificates),
            roots=endorsements.vendor_roots,
            crls=tuple(crls) if row is not None and row.takes_crls else (),
            caches=caches,
            collateral=collateral if row is not None and row.takes_collateral else None,
            allow_stale_collateral=allow_stale_collateral,
        )
        claims = verify_evidence(data, options, format=fmt, checks=checks)
    except IronrootError as exc:
        if isinstance(exc, MalformedEvidence) and fmt == "auto":
            fmt = "unknown"
        return appraise_failure(
            exc,
            format=fmt if fmt in EVIDENCE_FORMATS else "unknown",
            policy=policy,
            nonce=nonce,
            now=now,
            lifetime=lifetime,
            verifier_id=verifier_id,
            notes=_notes(takes, collateral_problems, None),
        )
    return appraise(
        claims,
        endorsements,
        policy,
        nonce=nonce,
        now=now,
        lifetime=lifetime,
        verifier_id=verifier_id,
        notes=_notes(takes, collateral_problems, claims),
    )
