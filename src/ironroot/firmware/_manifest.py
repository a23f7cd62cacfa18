"""The firmware bundle byte layout (modelled on Caliptra 2.0's image manifest): parse and encode.

A bundle is ``manifest ‖ component 0 ‖ component 1 ‖ …``. The manifest is a fixed-size prefix,
preamble and header followed by ``toc_len`` table-of-contents entries; every integer is
little-endian and every field has a fixed size, so the layout is a handful of ``struct``
formats (the offsets table in ``docs/firmware.md`` is generated from :data:`LAYOUT`).

The field order and sizes follow Caliptra's ``ImageManifest`` (``image/types/src/lib.rs`` in
chipsalliance/caliptra-sw): a preamble with the ECC and PQC key descriptors (SHA-384 hashes of
up to 4 ECC P-384 and 32 PQC keys), the active key indices and keys, vendor signatures, owner
keys and owner signatures; a header with the revision, key indices, flags, TOC length, PL0
PAUSER, TOC digest, SVN and the vendor and owner validity dates (ASN.1 GeneralizedTime, 15
bytes); and TOC entries with id, type, commit revision, version, load address, entry point,
offset, size and SHA-384 digest. Where Ironroot differs from Caliptra: its own marker
(``IRMN``) and a version field in place of Caliptra's ``CMAN``, any number of TOC entries (at
least FMC and runtime), up to 32 ML-DSA-87 keys, keys and signatures stored as big-endian
byte strings (Caliptra stores 32-bit words), and validity dates that bound the manifest itself.

Parsing is strict: reserved bytes and padding must be zero, counts and sizes are bounded by
:class:`FirmwareLimits`, components are contiguous after the manifest and fill the bundle
exactly, and ``encode(parse(b)) == b`` for every accepted ``b``.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ironroot.crypto import LMS_PARAMETER_SETS, Algorithm, ecdsa_low_s
from ironroot.errors import ConfigError, LimitExceeded, MalformedFirmware

__all__ = [
    "DEFAULT_LIMITS",
    "ECC_KEY_SIZE",
    "ECC_SIGNATURE_SIZE",
    "FMC_ID",
    "LAYOUT",
    "MANIFEST_MARKER",
    "MANIFEST_VERSION",
    "MAX_ECC_KEYS",
    "MAX_PQC_KEYS",
    "MAX_SVN",
    "PQC_KEY_SLOT_SIZE",
    "PQC_SIGNATURE_SLOT_SIZE",
    "RUNTIME_ID",
    "FirmwareBundle",
    "FirmwareLimits",
    "KeyDescriptor",
    "Manifest",
    "ManifestHeader",
    "PqcKeyType",
    "Preamble",
    "TocEntry",
    "UnsignedBundle",
    "field_offsets",
]

MANIFEST_MARKER: Final = 0x4E4D5249  # b"IRMN" read as a little-endian u32
MANIFEST_VERSION: Final = 1
KEY_DESCRIPTOR_VERSION: Final = 1
MAX_ECC_KEYS: Final = 4
MAX_PQC_KEYS: Final = 32
MAX_SVN: Final = 128  # Caliptra's SVN fuse is a 128-bit one-hot counter
FMC_ID: Final = 1
RUNTIME_ID: Final = 2
TOC_TYPE_EXECUTABLE: Final = 1
FLAG_PL0_PAUSER_VALID: Final = 0x1
_KNOWN_FLAGS: Final = FLAG_PL0_PAUSER_VALID

HASH_SIZE: Final = 48  # SHA-384
ECC_KEY_SIZE: Final = 96  # P-384 x ‖ y, big-endian
ECC_SIGNATURE_SIZE: Final = 96  # r ‖ s, big-endian
MLDSA87_KEY_SIZE: Final = 2592
MLDSA87_SIGNATURE_SIZE: Final = 4627
LMS_KEY_SIZE: Final = 48  # lms type ‖ lmots type ‖ I ‖ T[1] (N = 24), no HSS level count
PQC_KEY_SLOT_SIZE: Final = MLDSA87_KEY_SIZE
PQC_SIGNATURE_SLOT_SIZE: Final = 4628  # Caliptra's word-aligned ML-DSA-87 signature slot
REVISION_SIZE: Final = 20  # a commit hash
GENERALIZED_TIME_SIZE: Final = 15  # YYYYMMDDHHMMSSZ


class PqcKeyType(enum.IntEnum):
    """The post-quantum vendor algorithm of a product (Caliptra's ``FwVerificationPqcKeyType``)."""

    MLDSA = 1
    LMS = 3

    @classmethod
    def parse(cls, value: object) -> PqcKeyType:
        """From the byte value, the enum itself, or a CLI name (``mldsa``, ``lms``)."""
        if isinstance(value, PqcKeyType):
            return value
        if isinstance(value, str):
            named = {"mldsa": cls.MLDSA, "ml-dsa-87": cls.MLDSA, "lms": cls.LMS}.get(value.lower())
            if named is None:
                raise ConfigError(f"unknown PQC key type {value!r}: use mldsa or lms")
            return named
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                raise MalformedFirmware(f"unknown PQC key type {value}") from None
        raise ConfigError("PQC key type must be mldsa or lms")


@dataclass(frozen=True, slots=True)
class FirmwareLimits:
    """Hard limits for parsing bundles, and the LMS parameter sets a verifier accepts.

    Caliptra fixes LMS to ``SHA256-N24-H15-W4``; tests may admit the faster-to-generate
    ``SHA256-N24-H5-W4`` (same hash and Winternitz width, a shorter tree) explicitly.
    """

    max_components: int = 16
    max_component_bytes: int = 32 * 1024 * 1024
    max_bundle_bytes: int = 128 * 1024 * 1024
    lms_parameter_sets: frozenset[str] = field(
        default_factory=lambda: frozenset({"SHA256-N24-H15-W4"})
    )

    def __post_init__(self) -> None:
        for name in ("max_components", "max_component_bytes", "max_bundle_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"limit {name} must be a positive integer")
        if self.max_components < 2:
            raise ConfigError("a bundle has at least two components (FMC and runtime)")
        for name in self.lms_parameter_sets:
            params = LMS_PARAMETER_SETS.get(name)
            if params is None or params.n != 24 or params.m != 24:
                raise ConfigError(f"LMS parameter set {name!r} is not an N24 set")
            if params.signature_size - 4 > PQC_SIGNATURE_SLOT_SIZE:  # the W1 sets
                raise ConfigError(
                    f"LMS parameter set {name!r} signs with {params.signature_size - 4} bytes:"
                    f" more than the manifest's {PQC_SIGNATURE_SLOT_SIZE}-byte signature slot"
                )


DEFAULT_LIMITS: Final = FirmwareLimits()

# --- struct formats (all little-endian, no padding) -------------------------------------------

_PREFIX: Final = struct.Struct("<IIHBB")
_DESCRIPTOR_HEAD: Final = struct.Struct("<HBB")
_ECC_DESCRIPTOR_SIZE: Final = _DESCRIPTOR_HEAD.size + MAX_ECC_KEYS * HASH_SIZE
_PQC_DESCRIPTOR_SIZE: Final = _DESCRIPTOR_HEAD.size + MAX_PQC_KEYS * HASH_SIZE
_PREAMBLE: Final = struct.Struct(
    f"<{_ECC_DESCRIPTOR_SIZE}s{_PQC_DESCRIPTOR_SIZE}s"
    f"I{ECC_KEY_SIZE}sI{PQC_KEY_SLOT_SIZE}s"
    f"{ECC_SIGNATURE_SIZE}s{PQC_SIGNATURE_SLOT_SIZE}s"
    f"{ECC_KEY_SIZE}s{PQC_KEY_SLOT_SIZE}s"
    f"{ECC_SIGNATURE_SIZE}s{PQC_SIGNATURE_SLOT_SIZE}s8s"
)
_HEADER: Final = struct.Struct(
    f"<QIIIII{HASH_SIZE}sI"
    f"{GENERALIZED_TIME_SIZE}s{GENERALIZED_TIME_SIZE}s10s"
    f"{GENERALIZED_TIME_SIZE}s{GENERALIZED_TIME_SIZE}s10s"
)
_TOC: Final = struct.Struct(f"<II{REVISION_SIZE}sI8sIIII{HASH_SIZE}s")

PREAMBLE_OFFSET: Final = _PREFIX.size
HEADER_OFFSET: Final = PREAMBLE_OFFSET + _PREAMBLE.size
TOC_OFFSET: Final = HEADER_OFFSET + _HEADER.size
HEADER_SIZE: Final = _HEADER.size
TOC_ENTRY_SIZE: Final = _TOC.size
DESCRIPTORS_SIZE: Final = _ECC_DESCRIPTOR_SIZE + _PQC_DESCRIPTOR_SIZE
OWNER_KEYS_OFFSET: Final = (
    PREAMBLE_OFFSET
    + DESCRIPTORS_SIZE
    + 4
    + ECC_KEY_SIZE
    + 4
    + PQC_KEY_SLOT_SIZE
    + ECC_SIGNATURE_SIZE
    + PQC_SIGNATURE_SLOT_SIZE
)
OWNER_KEYS_SIZE: Final = ECC_KEY_SIZE + PQC_KEY_SLOT_SIZE

# (section, field, size, meaning) in byte order: the documented layout, checked against the
# struct formats at import time so the table cannot drift from the code.
LAYOUT: Final[tuple[tuple[str, str, int, str], ...]] = (
    ("manifest", "marker", 4, "u32 0x4E4D5249 (ASCII `IRMN`)"),
    ("manifest", "size", 4, "u32 manifest bytes: fixed part + toc_len × 104"),
    ("manifest", "version", 2, "u16 manifest version (1)"),
    ("manifest", "pqc_key_type", 1, "u8 1 = ML-DSA-87, 3 = LMS SHA256-N24-H15-W4"),
    ("manifest", "reserved", 1, "zero"),
    ("preamble", "ecc_descriptor.version", 2, "u16 key descriptor version (1)"),
    ("preamble", "ecc_descriptor.reserved", 1, "zero"),
    ("preamble", "ecc_descriptor.key_hash_count", 1, "u8 1–4"),
    ("preamble", "ecc_descriptor.key_hashes", 4 * HASH_SIZE, "4 × SHA-384 of x ‖ y; unused zero"),
    ("preamble", "pqc_descriptor.version", 2, "u16 key descriptor version (1)"),
    ("preamble", "pqc_descriptor.key_type", 1, "u8 = pqc_key_type"),
    ("preamble", "pqc_descriptor.key_hash_count", 1, "u8 1–32"),
    ("preamble", "pqc_descriptor.key_hashes", 32 * HASH_SIZE, "32 × SHA-384 of the PQC key"),
    ("preamble", "vendor_ecc_key_index", 4, "u32 index of the active ECC key"),
    ("preamble", "vendor_ecc_key", ECC_KEY_SIZE, "P-384 x ‖ y, big-endian"),
    ("preamble", "vendor_pqc_key_index", 4, "u32 index of the active PQC key"),
    ("preamble", "vendor_pqc_key", PQC_KEY_SLOT_SIZE, "ML-DSA-87 key, or 48-byte LMS key + zeros"),
    ("preamble", "vendor_ecc_signature", ECC_SIGNATURE_SIZE, "ECDSA P-384 r ‖ s over the header"),
    ("preamble", "vendor_pqc_signature", PQC_SIGNATURE_SLOT_SIZE, "ML-DSA-87 or LMS + zeros"),
    ("preamble", "owner_ecc_key", ECC_KEY_SIZE, "P-384 x ‖ y, or zeros (no owner)"),
    ("preamble", "owner_pqc_key", PQC_KEY_SLOT_SIZE, "same type as the vendor PQC key, or zeros"),
    ("preamble", "owner_ecc_signature", ECC_SIGNATURE_SIZE, "over the header, or zeros"),
    ("preamble", "owner_pqc_signature", PQC_SIGNATURE_SLOT_SIZE, "over the header, or zeros"),
    ("preamble", "reserved", 8, "zero"),
    ("header", "revision", 8, "u64 manifest revision"),
    ("header", "vendor_ecc_key_index", 4, "u32 = preamble index (signed copy)"),
    ("header", "vendor_pqc_key_index", 4, "u32 = preamble index (signed copy)"),
    ("header", "flags", 4, "u32 bit 0: pl0_pauser is valid; other bits zero"),
    ("header", "toc_len", 4, "u32 TOC entries (2–16)"),
    ("header", "pl0_pauser", 4, "u32 the PAUSER with PL0 privileges"),
    ("header", "toc_digest", HASH_SIZE, "SHA-384 of all TOC entries"),
    ("header", "svn", 4, "u32 security version number, 0–128"),
    ("header", "vendor_not_before", 15, "GeneralizedTime YYYYMMDDHHMMSSZ"),
    ("header", "vendor_not_after", 15, "GeneralizedTime YYYYMMDDHHMMSSZ"),
    ("header", "vendor_reserved", 10, "zero"),
    ("header", "owner_not_before", 15, "GeneralizedTime, or zeros"),
    ("header", "owner_not_after", 15, "GeneralizedTime, or zeros"),
    ("header", "owner_reserved", 10, "zero"),
    ("toc entry", "id", 4, "u32 component id: 1 FMC, 2 runtime, others ≥ 3"),
    ("toc entry", "type", 4, "u32 1 = executable"),
    ("toc entry", "revision", REVISION_SIZE, "commit revision"),
    ("toc entry", "version", 4, "u32 firmware release number"),
    ("toc entry", "reserved", 8, "zero"),
    ("toc entry", "load_address", 4, "u32"),
    ("toc entry", "entry_point", 4, "u32 within [load_address, load_address + size)"),
    ("toc entry", "offset", 4, "u32 offset of the component in the bundle"),
    ("toc entry", "size", 4, "u32 component bytes (≥ 1)"),
    ("toc entry", "digest", HASH_SIZE, "SHA-384 of the component"),
)


def _check_layout() -> None:
    sizes: dict[str, int] = {}
    for section, _name, size, _meaning in LAYOUT:
        sizes[section] = sizes.get(section, 0) + size
    expected = {
        "manifest": _PREFIX.size,
        "preamble": _PREAMBLE.size,
        "header": _HEADER.size,
        "toc entry": _TOC.size,
    }
    if sizes != expected:  # pragma: no cover - a programming error, caught at import
        raise RuntimeError(f"LAYOUT table {sizes} disagrees with the struct formats {expected}")


_check_layout()


def field_offsets(toc_len: int = 2) -> dict[str, tuple[int, int]]:
    """``{"section.field": (offset, size)}`` for a manifest with ``toc_len`` TOC entries.

    TOC entry fields are named ``toc[i].field``. Generated from :data:`LAYOUT`, so the
    documentation and the tests use the same numbers as the parser.
    """
    out: dict[str, tuple[int, int]] = {}
    offset = 0
    fixed = [row for row in LAYOUT if row[0] != "toc entry"]
    entry = [row for row in LAYOUT if row[0] == "toc entry"]
    for section, name, size, _meaning in fixed:
        out[f"{section}.{name}"] = (offset, size)
        offset += size
    for index in range(toc_len):
        for _section, name, size, _meaning in entry:
            out[f"toc[{index}].{name}"] = (offset, size)
            offset += size
    return out


# --- small field codecs -----------------------------------------------------------------------


def _is_zero(data: bytes) -> bool:
    return data == bytes(len(data))  # a memcmp, not a Python-level scan


def encode_time(value: dt.datetime) -> bytes:
    """A timezone-aware datetime as 15 ASCII bytes of GeneralizedTime (whole seconds, UTC)."""
    if value.tzinfo is None:
        raise ConfigError("validity dates must be timezone-aware")
    try:  # 9999-12-31T23:00-01:00 is in year 10000 in UTC, which datetime cannot hold
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise ConfigError("validity year out of range") from None
    if not 1 <= utc.year <= 9999:
        raise ConfigError("validity year out of range")
    # four year digits always: strftime's %Y writes year 999 as "999" (glibc), one byte short
    return f"{utc.year:04d}{utc.strftime('%m%d%H%M%S')}Z".encode("ascii")


def _decode_time(data: bytes, what: str) -> dt.datetime:
    if len(data) != GENERALIZED_TIME_SIZE or data[-1:] != b"Z" or not data[:-1].isdigit():
        raise MalformedFirmware(f"{what} is not a GeneralizedTime YYYYMMDDHHMMSSZ")
    try:  # fixed positions: strptime is ten times slower and this is on the boot path
        fields = (data[0:4], data[4:6], data[6:8], data[8:10], data[10:12], data[12:14])
        year, month, day, hour, minute, second = (int(f) for f in fields)
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as exc:
        raise MalformedFirmware(f"{what} is not a valid date: {exc}") from exc


def _optional_time(data: bytes, what: str) -> dt.datetime | None:
    return None if _is_zero(data) else _decode_time(data, what)


def lms_signature_size(lms_key: bytes) -> int:
    """Bytes of an LMS signature (without the HSS level count) for a 48-byte LMS key."""
    lms_type = int.from_bytes(lms_key[0:4], "big")
    lmots_type = int.from_bytes(lms_key[4:8], "big")
    for params in LMS_PARAMETER_SETS.values():
        if (params.lms_type, params.lmots_type) == (lms_type, lmots_type) and params.n == 24:
            size = params.signature_size - 4
            if size > PQC_SIGNATURE_SLOT_SIZE:  # it could only be stored cut short
                raise MalformedFirmware(
                    f"LMS key's signatures ({size} bytes) do not fit the PQC signature slot"
                )
            return size
    raise MalformedFirmware("LMS key has an unsupported parameter set (N24 required)")


# --- parsed values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyDescriptor:
    """A key descriptor: the SHA-384 hashes of the keys a product may use, in index order."""

    version: int
    key_type: int  # 0 for the ECC descriptor (a reserved byte there), PqcKeyType for PQC
    key_hashes: tuple[bytes, ...]

    def encode(self, slots: int) -> bytes:
        hashes = b"".join(self.key_hashes).ljust(slots * HASH_SIZE, b"\0")
        return _DESCRIPTOR_HEAD.pack(self.version, self.key_type, len(self.key_hashes)) + hashes

    @classmethod
    def decode(cls, data: bytes, slots: int, what: str) -> KeyDescriptor:
        version, key_type, count = _DESCRIPTOR_HEAD.unpack_from(data)
        if version != KEY_DESCRIPTOR_VERSION:
            raise MalformedFirmware(f"{what} key descriptor version {version} is not 1")
        if not 1 <= count <= slots:
            raise MalformedFirmware(f"{what} key descriptor lists {count} keys (1–{slots})")
        body = data[_DESCRIPTOR_HEAD.size :]
        hashes = tuple(body[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(count))
        if not _is_zero(body[count * HASH_SIZE :]):
            raise MalformedFirmware(f"{what} key descriptor has non-zero unused slots")
        if any(_is_zero(h) for h in hashes):
            raise MalformedFirmware(f"{what} key descriptor has an all-zero key hash")
        return cls(version, key_type, hashes)


@dataclass(frozen=True, slots=True)
class Preamble:
    """Keys and signatures. Not signed: every value here is checked against signed data.

    Keys and signatures are their natural byte strings (padding removed); an absent
    signature or owner key is ``b""``.
    """

    ecc_descriptor: KeyDescriptor
    pqc_descriptor: KeyDescriptor
    vendor_ecc_key_index: int
    vendor_ecc_key: bytes
    vendor_pqc_key_index: int
    vendor_pqc_key: bytes
    vendor_ecc_signature: bytes = b""
    vendor_pqc_signature: bytes = b""
    owner_ecc_key: bytes = b""
    owner_pqc_key: bytes = b""
    owner_ecc_signature: bytes = b""
    owner_pqc_signature: bytes = b""

    @property
    def has_owner(self) -> bool:
        return bool(self.owner_ecc_key)

    def descriptors_bytes(self) -> bytes:
        """The two descriptors as laid out: what the fused vendor key hash covers."""
        return self.ecc_descriptor.encode(MAX_ECC_KEYS) + self.pqc_descriptor.encode(MAX_PQC_KEYS)

    def owner_keys_bytes(self) -> bytes:
        """The owner key region as laid out (zeros when there is no owner)."""
        return self.owner_ecc_key.ljust(ECC_KEY_SIZE, b"\0") + self.owner_pqc_key.ljust(
            PQC_KEY_SLOT_SIZE, b"\0"
        )

    def encode(self) -> bytes:
        return _PREAMBLE.pack(
            self.ecc_descriptor.encode(MAX_ECC_KEYS),
            self.pqc_descriptor.encode(MAX_PQC_KEYS),
            self.vendor_ecc_key_index,
            self.vendor_ecc_key,
            self.vendor_pqc_key_index,
            self.vendor_pqc_key.ljust(PQC_KEY_SLOT_SIZE, b"\0"),
            self.vendor_ecc_signature.ljust(ECC_SIGNATURE_SIZE, b"\0"),
            self.vendor_pqc_signature.ljust(PQC_SIGNATURE_SLOT_SIZE, b"\0"),
            self.owner_ecc_key.ljust(ECC_KEY_SIZE, b"\0"),
            self.owner_pqc_key.ljust(PQC_KEY_SLOT_SIZE, b"\0"),
            self.owner_ecc_signature.ljust(ECC_SIGNATURE_SIZE, b"\0"),
            self.owner_pqc_signature.ljust(PQC_SIGNATURE_SLOT_SIZE, b"\0"),
            b"\0" * 8,
        )


def _pqc_key(slot: bytes, key_type: PqcKeyType, what: str) -> bytes:
    if key_type is PqcKeyType.MLDSA:
        return slot
    key, padding = slot[:LMS_KEY_SIZE], slot[LMS_KEY_SIZE:]
    if not _is_zero(padding):
        raise MalformedFirmware(f"{what} LMS key slot has non-zero padding")
    return key


def _pqc_signature(slot: bytes, key: bytes, key_type: PqcKeyType, what: str) -> bytes:
    """The signature without its zero padding; ``b""`` when the slot is all zero."""
    if _is_zero(slot):
        return b""
    size = MLDSA87_SIGNATURE_SIZE if key_type is PqcKeyType.MLDSA else lms_signature_size(key)
    if not _is_zero(slot[size:]):
        raise MalformedFirmware(f"{what} PQC signature slot has non-zero padding")
    return slot[:size]


def _ecc_signature(slot: bytes, who: str) -> bytes:
    """The signature, or ``b""`` when the slot is all zero. ``(r, n - s)`` verifies wherever
    ``(r, s)`` does, and anyone can compute it: only the low-S form is accepted, so a signed
    manifest has one encoding and one digest (what publication and the logs name)."""
    if _is_zero(slot):
        return b""
    if ecdsa_low_s(Algorithm.ES384, slot) != slot:
        raise MalformedFirmware(f"{who} ECDSA P-384 signature is not low-S (s > n/2)")
    return slot


def _decode_preamble(data: bytes, key_type: PqcKeyType) -> Preamble:
    (
        ecc_desc,
        pqc_desc,
        ecc_index,
        ecc_key,
        pqc_index,
        pqc_slot,
        ecc_sig,
        pqc_sig_slot,
        owner_ecc,
        owner_pqc_slot,
        owner_ecc_sig,
        owner_pqc_sig_slot,
        reserved,
    ) = _PREAMBLE.unpack_from(data, PREAMBLE_OFFSET)
    ecc_descriptor = KeyDescriptor.decode(ecc_desc, MAX_ECC_KEYS, "ECC")
    if ecc_descriptor.key_type != 0:
        raise MalformedFirmware("ECC key descriptor reserved byte is not zero")
    pqc_descriptor = KeyDescriptor.decode(pqc_desc, MAX_PQC_KEYS, "PQC")
    if pqc_descriptor.key_type != key_type:
        raise MalformedFirmware("PQC key descriptor type differs from the manifest pqc_key_type")
    if not _is_zero(reserved):
        raise MalformedFirmware("preamble reserved bytes are not zero")
    if _is_zero(ecc_key) or _is_zero(pqc_slot):
        raise MalformedFirmware("the manifest has no active vendor key")
    vendor_pqc = _pqc_key(pqc_slot, key_type, "vendor")
    has_owner = not (_is_zero(owner_ecc) and _is_zero(owner_pqc_slot))
    if has_owner and (_is_zero(owner_ecc) or _is_zero(owner_pqc_slot)):
        raise MalformedFirmware("owner keys must be both present or both absent")
    if not has_owner:
        if not (_is_zero(owner_ecc_sig) and _is_zero(owner_pqc_sig_slot)):
            raise MalformedFirmware("owner signatures without owner keys")
        owner_pqc = b""
        owner_pqc_sig = b""
    else:
        owner_pqc = _pqc_key(owner_pqc_slot, key_type, "owner")
        owner_pqc_sig = _pqc_signature(owner_pqc_sig_slot, owner_pqc, key_type, "owner")
    return Preamble(
        ecc_descriptor=ecc_descriptor,
        pqc_descriptor=pqc_descriptor,
        vendor_ecc_key_index=ecc_index,
        vendor_ecc_key=ecc_key,
        vendor_pqc_key_index=pqc_index,
        vendor_pqc_key=vendor_pqc,
        vendor_ecc_signature=_ecc_signature(ecc_sig, "vendor"),
        vendor_pqc_signature=_pqc_signature(pqc_sig_slot, vendor_pqc, key_type, "vendor"),
        owner_ecc_key=b"" if not has_owner else owner_ecc,
        owner_pqc_key=owner_pqc,
        owner_ecc_signature=_ecc_signature(owner_ecc_sig, "owner") if has_owner else b"",
        owner_pqc_signature=owner_pqc_sig,
    )


@dataclass(frozen=True, slots=True)
class ManifestHeader:
    """The signed header: what both vendor signatures (and owner signatures) cover."""

    revision: int
    vendor_ecc_key_index: int
    vendor_pqc_key_index: int
    flags: int
    toc_len: int
    pl0_pauser: int
    toc_digest: bytes
    svn: int
    not_before: dt.datetime
    not_after: dt.datetime
    owner_not_before: dt.datetime | None = None
    owner_not_after: dt.datetime | None = None

    def encode(self) -> bytes:
        zeros = b"\0" * GENERALIZED_TIME_SIZE
        return _HEADER.pack(
            self.revision,
            self.vendor_ecc_key_index,
            self.vendor_pqc_key_index,
            self.flags,
            self.toc_len,
            self.pl0_pauser,
            self.toc_digest,
            self.svn,
            encode_time(self.not_before),
            encode_time(self.not_after),
            b"\0" * 10,
            zeros if self.owner_not_before is None else encode_time(self.owner_not_before),
            zeros if self.owner_not_after is None else encode_time(self.owner_not_after),
            b"\0" * 10,
        )

    @classmethod
    def decode(cls, data: bytes) -> ManifestHeader:
        if len(data) != _HEADER.size:
            raise MalformedFirmware("manifest header has the wrong size")
        (
            revision,
            ecc_index,
            pqc_index,
            flags,
            toc_len,
            pl0_pauser,
            toc_digest,
            svn,
            not_before,
            not_after,
            vendor_reserved,
            owner_not_before,
            owner_not_after,
            owner_reserved,
        ) = _HEADER.unpack(data)
        if flags & ~_KNOWN_FLAGS:
            raise MalformedFirmware(f"header flags 0x{flags:08x} set reserved bits")
        if not (_is_zero(vendor_reserved) and _is_zero(owner_reserved)):
            raise MalformedFirmware("header reserved bytes are not zero")
        if svn > MAX_SVN:
            raise MalformedFirmware(f"SVN {svn} exceeds the maximum of {MAX_SVN}")
        header = cls(
            revision=revision,
            vendor_ecc_key_index=ecc_index,
            vendor_pqc_key_index=pqc_index,
            flags=flags,
            toc_len=toc_len,
            pl0_pauser=pl0_pauser,
            toc_digest=toc_digest,
            svn=svn,
            not_before=_decode_time(not_before, "vendor not-before"),
            not_after=_decode_time(not_after, "vendor not-after"),
            owner_not_before=_optional_time(owner_not_before, "owner not-before"),
            owner_not_after=_optional_time(owner_not_after, "owner not-after"),
        )
        if header.not_after < header.not_before:
            raise MalformedFirmware("vendor not-after is before not-before")
        if (header.owner_not_before is None) != (header.owner_not_after is None):
            raise MalformedFirmware("owner validity dates must be both set or both zero")
        if (
            header.owner_not_before is not None
            and header.owner_not_after is not None
            and header.owner_not_after < header.owner_not_before
        ):
            raise MalformedFirmware("owner not-after is before not-before")
        return header


@dataclass(frozen=True, slots=True)
class TocEntry:
    """One table-of-contents entry: where a component is, where it loads, and its digest."""

    component_id: int
    toc_type: int
    revision: bytes
    version: int
    load_address: int
    entry_point: int
    offset: int
    size: int
    digest: bytes

    @property
    def end(self) -> int:
        return self.offset + self.size

    def encode(self) -> bytes:
        return _TOC.pack(
            self.component_id,
            self.toc_type,
            self.revision,
            self.version,
            b"\0" * 8,
            self.load_address,
            self.entry_point,
            self.offset,
            self.size,
            self.digest,
        )

    @classmethod
    def decode(cls, data: bytes, offset: int) -> TocEntry:
        (cid, toc_type, revision, version, reserved, load, entry, off, size, digest) = (
            _TOC.unpack_from(data, offset)
        )
        if not _is_zero(reserved):
            raise MalformedFirmware(f"TOC entry {cid} reserved bytes are not zero")
        if toc_type != TOC_TYPE_EXECUTABLE:
            raise MalformedFirmware(f"TOC entry {cid} has unknown type {toc_type}")
        if size == 0:
            raise MalformedFirmware(f"TOC entry {cid} is empty")
        if load + size > 1 << 32:
            raise MalformedFirmware(f"TOC entry {cid} load range overflows 32 bits")
        if not load <= entry < load + size:
            raise MalformedFirmware(f"TOC entry {cid} entry point is outside its load range")
        return cls(cid, toc_type, revision, version, load, entry, off, size, digest)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest: prefix fields, preamble, header and TOC."""

    version: int
    pqc_key_type: PqcKeyType
    preamble: Preamble
    header: ManifestHeader
    toc: tuple[TocEntry, ...]

    @property
    def size(self) -> int:
        return TOC_OFFSET + TOC_ENTRY_SIZE * len(self.toc)

    def header_bytes(self) -> bytes:
        return self.header.encode()

    def toc_bytes(self) -> bytes:
        return b"".join(entry.encode() for entry in self.toc)

    def encode(self) -> bytes:
        prefix = _PREFIX.pack(MANIFEST_MARKER, self.size, self.version, self.pqc_key_type, 0)
        return prefix + self.preamble.encode() + self.header.encode() + self.toc_bytes()

    @classmethod
    def decode(cls, data: bytes, limits: FirmwareLimits = DEFAULT_LIMITS) -> Manifest:
        """Parse the manifest at the start of ``data`` (a bundle or a manifest alone)."""
        if len(data) < TOC_OFFSET:
            raise MalformedFirmware("too short for a firmware manifest")
        marker, size, version, key_type, reserved = _PREFIX.unpack_from(data)
        if marker != MANIFEST_MARKER:
            raise MalformedFirmware("not an Ironroot firmware manifest (bad marker)")
        if version != MANIFEST_VERSION:
            raise MalformedFirmware(f"unsupported manifest version {version}")
        if reserved:
            raise MalformedFirmware("manifest reserved byte is not zero")
        pqc_key_type = PqcKeyType.parse(key_type)
        header = ManifestHeader.decode(data[HEADER_OFFSET:TOC_OFFSET])
        if not 2 <= header.toc_len <= limits.max_components:
            raise LimitExceeded(f"TOC length {header.toc_len} is outside 2–{limits.max_components}")
        if size != TOC_OFFSET + TOC_ENTRY_SIZE * header.toc_len:
            raise MalformedFirmware("manifest size does not match its TOC length")
        if len(data) < size:
            raise MalformedFirmware("manifest is truncated")
        preamble = _decode_preamble(data, pqc_key_type)
        toc = tuple(
            TocEntry.decode(data, TOC_OFFSET + i * TOC_ENTRY_SIZE) for i in range(header.toc_len)
        )
        _check_toc(toc, size, limits)
        return cls(MANIFEST_VERSION, pqc_key_type, preamble, header, toc)


def _check_toc(toc: Sequence[TocEntry], manifest_size: int, limits: FirmwareLimits) -> None:
    if toc[0].component_id != FMC_ID or toc[1].component_id != RUNTIME_ID:
        raise MalformedFirmware("the TOC must start with the FMC (id 1) and the runtime (id 2)")
    ids = [entry.component_id for entry in toc]
    if len(set(ids)) != len(ids) or any(cid in (0, FMC_ID, RUNTIME_ID) for cid in ids[2:]):
        raise MalformedFirmware("TOC component ids must be unique; extra components use ids ≥ 3")
    expected = manifest_size
    for entry in toc:
        if entry.size > limits.max_component_bytes:
            raise LimitExceeded(f"component {entry.component_id} of {entry.size} bytes is too big")
        if entry.offset != expected:
            raise MalformedFirmware(
                f"component {entry.component_id} is not contiguous (offset {entry.offset},"
                f" expected {expected})"
            )
        expected = entry.end
    ranges = sorted((e.load_address, e.load_address + e.size, e.component_id) for e in toc)
    for (_, end, a), (start, _, b) in itertools.pairwise(ranges):
        if start < end:
            raise MalformedFirmware(f"components {a} and {b} overlap in their load ranges")


@dataclass(frozen=True, slots=True)
class FirmwareBundle:
    """A parsed bundle: the manifest and the component bytes in TOC order."""

    manifest: Manifest
    components: tuple[bytes, ...]

    @property
    def is_signed(self) -> bool:
        pre = self.manifest.preamble
        return bool(pre.vendor_ecc_signature or pre.vendor_pqc_signature)

    def encode(self) -> bytes:
        return self.manifest.encode() + b"".join(self.components)

    def header_digest(self) -> bytes:
        """SHA-384 of the header: the message every manifest signature covers."""
        return hashlib.sha384(self.manifest.header_bytes()).digest()

    def manifest_digest(self) -> bytes:
        """SHA-384 of the whole manifest, signatures included (what publication names)."""
        return hashlib.sha384(self.manifest.encode()).digest()

    @classmethod
    def parse(cls, data: bytes, limits: FirmwareLimits = DEFAULT_LIMITS) -> FirmwareBundle:
        """Parse a bundle strictly; raises ``MalformedFirmware`` or ``LimitExceeded``."""
        if not isinstance(data, bytes):
            raise MalformedFirmware("a firmware bundle must be bytes")
        if len(data) > limits.max_bundle_bytes:
            raise LimitExceeded(f"bundle of {len(data)} bytes exceeds {limits.max_bundle_bytes}")
        try:
            manifest = Manifest.decode(data, limits)
        except struct.error as exc:
            raise MalformedFirmware(f"manifest is truncated: {exc}") from exc
        end = manifest.toc[-1].end
        if len(data) != end:
            raise MalformedFirmware(
                f"bundle is {len(data)} bytes but its TOC ends at {end}"
                + (" (truncated)" if len(data) < end else " (trailing bytes)")
            )
        components = tuple(data[e.offset : e.end] for e in manifest.toc)
        if manifest.encode() != data[: manifest.size]:  # every field round-trips exactly
            raise MalformedFirmware("manifest is not in its canonical encoding")
        return cls(manifest, components)


@dataclass(frozen=True, slots=True)
class UnsignedBundle(FirmwareBundle):
    """A built bundle before signing: every signature slot is zero."""

    @classmethod
    def parse(cls, data: bytes, limits: FirmwareLimits = DEFAULT_LIMITS) -> UnsignedBundle:
        bundle = FirmwareBundle.parse(data, limits)
        pre = bundle.manifest.preamble
        if bundle.is_signed or pre.owner_ecc_signature or pre.owner_pqc_signature:
            raise MalformedFirmware("the bundle is already signed")
        return cls(bundle.manifest, bundle.components)
