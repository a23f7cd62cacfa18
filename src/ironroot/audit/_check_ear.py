"""The ``attestation`` step of an audit check (13 in :mod:`ironroot.audit._verify`).

The node's latest EAR, and each earlier EAR a credential was issued on, verifies under a
trusted verifier key, is valid at the instant judged at, and was issued for exactly the
evidence in the bundle: the quote the sealing RoT signed and each device's SPDM session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Final

from ironroot.audit._check_spdm import pinned_root
from ironroot.audit._context import Context, hex_bytes, not_present, posix_time, text_time
from ironroot.audit._export import credential_ear_members
from ironroot.ear import Appraisal, AttestationResult, TrustTier, decode_ear
from ironroot.errors import (
    IronrootError,
    MalformedInput,
    PolicyRejected,
    StaleNonce,
    VerificationFailed,
)
from ironroot.fleet import PLANES, NodeEvidence, ear_id_of
from ironroot.platform import DEVICE_SVN_INDEX
from ironroot.rot import verify_quote
from ironroot.spdm import MeasurementBlock, MeasurementValueType, verify_spdm_evidence

__all__ = ["check_attestation"]


_EAR_SKEW: Final = 60
_EAR_URN: Final = "urn:ironroot:ear:sha256:"


def _verified_ear(ctx: Context, token: bytes, evidence: str) -> tuple[AttestationResult, list[str]]:
    """The EAR ``token`` verifies under a trusted verifier key, was issued before the export
    and for exactly the evidence of member ``evidence``, which the sealing RoT signed."""
    result = decode_ear(token, ctx.trust.verifier_keys)
    exported = int(ctx.index.exported_at.timestamp())
    if result.iat > exported + _EAR_SKEW:
        raise VerificationFailed(
            "the EAR was issued after the export: it does not describe the exported state",
            code="ear-after-export",
        )
    judged = int(ctx.at.timestamp())
    if result.iat > judged + _EAR_SKEW:
        raise VerificationFailed(
            f"the EAR was issued {posix_time(result.iat)}, after the instant judged at "
            f"({text_time(ctx.at)}): it is not the node's state then",
            code="ear-not-yet-valid",
        )
    if result.nbf is not None and result.nbf > judged + _EAR_SKEW:
        raise VerificationFailed(
            f"the EAR is not valid before {posix_time(result.nbf)}, after the instant judged "
            f"at ({text_time(ctx.at)})",
            code="ear-not-yet-valid",
        )
    return result, _ear_binding(ctx, result, evidence)


def check_attestation(ctx: Context) -> list[str]:
    name = next(
        (n for n in ("attestation/ear.jwt", "attestation/ear.cwt") if n in ctx.bundle.members), None
    )
    if name is None:
        ctx.ear_absent = True
        raise not_present(ctx.index.absent, "attestation/ear", default="the bundle holds no EAR")
    token = ctx.member(name)
    result, bound = _verified_ear(ctx, token, "attestation/evidence.cbor")
    record = ctx.json("node/record.json")
    registered = record.get("ear_id") if isinstance(record, dict) else None
    held = ear_id_of(token)
    if isinstance(registered, str) and registered.startswith(_EAR_URN) and registered != held:
        raise VerificationFailed(
            f"the registry names EAR {registered}, the bundle holds {held}",
            code="ear-not-registered",
        )
    admitted = isinstance(record, dict) and record.get("status") == "admitted"
    if admitted and result.status is not TrustTier.AFFIRMING:
        raise PolicyRejected(
            f"the registry admits the node on an EAR whose status is {result.status.value}",
            code="ear-not-affirming",
        )
    judged = text_time(ctx.at)
    current = (
        f"current at {judged}"
        if result.exp is None or ctx.at.timestamp() < result.exp
        else f"EXPIRED at {posix_time(result.exp)}, before the instant judged at ({judged})"
    )
    ctx.ear_id = held
    lines = [
        f"latest EAR {held} (the node's current state): by verifier "
        f"{result.verifier_id.developer} ({result.verifier_id.build}), "
        f"status {result.status.value}",
        f"issued {posix_time(result.iat)}, {current}",
        "submodules: "
        + ", ".join(f"{n} {a.status.value}" for n, a in sorted(result.submods.items())),
        *bound,
    ]
    times = [(result.iat, "the latest EAR (iat)")]
    for plane in PLANES:
        ear_name, evidence_name = credential_ear_members(plane)
        issued = ctx.bundle.members.get(ear_name)
        if issued is None:
            continue
        try:
            earlier, earlier_bound = _verified_ear(ctx, issued, evidence_name)
            if earlier.status is not TrustTier.AFFIRMING:
                raise PolicyRejected(
                    f"the {plane}-plane credential's EAR has status {earlier.status.value}: "
                    "a credential is issued on an affirming EAR only",
                    code="ear-not-affirming",
                )
        except IronrootError as exc:
            inner = "" if exc.check is None else f":{exc.check}"
            exc.check = f"credential-{plane}{inner}"
            raise
        earlier_id = ear_id_of(issued)
        ctx.issued_on[earlier_id] = earlier.status.value
        times.append((earlier.iat, f"the {plane}-plane credential's EAR (iat)"))
        lines += [
            f"{plane}-plane credential's EAR {earlier_id} (what the node was admitted on): "
            f"by verifier {earlier.verifier_id.developer}, status {earlier.status.value}, "
            f"issued {posix_time(earlier.iat)}",
            *(f"  {line}" for line in earlier_bound),
        ]
    for seconds, what in times:
        ctx.signed(seconds, what)
    return lines


def _mismatch(detail: str) -> VerificationFailed:
    return VerificationFailed(detail, code="ear-evidence-mismatch")


def _recorded(appraisal: Appraisal, what: str) -> tuple[dict[str, str], str]:
    """The measurements (name → hex) and report data (hex) the EAR recorded of the evidence
    one submodule appraised."""
    evidence = appraisal.evidence or {}
    measurements = evidence.get("measurements")
    report_data = evidence.get("report_data")
    if (
        not isinstance(measurements, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in measurements.items())
        or not isinstance(report_data, str)
    ):
        raise MalformedInput(f"the EAR's record of {what} has no measurements or report data")
    return measurements, report_data.lower()


def _ear_binding(ctx: Context, result: AttestationResult, member: str) -> list[str]:
    """The EAR was issued for exactly the evidence in the bundle, which the sealing RoT
    signed: its nonce is the one the quote answers, its record of the quote (report data,
    Ueid, measurements) is that quote's, each device's record is that device's session
    answering the same nonce, verified to the root the EAR records for it, and no session it
    records is left out of the evidence (``ear-not-bound``, ``ear-evidence-mismatch``)."""
    nonce = result.nonce
    if nonce is None:
        raise VerificationFailed(
            "the EAR records no nonce (eat_nonce): it names no evidence it was issued for",
            code="ear-not-bound",
        )
    if member not in ctx.bundle.members:
        reason = ctx.index.absent.get(member, "it is not in the bundle")
        raise VerificationFailed(
            f"the evidence the EAR was issued for ({member}) is absent ({reason}): the EAR is "
            "bound to nothing the bundle holds",
            code="ear-not-bound",
        )
    data = ctx.member(member)
    evidence = NodeEvidence.decode(data)
    if evidence.node != ctx.index.node:
        raise VerificationFailed(
            f"the appraised evidence is {evidence.node}'s, not {ctx.index.node}'s",
            code="not-the-node",
        )
    if result.raw_evidence is not None and result.raw_evidence not in (data, evidence.quote):
        raise _mismatch("the EAR carries other raw evidence than the bundle's")
    quoted = [
        (label, a)
        for label, a in sorted(result.submods.items())
        if a.evidence is not None and a.evidence.get("format") == "ironroot"
    ]
    if len(quoted) != 1:
        raise VerificationFailed(
            "the EAR records no appraised RoT quote (or more than one)", code="ear-not-bound"
        )
    label, appraisal = quoted[0]
    measurements, report_hex = _recorded(appraisal, f"submodule {label}")
    report = hex_bytes(report_hex, f"the report data of submodule {label}")
    if not hmac.compare_digest(report[: len(nonce)], nonce):
        raise _mismatch(f"submodule {label} records a quote that answers another nonce")
    try:
        issued = dt.datetime.fromtimestamp(result.iat, dt.UTC)
    except (OverflowError, OSError, ValueError) as exc:  # iat up to a minute past the export
        raise MalformedInput(f"the EAR's issue time {result.iat} is after year 9999") from exc
    try:
        quote = verify_quote(
            evidence.quote, nonce=report, trust_anchors=ctx.trust.vendor_roots, now=issued
        )
    except StaleNonce as exc:
        raise _mismatch(
            "the quote in the bundle is not the one the EAR appraised: it answers another "
            f"challenge ({exc.detail})"
        ) from exc
    if not hmac.compare_digest(quote.ueid, ctx.claims.ueid):
        raise _mismatch(
            f"the appraised quote is by RoT Ueid {quote.ueid.hex()}, the bundle is sealed by "
            f"{ctx.claims.ueid.hex()}"
        )
    actual = {
        "fmc": quote.fmc_digest,
        "runtime": quote.runtime_digest,
        "header": quote.header_digest,
        "manifest": quote.manifest_digest,
        **{f"pcr{i}": pcr for i, pcr in enumerate(quote.pcrs)},
    }
    identity = (appraisal.evidence or {}).get("identity")
    if not isinstance(identity, dict) or identity.get("ueid") != quote.ueid.hex():
        raise _mismatch(f"submodule {label} records another RoT than the quote's")
    if not {"fmc", "runtime", "manifest"} <= set(measurements) or any(
        name not in actual or value.lower() != actual[name].hex()
        for name, value in measurements.items()
    ):
        raise _mismatch(f"submodule {label} records other measurements than the quote's")
    lines = [
        f"issued for the evidence in the bundle: eat_nonce {nonce.hex()[:16]}… is the one "
        f"the quote answers (report data {report.hex()[:16]}…), by the sealing RoT",
    ]
    for device, session in sorted(evidence.devices.items()):
        lines.append(_device_binding(ctx, result, device, session, nonce, issued))
    for device, recorded in sorted(result.submods.items()):
        if device != label and recorded.evidence is not None and device not in evidence.devices:
            raise _mismatch(
                f"the EAR records the session of {device}, which the evidence in the bundle "
                "does not hold"
            )
    return lines


def _device_binding(
    ctx: Context,
    result: AttestationResult,
    device: str,
    session: bytes,
    nonce: bytes,
    issued: dt.datetime,
) -> str:
    appraisal = result.submods.get(device)
    if appraisal is None:
        raise _mismatch(f"the EAR has no submodule for {device}, whose evidence it was given")
    root, _vendor, _model = pinned_root(ctx, device)
    try:
        verified = verify_spdm_evidence(session, nonce=nonce, root_certificate=root, now=issued)
    except StaleNonce as exc:
        raise _mismatch(f"{device}'s session answers another challenge than the EAR's") from exc
    if appraisal.evidence is None:  # its appraisal failed: nothing recorded to compare
        return f"{device}: its session answers the EAR's nonce ({appraisal.status.value})"
    # The pinned root is the bundle's word (platform/config.json, written by whoever seals):
    # the verifier records the root it verified the device to, and it must be this one.
    identity = appraisal.evidence.get("identity")
    recorded = identity.get("root") if isinstance(identity, dict) else None
    pinned = hashlib.sha256(root).hexdigest()
    if not isinstance(recorded, str) or recorded.lower() != pinned:
        raise _mismatch(
            f"{device}'s session verifies to a root the bundle pins, not the root the EAR "
            f"records (SHA-256 {str(recorded)[:64]}, pinned {pinned})"
        )
    measurements, _report = _recorded(appraisal, f"submodule {device}")
    signed = {
        b.value.hex()
        for b in verified.blocks
        if isinstance(b, MeasurementBlock)
        and b.index != DEVICE_SVN_INDEX
        and not (b.raw and b.value_type is MeasurementValueType.DEVICE_MODE)  # the EAR's debug
    }
    if {v.lower() for v in measurements.values()} != signed:
        raise _mismatch(f"submodule {device} records other measurements than its session's")
    return f"{device}: its session answers the EAR's nonce, with the measurements it records"
