"""A simulated device: the RoT's state in a directory, and the operations that change it.

This is the I/O shell around the pure core (:mod:`._fuses`, :mod:`._boot`, :mod:`._quote`,
:mod:`._dpe`). Files in the device directory:

=========================  ===============================================================
``fuses.json``             the fuse bank (:meth:`Fuses.to_json`; holds the UDS, mode 0600)
``idevid-ecc.csr.der``     the IDevID CSRs made at manufacturing
``idevid-mldsa.csr.der``
``idevid-ecc.cert.der``    the IDevID certificates the vendor CA issued
``idevid-mldsa.cert.der``
``boot.json``              the last successful boot (:class:`BootState`): PCRs, log, alias
                           certificates
``.lock``                  an advisory lock held while an operation reads and writes
=========================  ===============================================================

Every write is atomic and durable (temporary file, fsync, rename, fsync of the directory;
the standard library has no such call, and another layer's helper is private to it). A fuse
write is checked once more against the file it replaces: a new bank that would clear any bit
raises ``FuseError`` and nothing is written. A refused boot writes nothing; a successful one
writes the fuses (SVN) first, then the boot state.

No private key is stored: every layer key is derived again from the fuses and the boot's
PCRs when needed (as a real RoT keeps CDIs in its key vault until reset). If the fuses changed
since the boot in a way that changes the keys, quoting refuses until the next boot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import write_atomic
from ironroot.crypto import Algorithm
from ironroot.errors import (
    Conflict,
    FuseError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    StorageError,
)
from ironroot.rot._boot import PCR_DPE, BootState, DiceLayers, PcrEvent, cold_boot, derive_layers
from ironroot.rot._ca import VendorCA
from ironroot.rot._dpe import ChildIdentity, derive_child_identity
from ironroot.rot._fuses import FIELD_ENTROPY_SIZE, UDS_SEED_SIZE, Fuses, Lifecycle
from ironroot.rot._kdf import kdf
from ironroot.rot._layers import IDEVID, build_csr, derive_idevid, device_ueid
from ironroot.rot._quote import create_quote
from ironroot.rot.dice import parse_certificate, parse_certificates

__all__ = ["Device", "ProvisionResult"]

FUSES: Final = "fuses.json"
BOOT: Final = "boot.json"
_LOCK: Final = ".lock"
_MAX_FILE: Final = 1024 * 1024
_MAX_BUNDLE: Final = 128 * 1024 * 1024
_ALG_FILES: Final = {Algorithm.ES384: "ecc", Algorithm.ML_DSA_87: "mldsa"}


def _read(path: Path, limit: int = _MAX_FILE) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError as exc:
        raise NotFound(f"{path.name} is missing from the device directory") from exc
    if len(data) > limit:
        raise LimitExceeded(f"{path.name} is larger than {limit} bytes")
    return data


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What manufacturing produced: the IDevID CSRs and certificates (DER), by algorithm."""

    csrs: dict[Algorithm, bytes]
    certificates: dict[Algorithm, bytes]
    ueid: bytes


