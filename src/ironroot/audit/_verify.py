"""Verifying an audit bundle offline: every step of the node's chain of trust, in order.

Pure: the bundle's bytes, an :class:`~ironroot.audit.AuditTrust` and (optionally) the instant
to judge at in; an :class:`~ironroot.audit.AuditReport` out. No network, no clock, no file.
The report's caveats state what no step can check: the sealed export time is the exporter's
word, bounded from below only by the newest signed time the steps verified
(:attr:`~ironroot.audit.AuditReport.exported_no_earlier_than`); an unpaired trust; an HSM
nothing signed binds to the node.

This module runs the steps (:func:`check_bundle`, :func:`verify_bundle`). What they share is
in :mod:`ironroot.audit._context`, and each step's checks are in a module of their own:
``_check_integrity`` (2, 3), ``_check_node`` (4 to 6, 9), ``_check_firmware`` (7, 8, 11),
``_check_spdm`` (10), ``_check_transparency`` (12), ``_check_ear`` (13), ``_check_identity``
(14), ``_check_hsm`` (15) and ``_check_releases`` (16).

The steps (``name``: what must hold; the error when it does not):

1. ``format``: the file is exactly the deterministic CBOR encoding of an
   ``ironroot-audit-bundle/1`` map (``AuditBundleRejected`` ``bundle-malformed``).
2. ``seal``: the seal's two signed claims name the SHA-384 of this index
   (``index-not-sealed``), and the seal is a quote of a RoT whose DICE chain reaches one of the
   trusted vendor CA roots, signed by both RT alias keys (``seal-invalid``, naming the quote
   check that failed).
3. ``members``: every member the sealed index lists is there, byte for byte, and no other
   (``member-missing``, ``member-changed``, ``member-unexpected``), and some later step reads
   each one (``member-unread`` names one no step reads: a second EAR, a name export never
   writes, a checkpoint after a gap — sealed, it would still ride along unchecked).

Nothing after these runs unless all three hold; the later steps each run on the sealed
members and report separately (one failing does not hide another), judged as of the sealed
export time unless ``at`` is given:

4. ``node``: the registry row, the fleet's events, the journal and the RoT's events are well
   formed and the sealed node's (``VerificationFailed`` ``not-the-node``).
5. ``fuses``: the fuse view holds the trusted vendor key hash (``KeyDescriptorMismatch``),
   production lifecycle with debug locked (``PolicyRejected`` ``debug-unlocked``), and agrees
   with what the RoT signed in the seal — lifecycle and debug state, and the device status
   its ROM measured into PCR0: anti-rollback, the SVN fuse (no lower than at boot), an owner
   key hash fused or not (``VerificationFailed`` ``fuses-not-quoted``).
6. ``dice``: the DICE chains exported are the chains the seal was signed with
   (``dice-chain-mismatch``).
7. ``pfm``: the active PFM is the one the journal names, verifies under the trusted vendor
   keys and the fused hash, names this platform, and is logged by an issuer allowed for PFMs
   (the platform's own PFM checks and codes: ``no-receipt``, ``untrusted-service``,
   ``logged-pfm-mismatch``, ``issuer-not-allowed``, ``pfm-platform-mismatch``); and it is the
   PFM the sealing RoT measured at its last boot (the seal's PCR 2 ``pfm-digest``): another
   is ``VerificationFailed`` ``pfm-not-booted``, a boot that measured none (before PFMs were
   measured) ``pfm-not-measured``, telling to boot the node again. The journal is the
   sealer's word; the measurement is the RoT's.
8. ``firmware:<component>``: the active image is the one the journal names
   (``not-active-image``) and passes every update check of
   :func:`ironroot.platform.verify_update` again, under the auditor's trust: signatures,
   revocation, SVN floor, validity, PFM, receipt by a trusted service, issuer, logged digest,
   SAFE review when required (the error of the failing check, ``check`` naming it) — with the
   component's recovery image, as the update path passes it; and the PFM in force still allows
   that recovery image (:func:`ironroot.platform.check_recovery_images`: ``PolicyRejected``
   ``pfm-drops-recovery-image``, check ``pfm``): boot restores a slot only from a recovery
   image the PFM allows, and an update refuses to leave a component without one unless the
   operator named it (``allow_recovery_removal``), so the audit reports a node left so,
   whoever accepted it.
9. ``measured-boot``: the seal's FWIDs, manifest digest and SVN are the BMC image's, and the
   last DPE measurement of the host and each device is its active image
   (``VerificationFailed`` ``not-measured``).
10. ``spdm:<device>``: the device's SPDM evidence verifies to the root the platform pinned,
    answers the nonce derived from the sealed export nonce, reports exactly the measurements
    of its active image, and those are the logged reference values, all of one logged release
    (``EndorsementMismatch`` ``measurement-mismatch``, ``mixed-releases``, ``svn-mismatch``,
    ``SvnRollback``; SPDM's own errors).
11. ``reviews``: each SAFE review shipped with the firmware verifies (provider signature,
    receipts: one on no log is ``PolicyRejected`` ``no-receipt``) and names the firmware it
    is attached to.
12. ``transparency``: every checkpoint is signed by a trusted log key (``UnknownIssuer``
    ``untrusted-log``) and, when the trust names witnesses, cosigned by a quorum of distinct
    trusted witnesses (``InsufficientCosignatures``; ``BadSignature`` for a trusted witness's
    line that does not verify); every receipt by a trusted service is covered by one, its tree
    consistent with the checkpoint's (``InconsistentCheckpoint``) and its entry included
    (``InvalidProof``) (see :mod:`ironroot.audit._proofs`). With the trust's receipt keys
    paired with their logs (:class:`~ironroot.audit.TrustedLog`), a receipt is proven only
    under a checkpoint of its own service's log (``UnknownIssuer`` ``receipt-log-mismatch``);
    unpaired, the step and the report say so. With the trust's ``service_issuer`` every
    proven receipt must name that service (``UnknownIssuer`` ``untrusted-service``).
13. ``attestation``: the EAR verifies under a trusted verifier key, was issued before the
    export, is valid at the instant judged at (issued and its ``nbf`` no later:
    ``ear-not-yet-valid``; expired then, the step says so), is the one the registry names
    (``ear-not-registered``), was issued for exactly
    the evidence in the bundle (``attestation/evidence.cbor``: its ``eat_nonce`` is the nonce
    the quote answers, its record of the quote — report data, Ueid, measurements — is that
    quote's, which the sealing RoT signed, and each device's record is that device's session
    in the evidence, answering the same nonce — no session the EAR records is left out:
    ``VerificationFailed`` ``ear-not-bound`` when the EAR records
    no nonce or the evidence is absent, ``ear-evidence-mismatch`` when it was issued for
    other evidence), and affirms the node if the registry says it is admitted
    (``PolicyRejected`` ``ear-not-affirming``); skipped with the recorded reason when absent.
    That EAR is the node's latest, its current state. Each EAR a credential was issued on that
    is not the latest (``attestation/credential-<plane>-ear.jwt``: a node quarantined on a
    newer EAR) passes the same checks with its own evidence, all but the registry's name, and
    must affirm (``check`` ``credential-<plane>``).
14. ``identity``: the bundle proves which fleet node it is about. Each fleet credential in it
    (``fleet/credential-<plane>.pem``, the node's current ones) is signed by the fleet CA the
    trust names (``[fleet] ca``; the bundle's own ``fleet/ca.pem`` is for reference only:
    ``ChainNotTrusted`` ``credential-untrusted``), it and the CA valid at the instant judged
    at (``CertificateExpired`` ``credential-expired``), names exactly the sealed node and
    class, and was issued on an EAR the ``attestation`` step verified — the latest, or the
    one the credential names when the bundle carries it — issued for evidence whose quote the
    sealing RoT signed (``ChainNotTrusted`` ``node-identity``: a bundle of
    one node renamed as another and resealed by its own RoT fails here). With a fleet CA
    trusted, a bundle without a credential fails (``credential-absent``: a node never
    admitted, or a bundle exported before credentials were included); without one the step
    is skipped, saying the node id is unproven. A credential the fleet CA's CRL
    (``fleet/crl.der``, signed at the export) lists is shown revoked, with the time; the
    binding it states still holds (the quarantine shows in the registry row). Without that
    CRL (``VerificationFailed`` ``crl-absent``: whoever seals a bundle could leave it out and
    show revoked credentials as good), or with one signed before the credentials were issued
    (``crl-older-than-credential``: it cannot list them), the step fails.
15. ``hsm``: the HSM's audit chain is intact and reaches each signed checkpoint
    (``AuditChainBroken``), binds no release statement twice and, once it binds its releases,
    binds every one (:func:`ironroot.hsm.release_records`); its key releases are listed;
    skipped when the node has no HSM. The HSM's attestation chain (``hsm/attestation-chain.pem``)
    ties it to the node: it names the HSM the checkpoints name and certifies the key that
    signed them (``VerificationFailed`` ``hsm-chain-mismatch``), and its device is a DPE child
    of the sealing RoT (``hsm-other-node`` for another RoT's); without that tie the step says
    nothing signed binds the HSM to the node (``hsm-not-bound`` when the trust requires it).
16. ``releases``: each release statement the key service kept (``hsm/releases.cbor``, ADR
    0015) verifies to one of the trusted HSM vendor roots (``UnknownIssuer`` when the trust
    names none; ``ChainNotTrusted``, ``BadSignature``, ``MalformedInput``), is of the HSM whose
    checkpoints the chain reaches (``VerificationFailed`` ``release-other-hsm``), and its
    SHA-256 is bound by exactly one granted release record of the verified chain
    (``release-not-audited`` when none is) whose key, wrapping-key digest and EAR digest are
    the statement's (``release-record-mismatch``); ``check`` names the statement
    (``statement-<i>``); skipped when the bundle has none, not run when ``hsm`` failed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Final

from ironroot.audit._bundle import AuditBundle, AuditIndex
from ironroot.audit._check_ear import check_attestation
from ironroot.audit._check_firmware import check_firmware, check_pfm, check_reviews
from ironroot.audit._check_hsm import check_hsm
from ironroot.audit._check_identity import check_identity
from ironroot.audit._check_integrity import check_seal, unread_members
from ironroot.audit._check_node import check_dice, check_fuses, check_measured_boot, check_node
from ironroot.audit._check_releases import check_releases
from ironroot.audit._check_spdm import check_spdm
from ironroot.audit._check_transparency import UNPAIRED, check_transparency
from ironroot.audit._context import (
    NOT_PRESENT,  # noqa: F401 (read from here by tests)
    Context,
    NotRun,
    Skipped,
    posix_time,
    rejected,
    text_time,
)
from ironroot.audit._report import AuditReport, AuditStep
from ironroot.audit._trust import AuditTrust
from ironroot.errors import IronrootError, MalformedInput, VerificationFailed
from ironroot.platform import COMPONENTS, DEVICES
from ironroot.rot import QuoteClaims

__all__ = ["check_bundle", "report_unread", "verify_bundle"]


def _run(name: str, title: str, step: Callable[[], list[str]], steps: list[AuditStep]) -> None:
    try:
        lines = step()
    except NotRun as reason:
        steps.append(AuditStep(name, title, "not-run", (f"not run: {reason}",)))
    except Skipped as reason:
        steps.append(AuditStep(name, title, "skipped", (str(reason),)))
    except IronrootError as exc:
        exc.check = name if exc.check is None else f"{name}:{exc.check}"
        steps.append(AuditStep(name, title, "failed", (), exc))
    else:
        steps.append(AuditStep(name, title, "ok", tuple(lines)))


_FORMAT_STEP: Final = ("format", "The file is an audit bundle")


def report_unread(detail: str) -> AuditReport:
    """The report on a file that was not read, ``detail`` saying why (larger than any bundle):
    its ``format`` step failed with ``AuditBundleRejected`` ``bundle-malformed``, as for any
    other file that is no bundle, and no other step ran."""
    error = rejected("bundle-malformed", detail)
    error.check = _FORMAT_STEP[0]
    return AuditReport("", (AuditStep(*_FORMAT_STEP, "failed", (), error),))


def check_bundle(data: bytes, trust: AuditTrust, *, at: dt.datetime | None = None) -> AuditReport:
    """Every step of the module docs, in order; never raises for a bad bundle (the report
    says where it broke). ``at``: the instant the evidence is judged at (default: the sealed
    export time); it is also when the seal's certificates must be valid."""
    return _check_bundle(data, trust, at, stop=False)


