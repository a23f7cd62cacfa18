"""The evidence format table: detect a format from bytes and verify with the right verifier.

Each row of :data:`EVIDENCE_FORMATS` is an :class:`EvidenceFormat`: a name, a one-line
description, a ``detect(bytes) -> bool`` and a ``verify(bytes, VerifyOptions) ->
EvidenceClaims``. Detection tries the rows in order, so more specific formats come first.
Adding a format (this project's RoT quote, SPDM) is adding one row in :func:`_table`.

Evidence given as hex text (as some tools and test suites store SNP reports) is decoded first.
"""

from __future__ import annotations

import string
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from ironroot.attestation.evidence._claims import EvidenceClaims
from ironroot.attestation.evidence._snp import SNP_REPORT_SIZE
from ironroot.attestation.evidence._snp_verify import (
    SnpChainCache,
    verify_azure_hcl_report,
    verify_snp_report,
)
from ironroot.attestation.evidence._tdx_verify import TdxChainCache, load_crls, verify_tdx_quote
from ironroot.errors import MalformedEvidence

__all__ = [
    "EVIDENCE_FORMATS",
    "EvidenceFormat",
    "VerifyOptions",
    "decode_evidence",
    "detect_format",
    "verify_evidence",
]

_MAX_EVIDENCE: Final = 1024 * 1024
_HEX: Final = frozenset(string.hexdigits.encode())
_WHITESPACE: Final = frozenset(string.whitespace.encode())


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """What a verifier may need besides the evidence bytes.

    ``certificates``: endorsement certificates the evidence does not carry (VCEK/VLEK; DER or
    PEM). ``crls``: DER or PEM CRLs to check chains against. ``allow_trailing``: accept bytes
    after a self-delimited structure (TDX). ``snp_cache``/``tdx_cache``: chain caches.
    """

    now: datetime
    certificates: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()
    allow_trailing: bool = False
    snp_cache: SnpChainCache | None = field(default=None, compare=False)
    tdx_cache: TdxChainCache | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class EvidenceFormat:
    """One row of the format table."""

    name: str
    description: str
    detect: Callable[[bytes], bool]
    verify: Callable[[bytes, VerifyOptions], EvidenceClaims]


def _is_hcl(data: bytes) -> bool:
    return data.startswith(b"HCLA")


def _is_snp(data: bytes) -> bool:
    return len(data) == SNP_REPORT_SIZE and 2 <= int.from_bytes(data[:4], "little") <= 5


def _is_tdx(data: bytes) -> bool:
    if len(data) < 8:
        return False
    version, key_type, tee_type = struct.unpack_from("<HHI", data, 0)
    return version in (4, 5) and key_type == 2 and tee_type == 0x81


def _verify_snp(data: bytes, options: VerifyOptions) -> EvidenceClaims:
    return verify_snp_report(data, options.certificates, now=options.now, cache=options.snp_cache)


def _verify_hcl(data: bytes, options: VerifyOptions) -> EvidenceClaims:
    return verify_azure_hcl_report(
        data, options.certificates, now=options.now, cache=options.snp_cache
    )


def _verify_tdx(data: bytes, options: VerifyOptions) -> EvidenceClaims:
    crls = [crl for item in options.crls for crl in load_crls(item)]
    return verify_tdx_quote(
        data,
        now=options.now,
        crls=crls,
        allow_trailing=options.allow_trailing,
        cache=options.tdx_cache,
    )


def _table() -> Mapping[str, EvidenceFormat]:
    rows = (
        EvidenceFormat(
            "azure-hcl", "Azure CVM HCL report wrapping an SEV-SNP report", _is_hcl, _verify_hcl
        ),
        EvidenceFormat("snp", "AMD SEV-SNP ATTESTATION_REPORT (1184 bytes)", _is_snp, _verify_snp),
        EvidenceFormat("tdx", "Intel TDX DCAP quote (version 4 or 5)", _is_tdx, _verify_tdx),
    )
    return MappingProxyType({row.name: row for row in rows})


EVIDENCE_FORMATS: Final = _table()


def decode_evidence(data: bytes) -> bytes:
    """``data`` itself, or the bytes it spells if it is hex text (whitespace ignored)."""
    if len(data) > 2 * _MAX_EVIDENCE:
        raise MalformedEvidence(f"evidence over {_MAX_EVIDENCE} bytes")
    stripped = bytes(b for b in data if b not in _WHITESPACE)
    if stripped and len(stripped) % 2 == 0 and all(b in _HEX for b in stripped):
        return bytes.fromhex(stripped.decode("ascii"))
    if len(data) > _MAX_EVIDENCE:
        raise MalformedEvidence(f"evidence over {_MAX_EVIDENCE} bytes")
    return bytes(data)


def detect_format(data: bytes) -> str:
    """The name of the first format whose detector accepts ``data`` (already decoded)."""
    for row in EVIDENCE_FORMATS.values():
        if row.detect(data):
            return row.name
    raise MalformedEvidence(
        "evidence format not recognised (known: " + ", ".join(EVIDENCE_FORMATS) + ")"
    )


def verify_evidence(data: bytes, options: VerifyOptions, *, format: str = "auto") -> EvidenceClaims:
    """Decode hex text if need be, pick the format (``"auto"`` detects it) and verify."""
    raw = decode_evidence(data)
    name = detect_format(raw) if format == "auto" else format
    row = EVIDENCE_FORMATS.get(name)
    if row is None:
        raise MalformedEvidence(f"unknown evidence format {name!r}")
    return row.verify(raw, options)
