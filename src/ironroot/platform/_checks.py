"""The update checks: may this firmware bundle replace a component's image on this platform?

:func:`verify_update` is the decision the RoT takes before it writes a byte of an update; pure
(bytes and values in, a :class:`VerifiedUpdate` out or the first refusal raised with
``exc.check`` naming the check). :func:`check_update` runs the same checks and reports each
(an :class:`UpdateReport` of :class:`ironroot.firmware.CheckResult`); it never raises for a bad
bundle, statement or PFM. The checks, in order:

1. **The firmware checks** of :func:`ironroot.firmware.check_bundle`, with the RoT's fuses
   (vendor key descriptor hash, ECC/PQC revocation masks, owner key hash) and the component's
   ``min_svn``, the node's SVN floor, enforced even when the RoT's anti-rollback fuse is set
   (boot enforces that floor whatever the fuses say), named as the firmware layer names
   them: ``parse`` (``MalformedFirmware``), ``key-descriptor`` (``KeyDescriptorMismatch``),
   ``ecc-key`` / ``pqc-key`` (``KeyNotInDescriptor``), ``ecc-revocation`` / ``pqc-revocation``
   (``KeyRevoked``: a signature by a revoked key), ``vendor-ecc-signature`` /
   ``vendor-pqc-signature`` (``MissingSignature``: an unsigned bundle; ``BadSignature``),
   ``owner-key``, ``owner-ecc-signature``, ``owner-pqc-signature``, ``toc-digest``,
   ``component:<id>`` (``DigestMismatch``), ``svn`` (``SvnRollback``: a rollback),
   ``validity`` (``ManifestExpired``).
2. ``pfm`` — when the update carries a new PFM (``pfm`` and/or ``pfm_statement``, whose payload
   is the signed PFM): it verifies (:func:`~ironroot.platform.verify_pfm` with the trust's
   vendor keys and the fused hash: ``MalformedInput``, ``KeyDescriptorMismatch``,
   ``MissingSignature``, ``BadSignature`` for a PFM signed by another key, ``SvnRollback``
   for an SVN below the active PFM's, and code ``pfm-svn-reused`` for a PFM at the active
   PFM's SVN that is not the active PFM); it names this platform (``PolicyRejected``
   ``pfm-platform-mismatch``); it is itself logged, under the same rules as the bundle's
   manifest statement below (``PolicyRejected`` ``no-receipt``, ``UnknownIssuer``
   ``untrusted-service``, ``InvalidProof`` ``receipt-not-for-statement``, ``UnknownIssuer``
   ``issuer-not-allowed`` for an issuer not allowed for component ``pfm``, ``DigestMismatch``
   ``logged-pfm-mismatch`` when the logged PFM is not the one carried); and it still allows
   every other component's active image (``PolicyRejected`` ``pfm-drops-active-image``) and
   every component's recovery image, the updated one's included (``PolicyRejected``
   ``pfm-drops-recovery-image``, naming the component: a PFM that no longer lists a recovery
   image leaves that component with nothing to recover to, since boot restores only images
   the PFM in force allows), unless ``allow_recovery_removal`` names the component — the
   operator's explicit acceptance, for instance of a vendor withdrawing a vulnerable release.
   With no PFM in force (``active_pfm`` ``None``, at creation) the update must carry one
   (``PolicyRejected`` ``no-pfm``). Then the PFM in force (the new one, else the active one)
   allows the bundle: its SHA-384 is listed for the component (``FirmwareRejected``
   ``not-in-pfm``) with the bundle's own SVN (``FirmwareRejected`` ``pfm-svn-mismatch``).
3. ``receipt`` — the update's manifest statement (a hash envelope over the SHA-384 of the
   manifest, preimage content type ``application/vnd.ironroot.firmware-manifest``, as
   :func:`ironroot.firmware.manifest_statement` makes it) is among ``statements`` and carries
   a receipt that verifies against one of the trust's transparency service keys. The
   statements naming this bundle's manifest digest are the candidates; when none does, every
   manifest statement given is (so that a logged statement of another release fails at
   ``logged-digest``). No candidate, or none with a receipt: ``PolicyRejected``
   ``no-receipt`` (an unlogged update is refused however well signed). Receipts that do not
   verify: ``UnknownIssuer`` ``untrusted-service`` (no trusted service key signed it),
   ``InvalidProof`` ``receipt-not-for-statement`` (it proves another entry, or was
   tampered with), ``MalformedReceipt``. The logged statement is valid at ``now`` by its own
   CWT claims (RFC 8392): before its ``exp`` (``VerificationFailed`` ``statement-expired``),
   at or after its ``nbf`` (``statement-not-yet-valid``); either one not an integer is
   ``MalformedStatement``. A logged PFM is held to the same (check ``pfm``).
4. ``issuer`` — the statement's ``iss`` is allowed for the component (``UnknownIssuer``
   ``issuer-not-allowed``). The issuer's signature on the statement is the transparency
   service's registration decision (its policy binds each ``iss`` to keys); the receipt is
   the service's word that it made it.
5. ``logged-digest`` — the digest in the logged statement is the bundle's manifest digest
   (``DigestMismatch`` ``logged-digest-mismatch``).
6. ``safe-review`` — when the trust has a :class:`~ironroot.platform.SafeRequirement` for the
   component: among ``statements``, an OCP SAFE review of the bundle's manifest digest
   (``sha384:<hex>``, the firmware hash Ironroot reviews RoT firmware by), logged (receipts
   verify against the service keys) and signed by one of its review providers
   (``PolicyRejected`` ``safe-review-missing``), with no open finding above the configured
   severity (``PolicyRejected`` ``safe-finding-open``).

A check that cannot run because an earlier one it needs failed (the manifest statement when
the bundle does not parse, the issuer when no receipt verified) is reported with ``passed``
``None``; it always follows the first failure. Bad arguments (no vendor key hash fused, a
``min_svn`` out of range, a naive ``now``) raise ``ConfigError`` from both functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ironroot.corim import CORIM_CONTENT_TYPE
from ironroot.cose import (
    HASH_SHA384,
    SignedStatement,
    TransparentStatement,
    on_trusted_log,
)
from ironroot.errors import (
    ConfigError,
    DigestMismatch,
    FirmwareRejected,
    IronrootError,
    MalformedInput,
    PolicyRejected,
    UnknownIssuer,
)
from ironroot.firmware import (
    MANIFEST_CONTENT_TYPE,
    BundlePolicy,
    CheckResult,
    FirmwareBundle,
    VerifiedManifest,
    check_bundle,
    verify_bundle,
)
from ironroot.log import open_checkpoint
from ironroot.platform._pfm import PFM_CONTENT_TYPE, Pfm, PfmVersion, verify_pfm
from ironroot.platform._policy import PlatformTrust, SafeRequirement
from ironroot.rot import Fuses
from ironroot.safe import SFR_COSE_CONTENT_TYPE, SFR_JWS_CONTENT_TYPE, Review, reviews_for
from ironroot.transparency import decode_witnessed_statement, verify_witnessed_statement

__all__ = [
    "UPDATE_CHECKS",
    "UpdateReport",
    "VerifiedUpdate",
    "check_recovery_images",
    "check_update",
    "verify_update",
]

UPDATE_CHECKS: Final = ("pfm", "receipt", "issuer", "logged-digest", "safe-review")
"""The names of the platform's checks, in order, after the firmware checks."""