def _check_bundle(
    data: bytes, trust: AuditTrust, at: dt.datetime | None, *, stop: bool
) -> AuditReport:
    """:func:`check_bundle`; with ``stop`` (:func:`verify_bundle`), the first step that fails
    raises its error at once: the steps after it, and the file's SHA-384 (of up to
    ``MAX_BUNDLE_BYTES``, for the report), are not worked out for a bundle that is refused."""
    if not isinstance(trust, AuditTrust):
        raise VerificationFailed("check_bundle needs an AuditTrust")
    if at is not None and (not isinstance(at, dt.datetime) or at.tzinfo is None):
        raise MalformedInput("at must be a timezone-aware datetime")

    def digest() -> str:
        return hashlib.sha384(data).hexdigest() if isinstance(data, bytes) else ""

    steps: list[AuditStep] = []

    def run(name: str, title: str, step: Callable[[], list[str]]) -> None:
        _run(name, title, step, steps)
        error = steps[-1].error
        if stop and steps[-1].status == "failed" and error is not None:
            raise error

    parsed: list[AuditBundle] = []
    sealed: list[tuple[AuditIndex, QuoteClaims]] = []

    def parse() -> list[str]:
        parsed.append(AuditBundle.parse(data))
        return [f"one deterministic CBOR map: {len(parsed[0].members)} members, index, seal"]

    def seal() -> list[str]:
        index, claims, lines = check_seal(parsed[0], trust, at)
        sealed.append((index, claims))
        return lines

    def members() -> list[str]:
        index = sealed[0][0]
        parsed[0].check_members(index)
        unread = unread_members(frozenset(index.members))
        if unread:
            more = f" (and {len(unread) - 1} more)" if len(unread) > 1 else ""
            raise rejected(
                "member-unread",
                f"member {unread[0]}{more} is sealed but no step of the verification reads "
                "it: an export writes no such member, and nothing would check what it says",
            )
        size = sum(e.size for e in index.members.values())
        return [f"{len(index.members)} members, {size} bytes, each with its sealed SHA-384"]

    for name, title, step in (
        (*_FORMAT_STEP, parse),
        ("seal", "Sealed by the node's root of trust", seal),
        ("members", "Every member is the one sealed", members),
    ):
        run(name, title, step)
        if steps[-1].status != "ok":
            return AuditReport(digest(), tuple(steps))
    index, claims = sealed[0]
    ctx = Context(parsed[0], index, trust, claims, at or index.exported_at)
    plan: list[tuple[str, str, Callable[[], list[str]]]] = [
        ("node", "The node and its registry row", lambda: check_node(ctx)),
        ("fuses", "Fuses: vendor key hash, lifecycle, debug", lambda: check_fuses(ctx)),
        ("dice", "DICE identity chain", lambda: check_dice(ctx)),
        ("pfm", "Platform Firmware Manifest", lambda: check_pfm(ctx)),
    ]
    plan += [
        (f"firmware:{c}", f"Firmware of {c}", (lambda c=c: check_firmware(ctx, c)))  # type: ignore[misc]
        for c in COMPONENTS
    ]
    plan.append(
        ("measured-boot", "Measured boot (quote and DPE)", lambda: check_measured_boot(ctx))
    )
    plan += [
        (f"spdm:{d}", f"SPDM measurements of {d}", (lambda d=d: check_spdm(ctx, d)))  # type: ignore[misc]
        for d in DEVICES
    ]
    plan += [
        ("reviews", "OCP SAFE reviews", lambda: check_reviews(ctx)),
        ("transparency", "Checkpoints, consistency and inclusion", lambda: check_transparency(ctx)),
        ("attestation", "Attestation result (EAR)", lambda: check_attestation(ctx)),
        ("identity", "Node identity: the fleet credential", lambda: check_identity(ctx)),
        ("hsm", "HSM audit chain and key releases", lambda: check_hsm(ctx)),
        ("releases", "Release statements and their audit records", lambda: check_releases(ctx)),
    ]
    for name, title, step in plan:
        run(name, title, step)
    bound, caveat = _signed_bound(ctx)
    return AuditReport(
        digest(),
        tuple(steps),
        node=index.node,
        node_class=index.node_class,
        platform=index.platform,
        exported_at=text_time(index.exported_at),
        judged_at=text_time(ctx.at),
        hsm_records=ctx.hsm_records,
        exported_no_earlier_than=bound,
        caveats=(
            caveat,
            *(() if trust.logs else (UNPAIRED,)),
            *(() if ctx.hsm_unbound is None else (f"HSM records: {ctx.hsm_unbound}",)),
        ),
    )


