"""Reconcile: every node's measured state against its class's desired state, item by item.

:func:`reconcile` reads, per node, what the node *is* — not what the registry says about it:

=====================  ==========  ===========================================================
item                   source      compared
=====================  ==========  ===========================================================
``firmware:<c>``       journal     the active image the RoT journaled for component *c*
                                   (SHA-384; version and SVN shown) with the desired image
``boot:<c>``           journal     the last boot ran *c* (not held in reset)
``update``             journal     no update is half done (staged or activated, not decided)
``pfm``                journal     the active PFM's SHA-384 and SVN
``fuse:debug``         fuses       debug locked as desired
``fuse:lifecycle``     fuses       the lifecycle as desired
``fuse:svn``           fuses       the fw_svn fuse is at least the desired ``min_svn``
``fuse:anti-rollback`` fuses       anti-rollback enabled as desired
``fuse:vendor-key``    fuses       the vendor key hash fused is the class's
``fuse:ecc-revoked``   fuses       the ``ecc_revocation`` fuse revokes at least the desired
                                   ``ecc_revoked`` keys (else ``vendor-key-not-revoked``: the
                                   node still boots firmware signed with a revoked key)
``fuse:pqc-revoked``   fuses       the same of ``pqc_revocation`` and ``pqc_revoked``
``measured:bmc``       rot         the RoT's measured boot of the BMC: the FMC and runtime
                                   SHA-384 it extended into its PCRs and the SVN it booted
``measured:pfm``       rot         the PFM the RoT measured at its last boot (PCR 2's
                                   ``pfm-digest``): the SHA-384 of the PFM it enforces
``measured:<device>``  spdm        with ``measure=True``: a fresh SPDM session with each
                                   device (signed measurements against the logged reference
                                   values) whose FMC and runtime digests must be the desired
                                   image's
``node``               —           the node's state could be read at all (else the error)
=====================  ==========  ===========================================================

The measured items are independent of the BMC's journal: a journal that says one thing while
the RoT booted, or a device runs, another shows as drift there. The host has no independent
measurement here (its DPE identity follows the journaled image).

Fleet-level items (per class): ``policy:<name>`` compares the SHA-384 of each policy document
given (``policies``: name -> bytes, e.g. the verifier's appraisal policy and the key release
policy in force) with the one the desired state names.

:func:`compare` is the pure part (a :class:`MeasuredState` and a desired state in, items out);
:func:`measure_node` gathers a node's :class:`MeasuredState`. Reconcile changes nothing (the
SPDM sessions of ``measure=True`` are reads); drift is reported, acted on by others (rollout,
quarantine).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ironroot.errors import ConfigError, IronrootError, NotFound, VerificationFailed
from ironroot.fleet._desired import DesiredState, DesiredStore, revoked_keys
from ironroot.platform import COMPONENTS, DEVICES
from ironroot.rot import Fuses, check_booted_pfm, measured_pfm

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet

__all__ = [
    "ClassDrift",
    "DeviceReading",
    "DriftItem",
    "MeasuredImage",
    "MeasuredState",
    "NodeDrift",
    "ReconcileReport",
    "compare",
    "compare_policies",
    "measure_node",
    "reconcile",
]


@dataclass(frozen=True, slots=True)
class MeasuredImage:
    """An image as measured: SHA-384 with the version and SVN recorded for it."""

    sha384: bytes
    version: str = ""
    svn: int | None = None

    def text(self) -> str:
        label = f"{self.version} " if self.version else ""
        svn = f"(svn {self.svn}) " if self.svn is not None else ""
        return f"{label}{svn}{self.sha384.hex()[:16]}"


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """A fresh SPDM measurement of one device: ``ok`` (else its failure ``code`` and
    ``detail``), and the FMC and runtime digests it signed; ``validity``: the finding when it
    matched reference values outside their dates (``expired_manifest = "report"``,
    :attr:`ironroot.platform.DeviceMeasurement.validity`)."""

    ok: bool
    fmc: bytes | None = None
    runtime: bytes | None = None
    svn: int | None = None
    code: str | None = None
    detail: str = ""
    validity: str | None = None


@dataclass(frozen=True, slots=True)
class MeasuredState:
    """What one node is, read from its RoT (journal, fuses, measured boot) and devices."""

    images: Mapping[str, MeasuredImage | None]
    running: Mapping[str, bool]
    pending: str | None
    pfm: MeasuredImage | None
    fuses: Fuses
    bmc_boot: tuple[bytes, bytes, int] | None
    devices: Mapping[str, DeviceReading] | None = None
    pfm_boot: bytes | None = None
    """The SHA-384 of the PFM the RoT's last boot measured; ``None`` when it measured none
    (a boot before PFMs were measured, or no boot)."""


@dataclass(frozen=True, slots=True)
class DriftItem:
    """One item of one node: what is desired, what was measured and where, whether they
    agree; a drifted item carries a short ``code`` and a human ``detail``. An item in sync
    may carry a ``detail`` too: a finding reported beside it (a device matching reference
    values outside their dates: ``reported: …``)."""

    item: str
    source: str
    desired: str
    measured: str
    ok: bool
    code: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "source": self.source,
            "desired": self.desired,
            "measured": self.measured,
            "ok": self.ok,
            "code": self.code,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class NodeDrift:
    """One node's items against its class's desired state."""

    node: str
    node_class: str
    status: str
    desired_version: int
    items: tuple[DriftItem, ...]

    @property
    def drift(self) -> tuple[DriftItem, ...]:
        return tuple(i for i in self.items if not i.ok)

    @property
    def ok(self) -> bool:
        return not self.drift

    def item(self, name: str) -> DriftItem:
        for item in self.items:
            if item.item == name:
                return item
        raise NotFound(f"no item {name!r} for node {self.node}")

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "class": self.node_class,
            "status": self.status,
            "desired_version": self.desired_version,
            "ok": self.ok,
            "drift": [i.item for i in self.drift],
            "items": [i.to_json() for i in self.items],
        }


@dataclass(frozen=True, slots=True)
class ClassDrift:
    """Fleet-level items of one class (the policies)."""

    node_class: str
    desired_version: int
    items: tuple[DriftItem, ...]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.node_class,
            "desired_version": self.desired_version,
            "ok": self.ok,
            "items": [i.to_json() for i in self.items],
        }


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Every node's drift (and each class's policies) at one time."""

    at: dt.datetime
    nodes: tuple[NodeDrift, ...]
    classes: tuple[ClassDrift, ...] = ()
    measured: bool = False

    @property
    def ok(self) -> bool:
        return all(n.ok for n in self.nodes) and all(c.ok for c in self.classes)

    @property
    def drifted(self) -> tuple[str, ...]:
        return tuple(n.node for n in self.nodes if not n.ok)

    def node(self, node_id: str) -> NodeDrift:
        for node in self.nodes:
            if node.node == node_id:
                return node
        raise NotFound(f"no node {node_id!r} in the report")

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "ok": self.ok,
            "measured": self.measured,
            "nodes_total": len(self.nodes),
            "nodes_drifted": len(self.drifted),
            "drifted": list(self.drifted),
            "classes": [c.to_json() for c in self.classes],
            "nodes": [n.to_json() for n in self.nodes],
        }


