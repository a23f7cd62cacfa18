"""The update checks' world: vendor ECDSA P-384 and ML-DSA-87 keys, signed bundles, signed
PFMs, manifest statements and SAFE reviews registered on a transparency service running in this
process (and on a second one the platform does not trust); the arguments of an update that
passes and ``_refused``, which asserts the exact refusal of both ``verify_update`` and
``check_update``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from tests.platform.node_world import sfr_report, transparency_service

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import IronrootError
from ironroot.firmware import (
    Component,
    FirmwareBundle,
    build_bundle,
    key_descriptor_hash,
    manifest_statement,
    sign_bundle,
)
from ironroot.platform import (
    Pfm,
    PfmComponent,
    PfmVersion,
    PlatformTrust,
    SafeRequirement,
    check_update,
    pfm_statement,
    sign_pfm,
    verify_update,
)
from ironroot.rot import Fuses
from ironroot.safe import ProviderKey, ProviderKeys, sfr_statement, sign_report
from ironroot.transparency import TransparencyService

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PLATFORM = "pkg:platform/acme/node-1"
VENDOR_ISS = "https://vendor.example"
OTHER_ISS = "https://other-vendor.example"
SAFE_ISS = "https://safe.example"
PROVIDER = "Example Review Provider"
FMC = bytes(range(256)) * 8

FIRMWARE_CHECKS = (
    "parse",
    "key-descriptor",
    "ecc-key",
    "pqc-key",
    "ecc-revocation",
    "pqc-revocation",
    "vendor-ecc-signature",
    "vendor-pqc-signature",
    "owner-key",
    "owner-ecc-signature",
    "owner-pqc-signature",
    "toc-digest",
    "component:1",
    "component:2",
    "svn",
    "validity",
)


def _register(service: TransparencyService, statement: bytes) -> bytes:
    ticket = service.submit(statement)
    ticket.integrated.result(timeout=60)
    return service.transparent_statement(ticket.entry_id)


@dataclasses.dataclass
class World:
    """Vendor keys and releases, two transparency services, a review provider."""

    ecc: list[PrivateKey]
    pqc: list[PrivateKey]
    vendor: PrivateKey  # the vendor's statement key (iss VENDOR_ISS)
    other: PrivateKey  # another issuer the service accepts, not allowed for the BMC
    safe: PrivateKey  # the SAFE statement key (iss SAFE_ISS)
    provider: PrivateKey  # the review provider's SFR key
    service: TransparencyService
    untrusted: TransparencyService
    bundles: dict[str, bytes] = dataclasses.field(default_factory=dict)
    logged: dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def fused(self) -> bytes:
        return key_descriptor_hash(
            [k.public_key for k in self.ecc], [k.public_key for k in self.pqc], "mldsa"
        )

    def fuses(self, **changes: Any) -> Fuses:
        return dataclasses.replace(Fuses(vendor_key_hash=self.fused), **changes)

    def trust(self, **changes: Any) -> PlatformTrust:
        args: dict[str, Any] = {
            "platform": PLATFORM,
            "vendor_ecc": tuple(k.public_key.to_der() for k in self.ecc),
            "vendor_pqc": tuple(k.public_key.to_der() for k in self.pqc),
            "service_keys": {k.kid: k for k in self.service.receipt_keys},
            "issuers": {
                "bmc": frozenset({VENDOR_ISS}),
                "host": frozenset({VENDOR_ISS}),
                "pfm": frozenset({VENDOR_ISS}),
            },
        }
        args.update(changes)
        return PlatformTrust(**args)

    def safe_trust(self, max_severity: str = "medium") -> PlatformTrust:
        providers = ProviderKeys([ProviderKey(self.provider.public_key, frozenset({PROVIDER}))])
        return self.trust(safe={"bmc": SafeRequirement(providers, max_severity)})

    def bundle(self, *, svn: int, runtime: bytes, signed: bool = True) -> bytes:
        unsigned = build_bundle(
            [Component(1, FMC, version=1), Component(2, runtime, version=svn)],
            svn=svn,
            not_before=NOW - dt.timedelta(days=30),
            not_after=NOW + dt.timedelta(days=365),
            vendor_ecc_keys=[k.public_key for k in self.ecc],
            vendor_pqc_keys=[k.public_key for k in self.pqc],
            pqc_type="mldsa",
        )
        return sign_bundle(unsigned, self.ecc[0], self.pqc[0]) if signed else unsigned.encode()

    def release(self, name: str, *, svn: int, runtime: bytes, signed: bool = True) -> bytes:
        """Build a bundle and log its manifest statement (by the vendor) on the service."""
        bundle = self.bundle(svn=svn, runtime=runtime, signed=signed)
        self.bundles[name] = bundle
        statement = manifest_statement(bundle, self.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc")
        self.logged[name] = _register(self.service, statement)
        return bundle

    def review(self, name: str, cvss: tuple[float, ...]) -> bytes:
        digest = FirmwareBundle.parse(self.bundles[name]).manifest_digest()
        sfr = sign_report(sfr_report(digest, cvss, version="2.0"), self.provider, PROVIDER)
        return _register(self.service, sfr_statement(sfr, self.safe, iss=SAFE_ISS))

    def pfm(self, svn: int, images: dict[str, list[tuple[str, int, str]]]) -> Pfm:
        return Pfm(
            platform=PLATFORM,
            svn=svn,
            components=tuple(
                PfmComponent(
                    component,
                    tuple(
                        PfmVersion(v, s, hashlib.sha384(self.bundles[b]).digest())
                        for v, s, b in entries
                    ),
                )
                for component, entries in images.items()
            ),
        )

    def logged_pfm(
        self, pfm: Pfm, *, signers: tuple[PrivateKey, PrivateKey] | None = None
    ) -> tuple[bytes, bytes]:
        """The signed PFM and its Transparent Statement (logged by the vendor)."""
        ecc, pqc = signers or (self.ecc[0], self.pqc[0])
        signed = sign_pfm(pfm, ecc, pqc)
        statement = pfm_statement(signed, self.vendor, iss=VENDOR_ISS, sub=PLATFORM)
        return signed, _register(self.service, statement)


def update_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The world of the update checks' tests (a generator: each module's fixture yields it)."""
    vendor, other, safe = (PrivateKey.generate(Algorithm.ES384) for _ in range(3))
    service = transparency_service(
        tmp_path_factory.mktemp("trusted-log"),
        {VENDOR_ISS: vendor, OTHER_ISS: other, SAFE_ISS: safe},
    )
    untrusted = transparency_service(tmp_path_factory.mktemp("untrusted-log"), {VENDOR_ISS: vendor})
    with service, untrusted:
        w = World(
            ecc=[PrivateKey.generate(Algorithm.ES384) for _ in range(2)],
            pqc=[PrivateKey.generate(Algorithm.ML_DSA_87) for _ in range(2)],
            vendor=vendor,
            other=other,
            safe=safe,
            provider=PrivateKey.generate(Algorithm.ES384),
            service=service,
            untrusted=untrusted,
        )
        w.release("bmc-1", svn=1, runtime=b"bmc runtime 1.0" * 64)
        w.release("bmc-2", svn=2, runtime=b"bmc runtime 2.0" * 64)
        w.release("bmc-3", svn=3, runtime=b"bmc runtime 3.0" * 64)  # in no PFM
        w.release("host-1", svn=1, runtime=b"host uefi 1.0" * 64)
        yield w


