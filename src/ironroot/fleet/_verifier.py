"""The fleet verifier: a node's evidence appraised against endorsements found on the log, one
signed EAR per attestation.

Endorsements (:func:`class_endorsements`). For a node class, the transparent statements of
its images (``NodeClass.statements``) and the fleet's added endorsements
(``admission/endorsements/``: newer reference values, SAFE reviews, logged after the class was
made) are sorted by content type: CoRIMs (``application/rim+cbor``) are reference values,
OCP SAFE reports are reviews, anything else (manifest statements) is passed over. Each counts
only as :class:`ironroot.attestation.Endorsements` admits it: receipts verifying under the
class trust's transparency-service keys (and naming its ``service_issuer``, when it has one:
``UnknownIssuer`` ``untrusted-service`` otherwise), and a publisher allowed for the product —

* the BMC, whose firmware the RoT measures and quotes: the products the class's own BMC
  reference statements name (CoRIM class vendor and model), with the class trust's issuers
  of ``bmc``;
* each SPDM device: its ``DeviceInfo`` vendor and model, with the trust's issuers of that
  device.

Reviews count only from the review providers of the class trust's SAFE requirement for the
BMC (``PlatformTrust.safe["bmc"]``).

Reference values outside their validity dates are kept, with their span
(``Endorsements.build(..., outside_validity="report")``), not left out: the appraisal judges
each value at the attestation's time and a component that matches only expired values is
refused for that reason, ``fmc <digest>… (its logged values have expired)``. This is how the
verifier sees the finding a node reports when it measures its devices under
``expired_manifest = "report"`` (the node's evidence then carries the devices' signed
measurements, :meth:`ironroot.platform.Platform.measure`): from the logged values themselves,
never from the node's word.

Policies. The RoT quote is appraised with :data:`ironroot.attestation.DEFAULT_POLICY` (trusted
vendor root and fresh nonce as gates; debug locked; anti-rollback on; the FMC and runtime
digests on the log; the SVN at least the logged minimum), named ``fleet-node``, where the SAFE
rules follow the class trust: with a SAFE requirement for ``bmc``, a logged review of the
quoted firmware (its manifest digest) is required and an open finding at or above the
requirement's severity threshold refuses it (``max_severity = "critical"``: a review is
required, any finding passes); without one, reviews are not asked for. Each device's SPDM
evidence is appraised with the same rules minus the SAFE ones (``fleet-device``): its
measurement blocks are named by the platform's device layout (index 1 ``fmc``, 2
``runtime``, the 0xEF SVN block ``firmware``; from index 3, each further component in TOC
order, named by the ``component-<id>`` whose logged value lists its digest, as the platform's
own check matches them, else ``component-<index>``), and every block the device reports is
compared with the reference values its vendor logged — FMC and runtime always, each further
block when it is there (a changed third component, or a block nobody logged, is
``executables`` 33) — and its SVN with their minimum. The SVN a device's (or the BMC's)
release states is its exact SVN, as in the platform's check (``svn-mismatch``: the component
digests do not cover the header stating the SVN): a component matches only values of the SVN
the device or the quote reports, so another SVN over a release's components (a header never
logged) is ``executables`` 33, ``fmc <digest>… (its logged values are for SVN 3 exactly, the
evidence claims 4)``, and so is a release that states no SVN: ``(its logged values are for no
stated SVN, the evidence claims 3)``.
Each part is compared only with the values of its own product: the RoT quote with those of
the products the class's BMC statements name, each device with those of its ``DeviceInfo``
vendor and model; firmware logged for another product (the NIC's release on the BMC or on
the GPU) is ``executables`` 33 like unlogged firmware. Its blocks must also all be of one
logged release, one CoMID of one issuer, and so must the quote's FMC and runtime: the generic
appraisal's rule (:func:`ironroot.attestation.common_releases`, the platform's own): a device
or a BMC mixing the components of two logged releases is ``executables`` 33 too, reason
``reference-values: no logged reference value for fmc and runtime as one release
(mixed-releases: …)``.

Appraisal (:meth:`FleetVerifier.appraise`):

1. the quote is verified (:func:`ironroot.attestation.verify_evidence`, format
   ``ironroot``) against the trusted vendor CA roots with the keyed binding of
   :mod:`ironroot.fleet._evidence` (``StaleNonce`` for another nonce, ``KeyBindingMismatch``
   for other keys), and its device (the Ueid of its DICE chain) must be the node's RoT — the
   IDevID the fleet manufactured the node with (``ChainNotTrusted`` ``node-identity``);
2. each device the class has is verified against the root the node pinned for it when it was
   manufactured (``platform.json``), answering the nonce; a device without evidence fails
   (``MalformedEvidence`` ``device-evidence-missing``), evidence for a device the class does
   not have is refused likewise (``device-unknown``);
3. each is appraised (above). A verification failure is appraised too
   (:func:`ironroot.attestation.appraise_failure`): every attestation yields an EAR.
4. the SAFE requirements the class trust names for components other than the BMC (host,
   devices) are applied to the firmware the RoT measured for them
   (:mod:`ironroot.fleet._reviews`), and the certificates of the verified DICE and SPDM
   chains are checked against the fleet's CRLs (:mod:`ironroot.fleet._revocation`);
5. the PFM policy: when the class has a desired state in force
   (:class:`ironroot.fleet.DesiredStore`, read and verified again at each appraisal), the PFM
   it names must be the one the verified quote's PCR log shows measured at boot
   (:func:`ironroot.rot.measured_pfm`), held to it by :func:`ironroot.rot.check_booted_pfm`:
   another is ``rot`` ``configuration`` 96 with the reason ``pfm-not-booted: …``, none
   ``configuration`` 32 with ``pfm-not-measured: …`` (never better than the claim had). A
   class that never had a desired state names no PFM. One in force that cannot be read or
   verified is ``StorageError`` ``pfm-policy-unavailable`` from :meth:`FleetVerifier.appraise`:
   no EAR, no admission, and the node, not at fault, is not quarantined.

:meth:`FleetVerifier.refuse_unregistered` is the refusal of evidence for a node id the
registry does not hold: the error a registered node's admission gets for evidence that is not
its RoT's (the quote's verification error, else ``ChainNotTrusted`` ``node-identity``), so that
the anonymous admission does not tell which node ids exist.

The EAR has one submodule per part — ``rot`` (the quote) and each device by name — the
challenge nonce as ``eat_nonce``, ``exp`` = ``iat`` + the credential lifetime, and is signed
ES384 as a JWT by the verifier's key (``admission/verifier.key.pem``). Its identifier is
``urn:ironroot:ear:sha256:`` + the SHA-256 of the JWT bytes.

Chains verified once per identity (:attr:`FleetVerifier.caches`): a node's two DICE chains
(:class:`ironroot.attestation.RotChainCache`) and each device's SPDM chain
(:class:`ironroot.spdm.SpdmChainCache`) are remembered by their exact bytes and the trusted
root, so re-attesting a node does not verify their certificate signatures again. Only what
those bytes decide is skipped: the validity of every certificate at the attestation's time,
the quote's and the measurements' signatures, the nonce, the CRLs of step 4 and the policy
are checked at every attestation, and a chain that differs in one byte is verified in full.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from ironroot.attestation import (
    DEFAULT_POLICY,
    DEFAULT_VERIFIER_ID,
    Appraisal,
    AppraisalPolicy,
    AttestationResult,
    Endorsements,
    EvidenceCaches,
    EvidenceClaims,
    ReferencePublisher,
    ReferenceValue,
    ReferenceValues,
    TrustTier,
    VerifierId,
    VerifyOptions,
    appraise,
    appraise_failure,
    publishers_of_release,
    sign_ear_jwt,
    verify_evidence,
)
from ironroot.corim import CORIM_CONTENT_TYPE
from ironroot.cose import TransparentStatement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import AR4SI
from ironroot.errors import (
    ChainNotTrusted,
    IronrootError,
    MalformedEvidence,
    NotFound,
    StorageError,
    VerificationFailed,
)
from ironroot.fleet._credentials import ear_id_of
from ironroot.fleet._desired import DesiredStore
from ironroot.fleet._evidence import NodeEvidence, binding_key
from ironroot.fleet._fleet import Fleet, NodeClass, NodeRecord
from ironroot.fleet._reviews import ComponentReviews, downgrade
from ironroot.fleet._revocation import Revocations
from ironroot.platform import (
    DEVICE_LAYOUT,
    DEVICE_SVN_INDEX,
    device_block_keys,
    unwrap_witnessed,
)
from ironroot.rot import PcrEvent, check_booted_pfm, measured_pfm, parse_certificate
from ironroot.safe import SFR_COSE_CONTENT_TYPE, SFR_JWS_CONTENT_TYPE
from ironroot.spdm import SpdmChainCache

__all__ = [
    "ClassEndorsements",
    "FleetVerifier",
    "NodeAppraisal",
    "class_endorsements",
    "device_policy",
    "node_policy",
]

_log = logging.getLogger("ironroot.fleet")
_SAFE_RULES: Final = ("safe-review", "safe-issues")
_REVIEW_TYPES: Final = frozenset((SFR_JWS_CONTENT_TYPE, SFR_COSE_CONTENT_TYPE))
_ROT: Final = "rot"
_CACHE_SECONDS: Final = 3600
# Device chains remembered (each ~8 KB measured: the chain's bytes, the validity windows and
# the parsed leaf, so ~32 MB when full): a fleet of a thousand nodes with three SPDM devices
# each fits, so a scan re-attesting all of them finds every chain (it starts over when full).
_SPDM_CHAINS: Final = 4096

Labelled = tuple[str, bytes]


# --- policies -------------------------------------------------------------------------------


def _policy(
    name: str, *, safe: bool, threshold: float | None, further: tuple[str, ...] = ()
) -> AppraisalPolicy:
    base = DEFAULT_POLICY.to_mapping()
    drop = set() if safe else set(_SAFE_RULES)
    if safe and threshold is None:
        drop.add("safe-issues")  # "critical": a review must exist, any finding passes
    return AppraisalPolicy.from_mapping(
        {
            "name": name,
            "rules": [r for r in base["rules"] if r["name"] not in drop],
            "components": {
                "ironroot": ["fmc", "runtime"],
                "spdm": [*DEVICE_LAYOUT.values(), *further],
            },
            "svn_claim": {"ironroot": "firmware", "spdm": "firmware"},
            "firmware_hash": {"ironroot": "manifest"},
            "cvss_threshold": threshold if threshold is not None else 10.0,
        }
    )


@lru_cache(maxsize=16)
def _node_policy(safe: bool, threshold: float | None) -> AppraisalPolicy:
    return _policy("fleet-node", safe=safe, threshold=threshold)


def node_policy(klass: NodeClass) -> AppraisalPolicy:
    """The policy a node's RoT quote is appraised with (module docs)."""
    requirement = klass.trust.safe.get("bmc")
    if requirement is None:
        return _node_policy(False, None)
    return _node_policy(True, requirement.refused_at)


