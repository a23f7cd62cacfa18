"""A simulated device: the RoT's state in a directory, and the operations that change it.

This is the I/O shell around the pure core (:mod:`._fuses`, :mod:`._boot`, :mod:`._quote`,
:mod:`._dpe`). Files in the device directory (its non-volatile storage):

=========================  ===============================================================
``fuses.json``             the fuse bank; the UDS seed and field entropy only obfuscated
                           (AES-256-GCM under the obfuscation key), MAC'd (:mod:`._nvstate`)
``boot.json``              the last successful boot (:class:`BootState`): PCRs, log, alias
                           certificates; MAC'd
``counter-<name>.json``    a monotonic counter (:meth:`Device.counter`); MAC'd
``state-root.json``        the MAC of the current copy of each file above; MAC'd
``idevid-ecc.csr.der``     the IDevID CSRs made at manufacturing
``idevid-mldsa.csr.der``
``idevid-ecc.cert.der``    the IDevID certificates the vendor CA issued (public; checked
``idevid-mldsa.cert.der``  against the device's IDevID key before every quote)
``.lock``                  an advisory lock held while an operation reads or writes
=========================  ===============================================================

**The obfuscation key** (32 bytes, 64 hex digits in a file, mode 0600) models the secret the
silicon holds to deobfuscate its UDS (Caliptra's obfuscation key, never visible to firmware).
It is *never* in the device directory: by default it is the file ``<directory>.obfuscation-key``
beside it (``dev`` → ``dev.obfuscation-key``); ``Device(path, obfuscation_key=FILE)`` names
another (the CLI's ``--obfuscation-key`` / ``IRONROOT_ROT_OBFUSCATION_KEY_FILE``; one key may
serve many devices, as one key serves a product's parts). ``Device.create`` makes it when it
does not exist; a device opens with the key it latches at ``Device(...)`` (power-on).

Before every operation the device verifies its whole state (every MAC, the obfuscated UDS and
the root); any edit, removal, addition or restored older copy of a state file, or another
obfuscation key, raises :class:`~ironroot.errors.DeviceStateTampered` and nothing runs. An
operation made of several reads (a node's attestation: the quote, the platform journal's
counter, the sealing secret of its credentials) may hold the device (:meth:`Device.held`):
the lock is taken once and the state verified once, when the first read needs it; no write
can change the state while the lock is held, and a write made inside the hold takes the lock
exclusive and makes the next read verify the state again.

Every write is atomic and durable (``ironroot._fileio.write_atomic``), in the three steps of
:mod:`._nvstate`. A fuse write is checked once more against the bank it replaces: a new bank
that would clear any bit raises ``FuseError`` and nothing is written. A refused boot writes
nothing; a successful one writes the fuses (SVN) and the boot state together.

No private key is stored: every layer key is derived again from the fuses and the boot's
PCRs when needed (as a real RoT keeps CDIs in its key vault until reset). If the fuses changed
since the boot in a way that changes the keys, quoting refuses until the next boot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import (
    make_dirs,
    read_beneath,
    read_limited,
    warn_if_exposed,
    write_atomic,
)
from ironroot._memo import Memo
from ironroot.crypto import Algorithm, PublicKey
from ironroot.errors import (
    ConfigError,
    Conflict,
    DeviceStateTampered,
    FuseError,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    StorageError,
)
from ironroot.rot._boot import (
    PCR_DPE,
    PCR_SIZE,
    PFM_EVENT,
    STATUS_DEBUG_LOCKED,
    STATUS_LIFECYCLE,
    BootState,
    DiceLayers,
    PcrEvent,
    cold_boot,
    derive_layers,
    device_status,
)
from ironroot.rot._ca import VendorCA
from ironroot.rot._counter import MAX_COUNTER_VALUE, MonotonicCounter
from ironroot.rot._dpe import ChildIdentity, derive_child_identity
from ironroot.rot._fuses import FIELD_ENTROPY_SIZE, UDS_SEED_SIZE, Fuses, Lifecycle
from ironroot.rot._kdf import kdf
from ironroot.rot._layers import IDEVID, build_csr, derive_idevid, device_ueid
from ironroot.rot._nvstate import (
    BOOT,
    FUSES,
    OBFUSCATION_KEY_SIZE,
    ROOT,
    NvSnapshot,
    NvStore,
    check_counter_name,
)
from ironroot.rot._quote import create_quote
from ironroot.rot.dice import parse_certificate, parse_certificates

__all__ = ["Device", "DeviceCounter", "ProvisionResult"]

OBFUSCATION_KEY_SUFFIX: Final = ".obfuscation-key"
_LOCK: Final = ".lock"
_MAX_FILE: Final = 1024 * 1024
_MAX_BUNDLE: Final = 128 * 1024 * 1024
_ALG_FILES: Final = {Algorithm.ES384: "ecc", Algorithm.ML_DSA_87: "mldsa"}


def _read(path: Path, limit: int = _MAX_FILE) -> bytes:
    """A file the device writes in its directory, never through a link (it writes none), and
    only a regular file (a named pipe held open by a writer would keep the read waiting:
    ``InputUnavailable``)."""
    try:
        return read_beneath(path.parent, path.name, limit, regular=True)
    except FileNotFoundError as exc:
        raise NotFound(f"{path.name} is missing from the device directory") from exc
    except LimitExceeded:
        raise LimitExceeded(f"{path.name} is larger than {limit} bytes") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DeviceStateTampered(
                f"{path.name} is a link, not a file the device writes"
            ) from None
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _idevid_path(directory: Path, alg: Algorithm, kind: str) -> Path:
    return directory / f"idevid-{_ALG_FILES[alg]}.{kind}.der"


def _key_path(directory: Path, given: Path | str | None) -> Path:
    """Where the obfuscation key of ``directory`` lives: ``given``, or beside the directory.
    Never inside it: the directory is what an attacker of the device state can edit."""
    home = directory.resolve()
    if given is None:
        if not home.name:
            raise ConfigError(f"{directory} has no name to put an obfuscation key beside")
        path = home.with_name(home.name + OBFUSCATION_KEY_SUFFIX)
    else:
        path = Path(given).resolve()
    if path.is_relative_to(home):
        raise ConfigError("the obfuscation key must not be inside the device directory")
    return path


def _open_lock(directory: Path) -> int:
    """The directory's lock file, never through a link (a link planted in the device directory
    made every operation create the file it named, anywhere the process may write)."""
    path = directory / _LOCK
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise DeviceStateTampered(
                f"{_LOCK} is not the lock file the device makes (a link or a directory): "
                "the device directory was edited"
            ) from exc
        raise StorageError(f"cannot open {path}: {exc.strerror or exc}") from exc


def _load_key(path: Path) -> bytes:
    try:
        data = read_limited(path, 4 * OBFUSCATION_KEY_SIZE, regular=True)
    except FileNotFoundError as exc:
        raise InputUnavailable(
            f"the obfuscation key {path} is missing: the device cannot read its fuses"
        ) from exc
    except OSError as exc:  # unreadable, a link loop: the operator's file, not the device's
        raise InputUnavailable(
            f"cannot read the obfuscation key {path}: {exc.strerror or exc}"
        ) from exc
    warn_if_exposed(path, "the RoT obfuscation key")
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != OBFUSCATION_KEY_SIZE:
        raise ConfigError(
            f"{path} is not an obfuscation key ({2 * OBFUSCATION_KEY_SIZE} hex digits)"
        )
    return key


def _create_key(path: Path) -> None:
    """A new random obfuscation key in ``path`` (0600); an existing key is kept."""
    if path.exists():
        return
    make_dirs(path.parent)
    key = secrets.token_bytes(OBFUSCATION_KEY_SIZE)
    with contextlib.suppress(Conflict):  # made meanwhile by another process: that one counts
        write_atomic(path, key.hex().encode() + b"\n", mode=0o600, exclusive=True)


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What manufacturing produced: the IDevID CSRs and certificates (DER), by algorithm."""

    csrs: dict[Algorithm, bytes]
    certificates: dict[Algorithm, bytes]
    ueid: bytes


