"""The appraisal tests' world, built end to end from the real pieces.

A vendor CA provisions devices; a firmware vendor signs bundles and publishes each release's
reference-value CoRIM to a transparency service served from this process; a review provider
signs OCP SAFE reports about a release's manifest digest and registers them too. Tests then
boot devices, take quotes and appraise them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from cvss_vectors import vector_for
from ironroot.attestation import Endorsements, ReferencePublisher
from ironroot.cli import main
from ironroot.cose import encode_key_set
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.firmware import (
    Component,
    FirmwareBundle,
    build_bundle,
    key_descriptor_hash,
    reference_statement,
    sign_bundle,
)
from ironroot.rot import Device, VendorCA
from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report
from ironroot.transparency import TransparencyClient

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
NOT_BEFORE = NOW - dt.timedelta(days=30)
NOT_AFTER = NOW + dt.timedelta(days=365)
VENDOR_ISS = "https://vendor.example"
PRODUCT = "pkg:firmware/acme/roadrunner-rot"
SAFE_ISS = "https://safe.example"
PROVIDER = "Example Review Provider"
FMC = bytes(range(256)) * 16
RUNTIME = hashlib.sha384(b"runtime").digest() * 100


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def sfr_json(manifest_digest: bytes, cvss: tuple[float, ...] = (4.2,)) -> bytes:
    """An OCP SAFE report about the firmware whose manifest digest is given."""
    issues = [
        {
            "title": f"issue {i}",
            "cvss_score": f"{score:.1f}",
            "cvss_vector": vector_for(score),
            "cwe": "CWE-111",
            "description": "found in review",
            "cve": None,
        }
        for i, score in enumerate(cvss)
    ]
    report: dict[str, Any] = {
        "review_framework_version": "1.1",
        "device": {
            "vendor": "ACME Inc",
            "product": "Roadrunner RoT",
            "category": "security",
            "repo_tag": "v1",
            "fw_version": "1.0.0",
            "fw_hash_sha2_384": manifest_digest.hex(),
        },
        "audit": {
            "srp": PROVIDER,
            "methodology": "whitebox",
            "completion_date": "2026-05-01",
            "report_version": "1.0",
            "scope_number": 1,
            "cvss_version": "3.1",
            "issues": issues,
        },
    }
    return json.dumps(report).encode()


@dataclasses.dataclass
class World:
    """Everything the appraisal tests share (one per session)."""

    ca: VendorCA
    ecc: PrivateKey
    pqc: PrivateKey
    vendor_key: PrivateKey
    provider_key: PrivateKey
    safe_key: PrivateKey
    client: TransparencyClient
    service_keys: dict[bytes, PublicKey]
    references: dict[str, bytes] = dataclasses.field(default_factory=dict)
    reviews: dict[str, bytes] = dataclasses.field(default_factory=dict)
    bundles: dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def descriptor_hash(self) -> bytes:
        return key_descriptor_hash([self.ecc.public_key], [self.pqc.public_key], "mldsa")

    @property
    def publishers(self) -> tuple[ReferencePublisher, ...]:
        """The vendor may publish reference values for all its products, and no one else."""
        return (ReferencePublisher(VENDOR_ISS, None, frozenset((VENDOR_ISS,))),)

    @property
    def providers(self) -> ProviderKeys:
        return ProviderKeys([ProviderKey(self.provider_key.public_key, frozenset((PROVIDER,)))])

    def bundle(self, *, svn: int, runtime: bytes = RUNTIME, fmc: bytes = FMC) -> bytes:
        unsigned = build_bundle(
            [Component(1, fmc, version=1), Component(2, runtime, version=2)],
            svn=svn,
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
            vendor_ecc_keys=[self.ecc.public_key],
            vendor_pqc_keys=[self.pqc.public_key],
            pqc_type="mldsa",
        )
        return sign_bundle(unsigned, self.ecc, self.pqc)

    def release(
        self,
        name: str,
        *,
        svn: int,
        runtime: bytes = RUNTIME,
        fmc: bytes = FMC,
        publish: bool = True,
        review: tuple[float, ...] | None = (4.2,),
    ) -> bytes:
        """Build a release; publish its CoRIM and (unless ``review`` is None) a SAFE report."""
        bundle = self.bundle(svn=svn, runtime=runtime, fmc=fmc)
        self.bundles[name] = bundle
        if publish:
            statement = reference_statement(bundle, self.vendor_key, iss=VENDOR_ISS, sub=PRODUCT)
            self.references[name] = self.client.register(statement).transparent_statement
        if review is not None:
            digest = FirmwareBundle.parse(bundle).manifest_digest()
            sfr = sign_report(sfr_json(digest, review), self.provider_key, PROVIDER)
            statement = sfr_statement(sfr, self.safe_key, iss=SAFE_ISS)
            self.reviews[name] = self.client.register(statement).transparent_statement
        return bundle

    def endorsements(
        self,
        references: list[str] | None = None,
        reviews: list[str] | None = None,
        *,
        roots: tuple[bytes, ...] | None = None,
        extra_references: tuple[bytes, ...] = (),
    ) -> Endorsements:
        refs = [self.references[n] for n in (references or ["good"])]
        revs = [self.reviews[n] for n in (reviews or ["good"])]
        return Endorsements.build(
            service_keys=self.service_keys,
            reference_statements=[*refs, *extra_references],
            review_statements=revs,
            providers=self.providers,
            publishers=self.publishers,
            vendor_roots=self.ca.trust_anchors if roots is None else roots,
            now=NOW,
        )

    def device(self, path: Path, release: str) -> Device:
        device = Device.create(path)
        device.provision(
            self.ca, vendor_key_hash=self.descriptor_hash, now=NOW - dt.timedelta(days=1)
        )
        device.boot(self.bundles[release], now=NOW)
        return device


def new_keys() -> tuple[PrivateKey, PrivateKey, PrivateKey, PrivateKey, PrivateKey]:
    """ECC and ML-DSA vendor keys, the vendor's statement key, the SAFE provider and its
    statement key."""
    return (
        PrivateKey.generate(Algorithm.ES384),
        PrivateKey.generate(Algorithm.ML_DSA_87),
        PrivateKey.generate(Algorithm.ES384),
        PrivateKey.generate(Algorithm.ES384),
        PrivateKey.generate(Algorithm.ES384),
    )


def make_verifier_dir(tmp_path: Path, world: World) -> Path:
    """`attest init --release` with the world's good release, then its roots, service keys,
    review and review provider: a verifier directory that appraises the good device as
    affirming."""
    data = tmp_path / "verifier"
    release = tmp_path / "good.ts"
    release.write_bytes(world.references["good"])
    assert main(["attest", "init", "--data", str(data), "--release", str(release)]) == 0
    for i, root in enumerate(world.ca.trust_anchors):
        (data / "vendor-ca" / f"root{i}.der").write_bytes(root)
    keys = encode_key_set(list(world.service_keys.values()))
    (data / "service-keys" / "scitt-keys.cbor").write_bytes(keys)
    (data / "reviews" / "good.ts").write_bytes(world.reviews["good"])
    provider = data / "review-providers" / f"{PROVIDER}.pem"
    provider.write_bytes(world.provider_key.public_key.to_pem())
    return data