# --- the pure comparison --------------------------------------------------------------------


def _same(a: bytes | None, b: bytes | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a, b)


def _fuse_items(desired: DesiredState, fuses: Fuses) -> list[DriftItem]:
    want = desired.fuses
    debug = "locked" if fuses.debug_locked else "unlocked"
    wanted_debug = "locked" if want.debug_locked else "unlocked"
    anti = not fuses.anti_rollback_disabled
    return [
        DriftItem(
            "fuse:debug",
            "fuses",
            wanted_debug,
            debug,
            debug == wanted_debug,
            None if debug == wanted_debug else "debug-unlocked" if want.debug_locked else "debug",
        ),
        DriftItem(
            "fuse:lifecycle",
            "fuses",
            want.lifecycle,
            fuses.lifecycle.label,
            fuses.lifecycle.label == want.lifecycle,
            None if fuses.lifecycle.label == want.lifecycle else "lifecycle",
        ),
        DriftItem(
            "fuse:svn",
            "fuses",
            f">= {want.min_svn}",
            str(fuses.svn),
            fuses.svn >= want.min_svn,
            None if fuses.svn >= want.min_svn else "fuse-svn-below-minimum",
        ),
        DriftItem(
            "fuse:anti-rollback",
            "fuses",
            "enabled" if want.anti_rollback else "disabled",
            "enabled" if anti else "disabled",
            anti == want.anti_rollback,
            None if anti == want.anti_rollback else "anti-rollback",
        ),
        DriftItem(
            "fuse:vendor-key",
            "fuses",
            want.vendor_key_hash.hex()[:16],
            fuses.vendor_key_hash.hex()[:16] or "(none)",
            _same(fuses.vendor_key_hash, want.vendor_key_hash),
            None if _same(fuses.vendor_key_hash, want.vendor_key_hash) else "vendor-key-hash",
        ),
        *revocation_items(desired, fuses),
    ]