ACTIVE_IMAGES = {"bmc": "bmc-1", "host": "host-1"}


def _active_pfm(world: World, svn: int = 1) -> Pfm:
    return world.pfm(
        svn,
        {
            "bmc": [("1.0", 1, "bmc-1"), ("2.0", 2, "bmc-2")],
            "host": [("1.0", 1, "host-1")],
        },
    )


def _args(world: World, **changes: Any) -> dict[str, Any]:
    """The keyword arguments of an update of the BMC to bmc-2 that passes every check."""
    args: dict[str, Any] = {
        "trust": world.trust(),
        "fuses": world.fuses(),
        "min_svn": 1,
        "active_pfm": _active_pfm(world),
        "active_images": {
            c: hashlib.sha384(world.bundles[b]).digest() for c, b in ACTIVE_IMAGES.items()
        },
        "now": NOW,
    }
    args.update(changes)
    return args


def _refused(
    world: World,
    bundle: bytes,
    statements: list[bytes],
    error: type[IronrootError],
    code: str,
    check: str,
    component: str = "bmc",
    **changes: Any,
) -> None:
    """verify_update raises exactly ``error``/``code`` at ``check``, and check_update's
    report marks that check as the first failure, with the same code."""
    with pytest.raises(error) as info:
        verify_update(component, bundle, statements, **_args(world, **changes))
    assert type(info.value) is error
    assert (info.value.code, info.value.check) == (code, check)
    report = check_update(component, bundle, statements, **_args(world, **changes))
    assert not report.ok
    assert report.verified is None
    failure = report.first_failure
    assert failure is not None
    assert (failure.name, failure.code) == (check, code)
