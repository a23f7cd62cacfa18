"""The one table of evidence formats: every format is one row, and everything loops over it.

Each row of :data:`EVIDENCE_FORMATS` is an :class:`EvidenceFormat` that declares, for one
kind of evidence:

``detect``
    ``bytes -> bool``: whether (decoded) bytes look like this format. Detection tries the
    rows in order, so more specific formats come first.
``parse``
    ``bytes -> dict``: the structure, JSON-ready, **without** verifying anything (for
    ``ironroot evidence inspect``).
``verify``
    ``(bytes, VerifyOptions, CheckLog) -> EvidenceClaims``: the verification, recording each
    named check in the log.
``binding``
    how the evidence binds a verifier's nonce (:class:`NonceBinding`): ``exact`` (the signed
    nonce is the nonce), ``zero-padded`` (the report data is the nonce followed by zero
    bytes), and whether a key can be bound beside it; or ``None`` for a format that cannot
    bind a nonce (``--nonce`` is then refused as a usage error).
``roots``
    the vendor roots built in and pinned (:class:`PinnedRoot`, SHA-256 of the DER); an empty
    tuple means the roots are configured by the verifier (this project's RoT quotes, SPDM).
``policy``
    the default appraisal settings of the format (:class:`FormatPolicy`): which
    measurements must be on the log, the SVN claim, the firmware hash SAFE reviews name, and
    the trust-vector claims the format can affirm.
``cache``
    a factory for the chain cache the format's verifier can use (``None``: no cache).
``takes_crls`` / ``takes_collateral``
    whether the verifier checks chains against CRLs (SNP, Azure HCL, TDX) and Intel's TDX
    collateral (TCB Info, QE Identity: TDX only); giving either to another format is a usage
    error (:func:`check_binding`).

:func:`verify_evidence` decodes hex text, picks the row (``"auto"`` detects it), runs its
verification, then the nonce check by its binding rule when a nonce is given, and returns the
claims with the checks that ran (and those that could not). The CLI (``evidence verify``,
``evidence inspect``, ``attest appraise``), the appraisal and the HTTP API all go through this
table, so adding a format is adding one row in :func:`_rows`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import string
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal

from cryptography import x509

from ironroot.attestation.evidence._claims import CheckLog, EvidenceClaims, json_ready
from ironroot.attestation.evidence._nvidia import (
    NVIDIA_GPU_FORMAT,
    GpuChainCache,
    parse_nvidia_gpu,
    verify_nvidia_gpu,
)
from ironroot.attestation.evidence._roots import (
    AMD_ROOT_FINGERPRINTS,
    INTEL_SGX_ROOT_FINGERPRINT,
    NVIDIA_DEVICE_ROOT_FINGERPRINT,
)
from ironroot.attestation.evidence._rot import (
    ROT_QUOTE_FORMAT,
    RotChainCache,
    parse_rot_quote,
    verify_rot_quote,
)
from ironroot.attestation.evidence._rot import signed_nonce as rot_signed_nonce
from ironroot.attestation.evidence._snp import SNP_REPORT_SIZE, parse_snp_report
from ironroot.attestation.evidence._snp_verify import (
    SnpChainCache,
    parse_azure_hcl_report,
    verify_azure_hcl_report,
    verify_snp_report,
)
from ironroot.attestation.evidence._spdm import SPDM_FORMAT, parse_spdm_record, verify_spdm
from ironroot.attestation.evidence._spdm import decoded_record as decoded_spdm_record
from ironroot.attestation.evidence._spdm import device_mode_check as spdm_device_mode_check
from ironroot.attestation.evidence._spdm import signed_nonce as spdm_signed_nonce
from ironroot.attestation.evidence._tdx import parse_tdx_quote
from ironroot.attestation.evidence._tdx_collateral import TdxCollateral
from ironroot.attestation.evidence._tdx_verify import TdxChainCache, load_crls, verify_tdx_quote
from ironroot.errors import KeyBindingMismatch, MalformedEvidence, MalformedInput, StaleNonce
from ironroot.spdm import SpdmChainCache

__all__ = [
    "EVIDENCE_FORMATS",
    "EvidenceCaches",
    "EvidenceFormat",
    "FormatPolicy",
    "NonceBinding",
    "PinnedRoot",
    "VerifyOptions",
    "check_binding",
    "decode_evidence",
    "detect_format",
    "format_row",
    "parse_evidence",
    "verify_evidence",
]

_MAX_EVIDENCE: Final = 1024 * 1024
_HEX: Final = string.hexdigits.encode()
_WHITESPACE: Final = string.whitespace.encode()
_ROT_MARKER: Final = b"\x66format\x70ironroot-quote/1"  # "format": "ironroot-quote/1"
_SPDM_MARKER: Final = b"\x66format\x78\x18ironroot-spdm-evidence/1"
# AR4SI affirming codes (draft-ietf-rats-ar4si): executables 3 = approved boot, runtime-opaque
# 2 = encrypted memory, what a hardware TEE's evidence can affirm beyond the common set.
_APPROVED_BOOT: Final = 3
_ENCRYPTED_MEMORY: Final = 2


# --- the row's parts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NonceBinding:
    """How a format binds a verifier's nonce into the data it signs.

    ``rule``: ``"exact"`` (the signed nonce equals the nonce) or ``"zero-padded"`` (the
    report data is the nonce followed by zero bytes). ``keyed``: a key can be bound beside the
    nonce; the report data is then (zero-padded for ``zero-padded``) one of
    ``nonce ‖ SHA-256(key)`` (Ironroot's key release) or, for ``zero-padded`` only,
    ``SHA-256/384/512(nonce ‖ key)`` (the hash-of-nonce-and-key convention of other
    verifiers).
    """

    rule: Literal["exact", "zero-padded"]
    keyed: bool
    description: str

    def candidates(self, nonce: bytes, key: bytes | None) -> tuple[tuple[str, bytes], ...]:
        """The report data values that answer ``nonce`` (and ``key``), each with its name."""
        if not isinstance(nonce, bytes) or not nonce:
            raise MalformedInput("an empty nonce binds nothing")
        if key is None:
            return (("nonce", nonce),)
        if not self.keyed:
            raise MalformedInput(f"this format binds the nonce {self.rule}ly: no key can be bound")
        out = [("nonce ‖ SHA-256(key)", nonce + hashlib.sha256(key).digest())]
        if self.rule == "zero-padded":
            out += [
                (f"{name.upper()}(nonce ‖ key)", hashlib.new(name, nonce + key).digest())
                for name in ("sha256", "sha384", "sha512")
            ]
        return tuple(out)

    def expected(self, nonce: bytes, key: bytes | None) -> bytes:
        """For an ``exact`` binding: the one value the evidence must have signed."""
        return self.candidates(nonce, key)[0][1]

    def check(self, report_data: bytes, nonce: bytes, key: bytes | None) -> str:
        """Return which binding matched, or raise ``StaleNonce`` / ``KeyBindingMismatch``."""
        for name, value in self.candidates(nonce, key):
            if self.rule == "zero-padded":
                if len(value) > len(report_data):
                    continue
                value = value + bytes(len(report_data) - len(value))
            if hmac.compare_digest(report_data, value):
                return f"{self.rule}: report data = {name}"
        if key is not None and report_data.startswith(nonce):
            raise KeyBindingMismatch("the evidence answers the nonce but binds another key")
        raise StaleNonce(
            "the evidence does not answer this nonce "
            f"(report data {report_data.hex()[:32]}…, rule {self.rule})",
            code="nonce-mismatch",
        )


@dataclass(frozen=True, slots=True)
class PinnedRoot:
    """A vendor root built in: a name and the SHA-256 of its DER certificate (hex)."""

    name: str
    sha256: str


@dataclass(frozen=True, slots=True)
class FormatPolicy:
    """A format's default appraisal settings (see :mod:`ironroot.attestation._policy`)."""

    components: tuple[str, ...] = ()
    svn_claim: str | None = None
    firmware_hash: str | None = None
    affirm: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """What a verification may need besides the evidence bytes.

    ``now``: the verification time. ``nonce``: the nonce the evidence must answer (checked by
    the row's binding; required by formats that sign the nonce itself); ``bound_key``: bytes
    bound beside the nonce (a public key). ``certificates``: certificates the evidence does
    not carry (an SNP report's VCEK/VLEK; DER or PEM). ``roots``: the roots configured for
    formats without a pinned vendor root (RoT vendor CA, SPDM device root). ``crls``: DER or
    PEM CRLs (or loaded ones) to check chains against. ``caches``: chain caches
    (:class:`EvidenceCaches`).
    ``collateral``: Intel's TDX collateral (TCB Info, QE Identity, their signing chain, CRLs).
    ``allow_stale_collateral``: accept CRLs, TCB Info and QE Identity past their
    ``nextUpdate`` (listed in ``raw["stale_collateral"]`` and the check's detail) instead of
    refusing them.
    """

    now: datetime
    nonce: bytes | None = None
    bound_key: bytes | None = None
    certificates: tuple[bytes, ...] = ()
    roots: tuple[bytes, ...] = ()
    crls: tuple[bytes | x509.CertificateRevocationList, ...] = ()
    caches: EvidenceCaches | None = field(default=None, compare=False)
    collateral: TdxCollateral | None = None
    allow_stale_collateral: bool = False


@dataclass(frozen=True, slots=True)
class EvidenceFormat:
    """One row of the format table (see the module documentation)."""

    name: str
    description: str
    detect: Callable[[bytes], bool]
    parse: Callable[[bytes], dict[str, Any]]
    verify: Callable[[bytes, VerifyOptions, CheckLog], EvidenceClaims]
    binding: NonceBinding | None
    roots: tuple[PinnedRoot, ...]
    policy: FormatPolicy
    cache: Callable[[], object] | None = None
    takes_crls: bool = False
    takes_collateral: bool = False

    def describe(self) -> dict[str, Any]:
        """The row as JSON-ready data (``GET /attestation/formats``, ``evidence formats``)."""
        return {
            "name": self.name,
            "description": self.description,
            "nonce_binding": (
                None
                if self.binding is None
                else {
                    "rule": self.binding.rule,
                    "keyed": self.binding.keyed,
                    "description": self.binding.description,
                }
            ),
            "pinned_roots": [{"name": r.name, "sha256": r.sha256} for r in self.roots],
            "revocation": {"crls": self.takes_crls, "collateral": self.takes_collateral},
            "default_policy": {
                "components": list(self.policy.components),
                "svn_claim": self.policy.svn_claim,
                "firmware_hash": self.policy.firmware_hash,
            },
        }


class EvidenceCaches:
    """One chain cache per format whose row has one, made up front (safe to share)."""

    __slots__ = ("_caches", "_lock")

    def __init__(self, **given: object) -> None:
        unknown = set(given) - set(EVIDENCE_FORMATS)
        if unknown:
            raise MalformedInput(f"no evidence format named {', '.join(sorted(unknown))}")
        self._caches: dict[str, object] = {
            name: given[name] if name in given else row.cache()
            for name, row in EVIDENCE_FORMATS.items()
            if row.cache is not None
        }
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        """The cache of format ``name``, or ``None`` when it has none."""
        return self._caches.get(name)


def _cache(options: VerifyOptions, name: str) -> Any:
    return options.caches.get(name) if options.caches is not None else None


# --- detection ----------------------------------------------------------------------------------


def _is_rot(data: bytes) -> bool:
    return data[:1] == b"\xa3" and _ROT_MARKER in data


def _is_spdm(data: bytes) -> bool:
    return data[:1] == b"\xa5" and _SPDM_MARKER in data


def _is_nvidia_gpu(data: bytes) -> bool:
    # A signed SPDM 1.0/1.1 GET_MEASUREMENTS (nonce, and a slot byte from 1.1) and then a
    # MEASUREMENTS of the same version.
    if len(data) < 8 or data[0] not in (0x10, 0x11) or data[1] != 0xE0 or not data[2] & 1:
        return False
    request = 36 if data[0] == 0x10 else 37
    return len(data) > request + 1 and data[request : request + 2] == bytes([data[0], 0x60])


def _is_hcl(data: bytes) -> bool:
    return data.startswith(b"HCLA")


def _is_snp(data: bytes) -> bool:
    return len(data) == SNP_REPORT_SIZE and 2 <= int.from_bytes(data[:4], "little") <= 5


def _is_tdx(data: bytes) -> bool:
    if len(data) < 8:
        return False
    version, key_type, tee_type = struct.unpack_from("<HHI", data, 0)
    return version in (4, 5) and key_type == 2 and tee_type == 0x81


# --- parsing (no verification) --------------------------------------------------------------


def _parse_snp(data: bytes) -> dict[str, Any]:
    return parse_snp_report(data).to_dict()


def _parse_hcl(data: bytes) -> dict[str, Any]:
    hcl = parse_azure_hcl_report(data)
    return {"azure_hcl": hcl.to_dict(), "snp": parse_snp_report(hcl.snp_report).to_dict()}


def _parse_tdx(data: bytes) -> dict[str, Any]:
    quote = parse_tdx_quote(data)
    out = quote.to_dict()
    out["pck_chain_pem"] = quote.pck_chain_pem.rstrip(b"\x00").decode("ascii", "replace")
    return out


# --- verification ---------------------------------------------------------------------------


def _required_nonce(options: VerifyOptions, what: str, log: CheckLog) -> bytes:
    if options.nonce is None:
        error = StaleNonce(f"{what} is verified against the nonce it answers: none given")
        log.failed("nonce", error)
        raise error
    return options.nonce


# RoT quotes and SPDM sessions are verified against the nonce they signed (read from the
# evidence, then covered by the signature check); the table's nonce step then compares it with
# the caller's by the binding rule, so a stale answer fails as "nonce" after every other check.


def _verify_rot(data: bytes, options: VerifyOptions, log: CheckLog) -> EvidenceClaims:
    binding = EVIDENCE_FORMATS[ROT_QUOTE_FORMAT].binding
    assert binding is not None
    expected = binding.expected(_required_nonce(options, "a RoT quote", log), options.bound_key)
    with log.step("quote", "DICE chains to the vendor CA, ES384 and ML-DSA-87, PCR log, FWIDs"):
        return verify_rot_quote(
            data,
            nonce=rot_signed_nonce(data) or expected,
            trust_anchors=(*options.roots, *options.certificates),
            now=options.now,
            cache=_cache(options, ROT_QUOTE_FORMAT),
        )


def _verify_spdm(data: bytes, options: VerifyOptions, log: CheckLog) -> EvidenceClaims:
    nonce = _required_nonce(options, "SPDM evidence", log)
    record = decoded_spdm_record(data)  # decoded once: read for its nonce, then verified
    with log.step("session", "VCA, certificate chain to the device root, signed L1/L2"):
        claims = verify_spdm(
            record,
            nonce=spdm_signed_nonce(record) or nonce,
            roots=(*options.roots, *options.certificates),
            now=options.now,
            cache=_cache(options, SPDM_FORMAT),
        )
    read, detail = spdm_device_mode_check(claims)
    if read:
        log.passed("device-mode", detail)
    else:  # the claims say debug: not proven off
        log.skip("device-mode", detail)
    return claims


def _verify_nvidia_gpu(data: bytes, options: VerifyOptions, log: CheckLog) -> EvidenceClaims:
    _required_nonce(options, "NVIDIA GPU evidence", log)
    return verify_nvidia_gpu(
        data,
        options.certificates,
        now=options.now,
        cache=_cache(options, NVIDIA_GPU_FORMAT),
        checks=log,
        crls=_crls(options),
        allow_stale_collateral=options.allow_stale_collateral,
    )


def loaded_crls(
    items: Iterable[bytes | x509.CertificateRevocationList],
) -> list[x509.CertificateRevocationList]:
    """CRLs given loaded or as DER or PEM bytes (each may hold several), loaded."""
    out: list[x509.CertificateRevocationList] = []
    for item in items:
        if isinstance(item, x509.CertificateRevocationList):
            out.append(item)
        else:
            out.extend(load_crls(item))
    return out


def _crls(options: VerifyOptions) -> list[x509.CertificateRevocationList]:
    return loaded_crls(options.crls)


def _verify_snp(data: bytes, options: VerifyOptions, log: CheckLog) -> EvidenceClaims:
    return verify_snp_report(
        data,
        options.certificates,
        now=options.now,
        cache=_cache(options, "snp"),
        checks=log,
        crls=_crls(options),
        allow_stale_collateral=options.allow_stale_collateral,
    )


def _verify_hcl(data: bytes, options: VerifyOptions, log: CheckLog) -> EvidenceClaims:
    return verify_azure_hcl_report(
        data,
        options.certificates,
        now=options.now,
        cache=_cache(options, "snp"),
        checks=log,
        crls=_crls(options),
        allow_stale_collateral=options.allow_stale_collateral,
    )


def _verify_tdx(data: bytes, options: VerifyOptions, log: CheckLog) -> EvidenceClaims:
    return verify_tdx_quote(
        data,
        now=options.now,
        crls=_crls(options),
        cache=_cache(options, "tdx"),
        checks=log,
        collateral=options.collateral,
        allow_stale_collateral=options.allow_stale_collateral,
    )


# --- the table --------------------------------------------------------------------------------


def _rows() -> tuple[EvidenceFormat, ...]:
    amd = tuple(
        PinnedRoot(f"AMD ARK-{product.value}", prints[0])
        for product, prints in AMD_ROOT_FINGERPRINTS.items()
    )
    tee = {"executables": _APPROVED_BOOT, "runtime-opaque": _ENCRYPTED_MEMORY}
    snp_policy = FormatPolicy(
        components=("measurement",), svn_claim="guest_svn", firmware_hash="measurement", affirm=tee
    )
    padded = NonceBinding(
        "zero-padded",
        keyed=True,
        description="the 64-byte report data is the nonce followed by zero bytes",
    )
    return (
        EvidenceFormat(
            name=ROT_QUOTE_FORMAT,
            description="Ironroot RoT quote (DICE chains, ES384 + ML-DSA-87 signatures)",
            detect=_is_rot,
            parse=parse_rot_quote,
            verify=_verify_rot,
            binding=NonceBinding(
                "exact", keyed=True, description="the quote's signed nonce is the nonce"
            ),
            roots=(),
            policy=FormatPolicy(
                components=("fmc", "runtime"), svn_claim="firmware", firmware_hash="manifest"
            ),
            cache=RotChainCache,
        ),
        EvidenceFormat(
            name=SPDM_FORMAT,
            description="SPDM 1.2/1.3 measurement session recorded by a requester",
            detect=_is_spdm,
            parse=parse_spdm_record,
            verify=_verify_spdm,
            binding=NonceBinding(
                "exact",
                keyed=False,
                description="the signed GET_MEASUREMENTS carries the 32-byte nonce",
            ),
            roots=(),
            policy=FormatPolicy(),
            cache=SpdmChainCache,
        ),
        EvidenceFormat(
            name=NVIDIA_GPU_FORMAT,
            description="NVIDIA GPU (Hopper): signed SPDM 1.1 GET_MEASUREMENTS exchange, "
            "with its certificate chain (--cert)",
            detect=_is_nvidia_gpu,
            parse=parse_nvidia_gpu,
            verify=_verify_nvidia_gpu,
            binding=NonceBinding(
                "exact",
                keyed=False,
                description="the signed GET_MEASUREMENTS carries the 32-byte nonce",
            ),
            roots=(PinnedRoot("NVIDIA Device Identity CA", NVIDIA_DEVICE_ROOT_FINGERPRINT),),
            policy=FormatPolicy(),
            cache=GpuChainCache,
            takes_crls=True,
        ),
        EvidenceFormat(
            name="azure-hcl",
            description="Azure CVM HCL report wrapping an SEV-SNP report",
            detect=_is_hcl,
            parse=_parse_hcl,
            verify=_verify_hcl,
            binding=NonceBinding(
                "zero-padded",
                keyed=True,
                description="the runtime claims' user-data (bound by REPORT_DATA) is the "
                "nonce followed by zero bytes",
            ),
            roots=amd,
            policy=snp_policy,
            cache=SnpChainCache,
            takes_crls=True,
        ),
        EvidenceFormat(
            name="snp",
            description="AMD SEV-SNP ATTESTATION_REPORT (1184 bytes)",
            detect=_is_snp,
            parse=_parse_snp,
            verify=_verify_snp,
            binding=padded,
            roots=amd,
            policy=snp_policy,
            cache=SnpChainCache,
            takes_crls=True,
        ),
        EvidenceFormat(
            name="tdx",
            description="Intel TDX DCAP quote (version 4 or 5)",
            detect=_is_tdx,
            parse=_parse_tdx,
            verify=_verify_tdx,
            binding=padded,
            roots=(PinnedRoot("Intel SGX Root CA", INTEL_SGX_ROOT_FINGERPRINT),),
            policy=FormatPolicy(components=("mrtd",), firmware_hash="mrtd", affirm=tee),
            cache=TdxChainCache,
            takes_crls=True,
            takes_collateral=True,
        ),
    )


EVIDENCE_FORMATS: Final[Mapping[str, EvidenceFormat]] = MappingProxyType(
    {row.name: row for row in _rows()}
)


def format_row(name: str) -> EvidenceFormat:
    """The row of format ``name``; ``MalformedInput`` listing the known ones otherwise."""
    row = EVIDENCE_FORMATS.get(name)
    if row is None:
        raise MalformedInput(
            f"unknown evidence format {name!r} (known: {', '.join(EVIDENCE_FORMATS)})"
        )
    return row


def decode_evidence(data: bytes) -> bytes:
    """``data`` itself, or the bytes it spells if it is hex text (whitespace ignored)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence("evidence must be bytes")
    if len(data) > 2 * _MAX_EVIDENCE:
        raise MalformedEvidence(f"evidence over {_MAX_EVIDENCE} bytes")
    data = bytes(data)
    if data[:1] and not data[:64].translate(None, _HEX + _WHITESPACE):  # looks like hex text
        stripped = data.translate(None, _WHITESPACE)
        if len(stripped) % 2 == 0 and not stripped.translate(None, _HEX):
            return bytes.fromhex(stripped.decode("ascii"))
    if len(data) > _MAX_EVIDENCE:
        raise MalformedEvidence(f"evidence over {_MAX_EVIDENCE} bytes")
    return data


def detect_format(data: bytes) -> str:
    """The name of the first format whose detector accepts ``data`` (hex text is decoded)."""
    raw = decode_evidence(data)
    for row in EVIDENCE_FORMATS.values():
        if row.detect(raw):
            return row.name
    raise MalformedEvidence(
        "evidence format not recognised (known: " + ", ".join(EVIDENCE_FORMATS) + ")"
    )


def check_binding(row: EvidenceFormat, options: VerifyOptions) -> None:
    """Refuse (``MalformedInput``: a usage error) a nonce or key the row cannot bind, and CRLs
    or TDX collateral given to a format that cannot use them."""
    if options.crls and not row.takes_crls:
        raise MalformedInput(f"{row.name} evidence is not checked against CRLs: do not give one")
    if options.collateral is not None and not row.takes_collateral:
        raise MalformedInput(f"{row.name} evidence takes no Intel TDX collateral")
    if row.binding is None and (options.nonce is not None or options.bound_key is not None):
        raise MalformedInput(f"{row.name} evidence cannot bind a nonce: do not give one")
    if options.bound_key is not None:
        if options.nonce is None:
            raise MalformedInput("a bound key is checked together with a nonce: give both")
        if row.binding is not None and not row.binding.keyed:
            raise MalformedInput(
                f"{row.name} evidence binds the nonce {row.binding.rule}ly: no key can be bound"
            )


def verify_evidence(
    data: bytes,
    options: VerifyOptions,
    *,
    format: str = "auto",
    checks: CheckLog | None = None,
) -> EvidenceClaims:
    """Decode hex text if need be, pick the row (``"auto"`` detects it), verify, and check
    the nonce by the row's binding when one is given.

    ``checks`` (optional) receives every named check as it runs, so a caller can show the
    checks that passed before a failure. The returned claims carry them too.
    """
    log = CheckLog() if checks is None else checks
    raw = decode_evidence(data)
    row = format_row(detect_format(raw) if format == "auto" else format)
    check_binding(row, options)
    claims = row.verify(raw, options, log)
    if options.nonce is None:
        log.skip("nonce", "no nonce given: freshness not checked")
    elif row.binding is not None:
        with log.step("nonce") as step:
            step.detail = row.binding.check(claims.report_data, options.nonce, options.bound_key)
    return claims.with_checks(log)


def parse_evidence(data: bytes, *, format: str = "auto") -> tuple[str, dict[str, Any]]:
    """The format and the parsed structure of ``data``, JSON-ready, NOT verified."""
    raw = decode_evidence(data)
    row = format_row(detect_format(raw) if format == "auto" else format)
    parsed = row.parse(raw)
    try:
        ready = json_ready(parsed)
        json.dumps(ready, allow_nan=False)  # NaN and infinities have no JSON form either
    except (TypeError, ValueError) as exc:
        raise MalformedEvidence(f"{row.name} evidence holds a value with no JSON form") from exc
    return row.name, ready