def revocation_items(desired: DesiredState, fuses: Fuses) -> tuple[DriftItem, DriftItem]:
    """``fuse:ecc-revoked`` and ``fuse:pqc-revoked`` of a node with ``fuses`` (module docs):
    also what the scanner quarantines a node for (:func:`ironroot.fleet.scan_attest`)."""
    want = desired.fuses
    return (
        _revocation_item("ecc", want.ecc_revoked, fuses.ecc_revocation),
        _revocation_item("pqc", want.pqc_revoked, fuses.pqc_revocation),
    )


def _keys(mask: int) -> str:
    """The key indices a revocation mask names: ``"1, 3"``, or ``"none"``."""
    return revoked_keys(mask) or "none"


def _revocation_item(kind: str, wanted: int, fused: int) -> DriftItem:
    """``fuse:<kind>-revoked``: the fuse must revoke at least the desired keys (more is not
    drift: a fuse bit never clears, and a key revoked beyond the desired state is safe)."""
    missing = wanted & ~fused
    return DriftItem(
        f"fuse:{kind}-revoked",
        "fuses",
        f"revokes {_keys(wanted)}" if wanted else "none required",
        f"revokes {_keys(fused)}",
        not missing,
        None if not missing else "vendor-key-not-revoked",
        ""
        if not missing
        else f"vendor {kind.upper()} key(s) {_keys(missing)} are revoked by the desired state "
        "but not by the node's fuses: it still boots firmware signed with them",
    )


def _digests(fmc: bytes | None, runtime: bytes | None) -> str:
    if fmc is None or runtime is None:
        return "(none)"
    return f"fmc {fmc.hex()[:12]} runtime {runtime.hex()[:12]}"


