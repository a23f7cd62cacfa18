"""AMD SEV-SNP ATTESTATION_REPORT: the 1184-byte structure, parsed field by field.

Layout (SEV-SNP Firmware ABI specification, AMD publication 56860, "ATTESTATION_REPORT
Structure"; all integers little-endian):

====== ==== ===================================================================
offset size field
====== ==== ===================================================================
0x000  4    VERSION (2; 3 adds CPUID_*; 5 adds LAUNCH/CURRENT_MIT_VECTOR)
0x004  4    GUEST_SVN
0x008  8    POLICY (guest policy bits, see :class:`SnpPolicy`)
0x010  16   FAMILY_ID
0x020  16   IMAGE_ID
0x030  4    VMPL
0x034  4    SIGNATURE_ALGO (1 = ECDSA P-384 with SHA-384)
0x038  8    CURRENT_TCB (TCB_VERSION, see :class:`TcbVersion`)
0x040  8    PLATFORM_INFO (see :class:`SnpPlatformInfo`)
0x048  4    flags: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY
            (0 VCEK, 1 VLEK, 7 none)
0x04C  4    reserved
0x050  64   REPORT_DATA
0x090  48   MEASUREMENT
0x0C0  32   HOST_DATA
0x0E0  48   ID_KEY_DIGEST
0x110  48   AUTHOR_KEY_DIGEST
0x140  32   REPORT_ID
0x160  32   REPORT_ID_MA
0x180  8    REPORTED_TCB (the TCB the VCEK was derived for)
0x188  1    CPUID_FAM_ID (version ≥ 3; reserved before)
0x189  1    CPUID_MOD_ID (version ≥ 3)
0x18A  1    CPUID_STEP (version ≥ 3)
0x18B  21   reserved
0x1A0  64   CHIP_ID (zero when the platform masks it; Turin uses the first 8 bytes)
0x1E0  8    COMMITTED_TCB
0x1E8  4    CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR, reserved
0x1EC  4    COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR, reserved
0x1F0  8    LAUNCH_TCB
0x1F8  8    LAUNCH_MIT_VECTOR (version ≥ 5; reserved before)
0x200  8    CURRENT_MIT_VECTOR (version ≥ 5; reserved before)
0x208  152  reserved
0x2A0  512  SIGNATURE: R (72 bytes), S (72 bytes), both little-endian, then 368 reserved
====== ==== ===================================================================

The signature covers bytes 0x000–0x29F. A P-384 scalar is 48 bytes, so the top 24 bytes of R
and S and the 368 bytes after them must be zero.

Reserved fields must be zero (reserved bytes of the table above, including those a version
does not define yet; flags bits 31:5; GUEST_POLICY bits 63:26; PLATFORM_INFO bit 6 and bits
63:8) and GUEST_POLICY bit 17 must be one, as the ABI specification requires: a report with
anything else there was written by firmware this parser does not understand (a new field, a
new policy bit) and is refused rather than read as if the bits were absent.

TCB_VERSION differs by product. Milan and Genoa: byte 0 BOOT_LOADER, byte 1 TEE, bytes 2–5
reserved, byte 6 SNP, byte 7 MICROCODE. Turin: byte 0 FMC, byte 1 BOOT_LOADER, byte 2 TEE,
byte 3 SNP, bytes 4–6 reserved, byte 7 MICROCODE. A version-3+ report names its CPU family in
CPUID_FAM_ID (0x19 Milan/Genoa, 0x1A Turin), which selects the layout here; a version-2 report
comes from Milan or Genoa firmware. The verifier re-decodes with the product of the
certificate chain and checks the two agree.

No library parses this structure in Python, hence this module; it is pure (bytes in, a frozen
value out) and raises :class:`~ironroot.errors.MalformedEvidence` on any size or version problem.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, replace
from typing import Any, Final

from ironroot.errors import MalformedEvidence

__all__ = [
    "SNP_REPORT_SIZE",
    "SNP_SIGNED_SIZE",
    "SnpPlatformInfo",
    "SnpPolicy",
    "SnpProduct",
    "SnpReport",
    "SnpSigningKey",
    "TcbVersion",
    "parse_snp_report",
]

SNP_REPORT_SIZE: Final = 0x4A0
SNP_SIGNED_SIZE: Final = 0x2A0
_SIG_COMPONENT: Final = 72
_P384_SCALAR: Final = 48
_SUPPORTED_VERSIONS: Final = frozenset({2, 3, 4, 5})
_ECDSA_P384_SHA384: Final = 1
_FAMILY_MILAN_GENOA: Final = 0x19
_FAMILY_TURIN: Final = 0x1A
_POLICY_MUST_BE_ONE: Final = 1 << 17
_POLICY_DEFINED: Final = (1 << 26) - 1
_FLAGS_DEFINED: Final = (1 << 5) - 1
_PLATFORM_DEFINED: Final = 0xBF  # bits 0-5 and 7


class SnpProduct(enum.Enum):
    """An AMD EPYC product line with its own ARK, ASK and ASVK."""

    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"

    @property
    def turin_tcb(self) -> bool:
        """Whether TCB_VERSION uses the Turin layout (with an FMC component)."""
        return self is SnpProduct.TURIN

    @classmethod
    def from_cpuid(cls, family: int, model: int) -> SnpProduct | None:
        """The product of a CPUID family/model pair, or ``None`` if not one of the three."""
        if family == _FAMILY_TURIN:
            return cls.TURIN
        if family == _FAMILY_MILAN_GENOA:
            if model <= 0x0F:
                return cls.MILAN
            if 0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF:
                return cls.GENOA
        return None


class SnpSigningKey(enum.Enum):
    """Which key signed the report (flags bits 4:2)."""

    VCEK = 0
    VLEK = 1
    NONE = 7


@dataclass(frozen=True, slots=True)
class TcbVersion:
    """A decoded TCB_VERSION; ``fmc`` is ``None`` outside Turin."""

    raw: int
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None

    @classmethod
    def decode(cls, raw: int, *, turin: bool) -> TcbVersion:
        b = raw.to_bytes(8, "little")
        if turin:
            return cls(raw, bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
        return cls(raw, bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7], fmc=None)

    def components(self) -> dict[str, int]:
        """Component name → SVN (``fmc`` only on Turin)."""
        out = {
            "bootloader": self.bootloader,
            "tee": self.tee,
            "snp": self.snp,
            "microcode": self.microcode,
        }
        if self.fmc is not None:
            out["fmc"] = self.fmc
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"raw": f"{self.raw:016x}", **self.components()}


def _bit(value: int, bit: int) -> bool:
    return bool((value >> bit) & 1)


@dataclass(frozen=True, slots=True)
class SnpPolicy:
    """The guest policy (ABI spec "GUEST_POLICY" bits)."""

    raw: int
    abi_minor: int
    abi_major: int
    smt: bool
    migrate_ma: bool
    debug: bool
    single_socket: bool
    cxl_allow: bool
    mem_aes_256_xts: bool
    rapl_dis: bool
    ciphertext_hiding: bool
    page_swap_disable: bool

    @classmethod
    def decode(cls, raw: int) -> SnpPolicy:
        return cls(
            raw=raw,
            abi_minor=raw & 0xFF,
            abi_major=(raw >> 8) & 0xFF,
            smt=_bit(raw, 16),
            migrate_ma=_bit(raw, 18),
            debug=_bit(raw, 19),
            single_socket=_bit(raw, 20),
            cxl_allow=_bit(raw, 21),
            mem_aes_256_xts=_bit(raw, 22),
            rapl_dis=_bit(raw, 23),
            ciphertext_hiding=_bit(raw, 24),
            page_swap_disable=_bit(raw, 25),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw": f"{self.raw:016x}",
            "abi_minor": self.abi_minor,
            "abi_major": self.abi_major,
            "smt": self.smt,
            "migrate_ma": self.migrate_ma,
            "debug": self.debug,
            "single_socket": self.single_socket,
            "cxl_allow": self.cxl_allow,
            "mem_aes_256_xts": self.mem_aes_256_xts,
            "rapl_dis": self.rapl_dis,
            "ciphertext_hiding": self.ciphertext_hiding,
            "page_swap_disable": self.page_swap_disable,
        }


@dataclass(frozen=True, slots=True)
class SnpPlatformInfo:
    """PLATFORM_INFO bits: the platform's configuration when the report was made."""

    raw: int
    smt_enabled: bool
    tsme_enabled: bool
    ecc_enabled: bool
    rapl_disabled: bool
    ciphertext_hiding_enabled: bool
    alias_check_complete: bool
    tio_enabled: bool

    @classmethod
    def decode(cls, raw: int) -> SnpPlatformInfo:
        return cls(
            raw=raw,
            smt_enabled=_bit(raw, 0),
            tsme_enabled=_bit(raw, 1),
            ecc_enabled=_bit(raw, 2),
            rapl_disabled=_bit(raw, 3),
            ciphertext_hiding_enabled=_bit(raw, 4),
            alias_check_complete=_bit(raw, 5),
            tio_enabled=_bit(raw, 7),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "raw": f"{self.raw:016x}",
            "smt_enabled": self.smt_enabled,
            "tsme_enabled": self.tsme_enabled,
            "ecc_enabled": self.ecc_enabled,
            "rapl_disabled": self.rapl_disabled,
            "ciphertext_hiding_enabled": self.ciphertext_hiding_enabled,
            "alias_check_complete": self.alias_check_complete,
            "tio_enabled": self.tio_enabled,
        }


