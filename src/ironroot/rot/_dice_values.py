"""The values of the TCG DICE extensions (TcbInfo, FWIDs, operational flags, Ueid inputs) and
their OIDs; the rules are documented in :mod:`ironroot.rot.dice`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

from cryptography import x509

from ironroot.crypto import library_error_text
from ironroot.errors import (
    MalformedCertificate,
)

__all__ = [
    "HASH_NAMES",
    "KEY_PURPOSE_OIDS",
    "ML_DSA_87_OID",
    "MULTI_TCB_INFO_OID",
    "OPEN_DICE_OID",
    "TCB_INFO_OID",
    "UEID_OID",
    "Fwid",
    "IntegrityRegister",
    "OpenDiceInput",
    "OperationalFlag",
    "OperationalFlags",
    "RiotCompositeDeviceId",
    "SvnEncoding",
    "TcbInfo",
    "short_error",
]


SvnEncoding = Literal["auto", "caliptra", "plain"]

TCB_INFO_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.1")
UEID_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.4")
MULTI_TCB_INFO_OID: Final = x509.ObjectIdentifier("2.23.133.5.4.5")
OPEN_DICE_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.24")
ML_DSA_87_OID: Final = x509.ObjectIdentifier("2.16.840.1.101.3.4.3.19")

#: tcg-dice-kp-* (TCG DICE Certificate Profiles): name -> OID under 2.23.133.5.4.100.
#: tcg-dice-kp-* (TCG DICE Certificate Profiles): name -> OID under 2.23.133.5.4.100.
KEY_PURPOSE_OIDS: Final[dict[str, x509.ObjectIdentifier]] = {
    "identityInit": x509.ObjectIdentifier("2.23.133.5.4.100.6"),
    "identityLoc": x509.ObjectIdentifier("2.23.133.5.4.100.7"),
    "attestInit": x509.ObjectIdentifier("2.23.133.5.4.100.8"),
    "attestLoc": x509.ObjectIdentifier("2.23.133.5.4.100.9"),
    "assertInit": x509.ObjectIdentifier("2.23.133.5.4.100.10"),
    "assertLoc": x509.ObjectIdentifier("2.23.133.5.4.100.11"),
    "eca": x509.ObjectIdentifier("2.23.133.5.4.100.12"),
}

HASH_NAMES: Final[dict[str, str]] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.6": "sha512-256",
    "2.16.840.1.101.3.4.2.8": "sha3-256",
    "2.16.840.1.101.3.4.2.9": "sha3-384",
    "2.16.840.1.101.3.4.2.10": "sha3-512",
}
_DIGEST_SIZES: Final[dict[str, int]] = {
    "sha1": 20,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "sha224": 28,
    "sha512-256": 32,
    "sha3-256": 32,
    "sha3-384": 48,
    "sha3-512": 64,
}


def short_error(exc: BaseException) -> str:
    return library_error_text(exc, limit=120)


# --- values ----------------------------------------------------------------------------------


class OperationalFlag(enum.IntEnum):
    """Named bits of ``OperationalFlags`` (bit 0 is the first bit of the BIT STRING)."""

    notConfigured = 0  # the ASN.1 names, as the spec spells them
    notSecure = 1
    recovery = 2
    debug = 3
    notReplayProtected = 4
    notIntegrityProtected = 5
    notRuntimeMeasured = 6
    notImmutable = 7
    notTcb = 8
    fixedWidth = 31


@dataclass(frozen=True, slots=True)
class OperationalFlags:
    """A DICE ``OperationalFlags`` (or ``OperationalFlagsMask``) BIT STRING.

    ``bits`` are the positions set; ``width`` the number of bits encoded. DER for a named-bit
    list drops trailing zero bits; Caliptra sets ``fixedWidth`` (bit 31) so the width is 32.
    """

    bits: frozenset[int]
    width: int

    def __post_init__(self) -> None:
        if self.width < 0 or any(b < 0 or b >= self.width for b in self.bits):
            raise MalformedCertificate("operational flag bit outside the BIT STRING width")

    @classmethod
    def of(cls, *flags: OperationalFlag | str, width: int | None = None) -> OperationalFlags:
        """Flags from names or :class:`OperationalFlag` values; minimal width unless given."""
        try:
            bits = frozenset(
                int(f) if isinstance(f, OperationalFlag) else int(OperationalFlag[f]) for f in flags
            )
        except KeyError as exc:
            raise MalformedCertificate(f"unknown operational flag {exc.args[0]!r}") from exc
        return cls(bits, width if width is not None else (max(bits) + 1 if bits else 0))

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the set bits in bit order; an unnamed bit is ``"bit<N>"``."""
        out = []
        for bit in sorted(self.bits):
            try:
                out.append(OperationalFlag(bit).name)
            except ValueError:
                out.append(f"bit{bit}")
        return tuple(out)

    def __contains__(self, flag: object) -> bool:
        if isinstance(flag, str):
            flag = OperationalFlag.__members__.get(flag)
        return isinstance(flag, int) and int(flag) in self.bits


