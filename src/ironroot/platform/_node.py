"""A node: the DC-SCM (RoT + BMC), the host and its SPDM devices, their flash and the journal.

:class:`Platform` is the node in a directory::

    platform.json        the node's configuration: RoT device directory, slot sizes, the SPDM
                         devices' vendor/model and pinned roots, and the PlatformTrust; its
                         SHA-256 is in every journal record (a changed file is refused)
    flash/<chip>.bin     the flash chips (:mod:`ironroot.platform._flash`)
    evidence/<id>.cbor   the statements each accepted image came with (content-addressed)
    devices/<name>/      each SPDM device's identity (:mod:`ironroot.platform._devices`)

Boot (:meth:`Platform.boot`) is the RoT's decision before it releases anything from reset:
an update that never reached activation is abandoned; the active PFM is verified (restored
from its recovery copy when it does not); every component's active slot is hashed and
compared with what the journal recorded and what the PFM allows, with its SVN floor — a
mismatch is logged and the slot restored from recovery (or the known-good other slot); the
BMC image is booted by the RoT (measured boot: PCRs and DICE identities follow the firmware),
the host and each device get a DPE identity over their measurement, and each device is
measured over SPDM against the reference values logged for its image. A component that fails
is held in reset. An activated update is then committed when its component came up healthy,
or rolled back to the previous slot; after ``healthy_boots`` healthy boots its image replaces
the recovery image and becomes the SVN floor.

The update (:meth:`Platform.update`) is :mod:`ironroot.platform._update`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ironroot._fileio import file_lock, make_dirs, read_limited, write_atomic
from ironroot._memo import Memo
from ironroot.cose import encode_cbor
from ironroot.errors import (
    ConfigError,
    Conflict,
    DeviceStateTampered,
    FirmwareRejected,
    FlashProtected,
    InputUnavailable,
    IronrootError,
    NotFound,
    StorageError,
    SvnRollback,
)
from ironroot.platform._checks import unwrap_witnessed
from ironroot.platform._flash import Flash, PowerCut, PowerLost, RotFlashWriter
from ironroot.platform._journal import Event, EventLog, Journal
from ironroot.platform._pfm import Pfm, verify_pfm
from ironroot.platform._policy import PlatformTrust
from ironroot.platform._state import STEPS, Image, NodeState
from ironroot.rot import Device, Fuses

if TYPE_CHECKING:
    from ironroot.platform._devices import DeviceMeasurement
    from ironroot.platform._update import UpdatePreflight, UpdateResult

__all__ = [
    "COMPONENTS",
    "DEVICES",
    "BootReport",
    "ComponentBoot",
    "Faults",
    "InventoryItem",
    "Platform",
]

COMPONENTS: Final = ("bmc", "host", "nic", "gpu", "nvme")
DEVICES: Final = ("nic", "gpu", "nvme")
MIB: Final = 1024 * 1024
DEFAULT_SLOT_SIZES: Final = {
    "bmc": 32 * MIB,
    "host": 32 * MIB,
    "nic": 4 * MIB,
    "gpu": 8 * MIB,
    "nvme": 4 * MIB,
}
_CONFIG: Final = "platform.json"
_CONFIG_LIMIT: Final = 1024 * 1024
_EVIDENCE_LIMIT: Final = 4 * MIB
_EVIDENCE_ID: Final = re.compile(r"[0-9a-f]{64}")  # SHA-256, lower-case hex
_JOURNAL_KEY: Final = "platform-journal.key"
_COUNTER: Final = "platform"
_NO_WRITE_STEPS: Final = frozenset({"receive", "verify", "verify-write", "reboot", "health"})
FAIL_HEALTH: Final = "fail-health"


class Faults:
    """Fault injection for drills and tests.

    ``step`` (one of :data:`STEPS`) loses power in that step: mid-write for the steps that
    write (``stage``, ``write``: half the image; ``activate``, ``commit``: half the journal
    record), on entry for the others. ``after_writes=k`` loses power halfway through the k-th
    chunk written to flash, whatever step that is. ``fail-health`` is not a power loss: the
    updated component fails its health check, so the update rolls back.
    """

    def __init__(self, step: str | None = None, *, after_writes: int | None = None) -> None:
        if step is not None and step not in (*STEPS, FAIL_HEALTH):
            raise ConfigError(f"unknown fault {step!r}: one of {', '.join((*STEPS, FAIL_HEALTH))}")
        if after_writes is not None and after_writes < 1:
            raise ConfigError("after_writes counts from 1")
        self.step = step
        self.after_writes = after_writes
        self.current: str | None = None
        self.writes = 0

    @property
    def unhealthy(self) -> bool:
        return self.step == FAIL_HEALTH

    def enter(self, step: str) -> None:
        self.current = step
        if step == self.step and step in _NO_WRITE_STEPS:
            raise PowerLost(step)

    def cut(self, what: str, length: int) -> int | None:
        self.writes += 1
        if self.after_writes is not None and self.writes == self.after_writes:
            return length // 2
        if self.step is not None and self.current == self.step and what == self.step:
            return length // 2
        return None


_NO_FAULTS: Final = Faults()


@dataclass(frozen=True, slots=True)
class ComponentBoot:
    """What boot decided for one component."""

    name: str
    running: bool
    image: Image | None
    recovered: bool = False
    code: str | None = None
    detail: str = ""
    identity: str | None = None
    validity: str | None = None
    """Why the component's BMC manifest or device reference values were outside their
    validity dates when it booted anyway (``expired_manifest = "report"``); else ``None``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "running" if self.running else "held-in-reset",
            "version": self.image.version if self.image else None,
            "svn": self.image.svn if self.image else None,
            "sha384": self.image.sha384.hex() if self.image else None,
            "recovered": self.recovered,
            "code": self.code,
            "detail": self.detail,
            "identity": self.identity,
            "validity": self.validity,
        }