@lru_cache(maxsize=64)
def device_policy(further: tuple[str, ...] = ()) -> AppraisalPolicy:
    """The policy each SPDM device's evidence is appraised with (module docs): its FMC and
    runtime, and ``further``, the names of the further components it reports, must each
    match a logged value."""
    return _policy("fleet-device", safe=False, threshold=None, further=further)


# --- endorsements ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassEndorsements:
    """What a class's nodes are appraised against: the BMC's (``rot``) and each device's."""

    rot: Endorsements
    devices: Mapping[str, ReferenceValues]
    rejected: tuple[str, ...] = ()


def _kind(data: bytes) -> str:
    """``corim``, ``review``, ``other`` (a transparent statement of another content type) or
    ``malformed`` (not a transparent statement)."""
    try:
        content_type = TransparentStatement.parse(data).statement.content_type
    except IronrootError:
        return "malformed"
    if content_type == CORIM_CONTENT_TYPE:
        return "corim"
    return "review" if content_type in _REVIEW_TYPES else "other"


def class_endorsements(
    klass: NodeClass,
    *,
    added: Sequence[Labelled] = (),
    vendor_roots: Sequence[bytes],
    now: dt.datetime,
) -> ClassEndorsements:
    """The endorsements of ``klass`` from its statements and the ``added`` ones (module docs)."""
    trust = klass.trust
    # A class whose platform requires witnesses ships witnessed statements: what it
    # endorses is the Transparent Statement in each (the node checked the witnessing).
    labelled: list[Labelled] = [
        (f"class {klass.name} {component} statement {n}", unwrap_witnessed(data))
        for component, statements in sorted(klass.statements.items())
        for n, data in enumerate(statements)
    ]
    labelled.extend(added)
    corims: list[Labelled] = []
    reviews: list[Labelled] = []
    skipped: list[str] = []
    for label, data in labelled:
        kind = _kind(data)
        if kind == "corim":
            corims.append((label, data))
        elif kind == "review":
            reviews.append((label, data))
        elif kind == "malformed":
            skipped.append(f"{label}: not a transparent statement")
    bmc_issuers = trust.issuers_of("bmc")
    bmc_products: dict[tuple[str, str | None], None] = {}
    for data in map(unwrap_witnessed, klass.statements.get("bmc", ())):
        if _kind(data) != "corim":
            continue
        try:
            found = publishers_of_release(data)
        except IronrootError:
            continue
        for publisher in found:
            if publisher.issuers <= bmc_issuers:
                bmc_products[(publisher.vendor, publisher.model)] = None
    bmc_publishers = [ReferencePublisher(v, m, bmc_issuers) for v, m in bmc_products]
    device_publishers = {
        name: ReferencePublisher(info.vendor, info.model, trust.issuers_of(name))
        for name, info in klass.devices.items()
    }
    requirement = trust.safe.get("bmc")
    built = Endorsements.build(
        service_keys=trust.service_keys,
        service_issuer=trust.service_issuer,
        reference_statements=corims,
        review_statements=reviews,
        providers=requirement.providers if requirement is not None else None,
        publishers=[*bmc_publishers, *device_publishers.values()],
        vendor_roots=[(f"vendor root {n}", r) for n, r in enumerate(vendor_roots)],
        now=now,
        # Values outside their dates are kept with their span: each appraisal judges them at
        # its own time and names the expiry, where they would otherwise be dropped unseen (a
        # node measuring under expired_manifest = "report" sends its evidence; this refuses it
        # for its reason).
        outside_validity="report",
    )
    values = list(built.reference_values)
    rot_values = ReferenceValues(
        _release_svn(v) for v in values if any((v.vendor, v.model) == p for p in bmc_products)
    )
    devices = {
        name: ReferenceValues(
            _release_svn(v)
            for v in values
            if v.vendor == publisher.vendor and v.model == publisher.model
        )
        for name, publisher in device_publishers.items()
    }
    rot = Endorsements(
        reference_values=rot_values,
        reviews=built.reviews,
        vendor_roots=built.vendor_roots,
        rejected=built.rejected,
    )
    return ClassEndorsements(rot, devices, (*skipped, *built.rejected))