_PFM_COMPONENT: Final = "pfm"


@dataclass(frozen=True, slots=True)
class VerifiedUpdate:
    """An update every check passed: what the RoT may write, and why it may."""

    component: str
    bundle: bytes
    sha384: bytes
    """SHA-384 of the whole bundle: what the PFM lists and the flash holds."""
    manifest_digest: bytes
    svn: int
    version: PfmVersion
    """The PFM entry that allows the bundle."""
    pfm: Pfm
    """The PFM the bundle was checked against: the new one when the update carries one."""
    new_pfm: bytes | None
    """The signed PFM to activate with the image, when the update carries one."""
    statement: SignedStatement
    """The logged manifest statement."""
    reviews: tuple[Review, ...]
    """The SAFE reviews that satisfied the requirement (empty when none is required)."""
    firmware: VerifiedManifest


@dataclass(frozen=True, slots=True)
class UpdateReport:
    """Every check of :func:`check_update`, in order, and the update when all passed."""

    component: str
    checks: tuple[CheckResult, ...]
    verified: VerifiedUpdate | None

    @property
    def ok(self) -> bool:
        return self.verified is not None

    @property
    def first_failure(self) -> CheckResult | None:
        return next((c for c in self.checks if c.passed is False), None)

    def to_json(self) -> dict[str, Any]:
        failure = self.first_failure
        return {
            "component": self.component,
            "ok": self.ok,
            "failed_check": failure.name if failure is not None else None,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail, "code": c.code}
                for c in self.checks
            ],
        }


