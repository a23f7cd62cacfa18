"""The firmware steps of an audit check (7, 8 and 11 in :mod:`ironroot.audit._verify`).

``pfm`` and ``firmware:<component>``: the active PFM and each component's active image pass
the platform's own checks again, under the auditor's trust, and are the ones the RoT's journal
names (the PFM also the one the RoT measured at boot); ``reviews``: each SAFE review shipped
with the firmware verifies and names that firmware. With the journal readers these steps
share, and the report lines naming statement members no check reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from ironroot.audit._context import STATEMENT, Context, NotRun, Skipped, hex_bytes, is_transparent
from ironroot.audit._trust import AuditTrust
from ironroot.cose import SignedStatement, TransparentStatement
from ironroot.errors import (
    DigestMismatch,
    IronrootError,
    MalformedInput,
    PolicyRejected,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.firmware import MAX_SVN
from ironroot.platform import (
    COMPONENTS,
    PFM_CONTENT_TYPE,
    check_recovery_images,
    on_trusted_log,
    verify_pfm,
    verify_update,
)
from ironroot.rot import check_booted_pfm, measured_pfm
from ironroot.safe import SFR_COSE_CONTENT_TYPE, SFR_JWS_CONTENT_TYPE, review_from_statement

__all__ = ["check_firmware", "check_pfm", "check_reviews"]


def _active_digest(state: Mapping[str, Any], component: str) -> tuple[bytes, int]:
    """The SHA-384 the journal names for ``component``'s active image (or the PFM's), and
    its SVN floor."""
    try:
        entry = state["pfm"] if component == "pfm" else state["components"][component]
        floor = entry["svn_floor"]
        digest = hex_bytes(entry["active"]["sha384"], f"the journaled {component} digest", 48)
    except (KeyError, TypeError) as exc:
        raise MalformedInput(f"platform/state.json has no active {component} image") from exc
    if isinstance(floor, bool) or not isinstance(floor, int) or not 0 <= floor <= MAX_SVN:
        raise MalformedInput(f"platform/state.json has no SVN floor for {component}")
    return digest, floor


def _recovery_digest(state: Mapping[str, Any], component: str) -> bytes | None:
    """The SHA-384 the journal names for ``component``'s recovery image; ``None`` if none."""
    try:
        entry = state["components"][component]["recovery"]
        if entry is None:
            return None
        return hex_bytes(entry["sha384"], f"the journaled {component} recovery digest", 48)
    except (KeyError, TypeError) as exc:
        raise MalformedInput(f"platform/state.json has no {component} recovery entry") from exc


def _is_active(ctx: Context, component: str, data: bytes) -> bytes:
    digest, _floor = _active_digest(ctx.state(), component)
    actual = hashlib.sha384(data).digest()
    if not hmac.compare_digest(actual, digest):
        raise VerificationFailed(
            f"the exported {component} image ({actual.hex()[:16]}…) is not the active image "
            f"the RoT's journal names ({digest.hex()[:16]}…)",
            code="not-active-image",
        )
    return actual


def _logged(statement: bytes, trust: AuditTrust, what: str, at: dt.datetime) -> SignedStatement:
    try:
        TransparentStatement.parse(statement)
    except MalformedInput as exc:
        raise PolicyRejected(
            f"{what} is not on a transparency log: no receipt", code="no-receipt"
        ) from exc
    platform = trust.platform
    return on_trusted_log(
        statement,
        platform.service_keys,
        what,
        issuer=platform.service_issuer,
        now=at.timestamp(),
    ).statement


def check_pfm(ctx: Context) -> list[str]:
    if ctx.fuses is None:
        raise NotRun("the fuses did not verify")
    data = ctx.member("pfm/pfm.cose")
    _is_active(ctx, "pfm", data)
    _digest, floor = _active_digest(ctx.state(), "pfm")
    trust = ctx.trust.platform
    pfm = verify_pfm(
        data,
        ecc_keys=trust.ecc_keys,
        pqc_keys=trust.pqc_keys,
        vendor_key_hash=ctx.fuses.vendor_key_hash,
        min_svn=floor,
        ecc_revocation=ctx.fuses.ecc_revocation,
        pqc_revocation=ctx.fuses.pqc_revocation,
    )
    if pfm.platform != trust.platform or pfm.platform != ctx.index.platform:
        raise PolicyRejected(
            f"the PFM is for platform {pfm.platform!r}, not {trust.platform!r}",
            code="pfm-platform-mismatch",
        )
    statement = _logged(ctx.member("pfm/statement.cose"), ctx.trust, "the PFM", ctx.at)
    if statement.content_type != PFM_CONTENT_TYPE or not hmac.compare_digest(
        statement.payload, data
    ):
        raise DigestMismatch("the logged PFM is not the active PFM", code="logged-pfm-mismatch")
    if statement.claims.iss not in trust.issuers_of("pfm"):
        raise UnknownIssuer(
            f"issuer {statement.claims.iss!r} may not publish PFMs", code="issuer-not-allowed"
        )
    measured = _measured_pfm(ctx, data)
    ctx.pfm = pfm
    return [
        f"PFM svn {pfm.svn} for {pfm.platform}, signed by the vendor keys the fuses name",
        f"measured at boot (PCR 2): {measured.hex()[:32]}… is the exported PFM",
        f"logged by {statement.claims.iss} on a trusted transparency service",
        "allows: "
        + "; ".join(f"{c.name} {', '.join(v.version for v in c.versions)}" for c in pfm.components),
        *_unreadable(
            sorted(
                (n, d)
                for n, d in ctx.bundle.members.items()
                if STATEMENT.fullmatch(n) and n.startswith("pfm/")
            )
        ),
    ]