def _release_svn(value: ReferenceValue) -> ReferenceValue:
    """A logged value of a device or of the BMC with its SVN read as the release's exact SVN
    (module docs): component digests do not cover the header that states the SVN, so only
    the SVN its release states binds that header to the release (the platform's
    ``svn-mismatch``), and a value stating none matches no SVN. Ironroot's own release CoRIMs
    state the exact SVN (552); this reads a minimum (553) as exact too: releases Ironroot
    logged before it did, and another vendor's CoRIM, state one. The floor of its environment
    is unchanged."""
    return dataclasses.replace(value, svn_minimum=False, svn_required=True)


# --- appraisal ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeAppraisal:
    """One attestation's outcome: the EAR (``result``; signed: ``token``, ``ear_id``) and, when
    the RoT quote itself did not verify, that error (the evidence is then not the node's
    answer to this challenge, and nothing about the node follows from it)."""

    node: str
    result: AttestationResult
    token: bytes = field(repr=False)
    ear_id: str
    error: IronrootError | None = None

    @property
    def status(self) -> TrustTier:
        """The EAR's status, except that a submodule with no claim (``none``: evidence that
        is missing or unexpected) makes an otherwise affirming result ``none`` (the EAR
        ranks ``none`` below ``affirming``)."""
        status = self.result.status
        if status is TrustTier.AFFIRMING and not self.affirming:
            return TrustTier.NONE
        return status

    @property
    def affirming(self) -> bool:
        """Every submodule affirming (and the quote verified): what admission requires."""
        return self.error is None and all(
            a.status is TrustTier.AFFIRMING for a in self.result.submods.values()
        )

    @property
    def reasons(self) -> list[str]:
        """Every failed check, each prefixed with its submodule (``rot``, ``nic``, …)."""
        return [
            f"{name}: {reason}"
            for name, appraisal in sorted(self.result.submods.items())
            for reason in appraisal.reasons
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "ear_id": self.ear_id,
            "status": self.status.value,
            "submods": {
                name: {"status": a.status.value, "trust_vector": a.tags()}
                for name, a in sorted(self.result.submods.items())
            },
            "reasons": self.reasons,
            "error": None if self.error is None else self.error.code,
        }