class _NotRun(Exception):
    """A check that needs what an earlier, failed check would have given."""


def _unwrapped(data: bytes) -> bytes | None:
    """The Transparent Statement of a witnessed statement; ``None`` if ``data`` is not one."""
    if not data or not 0xA0 <= data[0] <= 0xBF:  # a witnessed statement is a CBOR map
        return None
    try:
        return decode_witnessed_statement(data)[0]
    except IronrootError:
        return None


def unwrap_witnessed(data: bytes) -> bytes:
    """``data``, or the Transparent Statement in it when it is a witnessed statement (what the
    platform keeps as an update's evidence: the witnessing was checked when it was decided)."""
    return _unwrapped(data) or data


def _parse_statement(data: bytes) -> tuple[SignedStatement, bool] | None:
    """The statement in ``data`` and whether it carries receipts; ``None`` if it is neither a
    Transparent Statement (witnessed or not) nor a Signed Statement."""
    try:
        return TransparentStatement.parse(unwrap_witnessed(data)).statement, True
    except IronrootError:
        pass
    try:
        return SignedStatement.parse(data), False
    except IronrootError:
        return None


def _is_manifest_statement(statement: SignedStatement) -> bool:
    envelope = statement.hash_envelope
    return (
        envelope is not None
        and envelope.hash_alg == HASH_SHA384
        and envelope.preimage_content_type == MANIFEST_CONTENT_TYPE
    )


def _is_sfr(statement: SignedStatement) -> bool:
    return statement.content_type in (SFR_JWS_CONTENT_TYPE, SFR_COSE_CONTENT_TYPE)


def _logged(
    candidates: Sequence[tuple[bytes, SignedStatement, bool]],
    trust: PlatformTrust,
    what: str,
    now: dt.datetime,
) -> SignedStatement:
    """The first candidate whose receipts prove it is on a trusted log (module docs, 3), and
    witnessed when the trust requires witnesses."""
    logged = [data for data, _statement, has_receipts in candidates if has_receipts]
    if not logged:
        raise PolicyRejected(f"{what} is not on a transparency log: no receipt", code="no-receipt")
    failures: list[IronrootError] = []
    for data in logged:
        try:
            statement = _receipted(unwrap_witnessed(data), trust, what, now)
            _witnessed(data, trust, what, now)
        except IronrootError as exc:
            failures.append(exc)
        else:
            return statement
    raise failures[0]


def _receipted(data: bytes, trust: PlatformTrust, what: str, now: dt.datetime) -> SignedStatement:
    return on_trusted_log(
        data, trust.service_keys, what, issuer=trust.service_issuer, now=now.timestamp()
    ).statement


