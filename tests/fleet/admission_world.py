"""What admission tests need beyond the platform tests' world: the BMC's reference CoRIM on
the log (the RoT quotes the BMC firmware; its reference values must be logged like the
devices'), an OCP SAFE review provider whose reviews are logged, node classes that require
reviews, and fleets with admission set up."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from tests.fleet.fleet_world import node_class
from tests.platform.node_world import NOW, OTHER, VENDOR, World

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.firmware import FirmwareBundle, reference_statement
from ironroot.fleet import AdmissionAuthority, Fleet, NodeClass
from ironroot.platform import SafeRequirement
from ironroot.rot import VendorCA
from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report

PROVIDER = "Example Review Provider"
CA_TIME = NOW - dt.timedelta(days=2)


def _sfr(manifest_digest: bytes, cvss: tuple[float, ...]) -> bytes:
    return json.dumps(
        {
            "review_framework_version": "1.1",
            "device": {
                "vendor": "ACME Inc",
                "product": "Node BMC",
                "category": "bmc",
                "repo_tag": "v1",
                "fw_version": "1.0",
                "fw_hash_sha2_384": manifest_digest.hex(),
            },
            "audit": {
                "srp": "My Pentest Corporation",
                "methodology": "whitebox",
                "completion_date": "2026-05-01",
                "report_version": "1.0",
                "scope_number": 1,
                "cvss_version": "3.1",
                "issues": [
                    {
                        "title": f"issue {i}",
                        "cvss_score": f"{score:.1f}",
                        "cvss_vector": "AV:L/AC:L/PR:L/UI:N/S:C/C:L/I:H/A:L",
                        "cwe": "CWE-111",
                        "description": "found in review",
                        "cve": None,
                    }
                    for i, score in enumerate(cvss)
                ],
            },
        }
    ).encode()


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
            sfr = sign_report(_sfr(digest, cvss), self.provider, PROVIDER)
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
    ) -> tuple[Fleet, AdmissionAuthority]:
        """A fleet of ``nodes`` nodes of ``klass`` (default :meth:`node_class`), admission set
        up with the vendor CA's roots."""
        fleet = Fleet.create(directory, node_class=klass or self.node_class())
        fleet.add_nodes(nodes, vendor_ca=self.vendor_ca, now=NOW)
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