@dataclass(frozen=True, slots=True)
class BootReport:
    """One boot: each component's outcome, the PFM, the RoT's PCRs, and the update outcome."""

    components: tuple[ComponentBoot, ...]
    pfm_svn: int | None
    pcrs: tuple[bytes, ...] = ()
    update: str | None = None
    update_component: str | None = None
    recovery_replaced: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.running for c in self.components)

    def component(self, name: str) -> ComponentBoot:
        for c in self.components:
            if c.name == name:
                return c
        raise NotFound(f"no component {name!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pfm_svn": self.pfm_svn,
            "components": [c.to_json() for c in self.components],
            "pcrs": [p.hex() for p in self.pcrs],
            "update": self.update,
            "update_component": self.update_component,
            "recovery_replaced": list(self.recovery_replaced),
        }


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """One firmware image the node holds: component, role (active, previous, staged,
    recovery), version, SVN, SHA-384 and whether it can be updated."""

    component: str
    role: str
    version: str
    svn: int
    sha384: bytes
    updateable: bool

    @property
    def id(self) -> str:
        return f"{self.component}-{self.role}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "component": self.component,
            "role": self.role,
            "version": self.version,
            "svn": self.svn,
            "sha384": self.sha384.hex(),
            "updateable": self.updateable,
        }


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """An SPDM device of the node: the CoRIM class vendor and model of its reference values,
    and (once created) the root certificate its identity must chain to, pinned here."""

    vendor: str
    model: str
    root: bytes = b""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    rot: Path
    slot_sizes: Mapping[str, int]
    devices: Mapping[str, DeviceInfo]
    trust: PlatformTrust
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self, base: Path) -> dict[str, Any]:
        rot = os.path.relpath(self.rot, base) if self.rot.is_relative_to(base) else str(self.rot)
        return {
            "format": 1,
            "rot": rot,
            "slot_sizes": dict(self.slot_sizes),
            "devices": {
                k: {"vendor": v.vendor, "model": v.model, "root": base64.b64encode(v.root).decode()}
                for k, v in self.devices.items()
            },
            "trust": self.trust.to_json(),
        }

    @classmethod
    def from_json(cls, doc: object, base: Path) -> NodeConfig:
        if not isinstance(doc, dict) or doc.get("format") != 1:
            raise ConfigError(f"{_CONFIG} is not a platform configuration of format 1")
        rot_path, slot_sizes, device_docs = (
            doc.get("rot"),
            doc.get("slot_sizes"),
            doc.get("devices"),
        )
        if not isinstance(rot_path, str) or not rot_path:
            raise ConfigError(f"{_CONFIG} is malformed: rot is the RoT's directory (text)")
        if not isinstance(slot_sizes, dict) or not all(type(v) is int for v in slot_sizes.values()):
            raise ConfigError(f"{_CONFIG} is malformed: slot_sizes maps components to integers")
        if not isinstance(device_docs, dict) or not all(
            isinstance(v, dict)
            and set(v) == {"vendor", "model", "root"}
            and all(isinstance(v[k], str) for k in v)
            for v in device_docs.values()
        ):
            raise ConfigError(
                f"{_CONFIG} is malformed: devices maps devices to a vendor, model and root (text)"
            )
        try:
            rot = Path(rot_path)
            sizes = dict(slot_sizes)
            devices = {
                k: DeviceInfo(v["vendor"], v["model"], base64.b64decode(v["root"], validate=True))
                for k, v in device_docs.items()
            }
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(f"{_CONFIG} is malformed: a device root is not base64") from exc
        if set(sizes) != set(COMPONENTS) or set(devices) != set(DEVICES):
            raise ConfigError(f"{_CONFIG} must name every component")
        return cls(
            rot if rot.is_absolute() else base / rot, sizes, devices, _trust(doc.get("trust"))
        )