def _witnessed(data: bytes, trust: PlatformTrust, what: str, now: dt.datetime) -> None:
    """When the trust requires witnesses: ``data`` is a witnessed statement whose checkpoint
    the log signed and the quorum cosigned, its receipt's tree a prefix of it."""
    witnesses = trust.witnesses
    if witnesses is None:
        return
    if _unwrapped(data) is None:
        raise PolicyRejected(
            f"{what} is not witnessed: this platform requires a checkpoint cosigned by "
            f"{witnesses.policy.quorum} trusted witness(es) (ironroot statement witness)",
            code="not-witnessed",
        )
    statement, checkpoint, proof = decode_witnessed_statement(data)
    _receipted(statement, trust, what, now)  # its receipts' refusals named as the receipt check's
    when = int(now.timestamp())
    try:  # the checkpoint first: its log signature's refusal is named as such
        open_checkpoint(checkpoint, witnesses.log_keys, origin=witnesses.origin)
    except UnknownIssuer as exc:
        raise UnknownIssuer(
            f"the checkpoint {what} is witnessed in is not by the trusted log: {exc.detail}",
            code="untrusted-log",
        ) from exc
    verify_witnessed_statement(
        statement,
        checkpoint,
        proof,
        service_keys=trust.service_keys,
        log_verifiers=witnesses.log_keys,
        policy=witnesses.policy,
        now=when,
        origin=witnesses.origin,
        service_issuer=trust.service_issuer,
    )


def _issuer_allowed(statement: SignedStatement, trust: PlatformTrust, component: str) -> str:
    iss = statement.claims.iss
    if iss not in trust.issuers_of(component):
        raise UnknownIssuer(
            f"issuer {iss!r} may not publish {component} firmware", code="issuer-not-allowed"
        )
    return f"issuer {iss} is allowed for {component}"


@dataclass(frozen=True, slots=True)
class _Inputs:
    """The update's arguments, checked and normalised."""

    component: str
    bundle: bytes
    statements: tuple[bytes, ...]
    active_images: Mapping[str, bytes]
    pfm: bytes | None
    pfm_statement: bytes | None
    recovery_images: Mapping[str, bytes]
    allow_recovery_removal: frozenset[str]


