"""What admission tests need beyond the platform tests' world: the BMC's reference CoRIM on
the log (the RoT quotes the BMC firmware; its reference values must be logged like the
devices'), an OCP SAFE review provider whose reviews are logged, node classes that require
reviews, and fleets with admission set up."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from tests.fleet.fleet_world import manufacture, node_class
from tests.platform.node_world import NOW, OTHER, VENDOR, World, sfr_report

from ironroot.attestation import ReferenceValues
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.firmware import FirmwareBundle, reference_statement
from ironroot.fleet import (
    PLANES,
    AdmissionAuthority,
    AdmissionRequest,
    Fleet,
    NodeClass,
    NodeEvidence,
    collect_evidence,
    make_csr,
)
from ironroot.platform import PlatformDevice, SafeRequirement, measure_device
from ironroot.rot import VendorCA, create_quote, derive_layers
from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report

PROVIDER = "Example Review Provider"
CA_TIME = NOW - dt.timedelta(days=2)


@dataclasses.dataclass
class AdmissionWorld:
    """The platform world plus logged BMC reference values and a SAFE review provider."""

    world: World
    provider: PrivateKey
    vendor_ca: VendorCA
    rims: dict[str, bytes] = dataclasses.field(default_factory=dict)
    reviews: dict[tuple[str, tuple[float, ...]], bytes] = dataclasses.field(default_factory=dict)

    @property
    def providers(self) -> ProviderKeys:
        return ProviderKeys([ProviderKey(self.provider.public_key, frozenset({PROVIDER}))])

    def bmc_rim(self, version: str) -> bytes:
        """The BMC release's reference CoRIM, registered on the trusted log."""
        if version not in self.rims:
            bundle = self.world.release("bmc", version).bundle
            model = self.world.model("bmc")
            statement = reference_statement(
                bundle, self.world.statement_key, iss=VENDOR, sub=model, vendor=VENDOR, model=model
            )
            self.rims[version] = self.world.trusted.register(statement).transparent_statement
        return self.rims[version]

    def review(self, version: str, cvss: tuple[float, ...] = ()) -> bytes:
        """A SAFE review of the BMC release (the review lab's statements are issued as
        OTHER, an issuer the log admits), registered on the trusted log."""
        key = (version, cvss)
        if key not in self.reviews:
            bundle = self.world.release("bmc", version).bundle
            digest = FirmwareBundle.parse(bundle).manifest_digest()
            sfr = sign_report(sfr_report(digest, cvss), self.provider, PROVIDER)
            statement = sfr_statement(sfr, self.world.other_key, iss=OTHER)
            self.reviews[key] = self.world.trusted.register(statement).transparent_statement
        return self.reviews[key]

    def node_class(
        self, version: str = "1.0", *, safe: str | None = None, reviewed: tuple[float, ...] = ()
    ) -> NodeClass:
        """The fleet tests' class with the BMC's reference CoRIM among the BMC statements;
        with ``safe`` (a max severity) the trust requires SAFE reviews of the BMC and the
        BMC statements carry one (open findings ``reviewed``)."""
        base = node_class(self.world, version)
        statements = dict(base.statements)
        bmc = [*statements["bmc"], self.bmc_rim(version)]
        trust = base.trust
        if safe is not None:
            bmc.append(self.review(version, reviewed))
            trust = self.world.trust(safe={"bmc": SafeRequirement(self.providers, safe)})
        statements["bmc"] = tuple(bmc)
        return dataclasses.replace(base, trust=trust, statements=statements)

    def fleet(
        self,
        directory: Path,
        nodes: int,
        *,
        klass: NodeClass | None = None,
        lifetime: int = 3600,
        fresh: bool = False,
    ) -> tuple[Fleet, AdmissionAuthority]:
        """A fleet of ``nodes`` nodes of ``klass`` (default :meth:`node_class`), admission set
        up with the vendor CA's roots. ``fresh``: manufactured here, not copied from an earlier
        fleet of this process (for a test that watches manufacturing)."""
        fleet = Fleet.create(directory, node_class=klass or self.node_class())
        if fresh:
            fleet.add_nodes(nodes, vendor_ca=self.vendor_ca, now=NOW)
        else:
            fleet, _ = manufacture(
                fleet, nodes, now=NOW, templates=self.world.root, vendor_ca=self.vendor_ca
            )
        authority = AdmissionAuthority.init(
            fleet,
            vendor_roots=list(self.vendor_ca.trust_anchors),
            now=CA_TIME,
            credential_lifetime=lifetime,
        )
        return fleet, authority


def admission_world(world: World) -> AdmissionWorld:
    return AdmissionWorld(
        world, PrivateKey.generate(Algorithm.ES384), VendorCA.generate(now=CA_TIME)
    )


# --- a node's request, built step by step so a test can change one part ----------------------


@dataclasses.dataclass
class Prepared:
    """A node's answer to a fresh challenge: its keys and CSRs per plane, and its evidence."""

    node: str
    nonce: bytes
    keys: dict[str, PrivateKey]
    csrs: dict[str, bytes]
    evidence: NodeEvidence

    @property
    def spkis(self) -> dict[str, bytes]:
        return {p: k.public_key.to_der() for p, k in self.keys.items()}

    def request(self, **changes: object) -> AdmissionRequest:
        args: dict[str, object] = {
            "node": self.node,
            "nonce": self.nonce,
            "evidence": self.evidence.encode(),
            "csrs": self.csrs,
        }
        args.update(changes)
        return AdmissionRequest(**args)  # type: ignore[arg-type]


def prepare(
    fleet: Fleet, authority: AdmissionAuthority, node: str, now: dt.datetime = NOW
) -> Prepared:
    nonce, _ = authority.challenge(now, client=node, node=node)
    keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
    csrs = {p: make_csr(k, node=node, plane=p) for p, k in keys.items()}
    spkis = {p: k.public_key.to_der() for p, k in keys.items()}
    evidence = collect_evidence(fleet, node, nonce=nonce, keys=spkis, now=now)
    return Prepared(node, nonce, keys, csrs, evidence)


def debug_unlocked_quote(fleet: Fleet, node: str, report: bytes) -> bytes:
    """A quote by the node's own RT alias keys over what it booted, saying debug is unlocked
    although its ROM certified debug locked (what a compromised runtime could sign): refused
    by quote verification."""
    device = fleet.rot(node)
    state = device.boot_state
    assert state is not None
    layers = derive_layers(device.fuses, state.pcrs)
    return create_quote(
        nonce=report,
        rt_alias=layers.rt_alias,
        ueid=layers.ueid,
        state=state,
        idevid_certificates={
            a: device.idevid_certificate(a) for a in (Algorithm.ES384, Algorithm.ML_DSA_87)
        },
        lifecycle=device.fuses.lifecycle,
        debug_locked=False,
    )


def device_evidence(fleet: Fleet, node: str, name: str, firmware: bytes, nonce: bytes) -> bytes:
    """The SPDM evidence the node's device ``name`` gives while it holds ``firmware``."""
    platform = fleet.node(node)
    device = PlatformDevice.open(platform.directory / "devices", name)
    measured = measure_device(
        device,
        firmware,
        root=platform.config.devices[name].root,
        references=ReferenceValues(),
        now=NOW,
        nonce=nonce,
    )
    assert measured.evidence is not None
    return measured.evidence