def _signed_bound(ctx: Context) -> tuple[str | None, str]:
    """What signed data says of the sealed export time: the newest time a party the trust
    names signed (a receipt's ``iat``, an EAR's, the fleet CA's CRL, a credential, an HSM
    audit checkpoint), as text, and the caveat the report states. The export time itself is
    the exporter's word: the RoT that seals signs the index it is given and keeps no
    trusted clock, so only signed data bounds it, and only from below."""
    exported = text_time(ctx.index.exported_at)
    word = (
        f"exported_at {exported} is the exporter's word (the RoT that sealed the bundle keeps "
        "no trusted clock)"
    )
    if not ctx.signed_times:
        return None, f"{word}; nothing signed in the bundle bounds it"
    seconds, what = max(ctx.signed_times)
    when = posix_time(seconds)
    caveat = f"{word}; signed data bounds it: exported no earlier than {when} ({what})"
    if seconds > ctx.index.exported_at.timestamp():
        caveat += ": the sealed export time is before it, and is false"
    return when, caveat


def verify_bundle(data: bytes, trust: AuditTrust, *, at: dt.datetime | None = None) -> AuditReport:
    """:func:`check_bundle`, raising the first break's typed error (``check`` naming the
    step, and the inner check when the step has named checks: ``firmware:bmc:receipt``)."""
    report = _check_bundle(data, trust, at, stop=True)
    failure = report.failure  # ``stop`` raised it already: this holds whatever _run records
    if failure is not None and failure.error is not None:
        raise failure.error
    return report