class _Update:
    """The platform's checks over one update; each method returns a detail or raises."""

    def __init__(
        self,
        update: _Inputs,
        firmware: VerifiedManifest | None,
        *,
        trust: PlatformTrust,
        fuses: Fuses,
        active_pfm: Pfm | None,
        now: dt.datetime,
    ) -> None:
        self.fuses = fuses
        self.component = update.component
        self.bundle = update.bundle
        self.trust = trust
        self.active_pfm = active_pfm
        self.active_images = update.active_images
        self.recovery_images = update.recovery_images
        self.allow_recovery_removal = update.allow_recovery_removal
        self.now = now
        self.new_pfm_bytes = update.pfm
        self.pfm_statement = update.pfm_statement
        self.sha384 = hashlib.sha384(self.bundle).digest()
        self.manifest_digest: bytes | None = None
        self.svn: int | None = None
        if firmware is not None:
            self.manifest_digest, self.svn = firmware.manifest_digest, firmware.svn
        else:
            try:
                parsed = FirmwareBundle.parse(self.bundle)
            except IronrootError:
                pass  # reported by the firmware check ``parse``
            else:
                self.manifest_digest = parsed.manifest_digest()
                self.svn = parsed.manifest.header.svn
        self.statements = [
            (data, *parsed_statement)
            for data in update.statements
            if (parsed_statement := _parse_statement(data)) is not None
        ]
        self.pfm_in_force: Pfm | None = active_pfm
        self.version: PfmVersion | None = None
        self.statement: SignedStatement | None = None
        self.reviews: tuple[Review, ...] = ()
        self.carried_pfm: bytes | None = None

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        return [
            ("pfm", self.pfm),
            ("receipt", self.receipt),
            ("issuer", self.issuer),
            ("logged-digest", self.logged_digest),
            ("safe-review", self.safe_review),
        ]

    # --- 2. the PFM -------------------------------------------------------------------------

    def _new_pfm(self) -> Pfm:
        signed = self.new_pfm_bytes
        entry: tuple[bytes, SignedStatement, bool] | None = None
        if self.pfm_statement is not None:
            parsed = _parse_statement(self.pfm_statement)
            if parsed is None:
                raise MalformedInput("the PFM statement is not a Signed Statement")
            entry = (self.pfm_statement, *parsed)
            if signed is None:
                signed = parsed[0].payload
        assert signed is not None
        self.carried_pfm = signed
        new = verify_pfm(
            signed,
            ecc_keys=self.trust.ecc_keys,
            pqc_keys=self.trust.pqc_keys,
            vendor_key_hash=self.fuses.vendor_key_hash,
            ecc_revocation=self.fuses.ecc_revocation,
            pqc_revocation=self.fuses.pqc_revocation,
            active=self.active_pfm,
        )
        if new.platform != self.trust.platform:
            raise PolicyRejected(
                f"the PFM is for platform {new.platform!r}, not {self.trust.platform!r}",
                code="pfm-platform-mismatch",
            )
        logged = _logged([entry] if entry else [], self.trust, "the new PFM", self.now)
        logged.check_validity(self.now)
        if logged.content_type != PFM_CONTENT_TYPE or not hmac.compare_digest(
            logged.payload, signed
        ):
            raise DigestMismatch(
                "the logged PFM is not the PFM the update carries", code="logged-pfm-mismatch"
            )
        _issuer_allowed(logged, self.trust, _PFM_COMPONENT)
        for name, digest in sorted(self.active_images.items()):
            if name == self.component:
                continue
            try:
                listed = new.component(name).versions
            except FirmwareRejected:
                listed = ()
            if not any(hmac.compare_digest(v.sha384, digest) for v in listed):
                raise PolicyRejected(
                    f"the new PFM no longer allows the active {name} image",
                    code="pfm-drops-active-image",
                )
        check_recovery_images(
            new, self.recovery_images, allow_recovery_removal=self.allow_recovery_removal
        )
        return new

    def pfm(self) -> str:
        carried = self.new_pfm_bytes is not None or self.pfm_statement is not None
        if carried:
            self.pfm_in_force = self._new_pfm()
        in_force = self.pfm_in_force
        if in_force is None:
            raise PolicyRejected("no PFM is in force and the update carries none", code="no-pfm")
        version = in_force.allows_digest(self.component, self.sha384)
        if self.svn is not None and version.svn != self.svn:
            raise FirmwareRejected(
                f"the PFM lists {self.component} {version.version} with SVN {version.svn}, "
                f"the bundle has SVN {self.svn}",
                code="pfm-svn-mismatch",
            )
        self.version = version
        which = f"the new PFM (svn {in_force.svn})" if carried else "the active PFM"
        return f"{which} allows {self.component} {version.version} (SVN {version.svn})"

    # --- 3–5. the log -----------------------------------------------------------------------

    def receipt(self) -> str:
        digest = self.manifest_digest
        if digest is None:
            raise _NotRun("the bundle does not parse: no manifest digest to look up")
        manifests = [c for c in self.statements if _is_manifest_statement(c[1])]
        named = [c for c in manifests if hmac.compare_digest(c[1].payload, digest)]
        statement = _logged(
            named or manifests, self.trust, "the bundle's manifest statement", self.now
        )
        statement.check_validity(self.now)
        self.statement = statement
        if self.trust.witnesses is None:
            return f"the manifest statement by {statement.claims.iss} is on a trusted log"
        # The reference values an update ships for a device (boot compares its measurements
        # with them) are logged statements it relies on too.
        for number, (data, parsed, has_receipts) in enumerate(self.statements):
            if has_receipts and parsed.content_type == CORIM_CONTENT_TYPE:
                what = f"the reference-value statement (CoRIM, statement {number})"
                _witnessed(data, self.trust, what, self.now)
        return f"the manifest statement by {statement.claims.iss} is on a trusted log, witnessed"

    def issuer(self) -> str:
        if self.statement is None:
            raise _NotRun("no logged manifest statement")
        return _issuer_allowed(self.statement, self.trust, self.component)

    def logged_digest(self) -> str:
        if self.statement is None or self.manifest_digest is None:
            raise _NotRun("no logged manifest statement")
        if not hmac.compare_digest(self.statement.payload, self.manifest_digest):
            raise DigestMismatch(
                f"the logged manifest digest {self.statement.payload.hex()[:16]}… is not the "
                f"bundle's {self.manifest_digest.hex()[:16]}…",
                code="logged-digest-mismatch",
            )
        return f"logged manifest digest {self.manifest_digest.hex()}"

    # --- 6. SAFE ----------------------------------------------------------------------------

    def safe_review(self) -> str:
        requirement = self.trust.safe.get(self.component)
        if requirement is None:
            return f"no SAFE review is required for {self.component}"
        if self.manifest_digest is None:
            raise _NotRun("the bundle does not parse: no firmware hash to look up")
        firmware_hash = f"sha384:{self.manifest_digest.hex()}"
        given = [data for data, statement, _r in self.statements if _is_sfr(statement)]
        found = self._reviews(firmware_hash, given, requirement)
        if not found:
            raise PolicyRejected(
                f"no logged SAFE review by a configured provider covers {firmware_hash}",
                code="safe-review-missing",
            )
        # The reviewed firmware is the same bytes in every review of it: a finding any trusted
        # review lists is open, whatever another (older, or less thorough) review says.
        refused = [r for r in found if not requirement.accepts(r)]
        if refused:
            worst = max(r.max_open_cvss or 0.0 for r in refused)
            raise PolicyRejected(
                f"a SAFE review of {self.component} leaves an open finding above "
                f"{requirement.max_severity} (CVSS {worst:.1f})",
                code="safe-finding-open",
            )
        if self.trust.witnesses is not None:
            # Any logged review's finding counts (above); one that lets the update through
            # must be witnessed, as the manifest statement must.
            witnessed = []
            refusals: list[IronrootError] = []
            for data in given:
                if not self._reviews(firmware_hash, [data], requirement):
                    continue  # no review that could let the update through
                try:
                    _witnessed(data, self.trust, "a SAFE review", self.now)
                except IronrootError as exc:
                    refusals.append(exc)
                    continue
                witnessed.append(data)
            if not self._reviews(firmware_hash, witnessed, requirement):
                # A review that came witnessed and was refused for it: that refusal, as the
                # manifest statement's would be.
                for refusal in refusals:
                    if refusal.code != "not-witnessed":
                        raise refusal
                raise PolicyRejected(
                    f"no SAFE review of {firmware_hash} is witnessed: this platform requires "
                    f"a checkpoint cosigned by {self.trust.witnesses.policy.quorum} trusted "
                    "witness(es) (ironroot statement witness)",
                    code="not-witnessed",
                )
        self.reviews = tuple(found)
        return f"{len(found)} SAFE review(s), no open finding above {requirement.max_severity}"

    def _reviews(
        self, firmware_hash: str, given: Sequence[bytes], requirement: SafeRequirement
    ) -> list[Review]:
        return reviews_for(
            firmware_hash,
            [unwrap_witnessed(data) for data in given],
            providers=requirement.providers,
            service_keys=self.trust.service_keys,
            now=self.now,
            service_issuer=self.trust.service_issuer,
        )

    def result(self, firmware: VerifiedManifest) -> VerifiedUpdate:
        assert self.version is not None
        assert self.statement is not None
        assert self.pfm_in_force is not None
        return VerifiedUpdate(
            component=self.component,
            bundle=self.bundle,
            sha384=self.sha384,
            manifest_digest=firmware.manifest_digest,
            svn=firmware.svn,
            version=self.version,
            pfm=self.pfm_in_force,
            new_pfm=self.carried_pfm,
            statement=self.statement,
            reviews=self.reviews,
            firmware=firmware,
        )