def _not_its_rot(node_id: str) -> ChainNotTrusted:
    return ChainNotTrusted(
        f"the quote is signed by another device than {node_id}'s root of trust",
        code="node-identity",
    )


def _booted_pfm(claims: EvidenceClaims) -> bytes | None:
    """The SHA-384 of the PFM a **verified** RoT quote's PCR log shows measured at boot
    (:func:`ironroot.rot.measured_pfm` of the log its claims carry); ``None``: none."""
    log = claims.raw.get("pcr_log")
    events = []
    for entry in log if isinstance(log, Sequence) else ():
        try:
            events.append(PcrEvent(entry["pcr"], entry["name"], bytes.fromhex(entry["data"])))
        except (KeyError, TypeError, ValueError, IronrootError):
            return None
    return measured_pfm(events)


def _device_blocks(claims: EvidenceClaims) -> dict[int, bytes]:
    """A device's component blocks from its SPDM claims: index -> digest, the SVN block and
    the raw DeviceMode blocks apart (what a DeviceMode says is the claims' ``debug``, which
    the policy's ``debug`` rule judges; one sent as a digest stays a component, which no
    logged value names)."""
    modes = {
        block.get("index")
        for block in claims.raw.get("blocks", ())
        if isinstance(block, Mapping) and block.get("type") == "DEVICE_MODE" and block.get("raw")
    }
    blocks: dict[int, bytes] = {}
    for name, value in claims.measurements.items():
        index = int(name.rpartition(".")[2])
        if index != DEVICE_SVN_INDEX and index not in modes:
            blocks[index] = value
    return blocks


