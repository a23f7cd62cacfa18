"""Shared builders for the RoT runtime tests: a product's vendor keys, bundles, a vendor CA."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.firmware import Component, build_bundle, key_descriptor_hash, sign_bundle
from ironroot.rot import Device, VendorCA

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
NOT_BEFORE = NOW - dt.timedelta(days=30)
NOT_AFTER = NOW + dt.timedelta(days=365)
FMC = bytes(range(256)) * 16
RUNTIME = hashlib.sha384(b"runtime").digest() * 100


@dataclasses.dataclass
class Product:
    """A firmware vendor's keys (two ECC, two ML-DSA-87) and a way to make signed bundles."""

    ecc: list[PrivateKey]
    pqc: list[PrivateKey]

    @classmethod
    def generate(cls) -> Product:
        return cls(
            [PrivateKey.generate(Algorithm.ES384) for _ in range(2)],
            [PrivateKey.generate(Algorithm.ML_DSA_87) for _ in range(2)],
        )

    @property
    def descriptor_hash(self) -> bytes:
        return key_descriptor_hash(
            [k.public_key for k in self.ecc], [k.public_key for k in self.pqc], "mldsa"
        )

    def bundle(
        self,
        *,
        svn: int = 3,
        fmc: bytes = FMC,
        runtime: bytes = RUNTIME,
        ecc_index: int = 0,
        not_before: dt.datetime = NOT_BEFORE,
        not_after: dt.datetime = NOT_AFTER,
    ) -> bytes:
        unsigned = build_bundle(
            [Component(1, fmc, version=1), Component(2, runtime, version=2)],
            svn=svn,
            not_before=not_before,
            not_after=not_after,
            vendor_ecc_keys=[k.public_key for k in self.ecc],
            vendor_pqc_keys=[k.public_key for k in self.pqc],
            pqc_type="mldsa",
            ecc_index=ecc_index,
        )
        return sign_bundle(unsigned, self.ecc[ecc_index], self.pqc[0])


def new_device(path: Path, product: Product, ca: VendorCA) -> Device:
    device = Device.create(path)
    device.provision(ca, vendor_key_hash=product.descriptor_hash, now=NOW - dt.timedelta(days=1))
    return device


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file of a device directory (the lock file aside), for unchanged-state checks."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != ".lock"}
