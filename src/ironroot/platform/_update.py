"""The update: one journaled state machine, and the node's creation.

Steps (each journaled before the next begins; each a fault-injection point):

``receive``  the bundle and its statements arrive (size-checked; nothing written yet);
``stage``    the RoT writes the bundle to the component's ``staging`` region and keeps its
             statements (content-addressed evidence); journal: *staged*;
``verify``   the staged bytes — not the received ones — pass every check of
             :mod:`ironroot.platform._checks` and, for an SPDM device, the reference values it
             ships pass ``reference-values`` (:func:`_check_references`); a refusal is
             journaled (*refused*), logged with the failing check, and raised, and the
             statements kept at ``stage`` are removed
             unless an image the RoT holds was accepted with the same ones;
``write``    journal: *writing* (the inactive slot is no longer a fallback), then the RoT
             programs the inactive slot (and the PFM's inactive slot when the update carries a
             PFM);
``verify-write`` the slot's bytes hash to the verified digest (else ``DigestMismatch``,
             abandoned); journal: *written*;
``activate`` one journal record makes the new slot (and PFM) active: *activated*. This record
             is the atomic switch: torn, the old firmware stays;
``reboot``, ``health``, ``commit`` the RoT boots the node (:mod:`ironroot.platform._boot`):
             the new firmware is measured and, healthy, committed; otherwise rolled back.

A power loss before the activation record leaves the old firmware (the next boot abandons the
update); after it, the next boot finishes the decision. Never a mix: a slot the RoT did not
finish writing is never active, and the active slot is always checked against the journal and
the PFM before it runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import make_dirs, read_limited, write_atomic
from ironroot.errors import (
    ConfigError,
    Conflict,
    DigestMismatch,
    IronrootError,
    LimitExceeded,
    NotFound,
    StorageError,
    VerificationFailed,
)
from ironroot.platform._boot import boot, svn_floor_after_boots
from ironroot.platform._checks import (
    VerifiedUpdate,
    check_update,
    unwrap_witnessed,
    verify_update,
)
from ironroot.platform._devices import PlatformDevice, device_references
from ironroot.platform._flash import IMAGE_HEADER_SIZE, Flash, RotFlashWriter
from ironroot.platform._journal import Journal
from ironroot.platform._node import (
    _CONFIG,
    _CONFIG_LIMIT,
    _COUNTER,
    _JOURNAL_KEY,
    COMPONENTS,
    DEFAULT_SLOT_SIZES,
    DEVICES,
    BootReport,
    DeviceInfo,
    Faults,
    NodeConfig,
    Platform,
    Rot,
    _min_svn,
    evidence_blob,
    new_journal_key,
)
from ironroot.platform._pfm import Pfm
from ironroot.platform._policy import PlatformTrust
from ironroot.platform._state import ComponentState, Image, NodeState, Pending
from ironroot.rot import Device, Fuses

__all__ = ["UpdatePreflight", "UpdateResult", "create_platform", "run_update"]

Progress = Callable[[str, int], None]
_MAX_STATEMENTS: Final = 16

_log = logging.getLogger("ironroot.platform")


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateResult:
    """An update that ran to its end: committed, or rolled back by its health check."""

    component: str
    outcome: str
    image: Image
    boot: BootReport
    checks: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "component": self.component,
            "outcome": self.outcome,
            "version": self.image.version,
            "svn": self.image.svn,
            "sha384": self.image.sha384.hex(),
            "checks": list(self.checks),
            "boot": self.boot.to_json(),
        }


def _active_images(state: NodeState) -> dict[str, bytes]:
    return {n: cs.image.sha384 for n, cs in state.components.items() if cs.image is not None}


def _recovery_images(state: NodeState) -> dict[str, bytes]:
    return {n: cs.recovery.sha384 for n, cs in state.components.items() if cs.recovery is not None}


def _statements(statements: Sequence[bytes]) -> tuple[bytes, ...]:
    if not isinstance(statements, Sequence) or isinstance(statements, bytes | bytearray | str):
        raise ConfigError("statements is a sequence of statements (bytes)")
    if len(statements) > _MAX_STATEMENTS:
        raise LimitExceeded(f"an update carries at most {_MAX_STATEMENTS} statements")
    if not all(isinstance(s, bytes) for s in statements):
        raise ConfigError("statements are bytes")
    return tuple(statements)


def _received(
    rot: Rot, state: NodeState, component: str, bundle: bytes, statements: Sequence[bytes]
) -> tuple[bytes, ...]:
    """The ``receive`` step's checks, before anything is written: a component of the node, no
    update in progress, the statements' count and the bundle's size (the staging region)."""
    if component not in COMPONENTS:
        raise NotFound(f"no component {component!r}: one of {', '.join(COMPONENTS)}")
    if state.pending is not None:
        raise Conflict(
            f"an update of {state.pending.component} is at {state.pending.step}: boot first",
            code="update-in-progress",
        )
    checked = _statements(statements)
    room = rot.flash.chip(component).region("staging").size - IMAGE_HEADER_SIZE
    if not isinstance(bundle, bytes) or not 0 < len(bundle) <= room:
        raise LimitExceeded(f"a {component} image is 1 to {room} bytes")
    return checked


def _check_inputs(
    rot: Rot,
    min_svn: int,
    active_pfm: Pfm,
    active_images: Mapping[str, bytes],
    now: dt.datetime,
    pfm: bytes | None,
    pfm_statement: bytes | None,
    recovery_images: Mapping[str, bytes],
    allow_recovery_removal: Sequence[str],
) -> dict[str, Any]:
    """The arguments of :func:`~ironroot.platform.verify_update` on this node, but the
    component, bundle and statements."""
    return {
        "recovery_images": dict(recovery_images),
        "allow_recovery_removal": tuple(allow_recovery_removal),
        "trust": rot.platform.config.trust,
        "fuses": rot.device.fuses,
        "min_svn": min_svn,
        "active_pfm": active_pfm,
        "active_images": dict(active_images),
        "now": now,
        "pfm": pfm,
        "pfm_statement": pfm_statement,
    }


def _check_references(
    trust: PlatformTrust,
    devices: Mapping[str, DeviceInfo],
    component: str,
    statements: Sequence[bytes],
    now: dt.datetime,
) -> None:
    """The check ``reference-values``, after every check of :func:`verify_update`, for an
    SPDM device: the CoRIM statements the update ships are the reference values boot measures
    the device against, so each is held to an update's rules, not an installed image's — on
    a trusted log, published by an issuer the trust allows for the device's product (its
    CoRIM class vendor and model, not another's), and within its dates whatever
    ``expired_manifest`` says (``"report"`` keeps an *installed* device running on expired
    values, it never installs new firmware on them). Its refusal is raised with ``exc.check``
    ``reference-values``, before anything is written (:func:`device_references`' errors:
    ``UnknownIssuer`` ``publisher-not-allowed``, ``VerificationFailed`` ``rim-expired``, …)."""
    if component not in DEVICES:
        return
    info = devices[component]
    try:
        device_references(
            [unwrap_witnessed(s) for s in statements],
            trust_service_keys=trust.service_keys,
            service_issuer=trust.service_issuer,
            issuers=trust.issuers_of(component),
            vendor=info.vendor,
            model=info.model,
            now=now,
        )
    except IronrootError as exc:
        exc.check = "reference-values"
        raise


class UpdatePreflight:
    """The checks of :func:`run_update` before it writes anything, run over updates of one
    node one after another as the node would run them, **changing nothing**: no staging, no
    journal record, no event, no evidence kept, no PFM restored (made by
    :meth:`ironroot.platform.Platform.preflight`, which reads the node's state and PFM in force
    once, under the node's lock).

    :meth:`check` takes the updates in the order they will be installed. Each is checked as
    :func:`run_update` would check it once the earlier ones were committed: the ``receive``
    checks (``NotFound``, ``Conflict`` ``update-in-progress``, ``LimitExceeded``), the size of
    its statements (``FirmwareRejected`` ``evidence-too-large``), then
    :func:`~ironroot.platform.verify_update` with the RoT's fuses and trust, against the PFM
    in force — the one an earlier update carried, else the node's — and the active images with
    the earlier updates' images in place, and the component's SVN floor after the boots of the
    earlier updates (:func:`ironroot.platform._boot.svn_floor_after_boots`). It returns the
    :class:`~ironroot.platform.VerifiedUpdate` or raises the first refusal's typed error
    (``exc.check`` names the check). A component is checked once per preflight
    (``ConfigError``).

    What it cannot know is what only the install meets: a flash that does not write or read
    back (``StorageError`` ``staging``, ``DigestMismatch`` ``write-verify``), a power loss, a
    health check that fails (rolled back), a boot that restores or holds another component.
    """

    def __init__(self, rot: Rot, now: dt.datetime) -> None:
        assert rot.state is not None
        self._rot = rot
        self._state = rot.state
        self._now = now
        self._pfm = rot.pfm_in_force()
        self._images = _active_images(rot.state)
        self._checked: list[str] = []

    def __repr__(self) -> str:
        return f"UpdatePreflight({self._rot.platform!r}, checked={self._checked!r})"

    @property
    def checked(self) -> tuple[str, ...]:
        """The components checked so far, in order."""
        return tuple(self._checked)

    def check(
        self,
        component: str,
        bundle: bytes,
        statements: Sequence[bytes],
        *,
        pfm: bytes | None = None,
        pfm_statement: bytes | None = None,
        allow_recovery_removal: Sequence[str] = (),
    ) -> VerifiedUpdate:
        """Check the next update (class docs); nothing on the node changes."""
        if component in self._checked:
            raise ConfigError(f"{component} is checked once in a preflight")
        rot, state = self._rot, self._state
        checked = _received(rot, state, component, bundle, statements)
        evidence_blob(checked, pfm_statement)
        if self._pfm is None:
            raise StorageError("no verified PFM is active: boot (and recover) first", code="no-pfm")
        floor = svn_floor_after_boots(
            state.component(component),
            len(self._checked),
            rot.platform.config.trust.healthy_boots,
        )
        inputs = _check_inputs(
            rot,
            _min_svn(rot.device.fuses, component, floor),
            self._pfm,
            self._images,
            self._now,
            pfm,
            pfm_statement,
            _recovery_images(state),
            allow_recovery_removal,
        )
        verified = verify_update(component, bundle, checked, **inputs)
        config = rot.platform.config
        _check_references(config.trust, config.devices, component, checked, self._now)
        self._checked.append(component)
        self._pfm = verified.pfm
        self._images[component] = verified.sha384
        return verified


def run_update(
    rot: Rot,
    component: str,
    bundle: bytes,
    statements: Sequence[bytes],
    *,
    now: dt.datetime,
    pfm: bytes | None = None,
    pfm_statement: bytes | None = None,
    progress: Progress | None = None,
    allow_recovery_removal: Sequence[str] = (),
) -> UpdateResult:
    """The whole update of ``component`` (see the module docstring)."""
    assert rot.state is not None
    faults = rot.faults
    report = progress or (lambda _step, _pct: None)
    faults.enter("receive")
    state = rot.state
    statements = _received(rot, state, component, bundle, statements)
    chip = rot.flash.chip(component)
    report("receive", 5)

    faults.enter("stage")
    evidence = rot.store_evidence(statements, pfm_statement)
    cs = state.component(component)
    try:
        digest = rot.writer.write_image(component, "staging", bundle, what="stage")
        staged = Image(digest, "", 0, evidence)
        state = dataclasses.replace(state, pending=Pending(component, "stage", staged, cs.inactive))
        rot.commit("staged", state, now)
    except IronrootError:
        # Flash or journal that cannot be written (``StorageError``): nothing journaled
        # names these statements, so they go, as a refused update's do.
        rot.drop_evidence(evidence)
        raise
    report("stage", 15)

    faults.enter("verify")
    read = chip.image("staging")
    if read is None or read[1] != digest:
        _refuse(rot, state, now, "the staged image does not read back", "stage")
        raise StorageError("the staged image did not read back intact", code="staging")
    try:
        active_pfm = _pfm_of(rot, now)
        # A damaged active PFM was restored just now, and journaled: go on from that state,
        # or the next record would name the damaged PFM again.
        assert rot.state is not None
        state = rot.state
        inputs = _check_inputs(
            rot,
            _min_svn(rot.device.fuses, component, cs.min_svn),
            active_pfm,
            _active_images(state),
            now,
            pfm,
            pfm_statement,
            _recovery_images(state),
            allow_recovery_removal,
        )
        checked = check_update(component, read[0], statements, **inputs)
        if checked.verified is None:
            # The report names the failure; verify_update raises it as its typed error.
            verify_update(component, read[0], statements, **inputs)
            raise VerificationFailed(
                "the update checks disagree", code="checks-disagree", check="verify"
            )
        verified = checked.verified
        config = rot.platform.config
        _check_references(config.trust, config.devices, component, statements, now)
    except IronrootError as exc:
        _refuse(rot, state, now, exc.detail, exc.check or exc.code)
        raise
    image = Image(digest, verified.version.version, verified.svn, evidence)
    report("verify", 35)

    faults.enter("write")
    pfm_image: Image | None = None
    ps = state.pfm
    if verified.new_pfm is not None:
        pfm_image = Image(
            hashlib.sha384(verified.new_pfm).digest(),
            str(verified.pfm.svn),
            verified.pfm.svn,
            evidence,
        )
        ps = dataclasses.replace(ps.with_slot(ps.inactive, None), fallback=False)
    target = cs.inactive
    writing = dataclasses.replace(cs.with_slot(target, None), fallback=False)
    state = dataclasses.replace(
        state.with_component(component, writing),
        pfm=ps,
        pending=Pending(component, "write", image, target, pfm_image),
    )
    rot.commit("writing", state, now)
    rot.writer.write_image(component, f"slot{target}", read[0], what="write")
    if verified.new_pfm is not None:
        rot.writer.write_image("rot", f"pfm{ps.inactive}", verified.new_pfm, what="write")
    report("write", 55)

    faults.enter("verify-write")
    written = chip.image_digest(f"slot{target}")
    pfm_ok = pfm_image is None or (
        rot.flash.chip("rot").image_digest(f"pfm{ps.inactive}") == pfm_image.sha384
    )
    if written != digest or not pfm_ok:
        _refuse(
            rot, state, now, "the written slot does not hash to the verified image", "verify-write"
        )
        raise DigestMismatch(
            "the written slot does not hash to the verified image",
            code="write-verify",
            check="verify-write",
        )
    state = dataclasses.replace(
        state, pending=Pending(component, "verify-write", image, target, pfm_image)
    )
    rot.commit("written", state, now)
    report("verify-write", 65)

    faults.enter("activate")
    active = dataclasses.replace(
        writing.with_slot(target, image), active=target, fallback=False, healthy=0
    )
    if pfm_image is not None:
        ps = dataclasses.replace(
            ps.with_slot(ps.inactive, pfm_image), active=ps.inactive, fallback=False, healthy=0
        )
    state = dataclasses.replace(
        state.with_component(component, active),
        pfm=ps,
        pending=Pending(component, "activate", image, target, pfm_image),
    )
    rot.commit("activated", state, now, what="activate")
    rot.event(
        "OK",
        "UpdateActivated",
        f"{component} {image.version} (svn {image.svn}) is active: rebooting",
        component,
        image.version,
        now=now,
    )
    report("activate", 75)

    faults.enter("reboot")
    result = boot(rot, now)
    report("commit", 100)
    return UpdateResult(
        component,
        result.update or "committed",
        image,
        result,
        tuple(c.name for c in checked.checks),
    )


def _pfm_of(rot: Rot, now: dt.datetime) -> Pfm:
    pfm, _ = rot.active_pfm(now)
    if pfm is None:
        raise StorageError("no verified PFM is active: boot (and recover) first", code="no-pfm")
    return pfm


def _refuse(rot: Rot, state: NodeState, now: dt.datetime, detail: str, check: str) -> None:
    assert state.pending is not None
    component = state.pending.component
    rot.commit("refused", dataclasses.replace(state, pending=None), now)
    rot.drop_evidence(state.pending.image.evidence)
    rot.event(
        "Warning",
        "UpdateRefused",
        f"{component} update refused by {check}: {detail}",
        component,
        check,
        now=now,
    )


# --- creation -------------------------------------------------------------------------------


def _verified_key(
    name: str,
    images: Mapping[str, bytes],
    statements: Sequence[bytes],
    pfm: bytes,
    pfm_statement: bytes,
    fuses: Fuses,
    now: dt.datetime,
) -> bytes:
    """What a factory verification of ``name`` depends on, hashed: every image (the others'
    digests are the active images), the component's statements, the PFM and its statement,
    the fuse values update verification reads, and the time."""
    h = hashlib.sha256()
    for part in (
        name.encode(),
        *(hashlib.sha384(images[n]).digest() for n in COMPONENTS),
        *(hashlib.sha384(bytes(s)).digest() for s in statements),
        b"pfm",
        hashlib.sha384(pfm).digest(),
        hashlib.sha384(pfm_statement).digest(),
        fuses.vendor_key_hash,
        fuses.owner_key_hash,
        f"{fuses.ecc_revocation}/{fuses.pqc_revocation}/{fuses.anti_rollback_disabled}".encode(),
        f"{fuses.svn}".encode(),
        now.isoformat().encode(),
    ):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


def create_platform(
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
    """Create a node in ``directory`` (see :meth:`Platform.create`)."""
    base = Path(directory)
    rot_dir = Path(rot).absolute()
    cut_short = (base / _CONFIG).exists()
    if cut_short and not _creation_cut_short(base, rot_dir):
        raise Conflict(f"{base} already holds a platform")
    if set(images) != set(COMPONENTS) or set(statements) != set(COMPONENTS):
        raise ConfigError(
            f"a node needs an image and its statements for each of {', '.join(COMPONENTS)}"
        )
    if set(devices) != set(DEVICES):
        raise ConfigError(f"a node needs vendor and model for each of {', '.join(DEVICES)}")
    sizes = dict(DEFAULT_SLOT_SIZES)
    sizes.update(slot_sizes or {})
    if set(sizes) != set(COMPONENTS):
        raise ConfigError(f"slot sizes are for {', '.join(COMPONENTS)}")
    device = Device(rot_dir)
    fuses = device.fuses
    if not fuses.vendor_key_hash:
        raise ConfigError("the RoT is not provisioned: no vendor key hash is fused")
    counter = device.counter(_COUNTER)
    if counter.value() != 0:
        raise Conflict("this RoT already protects a node (its platform counter is set)")
    # Every image is verified as an update would be, each carrying the new PFM (which must
    # verify against the fuses and be logged), and each against that PFM by its own check:
    # no image is active yet, so none is passed as one (the cross-check of an update would
    # refuse the first component verified for another's image, as "no longer allowed").
    checked: dict[str, VerifiedUpdate] = {}
    for name in COMPONENTS:
        key = _verified_key(name, images, statements[name], pfm, pfm_statement, fuses, now)
        remembered = verified.get(key) if verified is not None else None
        if isinstance(remembered, tuple) and remembered[0] is trust:
            checked[name] = remembered[1]
            continue
        checked[name] = verify_update(
            name,
            images[name],
            _statements(statements[name]),
            trust=trust,
            fuses=fuses,
            min_svn=_min_svn(fuses, name, 0),
            active_pfm=None,
            active_images={},
            now=now,
            pfm=pfm,
            pfm_statement=pfm_statement,
        )
        if verified is not None:
            verified[key] = (trust, checked[name])
    for name in DEVICES:
        _check_references(trust, devices, name, statements[name], now)
    make_dirs(base)
    created: list[Path] = [base / "flash", base / "evidence", base / "devices"]
    if cut_short:  # what a creation a crash cut short made goes: it is made again
        _log.warning("%s: a creation cut short before the RoT journaled it: made again", base)
        _remove(created, base / _CONFIG)
    if (base / "flash").exists() or (base / "devices").exists():
        raise Conflict(f"{base} already holds flash or devices")
    try:
        pinned: dict[str, DeviceInfo] = {}
        for name in DEVICES:
            made = PlatformDevice.create(
                base / "devices",
                name,
                vendor=devices[name].vendor,
                model=devices[name].model,
                now=now,
            )
            pinned[name] = DeviceInfo(made.vendor, made.model, made.root)
        config = NodeConfig(rot_dir, sizes, pinned, trust)
        config_bytes = json.dumps(
            config.to_json(base.absolute()), indent=2, sort_keys=True
        ).encode()
        write_atomic(base / _CONFIG, config_bytes, mode=0o644, exclusive=True)
        created.append(base / _CONFIG)
        Flash.format(base / "flash", {"rot": 0, **sizes})
        platform = Platform(base, config, config_bytes)
        if not (rot_dir / _JOURNAL_KEY).exists():
            new_journal_key(rot_dir)
        faults = Faults()
        node = Rot(platform, faults)
        writer: RotFlashWriter = node.writer
        components: dict[str, ComponentState] = {}
        for name in COMPONENTS:
            ident = node.store_evidence(statements[name], None)
            digest = writer.write_image(name, "slot0", images[name])
            writer.write_image(name, "recovery", images[name])
            v = checked[name]
            image = Image(digest, v.version.version, v.svn, ident)
            # The factory image is the recovery image, so its SVN is the floor from the start
            # (as after every recovery replacement): nothing older, even if the PFM lists it.
            components[name] = ComponentState(0, (image, None), image, min_svn=v.svn)
        pfm_ident = node.store_evidence((), pfm_statement)
        pfm_digest = writer.write_image("rot", "pfm0", pfm)
        writer.write_image("rot", "pfm-recovery", pfm)
        pfm_svn = checked["bmc"].pfm.svn
        pfm_image = Image(pfm_digest, str(pfm_svn), pfm_svn, pfm_ident)
        state = NodeState(
            platform.config_digest,
            ComponentState(0, (pfm_image, None), pfm_image, min_svn=pfm_svn),
            components,
        )
        journal: Journal = node.journal
        journal.open()
        node.commit("created", state, now)
        node.event("OK", "NodeCreated", f"node {trust.platform} created", trust.platform, now=now)
    except BaseException:
        if Device(rot_dir).counter(_COUNTER).value() == 0:
            _remove(created)
        raise
    return platform


def _remove(paths: Sequence[Path], *more: Path) -> None:
    """Remove what a creation made (folders and files), its configuration last: until it
    goes, the next creation knows to remove the rest."""
    for path in (*paths, *more):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _creation_cut_short(base: Path, rot_dir: Path) -> bool:
    """Whether the platform in ``base`` is one whose creation a crash cut short: its
    configuration names the RoT in ``rot_dir``, whose platform counter is still 0 (the RoT
    journals a node's creation last, and counts it). Such a node was never in force: no call
    that made it returned, no boot ran on it."""
    try:
        config = NodeConfig.from_json(
            json.loads(read_limited(base / _CONFIG, _CONFIG_LIMIT)), base.absolute()
        )
        if config.rot.resolve() != rot_dir.resolve():
            return False
        return Device(rot_dir).counter(_COUNTER).value() == 0
    except (OSError, ValueError, RecursionError, IronrootError):
        return False