@dataclass(frozen=True, slots=True)
class SnpReport:
    """Every field of one ATTESTATION_REPORT. ``data`` keeps the exact 1184 bytes."""

    data: bytes
    version: int
    guest_svn: int
    policy: SnpPolicy
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: TcbVersion
    platform_info: SnpPlatformInfo
    author_key_en: bool
    mask_chip_key: bool
    signing_key: SnpSigningKey | int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: TcbVersion
    cpuid_fam_id: int | None
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: TcbVersion
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: TcbVersion
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: bytes
    signature_s: bytes

    @property
    def signed_bytes(self) -> bytes:
        """Bytes 0x000–0x29F: what the signature covers."""
        return self.data[:SNP_SIGNED_SIZE]

    @property
    def product_hint(self) -> SnpProduct | None:
        """The product named by CPUID_FAM_ID/CPUID_MOD_ID (version ≥ 3), else ``None``."""
        if self.cpuid_fam_id is None or self.cpuid_mod_id is None:
            return None
        return SnpProduct.from_cpuid(self.cpuid_fam_id, self.cpuid_mod_id)

    @property
    def chip_id_masked(self) -> bool:
        """True when CHIP_ID is all zero (the platform's MASK_CHIP_ID setting)."""
        return not any(self.chip_id)

    def cose_signature(self) -> bytes:
        """The signature as COSE ECDSA r‖s: two 48-byte big-endian scalars.

        Raises ``MalformedEvidence`` if the unused high bytes of R or S are not zero (the
        verifier maps that onto a bad signature).
        """
        r, s = self.signature_r, self.signature_s
        if any(r[_P384_SCALAR:]) or any(s[_P384_SCALAR:]):
            raise MalformedEvidence("signature R or S is longer than a P-384 scalar")
        return r[:_P384_SCALAR][::-1] + s[:_P384_SCALAR][::-1]

    def with_tcb_layout(self, product: SnpProduct) -> SnpReport:
        """This report with its four TCB fields decoded in ``product``'s layout."""
        turin = product.turin_tcb

        def redo(t: TcbVersion) -> TcbVersion:
            return TcbVersion.decode(t.raw, turin=turin)

        return replace(
            self,
            current_tcb=redo(self.current_tcb),
            reported_tcb=redo(self.reported_tcb),
            committed_tcb=redo(self.committed_tcb),
            launch_tcb=redo(self.launch_tcb),
        )

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (bytes as lower-case hex)."""
        signing = self.signing_key
        return {
            "version": self.version,
            "guest_svn": self.guest_svn,
            "policy": self.policy.to_dict(),
            "family_id": self.family_id.hex(),
            "image_id": self.image_id.hex(),
            "vmpl": self.vmpl,
            "signature_algo": self.signature_algo,
            "current_tcb": self.current_tcb.to_dict(),
            "platform_info": self.platform_info.to_dict(),
            "author_key_en": self.author_key_en,
            "mask_chip_key": self.mask_chip_key,
            "signing_key": signing.name.lower() if isinstance(signing, SnpSigningKey) else signing,
            "report_data": self.report_data.hex(),
            "measurement": self.measurement.hex(),
            "host_data": self.host_data.hex(),
            "id_key_digest": self.id_key_digest.hex(),
            "author_key_digest": self.author_key_digest.hex(),
            "report_id": self.report_id.hex(),
            "report_id_ma": self.report_id_ma.hex(),
            "reported_tcb": self.reported_tcb.to_dict(),
            "cpuid_fam_id": self.cpuid_fam_id,
            "cpuid_mod_id": self.cpuid_mod_id,
            "cpuid_step": self.cpuid_step,
            "chip_id": self.chip_id.hex(),
            "committed_tcb": self.committed_tcb.to_dict(),
            "current_version": f"{self.current_major}.{self.current_minor}.{self.current_build}",
            "current_build": self.current_build,
            "current_minor": self.current_minor,
            "current_major": self.current_major,
            "committed_version": (
                f"{self.committed_major}.{self.committed_minor}.{self.committed_build}"
            ),
            "committed_build": self.committed_build,
            "committed_minor": self.committed_minor,
            "committed_major": self.committed_major,
            "launch_tcb": self.launch_tcb.to_dict(),
            "launch_mit_vector": (
                None if self.launch_mit_vector is None else f"{self.launch_mit_vector:016x}"
            ),
            "current_mit_vector": (
                None if self.current_mit_vector is None else f"{self.current_mit_vector:016x}"
            ),
            "signature_r": self.signature_r.hex(),
            "signature_s": self.signature_s.hex(),
        }


_U32: Final = struct.Struct("<I")
_U64: Final = struct.Struct("<Q")


def _u32(data: bytes, offset: int) -> int:
    return int(_U32.unpack_from(data, offset)[0])


def _u64(data: bytes, offset: int) -> int:
    return int(_U64.unpack_from(data, offset)[0])


def _reserved_ranges(version: int) -> tuple[tuple[int, int], ...]:
    """The reserved byte ranges [start, end) of a report of ``version``."""
    cpuid_end = 0x18B if version >= 3 else 0x188
    mit_end = 0x208 if version >= 5 else 0x1F8
    return ((0x04C, 0x050), (cpuid_end, 0x1A0), (0x1EB, 0x1EC), (0x1EF, 0x1F0), (mit_end, 0x2A0))


def _check_reserved(data: bytes, version: int) -> None:
    for start, end in _reserved_ranges(version):
        if any(data[start:end]):
            raise MalformedEvidence(
                f"reserved bytes {start:#05x}-{end - 1:#05x} of the SNP report are not zero"
            )
    policy = _u64(data, 0x008)
    if not policy & _POLICY_MUST_BE_ONE:
        raise MalformedEvidence("SNP guest policy bit 17 is zero (reserved, must be one)")
    if policy & ~_POLICY_DEFINED:
        raise MalformedEvidence(f"SNP guest policy has reserved bits set: {policy:#018x}")
    flags = _u32(data, 0x048)
    if flags & ~_FLAGS_DEFINED:
        raise MalformedEvidence(f"SNP report flags (0x048) have reserved bits set: {flags:#010x}")
    platform = _u64(data, 0x040)
    if platform & ~_PLATFORM_DEFINED:
        raise MalformedEvidence(f"SNP PLATFORM_INFO has reserved bits set: {platform:#018x}")


def parse_snp_report(data: bytes) -> SnpReport:
    """Parse one 1184-byte ATTESTATION_REPORT (no signature check: see the verifier).

    Raises ``MalformedEvidence`` for a wrong size, an unsupported version or signature
    algorithm, non-zero reserved signature bytes, or reserved fields that are not as the
    ABI specification requires (see the module documentation).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEvidence("an SNP report must be bytes")
    data = bytes(data)
    if len(data) != SNP_REPORT_SIZE:
        raise MalformedEvidence(
            f"an SNP report is {SNP_REPORT_SIZE} bytes, this one is {len(data)}"
        )
    version = _u32(data, 0x000)
    if version not in _SUPPORTED_VERSIONS:
        raise MalformedEvidence(f"unsupported SNP report version {version}")
    signature_algo = _u32(data, 0x034)
    if signature_algo != _ECDSA_P384_SHA384:
        raise MalformedEvidence(f"unsupported SNP signature algorithm {signature_algo}")
    sig = data[SNP_SIGNED_SIZE:]
    if any(sig[2 * _SIG_COMPONENT :]):
        raise MalformedEvidence("reserved bytes after the SNP signature are not zero")
    _check_reserved(data, version)
    flags = _u32(data, 0x048)
    signing_raw = (flags >> 2) & 0b111
    try:
        signing_key: SnpSigningKey | int = SnpSigningKey(signing_raw)
    except ValueError:
        signing_key = signing_raw
    has_cpuid = version >= 3
    fam = data[0x188] if has_cpuid else None
    mod = data[0x189] if has_cpuid else None
    turin = fam == _FAMILY_TURIN

    def tcb(offset: int) -> TcbVersion:
        return TcbVersion.decode(_u64(data, offset), turin=turin)

    has_mit = version >= 5
    return SnpReport(
        data=data,
        version=version,
        guest_svn=_u32(data, 0x004),
        policy=SnpPolicy.decode(_u64(data, 0x008)),
        family_id=data[0x010:0x020],
        image_id=data[0x020:0x030],
        vmpl=_u32(data, 0x030),
        signature_algo=signature_algo,
        current_tcb=tcb(0x038),
        platform_info=SnpPlatformInfo.decode(_u64(data, 0x040)),
        author_key_en=_bit(flags, 0),
        mask_chip_key=_bit(flags, 1),
        signing_key=signing_key,
        report_data=data[0x050:0x090],
        measurement=data[0x090:0x0C0],
        host_data=data[0x0C0:0x0E0],
        id_key_digest=data[0x0E0:0x110],
        author_key_digest=data[0x110:0x140],
        report_id=data[0x140:0x160],
        report_id_ma=data[0x160:0x180],
        reported_tcb=tcb(0x180),
        cpuid_fam_id=fam,
        cpuid_mod_id=mod,
        cpuid_step=data[0x18A] if has_cpuid else None,
        chip_id=data[0x1A0:0x1E0],
        committed_tcb=tcb(0x1E0),
        current_build=data[0x1E8],
        current_minor=data[0x1E9],
        current_major=data[0x1EA],
        committed_build=data[0x1EC],
        committed_minor=data[0x1ED],
        committed_major=data[0x1EE],
        launch_tcb=tcb(0x1F0),
        launch_mit_vector=_u64(data, 0x1F8) if has_mit else None,
        current_mit_vector=_u64(data, 0x200) if has_mit else None,
        signature_r=sig[:_SIG_COMPONENT],
        signature_s=sig[_SIG_COMPONENT : 2 * _SIG_COMPONENT],
    )
