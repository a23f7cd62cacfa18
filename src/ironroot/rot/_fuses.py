"""The RoT's one-time-programmable fuse bank: values, the only transitions fuses allow, and a
strict JSON form.

A :class:`Fuses` value is immutable; each ``program_*``/``revoke_*``/``advance_*`` method returns
the bank after the write, or raises :class:`~ironroot.errors.FuseError` and changes nothing.
The rules model OTP hardware (bits are only ever set) and the fuse map of Caliptra 2.0:

======================  =====  ===========================================================
fuse                    bits   rule
======================  =====  ===========================================================
``uds_seed``            512    written once, non-zero, only before production (manufacturing)
``field_entropy``       256    written once, non-zero (the owner's entropy, any time)
``vendor_key_hash``     384    written once: SHA-384 of the vendor public key descriptors
``owner_key_hash``      384    written once: SHA-384 of the owner public keys
``ecc_revocation``      4      bits only set; every slot revoked is refused
``pqc_revocation``      32     bits only set; every slot revoked is refused
``fw_svn``              128    thermometer: SVN *n* is the lowest *n* bits set; only grows
``anti_rollback``       1      set once: disables the SVN check (and SVN fuse updates)
``lifecycle``           2      thermometer: unprovisioned (00) → manufacturing (01) →
                               production (11); never backwards
``debug_locked``        1      set once; reaching production sets it too, so debug is
                               unlocked only before production
======================  =====  ===========================================================

A value field (UDS, field entropy, key hashes) is a locked partition once written: a second
write of the *same* value is a no-op, any other value raises (real OTP would let more bits be
set; a partition lock forbids that, as Caliptra's fuse controller does).

Revocation: the masks cover the manifest's key slots (4 ECC, 32 PQC). A product may use fewer
keys than slots; pass ``key_count`` so that revoking its last usable key is refused.

The UDS and field entropy are secrets: they are never in ``repr``, in error messages, in
:meth:`Fuses.public_json` or in :meth:`Fuses.to_record` (the persisted form of the other
fuses). The device stores them only obfuscated, as Caliptra's fuse controller does: encrypted
under a device-held obfuscation key that is not in the device directory (``_nvstate``).
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field, replace
from typing import Any, Final

from ironroot.errors import ConfigError, FuseError, StorageError

__all__ = [
    "ECC_KEY_SLOTS",
    "FIELD_ENTROPY_SIZE",
    "PQC_KEY_SLOTS",
    "SVN_FUSE_BITS",
    "UDS_SEED_SIZE",
    "Fuses",
    "Lifecycle",
]

UDS_SEED_SIZE: Final = 64  # Caliptra 2.0: 512-bit UDS seed
FIELD_ENTROPY_SIZE: Final = 32  # Caliptra 2.0: 256-bit field entropy
KEY_HASH_SIZE: Final = 48  # SHA-384
ECC_KEY_SLOTS: Final = 4
PQC_KEY_SLOTS: Final = 32
SVN_FUSE_BITS: Final = 128
_FORMAT: Final = "ironroot-fuses/2"  # /1 held the secrets in the clear


class Lifecycle(enum.IntEnum):
    """Device lifecycle, stored as a 2-bit thermometer code (``bits``)."""

    UNPROVISIONED = 0
    MANUFACTURING = 1
    PRODUCTION = 2

    @property
    def bits(self) -> int:
        return (1 << int(self)) - 1

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Lifecycle:
        try:
            return cls[label.upper()]
        except KeyError:
            raise ConfigError(
                f"unknown lifecycle {label!r}: use unprovisioned, manufacturing or production"
            ) from None


def _thermometer(count: int) -> int:
    return (1 << count) - 1


def _thermometer_count(bits: int, width: int, what: str) -> int:
    count = bits.bit_length()
    if bits != _thermometer(count) or count > width:
        raise StorageError(f"{what} fuse is not a thermometer code")
    return count


@dataclass(frozen=True, slots=True)
class Fuses:
    """The fuse bank. A fresh device has every bit clear (``Fuses()``)."""

    uds_seed: bytes = field(default=b"", repr=False)
    field_entropy: bytes = field(default=b"", repr=False)
    vendor_key_hash: bytes = b""
    owner_key_hash: bytes = b""
    ecc_revocation: int = 0
    pqc_revocation: int = 0
    svn_bits: int = 0
    anti_rollback_disabled: bool = False
    lifecycle_bits: int = 0
    debug_locked: bool = False

    def __post_init__(self) -> None:
        for name, size in (
            ("uds_seed", UDS_SEED_SIZE),
            ("field_entropy", FIELD_ENTROPY_SIZE),
            ("vendor_key_hash", KEY_HASH_SIZE),
            ("owner_key_hash", KEY_HASH_SIZE),
        ):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) not in (0, size):
                raise StorageError(f"{name} fuse must be {size} bytes")
            if value and not any(value):
                raise StorageError(f"{name} fuse is programmed with zeros")
        for name, width in (
            ("ecc_revocation", ECC_KEY_SLOTS),
            ("pqc_revocation", PQC_KEY_SLOTS),
            ("svn_bits", SVN_FUSE_BITS),
            ("lifecycle_bits", 2),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise StorageError(f"{name} fuse must be an integer")
            if value < 0 or value >> width:
                raise StorageError(f"{name} fuse is outside its {width} bits")
        _thermometer_count(self.svn_bits, SVN_FUSE_BITS, "fw_svn")
        _thermometer_count(self.lifecycle_bits, 2, "lifecycle")
        if self.lifecycle is Lifecycle.PRODUCTION and not self.debug_locked:
            raise StorageError("a production device must have debug locked")

    # --- reading --------------------------------------------------------------------------

    @property
    def svn(self) -> int:
        """The firmware SVN the fuses hold: the number of thermometer bits set."""
        return self.svn_bits.bit_length()

    @property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(self.lifecycle_bits.bit_length())

    @property
    def uds_programmed(self) -> bool:
        return bool(self.uds_seed)

    @property
    def debug_unlocked(self) -> bool:
        return not self.debug_locked

    # --- writing --------------------------------------------------------------------------

    def _value(self, name: str, value: bytes, size: int) -> Fuses:
        if not isinstance(value, bytes) or len(value) != size:
            raise FuseError(f"the {name} fuse takes exactly {size} bytes")
        if not any(value):
            raise FuseError(f"programming the {name} fuse with zeros writes nothing")
        current: bytes = getattr(self, name)
        if current:
            if hmac.compare_digest(current, value):
                return self
            raise FuseError(f"the {name} fuse is already programmed with another value")
        changes: dict[str, Any] = {name: value}
        return replace(self, **changes)

    def program_uds(self, seed: bytes) -> Fuses:
        """Fuse the UDS seed (manufacturing only: refused once in production)."""
        if self.lifecycle is Lifecycle.PRODUCTION and not self.uds_seed:
            raise FuseError("the UDS can only be programmed before production")
        return self._value("uds_seed", seed, UDS_SEED_SIZE)

    def program_field_entropy(self, entropy: bytes) -> Fuses:
        return self._value("field_entropy", entropy, FIELD_ENTROPY_SIZE)

    def program_vendor_key_hash(self, digest: bytes) -> Fuses:
        return self._value("vendor_key_hash", digest, KEY_HASH_SIZE)

    def program_owner_key_hash(self, digest: bytes) -> Fuses:
        return self._value("owner_key_hash", digest, KEY_HASH_SIZE)

    def _revoke(self, name: str, index: int, slots: int, key_count: int) -> Fuses:
        kind = "ECC" if name == "ecc_revocation" else "PQC"
        if not 1 <= key_count <= slots:
            raise FuseError(f"a product has 1–{slots} {kind} keys, not {key_count}")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < key_count:
            raise FuseError(f"{kind} key index must be 0–{key_count - 1}")
        mask: int = getattr(self, name)
        new = mask | 1 << index
        if new == mask:
            return self
        if new & _thermometer(key_count) == _thermometer(key_count):
            raise FuseError(f"revoking {kind} key {index} would leave no usable key")
        changes: dict[str, Any] = {name: new}
        return replace(self, **changes)

    def revoke_ecc_key(self, index: int, *, key_count: int = ECC_KEY_SLOTS) -> Fuses:
        return self._revoke("ecc_revocation", index, ECC_KEY_SLOTS, key_count)

    def revoke_pqc_key(self, index: int, *, key_count: int = PQC_KEY_SLOTS) -> Fuses:
        return self._revoke("pqc_revocation", index, PQC_KEY_SLOTS, key_count)

    def advance_svn(self, svn: int) -> Fuses:
        """Set the SVN fuse to ``svn`` (a no-op when equal); lowering it raises."""
        if isinstance(svn, bool) or not isinstance(svn, int) or not 0 <= svn <= SVN_FUSE_BITS:
            raise FuseError(f"the SVN fuse holds 0–{SVN_FUSE_BITS}")
        if svn < self.svn:
            raise FuseError(f"the SVN fuse is at {self.svn}: it cannot go down to {svn}")
        return replace(self, svn_bits=_thermometer(svn))

    def disable_anti_rollback(self) -> Fuses:
        return self if self.anti_rollback_disabled else replace(self, anti_rollback_disabled=True)

    def advance_lifecycle(self, state: Lifecycle) -> Fuses:
        """Move forward to ``state`` (a no-op when equal); production also locks debug."""
        state = Lifecycle(state)
        if state < self.lifecycle:
            raise FuseError(
                f"the lifecycle is {self.lifecycle.label}: it cannot go back to {state.label}"
            )
        if state is not Lifecycle.UNPROVISIONED and not self.uds_seed:
            raise FuseError("the UDS must be programmed before leaving unprovisioned")
        locked = self.debug_locked or state is Lifecycle.PRODUCTION
        return replace(self, lifecycle_bits=state.bits, debug_locked=locked)

    def lock_debug(self) -> Fuses:
        return self if self.debug_locked else replace(self, debug_locked=True)

    # --- encodings ------------------------------------------------------------------------

    def _raw(self) -> dict[str, int]:
        """Every fuse as the integer its bits spell (value fields big-endian)."""
        return {
            "uds_seed": int.from_bytes(self.uds_seed, "big"),
            "field_entropy": int.from_bytes(self.field_entropy, "big"),
            "vendor_key_hash": int.from_bytes(self.vendor_key_hash, "big"),
            "owner_key_hash": int.from_bytes(self.owner_key_hash, "big"),
            "ecc_revocation": self.ecc_revocation,
            "pqc_revocation": self.pqc_revocation,
            "fw_svn": self.svn_bits,
            "anti_rollback": int(self.anti_rollback_disabled),
            "lifecycle": self.lifecycle_bits,
            "debug_locked": int(self.debug_locked),
        }

    def only_sets_bits_of(self, older: Fuses) -> bool:
        """Whether this bank is reachable from ``older`` by setting bits only (OTP)."""
        new, old = self._raw(), older._raw()
        return all(old[name] & ~new[name] == 0 for name in new)

    def to_record(self) -> dict[str, Any]:
        """Every fuse *except the secrets* (UDS, field entropy) as JSON values, for the device's
        state file; the device stores the secrets beside it obfuscated (see ``_nvstate``)."""
        return {
            "format": _FORMAT,
            "vendor_key_hash": self.vendor_key_hash.hex(),
            "owner_key_hash": self.owner_key_hash.hex(),
            "ecc_revocation": self.ecc_revocation,
            "pqc_revocation": self.pqc_revocation,
            "fw_svn": f"{self.svn_bits:032x}",
            "anti_rollback_disabled": self.anti_rollback_disabled,
            "lifecycle": self.lifecycle.label,
            "debug_locked": self.debug_locked,
        }

    @classmethod
    def from_record(
        cls, doc: object, *, uds_seed: bytes = b"", field_entropy: bytes = b""
    ) -> Fuses:
        """Parse :meth:`to_record` output strictly, with the (deobfuscated) secrets given
        apart; anything else raises ``StorageError``."""
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise StorageError(f"the fuse record is not {_FORMAT}")
        expected = {
            "format",
            "vendor_key_hash",
            "owner_key_hash",
            "ecc_revocation",
            "pqc_revocation",
            "fw_svn",
            "anti_rollback_disabled",
            "lifecycle",
            "debug_locked",
        }
        if set(doc) != expected:
            raise StorageError("the fuse record has missing or unknown fields")
        try:
            return cls(
                uds_seed=uds_seed,
                field_entropy=field_entropy,
                vendor_key_hash=_hex(doc["vendor_key_hash"]),
                owner_key_hash=_hex(doc["owner_key_hash"]),
                ecc_revocation=_int(doc["ecc_revocation"]),
                pqc_revocation=_int(doc["pqc_revocation"]),
                svn_bits=int(_str(doc["fw_svn"]), 16),
                anti_rollback_disabled=_bool(doc["anti_rollback_disabled"]),
                lifecycle_bits=Lifecycle[_str(doc["lifecycle"]).upper()].bits,
                debug_locked=_bool(doc["debug_locked"]),
            )
        except (KeyError, ValueError) as exc:
            raise StorageError("the fuse record has an invalid field") from exc

    def public_json(self) -> dict[str, Any]:
        """Every fuse except the secrets (which show only whether they are programmed)."""
        return {
            "lifecycle": self.lifecycle.label,
            "debug": "locked" if self.debug_locked else "unlocked",
            "uds_programmed": bool(self.uds_seed),
            "field_entropy_programmed": bool(self.field_entropy),
            "vendor_key_hash": self.vendor_key_hash.hex() or None,
            "owner_key_hash": self.owner_key_hash.hex() or None,
            "ecc_revocation": self.ecc_revocation,
            "pqc_revocation": self.pqc_revocation,
            "svn": self.svn,
            "anti_rollback_disabled": self.anti_rollback_disabled,
        }


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _hex(value: object) -> bytes:
    return bytes.fromhex(_str(value))


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected an integer")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected a boolean")
    return value