class Device:
    """A device directory. ``Device.create`` makes a blank one; ``Device(path)`` opens one."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        if not (self.directory / FUSES).is_file():
            raise NotFound(f"{self.directory} is not a device directory (no {FUSES})")

    @classmethod
    def create(cls, directory: Path | str) -> Device:
        """A new device: every fuse clear. Refuses a directory that already holds one."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        if (path / FUSES).exists():
            raise Conflict(f"{path} already holds a device")
        write_atomic(path / FUSES, Fuses().to_json())
        return cls(path)

    # --- files ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @property
    def fuses(self) -> Fuses:
        return Fuses.from_json(_read(self.directory / FUSES))

    def _write_fuses(self, new: Fuses) -> None:
        old = self.fuses
        if new == old:
            return
        if not new.only_sets_bits_of(old):
            raise FuseError("the new fuse bank would clear a programmed bit")
        write_atomic(self.directory / FUSES, new.to_json())

    def program(self, change: Callable[[Fuses], Fuses]) -> Fuses:
        """Apply ``change(fuses) -> fuses`` (a :class:`Fuses` method) and persist it."""
        with self._locked():
            new = change(self.fuses)
            if not isinstance(new, Fuses):
                raise StorageError("a fuse change must return the new fuse bank")
            self._write_fuses(new)
            return new

    @property
    def boot_state(self) -> BootState | None:
        path = self.directory / BOOT
        if not path.exists():
            return None
        return BootState.from_json(_read(path))

    def _cert_path(self, alg: Algorithm, kind: str) -> Path:
        return self.directory / f"idevid-{_ALG_FILES[alg]}.{kind}.der"

    def idevid_certificate(self, alg: Algorithm) -> bytes:
        return _read(self._cert_path(alg, "cert"))

    # --- manufacturing --------------------------------------------------------------------

    def provision(
        self,
        vendor_ca: VendorCA,
        *,
        vendor_key_hash: bytes,
        now: dt.datetime,
        owner_key_hash: bytes | None = None,
    ) -> ProvisionResult:
        """Manufacture the device: fuse a random UDS and field entropy (lifecycle
        manufacturing), make the IDevID CSRs, have ``vendor_ca`` issue the IDevID certificates,
        fuse the vendor (and owner) key hash, move to production and lock debug."""
        with self._locked():
            fuses = self.fuses
            if fuses.uds_programmed or fuses.lifecycle is not Lifecycle.UNPROVISIONED:
                raise Conflict("the device is already provisioned")
            fuses = (
                fuses.program_uds(secrets.token_bytes(UDS_SEED_SIZE))
                .program_field_entropy(secrets.token_bytes(FIELD_ENTROPY_SIZE))
                .advance_lifecycle(Lifecycle.MANUFACTURING)
            )
            self._write_fuses(fuses)
            idevid = derive_idevid(fuses.uds_seed)
            ueid = device_ueid(idevid.ecc.public_key)
            csrs = {
                alg: build_csr(idevid.key(alg), profile=IDEVID, ueid=ueid) for alg in _ALG_FILES
            }
            certs = {alg: vendor_ca.issue_idevid(csr, now=now) for alg, csr in csrs.items()}
            for alg in _ALG_FILES:
                if parse_certificate(certs[alg]).public_key != idevid.key(alg).public_key:
                    raise StorageError("the vendor CA certified another key than the IDevID")
                write_atomic(self._cert_path(alg, "csr"), csrs[alg], mode=0o644)
                write_atomic(self._cert_path(alg, "cert"), certs[alg], mode=0o644)
            fuses = fuses.program_vendor_key_hash(vendor_key_hash)
            if owner_key_hash is not None:
                fuses = fuses.program_owner_key_hash(owner_key_hash)
            fuses = fuses.lock_debug().advance_lifecycle(Lifecycle.PRODUCTION)
            self._write_fuses(fuses)
            return ProvisionResult(csrs, certs, ueid)

    # --- boot, quote, DPE -----------------------------------------------------------------

    def boot(self, bundle: bytes, *, now: dt.datetime) -> BootState:
        """Cold boot ``bundle``. A refused boot raises and leaves every file as it was."""
        if len(bundle) > _MAX_BUNDLE:
            raise LimitExceeded(f"a bundle is at most {_MAX_BUNDLE} bytes")
        with self._locked():
            result = cold_boot(self.fuses, bundle, now=now)
            self._write_fuses(result.fuses)
            write_atomic(self.directory / BOOT, result.state.to_json())
            return result.state

    def _layers(self, state: BootState) -> DiceLayers:
        layers = derive_layers(self.fuses, state.pcrs)
        rt = parse_certificates(state.ecc_chain[-1])[0]
        if rt.public_key != layers.rt_alias.ecc.public_key:
            raise Conflict("the fuses changed since the last boot: boot again")
        return layers

    def _booted(self) -> BootState:
        state = self.boot_state
        if state is None:
            raise Conflict("the device has not booted")
        return state

    def quote(self, nonce: bytes) -> bytes:
        """A quote over the current PCRs and log, answering ``nonce``."""
        state = self._booted()
        layers = self._layers(state)
        fuses = self.fuses
        return create_quote(
            nonce=nonce,
            rt_alias=layers.rt_alias,
            ueid=layers.ueid,
            state=state,
            idevid_certificates={alg: self.idevid_certificate(alg) for alg in _ALG_FILES},
            lifecycle=fuses.lifecycle,
            debug_locked=fuses.debug_locked,
        )

    def derive_child(self, measurement: bytes, *, label: str) -> ChildIdentity:
        """Certify a child layer (DPE) and extend PCR2 with its measurement."""
        with self._locked():
            state = self._booted()
            layers = self._layers(state)
            child = derive_child_identity(
                layers.rt_alias, measurement, label=label, ueid=layers.ueid
            )
            new_state = state.extended(PcrEvent(PCR_DPE, f"dpe:{label}", measurement))
            write_atomic(self.directory / BOOT, new_state.to_json())
            return child

    def sealing_secret(self, label: str) -> bytes:
        """A 32-byte secret for sealing data to this device *and* its booted firmware.

        ``KDF(CDI_RT, "sealing", label)``: the RT alias CDI depends on the UDS (another device
        gives another secret) and on the measured FMC and runtime (changed firmware gives
        another secret), so a store sealed under it opens only here, on this firmware — the
        HSM's key store uses it (``ironroot rot sealing-secret``). ``label`` separates users.
        """
        if not label or len(label) > 64:
            raise MalformedInput("a sealing label is 1-64 characters")
        layers = self._layers(self._booted())
        return kdf(layers.rt_alias.cdi, b"sealing", label.encode(), 32)

    def chain(self, alg: Algorithm) -> tuple[bytes, ...]:
        """The DER chain IDevID, LDevID, FMC alias, RT alias (what has been issued so far)."""
        certs: list[bytes] = []
        if self._cert_path(alg, "cert").exists():
            certs.append(self.idevid_certificate(alg))
        state = self.boot_state
        if state is not None:
            certs.extend(state.ecc_chain if alg is Algorithm.ES384 else state.mldsa_chain)
        return tuple(certs)

    def show(self) -> dict[str, Any]:
        """Lifecycle, fuses (never the secrets), PCRs and chains, as JSON values."""
        fuses = self.fuses
        state = self.boot_state
        chains = {}
        for alg, name in _ALG_FILES.items():
            chains[name] = [
                {
                    "subject": cert.subject,
                    "issuer": cert.issuer,
                    "serial": f"{cert.serial:x}" if cert.serial is not None else None,
                    "key_purposes": list(cert.dice.key_purposes),
                }
                for cert in (parse_certificate(der) for der in self.chain(alg))
            ]
        return {
            "device": str(self.directory),
            "lifecycle": fuses.lifecycle.label,
            "fuses": fuses.public_json(),
            "boot": state.public_json() if state is not None else None,
            "chains": chains,
        }
