"""The world the platform and fleet benchmarks build (not a benchmark: ``make bench`` leaves it
out): a firmware vendor with ECDSA P-384 + ML-DSA-87 firmware keys and an ES384 statement key,
a transparency service in this process (ES384 receipts) that admits the vendor's and the
review lab's statements, and an OCP SAFE review provider (ES384).

:func:`make_world` opens it in a directory; :class:`World` signs bundles, logs their
statements, writes SAFE reviews and makes a platform trust.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.firmware import (
    Component,
    FirmwareBundle,
    build_bundle,
    key_descriptor_hash,
    manifest_statement,
    reference_statement,
    sign_bundle,
)
from ironroot.platform import COMPONENTS, PlatformTrust, SafeRequirement
from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report
from ironroot.transparency import TransparencyService, init_data_dir

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PLATFORM = "pkg:platform/acme/bench-node"
VENDOR = "https://vendor.example"
LAB = "https://lab.example"
PROVIDER = "Example Review Provider"


def need(ok: bool, what: str) -> None:
    """Stop the benchmark when its setup is not what it measures."""
    if not ok:
        raise SystemExit(f"bench setup failed: {what}")


def model(component: str) -> str:
    """The CoRIM model (and statement subject) of a component's firmware."""
    return f"pkg:firmware/acme/{component}"


@dataclass
class World:
    directory: Path
    service: TransparencyService
    vendor: PrivateKey
    lab: PrivateKey
    ecc: PrivateKey = field(default_factory=lambda: PrivateKey.generate(Algorithm.ES384))
    pqc: PrivateKey = field(default_factory=lambda: PrivateKey.generate(Algorithm.ML_DSA_87))
    provider: PrivateKey = field(default_factory=lambda: PrivateKey.generate(Algorithm.ES384))

    @property
    def descriptor_hash(self) -> bytes:
        return key_descriptor_hash([self.ecc.public_key], [self.pqc.public_key], "mldsa")

    @property
    def service_keys(self) -> dict[bytes, PublicKey]:
        return {k.kid: k for k in self.service.receipt_keys}

    @property
    def providers(self) -> ProviderKeys:
        return ProviderKeys([ProviderKey(self.provider.public_key, frozenset({PROVIDER}))])

    def register(self, statement: bytes) -> bytes:
        """Log ``statement``; its transparent statement (with the receipt)."""
        ticket = self.service.submit(statement)
        ticket.integrated.result(timeout=60)
        return self.service.transparent_statement(ticket.entry_id)

    def bundle(self, fmc: bytes, runtime: bytes, svn: int) -> bytes:
        """A signed bundle of two components, valid from 30 days ago for a year."""
        unsigned = build_bundle(
            [Component(1, fmc, version=1), Component(2, runtime, version=svn)],
            svn=svn,
            not_before=NOW - dt.timedelta(days=30),
            not_after=NOW + dt.timedelta(days=365),
            vendor_ecc_keys=[self.ecc.public_key],
            vendor_pqc_keys=[self.pqc.public_key],
            pqc_type="mldsa",
        )
        return sign_bundle(unsigned, self.ecc, self.pqc)

    def publish(
        self, component: str, bundle: bytes, *, references: Collection[str] = ()
    ) -> tuple[bytes, ...]:
        """The bundle's manifest statement and, when ``component`` is one of ``references``,
        its reference CoRIM: both logged."""
        sub = model(component)
        out = [self.register(manifest_statement(bundle, self.vendor, iss=VENDOR, sub=sub))]
        if component in references:
            reference = reference_statement(
                bundle, self.vendor, iss=VENDOR, sub=sub, vendor=VENDOR, model=sub
            )
            out.append(self.register(reference))
        return tuple(out)

    def review(self, bundle: bytes, cvss: Sequence[float], *, version: str = "1.0") -> bytes:
        """An OCP SAFE review of ``bundle`` with open findings of scores ``cvss``, signed by the
        provider and as a statement by the lab (not logged)."""
        digest = FirmwareBundle.parse(bundle).manifest_digest()
        report = {
            "review_framework_version": "1.1",
            "device": {
                "vendor": "ACME Inc",
                "product": "Node BMC",
                "category": "bmc",
                "repo_tag": f"v{version}",
                "fw_version": version,
                "fw_hash_sha2_384": digest.hex(),
            },
            "audit": {
                "srp": PROVIDER,
                "methodology": "whitebox",
                "completion_date": "2026-05-01",
                "report_version": "1.0",
                "scope_number": 1,
                "cvss_version": "3.1",
                "issues": [
                    {
                        "title": f"issue {i}",
                        "cvss_score": f"{score:.1f}",
                        # base score 1.6, below every score used: the stated score counts
                        "cvss_vector": "AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
                        "cwe": "CWE-111",
                        "description": "found in review",
                        "cve": None,
                    }
                    for i, score in enumerate(cvss)
                ],
            },
        }
        sfr = sign_report(json.dumps(report).encode(), self.provider, PROVIDER)
        return sfr_statement(sfr, self.lab, iss=LAB)

    def trust(self, *, safe: bool) -> PlatformTrust:
        """The platform trust: the vendor's firmware keys, the log's keys, the vendor as the
        issuer of every component and the PFM; with ``safe``, reviews of the BMC required
        (findings below ``medium``)."""
        return PlatformTrust(
            platform=PLATFORM,
            vendor_ecc=(self.ecc.public_key.to_der(),),
            vendor_pqc=(self.pqc.public_key.to_der(),),
            service_keys=self.service_keys,
            issuers={name: frozenset({VENDOR}) for name in (*COMPONENTS, "pfm")},
            safe={"bmc": SafeRequirement(self.providers, "medium")} if safe else {},
            healthy_boots=2,
        )


@contextlib.contextmanager
def make_world(directory: Path) -> Iterator[World]:
    """The world in ``directory`` (its log in ``directory/log``), open while in the block."""
    log = directory / "log"
    init_data_dir(log)
    keys = {VENDOR: PrivateKey.generate(Algorithm.ES384), LAB: PrivateKey.generate(Algorithm.ES384)}
    text = (log / "ironroot.toml").read_text()
    for number, (iss, key) in enumerate(keys.items()):
        (log / f"issuer{number}.pub.pem").write_bytes(key.public_key.to_pem())
        text += f'\n[[transparency.issuers]]\niss = "{iss}"\nkey = "issuer{number}.pub.pem"\n'
    (log / "ironroot.toml").write_text(text)
    # the log signs receipts at NOW, the time every decision in the bench is made at: a
    # receipt issued after the decision's now is refused (receipt-from-the-future)
    with TransparencyService.open(log, clock=lambda: NOW) as service:
        yield World(directory, service, vendor=keys[VENDOR], lab=keys[LAB])