def _device_claims(
    claims: EvidenceClaims, references: ReferenceValues
) -> tuple[EvidenceClaims, tuple[str, ...]]:
    """SPDM claims with their blocks named by the platform's device layout (module docs,
    :func:`ironroot.platform.device_block_keys`) and the SVN block as the ``firmware`` SVN,
    and the names of the blocks beyond the layout's fixed ones (sorted)."""
    blocks = _device_blocks(claims)
    keys = device_block_keys(blocks, references)
    svn = claims.svns.get(f"spdm.{DEVICE_SVN_INDEX}")
    named = claims.with_measurements(
        {keys[index]: value for index, value in blocks.items()},
        {} if svn is None else {"firmware": svn},
    )
    return named, tuple(sorted({keys[index] for index in blocks if index not in DEVICE_LAYOUT}))


class FleetVerifier:
    """Appraises a fleet's nodes and signs their EARs (module docs).

    ``added`` returns the fleet's added endorsement statements (labelled) and
    ``added_token`` a value that changes when they do: class endorsements are rebuilt when it
    changes, and hourly (the validity of reference values and reviews is judged when they are
    built).
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        vendor_roots: Sequence[bytes],
        signer: PrivateKey,
        lifetime: int,
        added_token: Callable[[], object] = lambda: (),
        added: Callable[[], Sequence[Labelled]] = lambda: (),
        verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
    ) -> None:
        if signer.algorithm is not Algorithm.ES384:
            raise MalformedEvidence("the fleet verifier signs EARs with an ES384 key")
        self.fleet = fleet
        self.vendor_roots = tuple(vendor_roots)
        self.signer = signer
        self.lifetime = lifetime
        self.verifier_id = verifier_id
        self._added = added
        self._added_token = added_token
        self._caches = EvidenceCaches(spdm=SpdmChainCache(_SPDM_CHAINS))
        self._lock = threading.Lock()
        self._endorsements: dict[str, tuple[object, int, ClassEndorsements]] = {}
        # A device's endorsements by its name and pinned root, with the class's values they
        # were built from: ``Endorsements`` parses its root each time it is built (~0.5 ms),
        # and every node of a class pins the same few roots. Served only for those very values
        # (a class's endorsements rebuilt is another object); bounded like the SPDM chains.
        self._devices: dict[tuple[str, bytes], tuple[ReferenceValues, Endorsements]] = {}
        # And the same for each device name with no root (what is derived from the values
        # alone): a device pinning a root not seen yet gets a copy trusting its root.
        self._device_values: dict[str, tuple[ReferenceValues, Endorsements]] = {}
        self._ueids: dict[str, bytes] = {}
        self._roots: tuple[bytes, ...] | None = None  # the vendor roots as DER
        self._reviews = ComponentReviews(fleet)  # SAFE reviews beyond the BMC's
        self._revocations = Revocations(fleet, self.vendor_roots)  # CRLs of DICE and SPDM chains

    @property
    def caches(self) -> EvidenceCaches:
        """The chain caches every appraisal of this verifier shares: a node's DICE chains
        (``ironroot``) and its devices' SPDM chains (``spdm``) verified once per identity;
        validity, revocation and policy are checked at every attestation."""
        return self._caches

    def endorsements(self, class_name: str, now: dt.datetime) -> ClassEndorsements:
        """The class's endorsements (cached: see the class docs)."""
        return self._class_endorsements(class_name, now, self._added_token())

    def _class_endorsements(
        self, class_name: str, now: dt.datetime, token: object
    ) -> ClassEndorsements:
        """The class's endorsements for the added endorsements ``token`` names (read by the
        caller, once for all it does with them)."""
        hour = int(now.timestamp()) // _CACHE_SECONDS
        with self._lock:
            cached = self._endorsements.get(class_name)
            if cached is not None and cached[0] == token and cached[1] == hour:
                return cached[2]
        built = class_endorsements(
            self.fleet.node_class(class_name),
            added=self._added(),
            vendor_roots=self.vendor_roots,
            now=now,
        )
        for line in built.rejected:
            _log.info("endorsement of class %s left out: %s", class_name, line)
        with self._lock:
            self._endorsements[class_name] = (token, hour, built)
        return built

    def _ueid(self, record: NodeRecord) -> bytes:
        found = self._ueids.get(record.id)
        if found is None:
            found = self._ueids[record.id] = self.fleet._ueid_of(record)
        return found

    def _rot(
        self,
        record: NodeRecord,
        klass: NodeClass,
        evidence: NodeEvidence,
        endorsements: ClassEndorsements,
        *,
        nonce: bytes,
        key: bytes,
        now: dt.datetime,
    ) -> tuple[Appraisal, IronrootError | None, bytes | None]:
        """The quote's appraisal, the error that kept it from verifying, and the SHA-384 of
        the PFM its verified PCR log shows measured at boot (``None``: none)."""
        policy = node_policy(klass)
        try:
            claims = self._verify_quote(
                record.id,
                evidence.quote,
                self._ueid(record),
                roots=endorsements.rot.vendor_roots,
                nonce=nonce,
                key=key,
                now=now,
            )
        except IronrootError as exc:
            failed = appraise_failure(exc, format="ironroot", policy=policy, nonce=nonce, now=now)
            return failed.submods["ironroot"], exc, None
        result = appraise(claims, endorsements.rot, policy, nonce=claims.report_data, now=now)
        return result.submods["ironroot"], None, _booted_pfm(claims)

    def _verify_quote(
        self,
        node_id: str,
        quote: bytes,
        expected: bytes,
        *,
        roots: tuple[bytes, ...],
        nonce: bytes,
        key: bytes,
        now: dt.datetime,
    ) -> EvidenceClaims:
        """The claims of ``quote``, verified against the vendor ``roots``, the ``nonce`` and
        the binding ``key``, and signed by the RoT whose Ueid is ``expected``
        (``ChainNotTrusted`` ``node-identity`` otherwise: any other device, or none when
        ``expected`` is empty)."""
        claims = verify_evidence(
            quote,
            VerifyOptions(now=now, nonce=nonce, bound_key=key, roots=roots, caches=self._caches),
            format="ironroot",
        )
        if not expected or claims.identity.get("ueid") != expected.hex():
            raise _not_its_rot(node_id)
        return claims

    def refuse_unregistered(
        self,
        node_id: str,
        evidence: NodeEvidence,
        *,
        nonce: bytes,
        keys: Mapping[str, bytes],
        now: dt.datetime,
    ) -> IronrootError:
        """The refusal of evidence for ``node_id``, which is not in the registry: the one a
        registered node's admission gets when its evidence is not its own RoT's answer — the
        quote's verification error (against the vendor roots, ``nonce`` and ``keys``, as for
        any node), else ``ChainNotTrusted`` ``node-identity``, since no RoT is the node's.
        So an anonymous client learns nothing of which node ids exist (``docs/fleet.md``)."""
        if self._roots is None:
            self._roots = tuple(parse_certificate(r).der for r in self.vendor_roots)
        try:
            self._verify_quote(
                node_id,
                evidence.quote,
                b"",
                roots=self._roots,
                nonce=nonce,
                key=binding_key(keys),
                now=now,
            )
        except IronrootError as exc:
            return exc
        return _not_its_rot(node_id)  # not reached: no RoT is an unregistered node's

    def _device(
        self,
        name: str,
        data: bytes | None,
        root: bytes,
        references: ReferenceValues,
        *,
        nonce: bytes,
        now: dt.datetime,
    ) -> Appraisal:
        policy = device_policy()
        try:
            if data is None:
                raise MalformedEvidence(
                    f"no SPDM evidence from device {name}", code="device-evidence-missing"
                )
            if not root:
                raise ChainNotTrusted(f"no root is pinned for device {name}")
            claims = verify_evidence(
                data,
                VerifyOptions(now=now, nonce=nonce, roots=(root,), caches=self._caches),
                format="spdm",
            )
        except IronrootError as exc:
            return appraise_failure(
                exc, format="spdm", policy=policy, nonce=nonce, now=now
            ).submods["spdm"]
        measured, further = _device_claims(claims, references)
        result = appraise(
            measured,
            self._device_endorsements(name, root, references),
            device_policy(further),
            nonce=nonce,
            now=now,
        )
        return result.submods["spdm"]

    def _device_endorsements(
        self, name: str, root: bytes, references: ReferenceValues
    ) -> Endorsements:
        """What device ``name`` pinned to ``root`` is appraised against (built once for each
        class's values: see ``_devices``)."""
        key = (name, root)
        with self._lock:
            found = self._devices.get(key)
        if found is not None and found[0] is references:
            return found[1]
        with self._lock:
            template = self._device_values.get(name)
        if template is None or template[0] is not references:
            template = (references, Endorsements(reference_values=references))
            with self._lock:
                self._device_values[name] = template
        built = template[1]._with_vendor_roots((root,))
        with self._lock:
            if len(self._devices) >= _SPDM_CHAINS:
                self._devices.clear()
            self._devices[key] = (references, built)
        return built

    def desired_pfm(self, class_name: str, now: dt.datetime) -> bytes | None:
        """The SHA-384 of the PFM the class's desired state in force names (verified again
        now, :meth:`ironroot.fleet.DesiredStore.current`); ``None`` when the class never had
        a desired state. One in force that cannot be read or verified (rolled back, its
        approvals expired, its files damaged, a publish between its writes) is
        ``StorageError`` ``pfm-policy-unavailable``: the PFM the class requires is then
        unknown, and no node of it is admitted (fail closed) — nor quarantined, since the
        fault is not the node's (module docs)."""
        store = DesiredStore(self.fleet)
        try:
            try:
                return store.current(class_name, now=now).state.pfm.sha384
            except NotFound:
                if store.version(class_name) == 0:  # and the fleet's log recorded none
                    return None
                raise
        except IronrootError as exc:
            _log.warning(
                "class %s's desired state cannot be read, so no node of it is admitted: %s: %s",
                class_name,
                exc.code,
                exc.detail,
            )
            raise StorageError(
                f"the desired state of class {class_name} cannot be read ({exc.code}), so the "
                "PFM it requires is unknown: no node of it is admitted until it can be",
                code="pfm-policy-unavailable",
            ) from exc

    def _pfm_policy(
        self, klass: NodeClass, rot: Appraisal, booted: bytes | None, now: dt.datetime
    ) -> Appraisal:
        """``rot`` with the PFM policy applied (module docs): when the class's desired state
        names a PFM, the quote's measured one (``booted``) must be it, held to it by
        :func:`ironroot.rot.check_booted_pfm`, the comparison every verifier makes."""
        desired = self.desired_pfm(klass.name, now)
        if desired is None:
            return rot
        try:
            check_booted_pfm(
                desired,
                booted,
                what="the desired PFM",
                advice="boot the node again (ironroot platform boot) so that its RoT "
                "measures the PFM it enforces",
            )
        except VerificationFailed as exc:
            code = (
                AR4SI.UNSAFE_CONFIG
                if exc.code == "pfm-not-measured"
                else AR4SI.UNSUPPORTABLE_CONFIG
            )
            return downgrade(rot, code, f"{exc.code}: {exc.detail}", category="configuration")
        return rot

    def appraise(
        self,
        node_id: str,
        evidence: NodeEvidence,
        *,
        nonce: bytes,
        keys: Mapping[str, bytes],
        now: dt.datetime,
    ) -> NodeAppraisal:
        """Appraise ``evidence`` for ``node_id``'s answer to ``nonce`` binding ``keys`` (plane
        → SPKI DER) and sign the EAR (module docs)."""
        return self._appraise(
            self.fleet.record_of(node_id), evidence, nonce=nonce, keys=keys, now=now
        )

    def _appraise(
        self,
        record: NodeRecord,
        evidence: NodeEvidence,
        *,
        nonce: bytes,
        keys: Mapping[str, bytes],
        now: dt.datetime,
    ) -> NodeAppraisal:
        """:meth:`appraise` of the node whose registry row the caller has just read
        (``record``: admission reads it first), not reading it again."""
        node_id = record.id
        klass = self.fleet.node_class(record.node_class)
        # The added endorsements listed once: the class's, the reviews' and the CRLs' agree.
        listed = self._added_token()
        endorsements = self._class_endorsements(klass.name, now, listed)
        rot, error, booted = self._rot(
            record, klass, evidence, endorsements, nonce=nonce, key=binding_key(keys), now=now
        )
        submods: dict[str, Appraisal] = {_ROT: rot}
        if error is None:
            submods[_ROT] = self._pfm_policy(klass, rot, booted, now)
            pinned = self.fleet._platform_of(record).config.devices
            for name in sorted(klass.devices):
                info = pinned.get(name)
                submods[name] = self._device(
                    name,
                    evidence.devices.get(name),
                    info.root if info is not None else b"",
                    endorsements.devices.get(name, ReferenceValues()),
                    nonce=nonce,
                    now=now,
                )
            for name in sorted(set(evidence.devices) - set(klass.devices)):
                unknown = MalformedEvidence(
                    f"evidence from a device the class does not have: {name}",
                    code="device-unknown",
                )
                submods[name] = appraise_failure(
                    unknown, format="spdm", policy=device_policy(), nonce=nonce, now=now
                ).submods["spdm"]
            submods = self._reviews.apply(
                node_id, klass, evidence.quote, submods, added=self._added, token=listed, now=now
            )
            submods = self._revocations.apply(
                node_id,
                klass,
                evidence.quote,
                evidence.devices,
                submods,
                added=self._added,
                token=listed,
                now=now,
            )
        iat = int(now.timestamp())
        result = AttestationResult(
            iat=iat,
            exp=iat + self.lifetime,
            verifier_id=self.verifier_id,
            submods=submods,
            nonce=nonce,
        )
        token = sign_ear_jwt(result, self.signer)
        return NodeAppraisal(node_id, result, token, ear_id_of(token), error)