def compare(desired: DesiredState, measured: MeasuredState) -> tuple[DriftItem, ...]:
    """The items of one node (module docs), in a fixed order."""
    items: list[DriftItem] = []
    for name in COMPONENTS:
        want = desired.firmware[name]
        have = measured.images.get(name)
        wanted = MeasuredImage(want.sha384, want.version, want.svn).text()
        ok = have is not None and _same(have.sha384, want.sha384)
        items.append(
            DriftItem(
                f"firmware:{name}",
                "journal",
                wanted,
                have.text() if have is not None else "(none)",
                ok,
                None if ok else "firmware",
            )
        )
    for name in COMPONENTS:
        running = measured.running.get(name, False)
        items.append(
            DriftItem(
                f"boot:{name}",
                "journal",
                "running",
                "running" if running else "held-in-reset",
                running,
                None if running else "held-in-reset",
            )
        )
    items.append(
        DriftItem(
            "update",
            "journal",
            "none pending",
            measured.pending or "none pending",
            measured.pending is None,
            None if measured.pending is None else "update-pending",
        )
    )
    pfm_ok = (
        measured.pfm is not None
        and _same(measured.pfm.sha384, desired.pfm.sha384)
        and measured.pfm.svn == desired.pfm.svn
    )
    items.append(
        DriftItem(
            "pfm",
            "journal",
            MeasuredImage(desired.pfm.sha384, svn=desired.pfm.svn).text(),
            measured.pfm.text() if measured.pfm is not None else "(none)",
            pfm_ok,
            None if pfm_ok else "pfm",
        )
    )
    items.extend(_fuse_items(desired, measured.fuses))
    bmc = desired.firmware["bmc"]
    boot = measured.bmc_boot
    boot_ok = (
        boot is not None
        and _same(boot[0], bmc.fmc)
        and _same(boot[1], bmc.runtime)
        and boot[2] == bmc.svn
    )
    items.append(
        DriftItem(
            "measured:bmc",
            "rot",
            f"{_digests(bmc.fmc, bmc.runtime)} svn {bmc.svn}",
            f"{_digests(boot[0], boot[1])} svn {boot[2]}" if boot is not None else "(not booted)",
            boot_ok,
            None if boot_ok else "measurement" if boot is not None else "not-booted",
        )
    )
    booted_pfm = measured.pfm_boot
    pfm_measured_ok, pfm_code, pfm_detail = True, "", ""
    try:
        check_booted_pfm(desired.pfm.sha384, booted_pfm, what="the desired PFM")
    except VerificationFailed as exc:
        pfm_measured_ok = False
        if boot is None:
            pfm_code = "not-booted"
        elif exc.code == "pfm-not-measured":
            pfm_code, pfm_detail = "pfm-not-measured", exc.detail
        else:
            pfm_code = "measurement"
    items.append(
        DriftItem(
            "measured:pfm",
            "rot",
            desired.pfm.sha384.hex()[:16],
            booted_pfm.hex()[:16]
            if booted_pfm is not None
            else "(not booted)"
            if boot is None
            else "(not measured)",
            pfm_measured_ok,
            None if pfm_measured_ok else pfm_code,
            "" if pfm_measured_ok else pfm_detail,
        )
    )
    if measured.devices is not None:
        for name in DEVICES:
            want = desired.firmware[name]
            reading = measured.devices.get(name)
            if reading is None or not reading.ok:
                items.append(
                    DriftItem(
                        f"measured:{name}",
                        "spdm",
                        _digests(want.fmc, want.runtime),
                        "(not measured)" if reading is None else f"failed: {reading.code}",
                        False,
                        "not-measured" if reading is None else reading.code or "spdm",
                        "" if reading is None else reading.detail,
                    )
                )
                continue
            ok = _same(reading.fmc, want.fmc) and _same(reading.runtime, want.runtime)
            items.append(
                DriftItem(
                    f"measured:{name}",
                    "spdm",
                    _digests(want.fmc, want.runtime),
                    _digests(reading.fmc, reading.runtime),
                    ok,
                    None if ok else "measurement",
                    f"reported: {reading.validity}" if reading.validity else "",
                )
            )
    return tuple(items)


def compare_policies(desired: DesiredState, policies: Mapping[str, bytes]) -> tuple[DriftItem, ...]:
    """``policy:<name>`` items for the policy documents given (module docs)."""
    items = []
    for name, document in sorted(policies.items()):
        have = hashlib.sha384(document).digest()
        want = desired.policies.get(name)
        ok = want is not None and _same(have, want)
        items.append(
            DriftItem(
                f"policy:{name}",
                "policy",
                want.hex()[:16] if want is not None else "(not named)",
                have.hex()[:16],
                ok,
                None if ok else "policy" if want is not None else "policy-not-desired",
            )
        )
    return tuple(items)


# --- gathering ------------------------------------------------------------------------------


