"""Shared builders for the firmware tests: vendor keys, a standard bundle, byte surgery."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyhsslms  # type: ignore[import-untyped]

from ironroot.crypto import Algorithm, LmsPrivateKey, LmsPublicKey, PrivateKey, Signer
from ironroot.firmware import (
    Component,
    FirmwareLimits,
    PqcKeyType,
    UnsignedBundle,
    build_bundle,
    key_descriptor_hash,
    sign_bundle,
)
from logged_elsewhere import OneEntryLogs

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
NOT_BEFORE = NOW - dt.timedelta(days=30)
NOT_AFTER = NOW + dt.timedelta(days=365)
LMS_TEST_LIMITS = FirmwareLimits(lms_parameter_sets=frozenset({"SHA256-N24-H5-W4"}))
FMC = bytes(range(256)) * 16  # 4 KiB
RUNTIME = hashlib.sha384(b"runtime").digest() * 300
EXTRA = b"extra component"


@dataclasses.dataclass
class Vendor:
    """A product's vendor keys: ECC list, PQC list, the active indices, the PQC type."""

    ecc: list[PrivateKey]
    pqc: list[Signer]
    pqc_type: PqcKeyType
    ecc_index: int = 0
    pqc_index: int = 0
    limits: FirmwareLimits = dataclasses.field(default_factory=FirmwareLimits)

    @property
    def descriptor_hash(self) -> bytes:
        return key_descriptor_hash(
            [k.public_key for k in self.ecc], [k.verifier() for k in self.pqc], self.pqc_type
        )

    def build(self, **overrides: object) -> UnsignedBundle:
        args: dict[str, object] = {
            "svn": 5,
            "not_before": NOT_BEFORE,
            "not_after": NOT_AFTER,
            "vendor_ecc_keys": [k.public_key for k in self.ecc],
            "vendor_pqc_keys": [k.verifier() for k in self.pqc],
            "ecc_index": self.ecc_index,
            "pqc_index": self.pqc_index,
            "pqc_type": self.pqc_type,
            "limits": self.limits,
        }
        components = overrides.pop(
            "components",
            [Component(1, FMC, version=1), Component(2, RUNTIME, version=2), Component(3, EXTRA)],
        )
        args.update(overrides)
        return build_bundle(components, **args)  # type: ignore[arg-type]

    def sign(self, unsigned: UnsignedBundle, **kw: object) -> bytes:
        return sign_bundle(
            unsigned,
            self.ecc[self.ecc_index],
            self.pqc[self.pqc_index],
            limits=self.limits,
            **kw,  # type: ignore[arg-type]
        )


def mldsa_vendor(ecc_count: int = 2, pqc_count: int = 3, **kw: object) -> Vendor:
    return Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384) for _ in range(ecc_count)],
        pqc=[PrivateKey.generate(Algorithm.ML_DSA_87) for _ in range(pqc_count)],
        pqc_type=PqcKeyType.MLDSA,
        **kw,  # type: ignore[arg-type]
    )


def lms_vendor(directory: Path, pqc_count: int = 2, **kw: object) -> Vendor:
    return Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[
            LmsPrivateKey.generate(directory / f"lms{i}.state", "SHA256-N24-H5-W4")
            for i in range(pqc_count)
        ],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
        **kw,  # type: ignore[arg-type]
    )


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


class RestoredLms:
    """An LMS signer whose state was restored from a copy (a VM snapshot, a backup made
    without Ironroot's state file): every signature uses leaf 0 again. ``pyhsslms``'s own
    key, so no Ironroot state file or counter is there to refuse it."""

    algorithm = Algorithm.HSS_LMS

    def __init__(self) -> None:
        self._seed, self._ident = os.urandom(24), os.urandom(16)
        self._public = LmsPublicKey(b"\0\0\0\1" + self._key().publicKey().serialize())

    def _key(self) -> Any:
        return pyhsslms.LmsPrivateKey(
            pyhsslms.lms_sha256_m24_h5, pyhsslms.lmots_sha256_n24_w4, self._seed, self._ident
        )

    @property
    def kid(self) -> bytes:
        return self._public.kid

    def sign(self, data: bytes) -> bytes:
        return b"\0\0\0\0" + bytes(self._key().sign(data))

    def verifier(self) -> LmsPublicKey:
        return self._public


class Recording:
    """A registrar that accepts every statement and records it; with ``logs``, it returns the
    statement with a real receipt of those logs (else the Signed Statement as it is)."""

    def __init__(self, logs: OneEntryLogs | None = None) -> None:
        self.registered: list[bytes] = []
        self._logs = logs

    def register(self, statement: bytes) -> Any:
        self.registered.append(statement)
        transparent = statement if self._logs is None else self._logs.transparent(statement)
        return SimpleNamespace(
            entry_id=str(len(self.registered)), transparent_statement=transparent
        )