def check_recovery_images(
    pfm: Pfm,
    recovery_images: Mapping[str, bytes],
    *,
    allow_recovery_removal: Collection[str] = (),
    what: str = "the new PFM",
) -> None:
    """``pfm`` still allows every component's recovery image (``recovery_images``: component
    → SHA-384), but for the components ``allow_recovery_removal`` names; else
    ``PolicyRejected`` ``pfm-drops-recovery-image`` naming the component (boot restores a
    slot only from a recovery image the PFM in force allows). The ``pfm`` check of an update
    carrying a PFM runs it on the new PFM; an audit of a node runs it on the PFM in force
    (``what="the active PFM"``), the state such an update leaves."""
    for name, digest in sorted(recovery_images.items()):
        if name in allow_recovery_removal:
            continue
        if not _lists(pfm, name, digest):
            raise PolicyRejected(
                f"{what} no longer allows the {name} recovery image: {name} could not "
                "be recovered (allow_recovery_removal must name it to accept that)",
                code="pfm-drops-recovery-image",
            )


def _lists(pfm: Pfm, name: str, digest: bytes) -> bool:
    try:
        listed = pfm.component(name).versions
    except FirmwareRejected:
        return False
    return any(hmac.compare_digest(v.sha384, digest) for v in listed)


def _firmware_policy(fuses: Fuses, min_svn: int, now: dt.datetime) -> BundlePolicy:
    if not isinstance(fuses, Fuses):
        raise ConfigError("fuses is the RoT's Fuses")
    if not fuses.vendor_key_hash:
        raise ConfigError("no vendor key descriptor hash is fused: the RoT is not provisioned")
    return BundlePolicy(
        now=now,
        vendor_key_descriptor_hash=fuses.vendor_key_hash,
        ecc_revocation=fuses.ecc_revocation,
        pqc_revocation=fuses.pqc_revocation,
        min_svn=min_svn,
        # ``min_svn`` is the component's floor in the node's journal, which boot enforces
        # whatever the fuses say (``_boot._allowed``). The RoT's anti-rollback fuse governs
        # its own SVN fuse, not that floor: honouring it here would let an update below the
        # floor be written and activated, only for boot to refuse it and restore recovery.
        anti_rollback_disabled=False,
        owner_key_hash=fuses.owner_key_hash or None,
    )