def _measured_pfm(ctx: Context, data: bytes) -> bytes:
    """The exported PFM is the one the sealing RoT measured at its last boot (the quote's
    ``pfm-digest``, PCR 2): the journal that names it is the sealer's word, and any PFM the
    vendor signed and logged for the platform would pass the other checks."""
    return check_booted_pfm(
        hashlib.sha384(data).digest(),
        measured_pfm(ctx.claims.log),
        what="the exported PFM",
        advice="boot the node again (ironroot platform boot) so that its RoT measures the PFM "
        "it enforces, then export again",
    )


def check_firmware(ctx: Context, component: str) -> list[str]:
    if ctx.fuses is None or ctx.pfm is None:
        raise NotRun("the fuses or the PFM did not verify")
    state = ctx.state()
    image = ctx.image(component)
    _is_active(ctx, component, image)
    _digest, floor = _active_digest(state, component)
    if component == "bmc":
        floor = max(floor, ctx.fuses.svn)
    active = {}
    for name in COMPONENTS:
        try:
            active[name] = _active_digest(state, name)[0]
        except MalformedInput:
            continue
    recovery = _recovery_digest(state, component)
    recovery_images = {component: recovery} if recovery is not None else {}
    verified = verify_update(
        component,
        image,
        ctx.statements(component),
        trust=ctx.trust.platform.for_kept_evidence(),
        fuses=ctx.fuses,
        min_svn=floor,
        active_pfm=ctx.pfm,
        active_images=active,
        now=ctx.at,
        recovery_images=recovery_images,
    )
    ctx.verified[component] = verified
    try:
        check_recovery_images(ctx.pfm, recovery_images, what="the active PFM")
    except IronrootError as exc:
        exc.check = "pfm"
        raise
    lines = [
        f"{component} {verified.version.version} (SVN {verified.svn}, floor {floor}): signed "
        "by the vendor keys the fuses name, not revoked, within its validity",
        f"bundle SHA-384 {verified.sha384.hex()[:32]}… is listed by the PFM and is the active "
        "image",
        f"manifest SHA-384 {verified.manifest_digest.hex()[:32]}… logged by "
        f"{verified.statement.claims.iss} ({verified.statement.claims.sub})",
    ]
    if verified.reviews:
        lines.append(f"{len(verified.reviews)} SAFE review(s) as required")
    if recovery is not None:
        lines.append(f"recovery image SHA-384 {recovery.hex()[:32]}… is still allowed by the PFM")
    return lines + _unreadable(ctx.statement_members(component))


def check_reviews(ctx: Context) -> list[str]:
    providers = ctx.trust.review_providers
    found: list[tuple[str, str, bytes]] = []
    for component in COMPONENTS:
        for name, data in ctx.statement_members(component):
            try:
                statement = TransparentStatement.parse(data).statement
            except MalformedInput:
                try:  # never logged: a review anyone with a key could write
                    statement = SignedStatement.parse(data)
                except IronrootError:
                    continue
            if statement.content_type in (SFR_JWS_CONTENT_TYPE, SFR_COSE_CONTENT_TYPE):
                found.append((component, name, data))
    if not found:
        raise Skipped("no SAFE review was shipped with the node's firmware")
    if not len(providers):
        raise Skipped(
            f"{len(found)} SAFE review(s) in the bundle, but the trust names no review provider"
        )
    lines = []
    for component, name, data in found:
        try:
            TransparentStatement.parse(data)
        except MalformedInput as exc:
            raise PolicyRejected(
                f"{name} is a SAFE review shipped with {component}'s firmware that is on no "
                "transparency log: no receipt",
                code="no-receipt",
            ) from exc
        review = review_from_statement(
            data,
            providers,
            service_keys=ctx.trust.platform.service_keys,
            now=ctx.at,
            service_issuer=ctx.trust.platform.service_issuer,
        )
        verified = ctx.verified.get(component)
        if verified is not None and review.subject.lower() != (
            f"sha384:{verified.manifest_digest.hex()}"
        ):
            raise VerificationFailed(
                f"{name} reviews {review.subject}, not {component}'s active firmware",
                code="subject-mismatch",
            )
        worst = review.max_open_cvss
        lines.append(
            f"{component}: review by {review.provider_kid} ({review.report.audit.srp}), "
            + (f"open findings up to CVSS {worst:.1f}" if worst is not None else "no open finding")
        )
    return lines


def _unreadable(members: Sequence[tuple[str, bytes]]) -> list[str]:
    """A line for each statement member that is no Signed Statement (the update path passes
    over such a statement and keeps it with the image, so it is no reason to refuse the
    node; but nothing checks it, and a report must not let it pass as if it had)."""
    lines = []
    for name, data in members:
        if is_transparent(data):
            continue
        try:
            SignedStatement.parse(data)
        except IronrootError:
            lines.append(f"{name}: not a Signed Statement, so no check reads it")
    return lines