# Configurations parsed, by the node's directory (as given: a relative RoT path is resolved
# against it) and the SHA-256 of the file's exact bytes: a node is opened several times in one
# attestation (its measurement, the verifier's look at its pinned device roots), and the file
# is read and hashed at every opening, so a changed file is parsed afresh. A failure is not
# remembered; what is kept is read-only (:func:`_shared`).
_CONFIGS: Memo[tuple[str, bytes], NodeConfig] = Memo(256)


# Evidence files parsed, by their name, the SHA-256 of their bytes (checked against the bytes
# read at every use, before this is looked at): every node of a class holds the same
# statements for the same images. The value is immutable (bytes); a failure is not kept.
_EVIDENCE: Memo[str, tuple[tuple[bytes, ...], bytes | None]] = Memo(256)


def _shared(config: NodeConfig) -> NodeConfig:
    """``config`` with its mappings read-only, as one object every opening may share."""
    return dataclasses.replace(
        config,
        slot_sizes=MappingProxyType(dict(config.slot_sizes)),
        devices=MappingProxyType(dict(config.devices)),
        extra=MappingProxyType(dict(config.extra)),
    )


# The trust of a configuration, remembered by the SHA-256 of its canonical JSON: every node of a
# class carries the same trust (its keys are parsed once, not at every opening of a node). A
# failure is not remembered; the object is immutable.
_TRUSTS: Memo[bytes, PlatformTrust] = Memo(64)


def _trust(doc: object) -> PlatformTrust:
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    except (TypeError, ValueError):
        return PlatformTrust.from_json(doc)  # not JSON data: its own error
    digest = hashlib.sha256(text.encode()).digest()
    found = _TRUSTS.get(digest)
    if found is None:
        found = PlatformTrust.from_json(doc)
        _TRUSTS.put(digest, found)
    return found


def _min_svn(fuses: Fuses, component: str, floor: int) -> int:
    """The lowest SVN an image of ``component`` may have to run: its floor in the journal and,
    for the BMC, the RoT's SVN fuse, which the RoT's boot of the BMC enforces (unless
    anti-rollback is disabled). The fuse may stand above the floor — a power cut between
    raising it and journaling the new recovery image, an operator's ``rot fuse svn`` — and an
    image boot would refuse is refused before it is written: by an update, at creation, and
    by an operator's recovery."""
    if component == "bmc" and not fuses.anti_rollback_disabled:
        return max(floor, fuses.svn)
    return floor


def evidence_blob(statements: Sequence[bytes], pfm_statement: bytes | None) -> bytes:
    """The evidence an update's statements are kept as (``FirmwareRejected``
    ``evidence-too-large`` over 4 MiB): computed, not stored."""
    blob = encode_cbor(
        {
            "statements": [unwrap_witnessed(s) for s in statements],
            "pfm_statement": None if pfm_statement is None else unwrap_witnessed(pfm_statement),
        }
    )
    if len(blob) > _EVIDENCE_LIMIT:
        raise FirmwareRejected("the update's statements exceed 4 MiB", code="evidence-too-large")
    return blob


_NEVER_CREATED: Final = (
    "the platform journal is empty: the node was never created (its creation was cut short); "
    "remove the node's directory and create it again"
)