def _bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ConfigError(f"{what} is bytes")
    return bytes(value)


def _inputs(
    component: str,
    bundle: bytes,
    statements: Sequence[bytes],
    trust: PlatformTrust,
    active_pfm: Pfm | None,
    active_images: Mapping[str, bytes],
    pfm: bytes | None,
    pfm_statement: bytes | None,
    recovery_images: Mapping[str, bytes] | None,
    allow_recovery_removal: Collection[str],
) -> _Inputs:
    if not isinstance(component, str) or not component:
        raise ConfigError("the component is a non-empty name")
    if isinstance(statements, bytes | bytearray | str):
        raise ConfigError("statements is a sequence of statements (bytes), not one")
    if not isinstance(trust, PlatformTrust):
        raise ConfigError("trust is a PlatformTrust")
    if active_pfm is not None and not isinstance(active_pfm, Pfm):
        raise ConfigError("active_pfm is the verified active Pfm, or None before the first")
    if not isinstance(active_images, Mapping):
        raise ConfigError("active_images maps component names to SHA-384 digests")
    for name, digest in active_images.items():
        if not isinstance(name, str) or not isinstance(digest, bytes) or len(digest) != 48:
            raise ConfigError("active_images maps component names to SHA-384 digests")
    recovery = {} if recovery_images is None else recovery_images
    if not isinstance(recovery, Mapping) or not all(
        isinstance(n, str) and isinstance(d, bytes) and len(d) == 48 for n, d in recovery.items()
    ):
        raise ConfigError("recovery_images maps component names to SHA-384 digests")
    if isinstance(allow_recovery_removal, str | bytes) or not all(
        isinstance(n, str) and n for n in allow_recovery_removal
    ):
        raise ConfigError("allow_recovery_removal is a collection of component names")
    return _Inputs(
        component=component,
        bundle=_bytes(bundle, "the bundle"),
        statements=tuple(_bytes(s, "a statement") for s in statements),
        active_images=dict(active_images),
        pfm=None if pfm is None else _bytes(pfm, "the PFM"),
        pfm_statement=None if pfm_statement is None else _bytes(pfm_statement, "the PFM statement"),
        recovery_images=dict(recovery),
        allow_recovery_removal=frozenset(allow_recovery_removal),
    )