def _hex(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def measure_node(fleet: Fleet, node_id: str, *, now: dt.datetime, measure: bool) -> MeasuredState:
    """Read node ``node_id``'s :class:`MeasuredState` (``measure``: also SPDM sessions)."""
    platform = fleet.node(node_id)
    state = platform.state()
    images: dict[str, MeasuredImage | None] = {}
    for name in COMPONENTS:
        image = state.component(name).image
        images[name] = (
            MeasuredImage(image.sha384, image.version, image.svn) if image is not None else None
        )
    running = {n: state.last_boot.get(n) == "running" for n in COMPONENTS}
    pending = state.pending
    pfm = state.pfm.image
    device = fleet.rot(node_id)
    fuses = device.fuses
    boot_state = device.boot_state
    bmc_boot = (
        (boot_state.fmc_digest, boot_state.runtime_digest, boot_state.svn)
        if boot_state is not None
        else None
    )
    devices: dict[str, DeviceReading] | None = None
    if measure:
        devices = {}
        for m in platform.measure(now=now):
            devices[m.name] = DeviceReading(
                m.ok,
                _hex(m.measurements.get(1)),
                _hex(m.measurements.get(2)),
                m.svn,
                m.code,
                m.detail,
                m.validity,
            )
    return MeasuredState(
        images=MappingProxyType(images),
        running=MappingProxyType(running),
        pending=f"{pending.component} at {pending.step}" if pending is not None else None,
        pfm=MeasuredImage(pfm.sha384, svn=pfm.svn) if pfm is not None else None,
        fuses=fuses,
        bmc_boot=bmc_boot,
        devices=MappingProxyType(devices) if devices is not None else None,
        pfm_boot=measured_pfm(boot_state.log) if boot_state is not None else None,
    )


@dataclass
class _Classes:
    store: DesiredStore
    now: dt.datetime
    found: dict[str, DesiredState] = field(default_factory=dict)

    def desired(self, node_class: str) -> DesiredState:
        if node_class not in self.found:
            self.found[node_class] = self.store.current(node_class, now=self.now).state
        return self.found[node_class]


def reconcile(
    fleet: Fleet,
    *,
    now: dt.datetime,
    measure: bool = False,
    nodes: Sequence[str] | None = None,
    node_class: str | None = None,
    policies: Mapping[str, bytes] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReconcileReport:
    """Compare every node (or ``nodes``; or, with ``node_class``, that class's nodes) with its
    class's desired state in force (verified again first: receipts, signers, quorum) and
    report the drift (module docs).

    A class without a desired state raises ``NotFound`` (``node_class`` too when it has no
    nodes: a class nobody configured is not in sync), as does an unknown ``node_class``;
    a node of ``nodes`` not of ``node_class``, or given twice, or an empty ``nodes``, is
    ``ConfigError`` (as for a rollout); a node whose state cannot be read (a damaged
    journal, a tampered RoT) is reported with one drifted ``node`` item."""
    classes = _Classes(DesiredStore(fleet), now)
    if nodes is not None and not nodes:  # a caller's query that found nothing: not in sync
        raise ConfigError("give at least one node (no list: every node of the class)")
    if nodes is not None and (repeated := [n for n, k in Counter(nodes).items() if k > 1]):
        raise ConfigError(f"node {repeated[0]} is given more than once")
    records = [fleet.record_of(n) for n in nodes] if nodes is not None else fleet.records()
    if node_class is not None:
        fleet.node_class(node_class)  # NotFound for a class the fleet does not have
        classes.desired(node_class)  # NotFound without a desired state, nodes or none
        if nodes is None:
            records = [r for r in records if r.node_class == node_class]
        elif foreign := [r.id for r in records if r.node_class != node_class]:
            raise ConfigError(
                f"every node given must be of class {node_class}: {foreign[0]} is not"
            )
    out: list[NodeDrift] = []
    for record in records:
        desired = classes.desired(record.node_class)
        try:
            items = compare(desired, measure_node(fleet, record.id, now=now, measure=measure))
        except IronrootError as exc:
            items = (DriftItem("node", "-", "readable", "unreadable", False, exc.code, exc.detail),)
        out.append(NodeDrift(record.id, record.node_class, record.status, desired.version, items))
        if progress is not None:
            progress(record.id)
    class_items: list[ClassDrift] = []
    if policies:
        if node_class is not None:
            names = [node_class]
        else:
            names = sorted({r.node_class for r in records}) or fleet.classes()
        for name in names:
            desired = classes.desired(name)
            class_items.append(
                ClassDrift(name, desired.version, compare_policies(desired, policies))
            )
    return ReconcileReport(now, tuple(out), tuple(class_items), measure)