@dataclass(frozen=True, slots=True)
class Fwid:
    """``FWID``: a digest and the OID of its hash algorithm."""

    hash_alg_oid: str
    digest: bytes

    def __post_init__(self) -> None:
        """A digest of a hash named in :data:`HASH_NAMES` has that hash's size (a truncated
        one, or another hash's, is not that hash's digest); any other hash's is kept as is."""
        name = HASH_NAMES.get(self.hash_alg_oid)
        if name is not None and len(self.digest) != _DIGEST_SIZES[name]:
            raise MalformedCertificate(
                f"a {name} FWID digest is {_DIGEST_SIZES[name]} bytes, not {len(self.digest)}"
            )

    @property
    def hash_alg_name(self) -> str:
        """``sha256``, ``sha384``, ...; the dotted OID for an algorithm we do not name."""
        return HASH_NAMES.get(self.hash_alg_oid, self.hash_alg_oid)


@dataclass(frozen=True, slots=True)
class IntegrityRegister:
    """``IntegrityRegister``: an optional name and number, and its digests."""

    name: str | None
    number: int | None
    digests: tuple[Fwid, ...]


@dataclass(frozen=True, slots=True)
class TcbInfo:
    """``DiceTcbInfo``: every field optional. ``svn_raw`` is the INTEGER as encoded."""

    vendor: str | None = None
    model: str | None = None
    version: str | None = None
    svn_raw: int | None = None
    layer: int | None = None
    index: int | None = None
    fwids: tuple[Fwid, ...] = ()
    flags: OperationalFlags | None = None
    vendor_info: bytes | None = None
    type: bytes | None = None
    flags_mask: OperationalFlags | None = None
    integrity_registers: tuple[IntegrityRegister, ...] = ()
    svn_encoding: Literal["caliptra", "plain"] = "plain"

    @property
    def svn(self) -> int | None:
        """The SVN itself: ``svn_raw - 0x100`` under Caliptra's encoding, else ``svn_raw``."""
        if self.svn_raw is None:
            return None
        return self.svn_raw - 0x100 if self.svn_encoding == "caliptra" else self.svn_raw

    @classmethod
    def with_svn(cls, svn: int, *, caliptra: bool = False, **fields: object) -> TcbInfo:
        """A TcbInfo whose SVN is ``svn``, encoded the Caliptra way (``0x100 | svn``) if asked."""
        if caliptra:
            if not 0 <= svn <= 0xFF:
                raise MalformedCertificate("a Caliptra SVN is 0..255")
            return cls(svn_raw=0x100 | svn, svn_encoding="caliptra", **fields)  # type: ignore[arg-type]
        return cls(svn_raw=svn, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class OpenDiceInput:
    """The Open Profile for DICE X.509 extension: hashes, descriptors and mode."""

    code_hash: bytes | None
    code_descriptor: bytes | None
    configuration_hash: bytes | None
    configuration_descriptor: bytes | None
    authority_hash: bytes | None
    authority_descriptor: bytes | None
    mode: int | None
    profile_name: str | None

    @property
    def mode_name(self) -> str | None:
        """``not-configured``, ``normal``, ``debug``, ``recovery`` (others read as the first)."""
        if self.mode is None:
            return None
        names = ("not-configured", "normal", "debug", "recovery")
        return names[self.mode] if 0 <= self.mode < len(names) else "not-configured"


@dataclass(frozen=True, slots=True)
class RiotCompositeDeviceId:
    """The RIoT ``CompositeDeviceID``: a version, the DeviceID public key and one FWID."""

    version: int
    device_id_public_key: bytes  # SubjectPublicKeyInfo, DER
    fwid: Fwid