def check_update(
    component: str,
    bundle: bytes,
    statements: Sequence[bytes],
    *,
    trust: PlatformTrust,
    fuses: Fuses,
    min_svn: int,
    active_pfm: Pfm | None,
    active_images: Mapping[str, bytes],
    now: dt.datetime,
    pfm: bytes | None = None,
    pfm_statement: bytes | None = None,
    recovery_images: Mapping[str, bytes] | None = None,
    allow_recovery_removal: Collection[str] = (),
) -> UpdateReport:
    """Run every check of the module docs and report each; never raises for the update.

    ``statements``: the Transparent Statements that came with the update (its manifest
    statement, SAFE reviews; anything else is ignored). ``min_svn``: the component's minimum
    SVN the RoT holds. ``active_pfm``: the PFM in force; ``None`` before the platform has one
    (the update must then carry one, else ``PolicyRejected`` ``no-pfm``). ``active_images``:
    component → SHA-384 of its active image (a new PFM must still allow them). ``pfm`` /
    ``pfm_statement``: a new signed PFM carried with the update and its Transparent Statement
    (whose payload is the signed PFM, so it may come alone). ``recovery_images``: component →
    SHA-384 of its recovery image (a new PFM must still allow them, but for the components
    ``allow_recovery_removal`` names).
    """
    update = _inputs(
        component,
        bundle,
        statements,
        trust,
        active_pfm,
        active_images,
        pfm,
        pfm_statement,
        recovery_images,
        allow_recovery_removal,
    )
    firmware = check_bundle(update.bundle, _firmware_policy(fuses, min_svn, now))
    run = _Update(
        update, firmware.verified, trust=trust, fuses=fuses, active_pfm=active_pfm, now=now
    )
    results = list(firmware.checks)
    for name, check in run.checks():
        try:
            results.append(CheckResult(name, True, check()))
        except _NotRun as reason:
            results.append(CheckResult(name, None, f"not run: {reason}"))
        except IronrootError as exc:
            results.append(CheckResult(name, False, exc.detail, exc.code))
    ok = firmware.verified is not None and all(r.passed for r in results)
    verified = run.result(firmware.verified) if ok and firmware.verified else None
    return UpdateReport(component, tuple(results), verified)


def verify_update(
    component: str,
    bundle: bytes,
    statements: Sequence[bytes],
    *,
    trust: PlatformTrust,
    fuses: Fuses,
    min_svn: int,
    active_pfm: Pfm | None,
    active_images: Mapping[str, bytes],
    now: dt.datetime,
    pfm: bytes | None = None,
    pfm_statement: bytes | None = None,
    recovery_images: Mapping[str, bytes] | None = None,
    allow_recovery_removal: Collection[str] = (),
) -> VerifiedUpdate:
    """The update once every check of the module docs passed; else the first refusal, raised
    with ``exc.check`` set to the failing check's name. Arguments as :func:`check_update`."""
    update = _inputs(
        component,
        bundle,
        statements,
        trust,
        active_pfm,
        active_images,
        pfm,
        pfm_statement,
        recovery_images,
        allow_recovery_removal,
    )
    policy = _firmware_policy(fuses, min_svn, now)
    try:
        firmware = verify_bundle(update.bundle, policy)
    except IronrootError as exc:
        failure = check_bundle(update.bundle, policy).first_failure
        exc.check = failure.name if failure is not None else "parse"
        raise
    run = _Update(update, firmware, trust=trust, fuses=fuses, active_pfm=active_pfm, now=now)
    for name, check in run.checks():
        try:
            check()
        except _NotRun as reason:  # only after a failure, which has raised already
            raise AssertionError(f"{name} could not run: {reason}") from None
        except IronrootError as exc:
            exc.check = name
            raise
    return run.result(firmware)