def _evidence_id(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _holds(path: Path, blob: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``blob`` (absent, a directory, longer or
    unreadable: it does not)."""
    try:
        return read_limited(path, len(blob)) == blob
    except (OSError, IronrootError):
        return False


class Rot:
    """The RoT's view of the node while one operation holds it (internal: the update and the
    boot run inside one). It owns the flash writer, the journal and the event log."""

    def __init__(self, platform: Platform, faults: Faults, device: Device | None = None) -> None:
        self.platform = platform
        self.faults = faults
        self.flash = Flash(platform.directory / "flash", platform.config.slot_sizes)
        cut: PowerCut = faults.cut
        self.writer = RotFlashWriter(self.flash, cut)
        if device is not None and device.directory != platform.config.rot:
            raise ConfigError(f"{device!r} is not the RoT of {platform!r}")
        self.device = device if device is not None else Device(platform.config.rot)
        try:
            key = read_limited(platform.config.rot / _JOURNAL_KEY, 64)
        except FileNotFoundError as exc:
            # Creation writes the key before the first journal record, which moves the RoT's
            # counter: with the counter still at 0 no node was ever created here (creation was
            # cut short), which is not tampering.
            if self.device.counter(_COUNTER).value() == 0:
                raise StorageError(_NEVER_CREATED, code="never-created") from exc
            raise DeviceStateTampered(
                "the RoT's journal key is missing or unreadable", code="journal-key"
            ) from exc
        except (OSError, IronrootError) as exc:
            raise DeviceStateTampered(
                "the RoT's journal key is missing or unreadable", code="journal-key"
            ) from exc
        if len(key) != 32:
            raise DeviceStateTampered("the RoT's journal key is damaged", code="journal-key")
        self.journal = Journal(self.flash, self.writer, key, self.device.counter(_COUNTER))
        self.log = EventLog(self.flash, self.writer, key)
        self.state: NodeState | None = None

    def load(self) -> NodeState:
        record = self.journal.open()
        if record is None:
            raise StorageError(_NEVER_CREATED, code="never-created")
        state = NodeState.from_cbor(record.state)
        if state.config != self.platform.config_digest:
            raise DeviceStateTampered(
                f"{_CONFIG} is not the configuration the RoT journaled", code="config-changed"
            )
        self.state = state
        return state

    def commit(
        self, step: str, state: NodeState, now: dt.datetime, *, what: str = "journal"
    ) -> None:
        self.journal.append(step, state.to_cbor(), now, what=what)
        self.state = state

    def event(
        self,
        severity: str,
        message_id: str,
        message: str,
        *args: str,
        now: dt.datetime,
        coalesce: bool = False,
    ) -> None:
        self.log.add(severity, message_id, message, *args, now=now, coalesce=coalesce)

    # --- evidence -------------------------------------------------------------------------

    def _evidence_folder(self) -> Path:
        """The node's ``evidence`` folder, which the RoT writes and removes files in:
        ``StorageError`` ``evidence`` when it is a symbolic link (planted by whoever can write
        the node's directory, it would have the RoT write an update's statements — bytes the
        sender chose — into the folder it names, and remove files there)."""
        folder = self.platform.directory / "evidence"
        if folder.is_symlink():
            raise StorageError(
                f"the node's evidence folder {folder} is a symbolic link", code="evidence"
            )
        return folder

    def store_evidence(self, statements: Sequence[bytes], pfm_statement: bytes | None) -> str:
        blob = evidence_blob(statements, pfm_statement)
        ident = _evidence_id(blob)
        path = self._evidence_folder() / f"{ident}.cbor"
        try:
            # Kept as it is only when it holds these very bytes: a file of that name with other
            # bytes (damaged, or planted ahead of the update by whoever can write the node's
            # directory) would fail every later read (DeviceStateTampered) and roll back every
            # delivery of this update, so it is written again.
            if not _holds(path, blob):
                make_dirs(path.parent)
                write_atomic(path, blob, mode=0o644)
        except OSError as exc:
            raise StorageError(
                f"the update's statements cannot be kept: {exc.strerror}", code="evidence"
            ) from exc
        return ident

    def drop_evidence(self, ident: str) -> None:
        """Remove the evidence ``ident`` unless an image of the journaled state was accepted
        with it (a refused update's statements; they were kept when it was staged)."""
        assert self.state is not None
        if ident not in self.state.evidence():
            # Left behind when it cannot be removed: nothing the journal names refers to it.
            with contextlib.suppress(OSError, StorageError):
                (self._evidence_folder() / f"{ident}.cbor").unlink(missing_ok=True)

    # --- the PFM ----------------------------------------------------------------------------

    def verify_pfm_bytes(self, data: bytes, min_svn: int) -> Pfm:
        trust = self.platform.config.trust
        fuses = self.device.fuses
        pfm = verify_pfm(
            data,
            ecc_keys=trust.ecc_keys,
            pqc_keys=trust.pqc_keys,
            vendor_key_hash=fuses.vendor_key_hash,
            min_svn=min_svn,
            ecc_revocation=fuses.ecc_revocation,
            pqc_revocation=fuses.pqc_revocation,
        )
        if pfm.platform != trust.platform:
            raise FirmwareRejected(
                f"the PFM is for {pfm.platform!r}, this node is {trust.platform!r}",
                code="pfm-platform",
            )
        return pfm

    def _read_pfm(self, region: str, image: Image | None) -> tuple[Pfm | None, bytes, str]:
        """The PFM in ``region`` of the RoT's chip when its bytes are ``image`` and it
        verifies (its bytes), else ``None`` and why ("" when the bytes are not ``image``);
        reads only."""
        assert self.state is not None
        read = self.flash.chip("rot").image(region)
        if image is None or read is None or read[1] != image.sha384:
            return None, b"", ""
        try:
            return self.verify_pfm_bytes(read[0], self.state.pfm.min_svn), read[0], ""
        except IronrootError as exc:
            return None, read[0], exc.detail

    def _pfm_copies(self) -> tuple[tuple[str, Image | None, bool], ...]:
        """Where a failed active PFM is restored from, in order: (region, image, fallback)."""
        assert self.state is not None
        ps = self.state.pfm
        return (
            ("pfm-recovery", ps.recovery, False),
            (f"pfm{ps.inactive}", ps.slots[ps.inactive] if ps.fallback else None, True),
        )

    def pfm_in_force(self) -> Pfm | None:
        """The PFM :meth:`active_pfm` would return, found without restoring, journaling or
        logging anything (a check that changes nothing): the active PFM when it verifies,
        else the copy it would be restored from; ``None`` when no copy verifies."""
        assert self.state is not None
        ps = self.state.pfm
        pfm, _, _ = self._read_pfm(f"pfm{ps.active}", ps.image)
        for source, image, _ in () if pfm is not None else self._pfm_copies():
            pfm, _, _ = self._read_pfm(source, image)
            if pfm is not None:
                break
        return pfm

    def active_pfm(self, now: dt.datetime) -> tuple[Pfm | None, bool]:
        """The active PFM, restored from recovery when its slot fails; (None, …) when no copy
        verifies (everything stays in reset)."""
        assert self.state is not None
        ps = self.state.pfm
        active, _, problem = self._read_pfm(f"pfm{ps.active}", ps.image)
        if active is not None:
            return active, False
        problem = problem or "the active PFM's bytes are not the PFM the RoT wrote"
        self.event(
            "Critical",
            "PfmCheckFailed",
            f"the active PFM failed its check: {problem}",
            f"pfm{ps.active}",
            now=now,
        )
        for source, image, fallback in self._pfm_copies():
            pfm, data, _ = self._read_pfm(source, image)
            if pfm is None:
                continue
            if fallback:
                new = dataclasses.replace(ps, active=ps.inactive, fallback=False)
            else:
                self.writer.write_image("rot", f"pfm{ps.active}", data, what="recover")
                new = ps.with_slot(ps.active, image)
            self.commit("pfm-recovered", dataclasses.replace(self.state, pfm=new), now)
            self.event("OK", "PfmRecovered", f"the PFM was restored from {source}", source, now=now)
            return pfm, True
        return None, False


class Platform:
    """A node in a directory (see the module docstring)."""

    def __init__(self, directory: Path, config: NodeConfig, config_bytes: bytes) -> None:
        self.directory = directory
        self.config = config
        self.config_digest = hashlib.sha256(config_bytes).digest()

    def __repr__(self) -> str:
        return f"Platform({str(self.directory)!r})"

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path | str) -> Platform:
        """The node in ``directory`` (``NotFound`` when there is none)."""
        base = Path(directory)
        path = base / _CONFIG
        if not path.is_file():
            raise NotFound(f"no platform in {base} (run `ironroot platform init`)")
        data = read_limited(path, _CONFIG_LIMIT)
        key = (str(base), hashlib.sha256(data).digest())
        config = _CONFIGS.get(key)
        if config is None:
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise ConfigError(f"{path} is not JSON (or is nested too deeply)") from exc
            config = _shared(NodeConfig.from_json(doc, base))
            _CONFIGS.put(key, config)
        return cls(base, config, data)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # never through a link: a ``.lock`` planted as one would have the RoT create and open
        # for writing a file wherever it points (``file_lock``)
        with file_lock(self.directory / ".lock", "the node's lock"):
            yield

    @contextlib.contextmanager
    def rot(self, faults: Faults | None = None, *, device: Device | None = None) -> Iterator[Rot]:
        """Hold the node (one operation at a time) and open its RoT state; ``device`` is its
        RoT device when the caller holds it open already (it loads and verifies its state
        at every use)."""
        with self._locked():
            rot = Rot(self, faults or Faults(), device)
            rot.load()
            yield rot

    @classmethod
    def create(
        cls,
        directory: Path | str,
        *,
        rot: Path | str,
        trust: PlatformTrust,
        pfm: bytes,
        pfm_statement: bytes,
        images: Mapping[str, bytes],
        statements: Mapping[str, Sequence[bytes]],
        devices: Mapping[str, DeviceInfo],
        now: dt.datetime,
        slot_sizes: Mapping[str, int] | None = None,
        verified: MutableMapping[bytes, Any] | None = None,
    ) -> Platform:
        """Create a node in ``directory`` protected by the provisioned RoT in ``rot``.

        Factory provisioning verifies like an update: the PFM (signed by the fused vendor keys,
        logged) and, for every component, its image and statements against that PFM. Then the
        flash is formatted, each image written to slot 0 and to recovery, the SPDM devices get
        their identities, and the journal's first record is made.

        ``verified`` (a dict one caller keeps while it makes many nodes of one class with one
        ``trust``) remembers each verification by the exact inputs it depends on — component,
        image, statements, PFM and its statement, the fuse values update verification reads
        (vendor key hash, owner key hash, revocations, anti-rollback), ``now`` — so the same
        class images are not verified again for every node; any other input is verified.
        """
        from ironroot.platform._update import create_platform

        return create_platform(
            directory,
            rot=rot,
            trust=trust,
            pfm=pfm,
            pfm_statement=pfm_statement,
            images=images,
            statements=statements,
            devices=devices,
            now=now,
            slot_sizes=slot_sizes,
            verified=verified,
        )

    # --- acting -----------------------------------------------------------------------------

    def boot(self, *, now: dt.datetime, faults: Faults | None = None) -> BootReport:
        """Boot the node: the RoT's checks, recovery, measured boot and update decision."""
        from ironroot.platform._boot import boot

        with self.rot(faults) as rot:
            return boot(rot, now)

    def update(
        self,
        component: str,
        bundle: bytes,
        statements: Sequence[bytes],
        *,
        now: dt.datetime,
        pfm: bytes | None = None,
        pfm_statement: bytes | None = None,
        faults: Faults | None = None,
        progress: Callable[[str, int], None] | None = None,
        allow_recovery_removal: Sequence[str] = (),
    ) -> UpdateResult:
        """Update ``component`` through every step of the state machine
        (:mod:`ironroot.platform._update`); a refusal raises the failing check's error.

        ``allow_recovery_removal``: the components whose recovery image the update's new PFM
        may stop listing (else ``PolicyRejected`` ``pfm-drops-recovery-image``)."""
        from ironroot.platform._update import run_update

        with self.rot(faults) as rot:
            return run_update(
                rot,
                component,
                bundle,
                statements,
                now=now,
                pfm=pfm,
                pfm_statement=pfm_statement,
                progress=progress,
                allow_recovery_removal=allow_recovery_removal,
            )

    def preflight(self, *, now: dt.datetime) -> UpdatePreflight:
        """A check-only run of the update's checks over this node's next updates, changing
        nothing (:class:`ironroot.platform.UpdatePreflight`): the node's state and PFM in force
        are read now, under its lock; each :meth:`UpdatePreflight.check` then verifies one
        update as :meth:`update` would once the earlier ones were committed."""
        from ironroot.platform._update import UpdatePreflight

        with self.rot() as rot:
            return UpdatePreflight(rot, now)

    def measure(
        self, *, now: dt.datetime, nonce: bytes | None = None, device: Device | None = None
    ) -> list[DeviceMeasurement]:
        """Measure each SPDM device against the reference values logged for its image;
        ``nonce`` (32 bytes) is a verifier's challenge for the signed measurements, so each
        device's :attr:`DeviceMeasurement.evidence` answers it (default: a fresh one).
        ``device``: the node's RoT device, when the caller holds it open (:meth:`rot`)."""
        from ironroot.platform._boot import measure_devices

        with self.rot(device=device) as rot:
            return measure_devices(rot, now, nonce=nonce)

    def recover(self, component: str, *, now: dt.datetime) -> Image:
        """Restore ``component``'s active slot from its recovery image (an operator's
        recovery; boot does the same by itself when the active slot fails its check)."""
        if component not in COMPONENTS:
            raise NotFound(f"no component {component!r}")
        with self.rot() as rot:
            assert rot.state is not None
            pending = rot.state.pending
            if pending is not None:
                # The next boot decides that update; restoring under it would let boot take
                # the recovery image for the update's new firmware.
                raise Conflict(
                    f"an update of {pending.component} is at {pending.step}: boot first",
                    code="update-in-progress",
                )
            cs = rot.state.component(component)
            chip = rot.flash.chip(component)
            read = chip.image("recovery")
            if cs.recovery is None or read is None or read[1] != cs.recovery.sha384:
                raise DeviceStateTampered(
                    f"{component}'s recovery image is damaged", code="recovery-damaged"
                )
            pfm, _ = rot.active_pfm(now)
            if pfm is None:
                raise StorageError("no verified PFM is active", code="no-pfm")
            pfm.allows_digest(component, cs.recovery.sha384)
            minimum = _min_svn(rot.device.fuses, component, cs.min_svn)
            if cs.recovery.svn < minimum:
                # Boot would refuse it (for the BMC, the RoT's SVN fuse may stand above the
                # floor): restored, the component would be held in reset.
                raise SvnRollback(
                    f"{component}'s recovery image has svn {cs.recovery.svn}, below the "
                    f"minimum {minimum}: restoring it would hold {component} in reset"
                )
            rot.writer.write_image(component, f"slot{cs.active}", read[0], what="recover")
            if chip.image_digest(f"slot{cs.active}") != cs.recovery.sha384:
                raise StorageError(f"{component}: the restored slot does not read back")
            new = dataclasses.replace(cs.with_slot(cs.active, cs.recovery), healthy=0)
            rot.commit("recovered", rot.state.with_component(component, new), now)
            rot.event(
                "OK",
                "FlashRecovered",
                f"{component}: an operator restored slot{cs.active} from recovery",
                component,
                now=now,
            )
            return cs.recovery

    # --- reading ----------------------------------------------------------------------------

    def state(self) -> NodeState:
        with self.rot() as rot:
            assert rot.state is not None
            return rot.state

    def events(self) -> list[Event]:
        """The RoT's event log, oldest first."""
        with self.rot() as rot:
            return rot.log.events()

    def journal(self) -> list[dict[str, Any]]:
        """The journal's records in the active half: counter, step, time."""
        with self.rot() as rot:
            return [{"ctr": r.ctr, "step": r.step, "at": r.at} for r in rot.journal.history]

    def inventory(self) -> list[InventoryItem]:
        """Every image the node holds, per component and role."""
        state = self.state()
        items: list[InventoryItem] = []
        for name in COMPONENTS:
            cs = state.component(name)
            roles: list[tuple[str, Image | None]] = [("active", cs.image)]
            if cs.fallback:
                roles.append(("previous", cs.slots[cs.inactive]))
            pending = state.pending
            if pending is not None and pending.component == name:
                roles.append(("staged", pending.image))
            roles.append(("recovery", cs.recovery))
            for role, image in roles:
                if image is not None:
                    items.append(
                        InventoryItem(
                            name, role, image.version, image.svn, image.sha384, role == "active"
                        )
                    )
        return items

    def show(self) -> dict[str, Any]:
        state = self.state()
        pending = state.pending
        return {
            "platform": self.config.trust.platform,
            "directory": str(self.directory),
            "boots": state.boots,
            "last_boot": dict(state.last_boot),
            "pfm": {
                "svn_floor": state.pfm.min_svn,
                "active": _image_json(state.pfm.image),
                "recovery": _image_json(state.pfm.recovery),
            },
            "components": {
                name: {
                    "active_slot": cs.active,
                    "active": _image_json(cs.image),
                    "previous": _image_json(cs.slots[cs.inactive]) if cs.fallback else None,
                    "recovery": _image_json(cs.recovery),
                    "svn_floor": cs.min_svn,
                    "healthy_boots": cs.healthy,
                }
                for name, cs in state.components.items()
            },
            "pending": None
            if pending is None
            else {
                "component": pending.component,
                "step": pending.step,
                "image": _image_json(pending.image),
            },
        }

    def evidence(self, ident: str) -> tuple[tuple[bytes, ...], bytes | None]:
        """The statements an image was accepted with (and its PFM's statement, if any)."""
        from ironroot.cose import decode_cbor

        if not _EVIDENCE_ID.fullmatch(ident):
            raise NotFound("no such evidence")
        path = self.directory / f"evidence/{ident}.cbor"  # one join: ident is hex
        try:
            # a regular file: a named pipe held open by a writer would keep the read waiting
            blob = read_limited(path, _EVIDENCE_LIMIT, regular=True)
        except (FileNotFoundError, NotFound) as exc:
            raise NotFound(f"the evidence {ident[:16]} is missing") from exc
        except (OSError, InputUnavailable) as exc:  # a directory in its place, unreadable
            raise StorageError(
                f"the evidence {ident[:16]} cannot be read", code="evidence"
            ) from exc
        if _evidence_id(blob) != ident:
            raise DeviceStateTampered(f"the evidence {ident[:16]} was changed", code="evidence")
        found = _EVIDENCE.get(ident)  # the bytes just read are the ones it names
        if found is not None:
            return found
        doc = decode_cbor(blob)
        if not isinstance(doc, dict) or not isinstance(doc.get("statements"), list):
            raise DeviceStateTampered(f"the evidence {ident[:16]} is malformed", code="evidence")
        pfm_statement = doc.get("pfm_statement")
        found = (
            tuple(s for s in doc["statements"] if isinstance(s, bytes)),
            pfm_statement if isinstance(pfm_statement, bytes) else None,
        )
        _EVIDENCE.put(ident, found)
        return found

    def active_image(self, component: str) -> bytes:
        """The bytes of ``component``'s active image as the RoT reads them from flash
        (``"pfm"``: the active signed PFM), for evidence and audit. ``DeviceStateTampered``
        (``flash-check``) when the slot does not hold the image the journal names."""
        with self.rot() as rot:
            assert rot.state is not None
            if component == "pfm":
                cs, chip, region = rot.state.pfm, "rot", f"pfm{rot.state.pfm.active}"
            elif component in COMPONENTS:
                cs = rot.state.component(component)
                chip, region = component, f"slot{cs.active}"
            else:
                raise NotFound(f"no component {component!r}")
            read = rot.flash.chip(chip).image(region)
            if cs.image is None or read is None or read[1] != cs.image.sha384:
                raise DeviceStateTampered(
                    f"{component}'s active slot does not hold the image the RoT journaled",
                    code="flash-check",
                )
            return read[0]

    # --- the BMC's SPI port -----------------------------------------------------------------

    def bmc_write(self, chip: str, offset: int, data: bytes, *, now: dt.datetime) -> None:
        """A write the BMC issues to a flash chip, through the RoT's SPI filter.

        It passes only when the whole range lies in the chip's ``rw`` region and in a
        read-write region the active PFM gives that component; otherwise ``FlashProtected``,
        an event in the RoT's log, and not one byte written.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ConfigError("a flash write's data is bytes")
        data = bytes(data)
        with self.rot() as rot:
            allowed = False
            reason = f"{chip} is not a component's flash"
            if chip in COMPONENTS and isinstance(offset, int) and offset >= 0:
                rw = rot.flash.chip(chip).region("rw")
                pfm, _ = rot.active_pfm(now)
                ranges = pfm.component(chip).read_write if pfm is not None else ()
                in_pfm = any(o <= offset and offset + len(data) <= o + n for o, n in ranges)
                allowed = rw.contains(offset, len(data)) and in_pfm and len(data) > 0
                reason = (
                    f"{chip} bytes {offset:#x}+{len(data):#x} are not in a read-write region "
                    "of the active PFM"
                )
            if not allowed:
                rot.event(
                    "Critical",
                    "FlashWriteBlocked",
                    f"blocked a BMC write: {reason}",
                    chip,
                    str(offset),
                    str(len(data)),
                    now=now,
                    coalesce=True,
                )
                raise FlashProtected(reason)
            rot.writer.write(chip, offset, data, what="bmc")

    def bmc_read(self, chip: str, offset: int, length: int) -> bytes:
        """A read the BMC issues (reads are not filtered)."""
        if chip not in (*COMPONENTS, "rot"):
            raise NotFound(f"no flash chip {chip!r}")
        return (
            Flash(self.directory / "flash", self.config.slot_sizes).chip(chip).read(offset, length)
        )


def _image_json(image: Image | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {"version": image.version, "svn": image.svn, "sha384": image.sha384.hex()}


def new_journal_key(rot_dir: Path) -> None:
    """Give the RoT a fresh journal key (at node creation)."""
    write_atomic(rot_dir / _JOURNAL_KEY, secrets.token_bytes(32), mode=0o600, exclusive=True)