class Device:
    """A device directory. ``Device.create`` makes a blank one; ``Device(path)`` opens one.

    ``obfuscation_key`` is the file that holds the device's obfuscation key; by default
    ``<directory>.obfuscation-key`` beside the directory (see the module documentation).
    """

    def __init__(self, directory: Path | str, *, obfuscation_key: Path | str | None = None) -> None:
        self.directory = Path(directory)
        # Whatever stands at fuses.json (a link, a directory) is read, and refused, by the store.
        if not os.path.lexists(self.directory / FUSES):
            if not os.path.lexists(self.directory / ROOT):
                raise InputUnavailable(f"{self.directory} is not a device directory (no {FUSES})")
            # A root without fuses is also a creation under way (Device.create writes the
            # root first, holding the lock): look again once it is done.
            fd = _open_lock(self.directory)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if not os.path.lexists(self.directory / FUSES):
                    raise DeviceStateTampered(f"{FUSES} was removed from the device")
            finally:
                os.close(fd)
        self.obfuscation_key_path = _key_path(self.directory, obfuscation_key)
        self._store = NvStore(self.directory, _load_key(self.obfuscation_key_path))
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_exclusive = False
        # The state verified under the lock this object holds (Device.held), until it is
        # released or a write takes the lock exclusive.
        self._held: NvSnapshot | None = None
        self._holding = False
        self._sealing: dict[tuple[bytes | None, bytes | None, str], bytes] = {}
        self._derived: tuple[tuple[bytes | None, bytes | None], DiceLayers] | None = None

    def __repr__(self) -> str:
        return f"Device({str(self.directory)!r})"

    @classmethod
    def create(cls, directory: Path | str, *, obfuscation_key: Path | str | None = None) -> Device:
        """A new device: every fuse clear. Refuses a directory that already holds one, or a
        state root (a device whose fuse file was removed, ``DeviceStateTampered``). Makes
        the obfuscation key file (0600) when it does not exist yet. The check and the write
        hold the directory lock: of two creations at once, the later raises ``Conflict``."""
        path = Path(directory)
        make_dirs(path)
        if os.path.lexists(path / FUSES):  # again under the lock, below
            raise Conflict(f"{path} already holds a device")
        key_path = _key_path(path, obfuscation_key)
        _create_key(key_path)
        store = NvStore(path, _load_key(key_path))
        # The check and the blank write hold the directory lock: a creation that checked
        # before another one's device (and its provisioning) landed must not write over it.
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.path.lexists(path / FUSES):
                raise Conflict(f"{path} already holds a device")
            # A state root without fuses: a creation cut short is written again; a device
            # whose fuse file was removed is never reset.
            if os.path.lexists(path / ROOT) and not store.creation_interrupted():
                raise DeviceStateTampered(f"{FUSES} was removed from the device")
            store.initialize(Fuses())
        finally:
            os.close(fd)
        return cls(path, obfuscation_key=key_path)

    # --- state ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool = True) -> Iterator[None]:
        """The directory lock (shared for reads), re-entrant within this object: every write
        takes it exclusive before it loads the state it changes."""
        with self._thread_lock:
            if self._lock_fd is not None:
                if exclusive:
                    # A write inside a shared hold: the lock is converted, and what was
                    # verified under the shared lock is verified again by the next read.
                    self._held = None
                    if not self._lock_exclusive:
                        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                        self._lock_exclusive = True
                try:
                    yield
                finally:
                    if exclusive:
                        self._held = None
                return
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                self._lock_fd = fd
                self._lock_exclusive = exclusive
                yield
            finally:
                self._lock_fd = None
                self._lock_exclusive = False
                self._held = None
                os.close(fd)

    def _open_lock(self) -> int:
        return _open_lock(self.directory)

    @contextlib.contextmanager
    def held(self) -> Iterator[Device]:
        """Hold the device for one operation made of several reads (module docs): the
        directory lock is taken (shared) once, and the state is loaded and verified once, by
        the first read that needs it; every read inside uses that verified state, as no
        write can change it while the lock is held. A write inside takes the lock exclusive
        (until the hold ends) and the next read verifies the state again. Other threads
        wait for this object until the hold ends."""
        with self._locked(exclusive=False):
            outer, self._holding = self._holding, True
            try:
                yield self
            finally:
                self._holding = outer
                self._held = None

    def _load(self) -> NvSnapshot:
        """The whole verified state (``DeviceStateTampered`` if any part fails); inside
        :meth:`held`, the state verified once for the hold."""
        with self._locked(exclusive=False):
            if self._held is not None:
                return self._held
            state = self._store.load()
            # Kept until the lock is released, or a write inside a hold begins or ends (a write
            # outside a hold loads the state itself, and keeps nothing).
            if not self._lock_exclusive or self._holding:
                self._held = state
            return state

    @property
    def fuses(self) -> Fuses:
        return self._load().fuses

    @property
    def boot_state(self) -> BootState | None:
        return self._load().boot

    def _write_fuses(self, old: NvSnapshot, new: Fuses) -> NvSnapshot:
        if new == old.fuses:
            return old
        if not new.only_sets_bits_of(old.fuses):
            raise FuseError("the new fuse bank would clear a programmed bit")
        return self._store.commit(old, fuses=new)

    def program(self, change: Callable[[Fuses], Fuses]) -> Fuses:
        """Apply ``change(fuses) -> fuses`` (a :class:`Fuses` method) and persist it."""
        with self._locked():
            old = self._store.load()
            new = change(old.fuses)
            if not isinstance(new, Fuses):
                raise StorageError("a fuse change must return the new fuse bank")
            self._write_fuses(old, new)
            return new

    def _cert_path(self, alg: Algorithm, kind: str) -> Path:
        return _idevid_path(self.directory, alg, kind)

    def idevid_certificate(self, alg: Algorithm) -> bytes:
        return _read(self._cert_path(alg, "cert"))

    @staticmethod
    def read_idevid_certificate(directory: Path | str, alg: Algorithm) -> bytes:
        """The IDevID certificate (DER) of the device in ``directory``, read as a file:
        public, so a verifier reads it without opening the device (which latches its
        obfuscation key). ``NotFound`` before provisioning; nothing here checks it."""
        return _read(_idevid_path(Path(directory), alg, "cert"))

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
        fuse the vendor (and owner) key hash, move to production and lock debug.

        Every value is checked before the first fuse is written (a key hash of the wrong size
        or all zeros is ``FuseError`` on a device left as it was). A provisioning cut short
        after the UDS was fused (a crash, a CA that failed) leaves the device in manufacturing
        without a vendor key hash: calling ``provision`` again finishes it with the UDS fused
        then (OTP: it cannot be fused again), issuing the IDevID certificates anew."""
        with self._locked():
            state = self._store.load()
            fuses = state.fuses
            resuming = (
                fuses.uds_programmed
                and fuses.lifecycle is Lifecycle.MANUFACTURING
                and not fuses.vendor_key_hash
            )
            if not resuming and (
                fuses.uds_programmed or fuses.lifecycle is not Lifecycle.UNPROVISIONED
            ):
                raise Conflict("the device is already provisioned")
            if not resuming:
                fuses = (
                    fuses.program_uds(secrets.token_bytes(UDS_SEED_SIZE))
                    .program_field_entropy(secrets.token_bytes(FIELD_ENTROPY_SIZE))
                    .advance_lifecycle(Lifecycle.MANUFACTURING)
                )
            elif not fuses.field_entropy:
                fuses = fuses.program_field_entropy(secrets.token_bytes(FIELD_ENTROPY_SIZE))
            final = fuses.program_vendor_key_hash(vendor_key_hash)
            if owner_key_hash is not None:
                final = final.program_owner_key_hash(owner_key_hash)
            final = final.lock_debug().advance_lifecycle(Lifecycle.PRODUCTION)
            state = self._write_fuses(state, fuses)
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
            self._write_fuses(state, final)
            return ProvisionResult(csrs, certs, ueid)

    # --- boot, quote, DPE -----------------------------------------------------------------

    def boot(
        self,
        bundle: bytes,
        *,
        now: dt.datetime,
        advance_svn: bool = True,
        expired_manifest: str = "refuse",
    ) -> BootState:
        """Cold boot ``bundle``. A refused boot raises and leaves every file as it was.

        ``advance_svn=False``: leave the SVN fuse for the caller to advance once the firmware
        is committed; ``expired_manifest="report"``: boot a manifest outside its validity
        dates and record it in the boot state (see :func:`ironroot.rot.cold_boot`)."""
        if len(bundle) > _MAX_BUNDLE:
            raise LimitExceeded(f"a bundle is at most {_MAX_BUNDLE} bytes")
        with self._locked():
            old = self._store.load()
            result = cold_boot(
                old.fuses,
                bundle,
                now=now,
                advance_svn=advance_svn,
                expired_manifest=expired_manifest,
            )
            if not result.fuses.only_sets_bits_of(old.fuses):
                raise FuseError("the new fuse bank would clear a programmed bit")
            state = dataclasses.replace(
                result.state, idevid_checked=self._idevid_checked(result.layers)
            )
            self._store.commit(old, fuses=result.fuses, boot=state)
            return state

    def _idevid_checked(self, layers: DiceLayers) -> tuple[bytes, ...]:
        """At boot, which derived the IDevID keys to certify the LDevID: the SHA-256 of the
        IDevID certificates when both certify those keys (what a quote then checks the files
        against, :meth:`_idevid_certificates`), else nothing (a quote derives and checks)."""
        digests = []
        for alg in _ALG_FILES:
            try:
                der = self.idevid_certificate(alg)
                public = parse_certificate(der).public_key
            except (IronrootError, OSError):  # not there or not a certificate
                return ()
            if public is None or not _certifies(layers, alg, der, public):
                return ()
            digests.append(hashlib.sha256(der).digest())
        return tuple(digests)

    def _layers(self, state: NvSnapshot) -> tuple[BootState, DiceLayers]:
        """The boot state and the DICE layers it derives. Derived once per open device and
        state (with the keys each layer derives when asked): the MACs of the verified fuse and
        boot files name exactly what the layers depend on, and another state derives afresh."""
        boot = state.boot
        if boot is None:
            raise Conflict("the device has not booted")
        memo = (state.tags.get(FUSES), state.tags.get(BOOT))
        with self._thread_lock:
            derived = self._derived
        if derived is not None and None not in memo and derived[0] == memo:
            return boot, derived[1]
        layers = derive_layers(state.fuses, boot.pcrs)
        if not _rt_alias_certified(layers, boot.ecc_chain[-1]):
            raise Conflict("the fuses changed since the last boot: boot again")
        with self._thread_lock:
            self._derived = (memo, layers)
        return boot, layers

    def _idevid_certificates(
        self, layers: DiceLayers, boot: BootState
    ) -> tuple[dict[Algorithm, bytes], bytes]:
        """The IDevID certificates, each checked to certify this device's IDevID key, and the
        device's Ueid (from the checked ES384 key): a certificate the boot checked is the
        one whose SHA-256 the verified boot state records; any other is checked against the
        IDevID key derived again."""
        certs: dict[Algorithm, bytes] = {}
        ueid = b""
        checked = dict(zip(_ALG_FILES, boot.idevid_checked, strict=False))
        for alg in _ALG_FILES:
            der = self.idevid_certificate(alg)
            try:
                public = parse_certificate(der).public_key
                at_boot = alg in checked and hmac.compare_digest(
                    checked[alg], hashlib.sha256(der).digest()
                )
                ok = public is not None and (at_boot or _certifies(layers, alg, der, public))
            except MalformedInput:
                ok = False
            if not ok or public is None:
                name = self._cert_path(alg, "cert").name
                raise DeviceStateTampered(f"{name} does not certify this device's IDevID key")
            if alg is Algorithm.ES384:
                ueid = device_ueid(public)
            certs[alg] = der
        return certs, ueid

    def quote(self, nonce: bytes) -> bytes:
        """A quote over the current PCRs and log, answering ``nonce``.

        The lifecycle and debug claims are those the boot measured (its ``device-status``
        event, which the FMC alias certificate's flags certify), not the fuses now: a
        lifecycle or debug fuse written since the boot is latched at the next one, as the
        silicon latches them at reset."""
        with self._locked(exclusive=False):
            state = self._load()
            boot, layers = self._layers(state)
            status = device_status(boot.log)
            if status is None:
                raise Conflict("the boot state records no device status: boot again")
            certificates, ueid = self._idevid_certificates(layers, boot)
            return create_quote(
                nonce=nonce,
                rt_alias=layers.rt_alias,
                ueid=ueid,
                state=boot,
                idevid_certificates=certificates,
                lifecycle=Lifecycle(status[STATUS_LIFECYCLE]),
                debug_locked=bool(status[STATUS_DEBUG_LOCKED]),
            )

    def derive_child(self, measurement: bytes, *, label: str) -> ChildIdentity:
        """Certify a child layer (DPE) and extend PCR2 with its measurement."""
        with self._locked():
            state = self._store.load()
            boot, layers = self._layers(state)
            child = derive_child_identity(
                layers.rt_alias, measurement, label=label, ueid=layers.ueid
            )
            new_boot = boot.extended(PcrEvent(PCR_DPE, f"dpe:{label}", measurement))
            self._store.commit(state, boot=new_boot)
            return child

    def measure_pfm(self, digest: bytes) -> None:
        """Extend PCR 2 with the platform's active PFM (``pfm-digest``: its SHA-384), as a
        Cerberus-style RoT measures the manifest it enforces. Only as the first PCR 2 event of
        a boot — the platform measures it right after booting the BMC, before anything runs —
        so nothing a component can ask for later stands in for it: ``Conflict`` once PCR 2
        holds an event (boot again); ``MalformedInput`` unless ``digest`` is 48 bytes."""
        if not isinstance(digest, bytes) or len(digest) != PCR_SIZE:
            raise MalformedInput(f"a PFM measurement is a {PCR_SIZE}-byte SHA-384")
        with self._locked():
            state = self._store.load()
            boot = state.boot
            if boot is None:
                raise Conflict("the device has not booted")
            if any(e.pcr == PCR_DPE for e in boot.log):
                raise Conflict(
                    "the PFM is measured first in PCR 2, once per boot: boot again to measure it"
                )
            self._store.commit(state, boot=boot.extended(PcrEvent(PCR_DPE, PFM_EVENT, digest)))

    def sealing_secret(self, label: str) -> bytes:
        """A 32-byte secret for sealing data to this device *and* its booted firmware.

        ``KDF(CDI_RT, "sealing", label)``: the RT alias CDI depends on the UDS (another device
        gives another secret) and on the measured FMC and runtime (changed firmware gives
        another secret), so a store sealed under it opens only here, on this firmware — the
        HSM's key store uses it (``ironroot rot sealing-secret``). ``label`` separates users.
        """
        try:
            if not isinstance(label, str) or not 0 < len(label) <= 64:
                raise ValueError(label)
            context = label.encode()
        except (ValueError, UnicodeEncodeError):  # a lone surrogate: a non-UTF-8 argument byte
            raise MalformedInput("a sealing label is 1-64 characters of UTF-8 text") from None
        state = self._load()
        # Derived once per open device and state: the fuses' and the boot state's MACs name
        # exactly what the secret depends on (the state is still loaded and verified first).
        memo = (state.tags.get(FUSES), state.tags.get(BOOT), label)
        with self._thread_lock:
            found = self._sealing.get(memo)
        if found is not None:
            return found
        _, layers = self._layers(state)
        secret = kdf(layers.rt_alias.cdi, b"sealing", context, 32)
        with self._thread_lock:
            self._sealing.clear()  # one state at a time: an older state's secrets go
            self._sealing[memo] = secret
        return secret

    # --- monotonic counters ---------------------------------------------------------------

    def counter(self, name: str) -> DeviceCounter:
        """The monotonic counter ``name`` (1-32 of ``a-z 0-9 . _ -``), a
        :class:`~ironroot.rot.MonotonicCounter`. A counter never incremented reads 0; up to 64
        counters per device. Checking the name is all this call does: the state is verified
        by each ``value()`` and ``increment()``."""
        return DeviceCounter(self, check_counter_name(name))

    def counters(self) -> dict[str, int]:
        """Every counter that has been incremented, by name."""
        return dict(sorted(self._load().counters.items()))

    def _counter_value(self, name: str) -> int:
        state = self._load()
        _require_uds(state)
        return state.counters.get(name, 0)

    def _increment(self, name: str) -> int:
        with self._locked():
            state = self._store.load()
            _require_uds(state)
            value = state.counters.get(name, 0)
            if value >= MAX_COUNTER_VALUE:
                raise Conflict(f"counter {name} is at its maximum")
            self._store.commit(state, counters={name: value + 1})
            return value + 1

    # --- reports --------------------------------------------------------------------------

    def chain(self, alg: Algorithm) -> tuple[bytes, ...]:
        """The DER chain IDevID, LDevID, FMC alias, RT alias (what has been issued so far)."""
        return self._chain(alg, self._load())

    def _chain(self, alg: Algorithm, state: NvSnapshot) -> tuple[bytes, ...]:
        certs: list[bytes] = []
        if os.path.lexists(self._cert_path(alg, "cert")):  # a link there is read, and refused
            certs.append(self.idevid_certificate(alg))
        if state.boot is not None:
            boot = state.boot
            certs.extend(boot.ecc_chain if alg is Algorithm.ES384 else boot.mldsa_chain)
        return tuple(certs)

    def show(self) -> dict[str, Any]:
        """Lifecycle, fuses (never the secrets), PCRs, chains and counters, as JSON values."""
        state = self._load()
        chains = {}
        for alg, name in _ALG_FILES.items():
            chains[name] = [
                {
                    "subject": cert.subject,
                    "issuer": cert.issuer,
                    "serial": f"{cert.serial:x}" if cert.serial is not None else None,
                    "key_purposes": list(cert.dice.key_purposes),
                }
                for cert in (parse_certificate(der) for der in self._chain(alg, state))
            ]
        return {
            "device": str(self.directory),
            "lifecycle": state.fuses.lifecycle.label,
            "fuses": state.fuses.public_json(),
            "boot": state.boot.public_json() if state.boot is not None else None,
            "chains": chains,
            "counters": dict(sorted(state.counters.items())),
        }


# IDevID certificates found to certify a device's IDevID key: SHA-256 of the layer's CDI
# (secret, so the entry is this device's), the algorithm and the certificate. The answer
# depends on nothing else; a changed certificate or another device is checked afresh (which
# derives the IDevID key: an ECDSA point multiplication or an ML-DSA-87 key expansion).
_CERTIFIED: Memo[bytes, None] = Memo(4096)


def _certifies(layers: DiceLayers, alg: Algorithm, der: bytes, public: PublicKey) -> bool:
    """Whether the certificate ``der`` (with key ``public``) certifies the IDevID key."""
    label = hashlib.sha256(
        b"ironroot-idevid-certified/1\0" + layers.idevid.cdi + alg.label.encode() + b"\0" + der
    ).digest()
    if label in _CERTIFIED:
        return True
    if public != layers.idevid.key(alg).public_key:
        return False
    _CERTIFIED.put(label, None)
    return True


# RT alias certificates found to certify the RT alias key derived from a CDI: SHA-256 of the
# RT alias CDI (secret: the entry is this device on this firmware) and the certificate. The
# answer depends on nothing else; a changed certificate, other fuses or other PCRs (another
# CDI) derive the key again (an ECDSA point multiplication) and compare.
_RT_CERTIFIED: Memo[bytes, None] = Memo(4096)


def _rt_alias_certified(layers: DiceLayers, der: bytes) -> bool:
    """Whether ``der``, the boot's RT alias certificate, certifies the RT alias ECDSA key the
    fuses and PCRs derive now (it does not once the fuses changed since the boot)."""
    label = hashlib.sha256(b"ironroot-rt-alias-certified/1\0" + layers.rt_alias.cdi + der).digest()
    if label in _RT_CERTIFIED:
        return True
    public = parse_certificates(der)[0].public_key
    if public is None or not layers.rt_alias.certified(public):
        return False
    _RT_CERTIFIED.put(label, None)
    return True


def _require_uds(state: NvSnapshot) -> None:
    if not state.fuses.uds_programmed:
        raise Conflict("the device is not provisioned: counters need its UDS")


class DeviceCounter(MonotonicCounter):
    """A named monotonic counter held by a :class:`Device` (a
    :class:`~ironroot.rot.MonotonicCounter`).

    Stored as ``counter-<name>.json`` in the device directory, MAC'd and named by the state
    root like the fuses: an edited, removed or older copy of the file makes ``value()`` and
    ``increment()`` (and every other operation of the device) raise ``DeviceStateTampered``.
    """

    __slots__ = ("_device", "name")

    def __init__(self, device: Device, name: str) -> None:
        self._device = device
        self.name = check_counter_name(name)

    def __repr__(self) -> str:
        return f"DeviceCounter({self.name!r})"

    def value(self) -> int:
        """The current value (0 before the first increment)."""
        return self._device._counter_value(self.name)

    def increment(self) -> int:
        """Add one and return the new value, durable (fsynced) before this returns.

        Raises ``Conflict`` at 2^64 − 1 or on an unprovisioned device, ``DeviceStateTampered``
        if the device state does not verify, and ``LimitExceeded`` for a 65th counter."""
        return self._device._increment(self.name)

    def sibling(self, name: str) -> DeviceCounter:
        """The counter ``name`` of the same device (``Device.counter``): a layer that recorded
        the counter it committed on reads that one back (an HSM's zeroized anchor, its files
        moved to a counter of their own)."""
        return self._device.counter(name)
