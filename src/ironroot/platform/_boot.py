"""Boot: what the RoT checks, restores, measures and decides before releasing the node.

The order is in :mod:`ironroot.platform._node`'s docstring and ``docs/platform.md``. Every
decision is journaled before it takes effect and logged as an event; a power loss anywhere in
here leaves the journal's previous record in force, and the next boot decides again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
from typing import Final

from ironroot.crypto import Algorithm
from ironroot.errors import IronrootError
from ironroot.platform._devices import (
    DeviceMeasurement,
    PlatformDevice,
    _measure_read,
    _outside_validity,
    device_references,
    measure_device,
)
from ironroot.platform._flash import Chip
from ironroot.platform._node import (
    COMPONENTS,
    DEVICES,
    BootReport,
    ComponentBoot,
    Rot,
    _min_svn,
)
from ironroot.platform._pfm import Pfm
from ironroot.platform._state import ComponentState, Image
from ironroot.rot import Fuses

__all__ = ["boot", "measure_devices", "svn_floor_after_boots"]

_ACTIVATED: Final = frozenset({"activate", "reboot", "health", "commit"})
"""Steps of a pending update at which the new slot is active (the activation record is
durable): boot decides commit or rollback. Before them, the update is abandoned."""


def _allowed(pfm: Pfm, name: str, image: Image, floor: int) -> str | None:
    try:
        pfm.allows_digest(name, image.sha384)
    except IronrootError as exc:
        return exc.detail
    if image.svn < floor:
        return f"svn {image.svn} is below the floor {floor}"
    return None


def _check_slot(
    chip: Chip, region: str, image: Image | None, pfm: Pfm, name: str, floor: int
) -> tuple[bytes | None, str]:
    if image is None:
        return None, f"{region} holds no image the RoT wrote"
    read = chip.image(region)
    if read is None or read[1] != image.sha384:
        return None, f"{region} is not the image the RoT wrote (corrupted or erased)"
    problem = _allowed(pfm, name, image, floor)
    if problem is not None:
        return None, problem
    return read[0], ""


def _flash_check(
    rot: Rot, name: str, pfm: Pfm, now: dt.datetime
) -> tuple[ComponentState, bytes | None, bool, str]:
    """(state, image bytes or None, recovered, problem) for one component.

    Every slot is held to the component's SVN floor and, for the BMC, to the RoT's SVN fuse
    (:func:`~ironroot.platform._node._min_svn`), which the RoT's boot of the BMC enforces: a
    recovery image below the fuse (an operator's ``rot fuse svn``) is not restored over the
    active slot, and the known-good other slot is taken instead when it is at the fuse."""
    assert rot.state is not None
    cs = rot.state.component(name)
    chip = rot.flash.chip(name)
    floor = _min_svn(rot.device.fuses, name, cs.min_svn)
    data, problem = _check_slot(chip, f"slot{cs.active}", cs.image, pfm, name, floor)
    if data is not None:
        return cs, data, False, ""
    rot.event(
        "Critical", "FlashCheckFailed", f"{name}: {problem}", name, f"slot{cs.active}", now=now
    )
    recovery, _ = _check_slot(chip, "recovery", cs.recovery, pfm, name, floor)
    if recovery is not None and cs.recovery is not None:
        rot.writer.write_image(name, f"slot{cs.active}", recovery, what="recover")
        if chip.image_digest(f"slot{cs.active}") == cs.recovery.sha384:
            new = dataclasses.replace(cs.with_slot(cs.active, cs.recovery), healthy=0)
            rot.commit("recovered", rot.state.with_component(name, new), now)
            rot.event(
                "OK",
                "FlashRecovered",
                f"{name}: restored slot{cs.active} from recovery",
                name,
                now=now,
            )
            return new, recovery, True, problem
    if cs.fallback:
        other, _ = _check_slot(chip, f"slot{cs.inactive}", cs.slots[cs.inactive], pfm, name, floor)
        if other is not None:
            new = dataclasses.replace(cs, active=cs.inactive, fallback=False, healthy=0)
            rot.commit("fell-back", rot.state.with_component(name, new), now)
            rot.event(
                "Warning",
                "FlashRecovered",
                f"{name}: switched to the known-good slot{cs.inactive}",
                name,
                now=now,
            )
            return new, other, True, problem
    rot.event(
        "Critical", "ComponentHeldInReset", f"{name}: no verified image to run", name, now=now
    )
    return cs, None, False, problem


def _run_component(
    rot: Rot, name: str, data: bytes, image: Image, now: dt.datetime, bmc_running: bool
) -> tuple[bool, str | None, str, str | None, str | None]:
    """Measured boot of one component: (running, code, detail, identity, validity finding)."""
    try:
        expired = rot.platform.config.trust.expired_manifest
        if name == "bmc":
            # The RoT's SVN fuse follows the BMC's floor (the SVN of its recovery image, raised
            # by ``_count_healthy`` once an update has booted healthy), never the SVN of an
            # image still on trial: burnt at the first boot of an update, it would make the
            # rollback to the previous image an SVN rollback the RoT refuses for ever.
            assert rot.state is not None
            floor = rot.state.component(name).min_svn
            if floor > rot.device.fuses.svn:
                rot.device.program(functools.partial(Fuses.advance_svn, svn=floor))
            booted = rot.device.boot(data, now=now, advance_svn=False, expired_manifest=expired)
            # The RoT measures the PFM it enforces (its SHA-384, PCR 2's first event) before
            # anything runs: the quote then names it, and every verifier holds the PFM a node
            # presents (an audit bundle's, the journal's) to the one it booted. A PFM update
            # is measured by the boot that activates it.
            active_pfm = rot.state.pfm.image
            assert active_pfm is not None  # boot runs components only under a verified PFM
            rot.device.measure_pfm(active_pfm.sha384)
            if booted.manifest_validity is not None:
                # A date does not hold an installed, signed, unrevoked image in reset: it
                # boots, and the finding is reported for an appraisal policy to act on.
                rot.event(
                    "Warning",
                    "ManifestOutsideValidity",
                    f"{name}: {booted.manifest_validity}; booted (expired_manifest = report)",
                    name,
                    now=now,
                )
            alias = rot.device.chain(Algorithm.ES384)[-1]
            return True, None, "", hashlib.sha256(alias).hexdigest(), booted.manifest_validity
        if not bmc_running:
            return False, "bmc-not-running", "the BMC is held in reset", None, None
        child = rot.device.derive_child(image.sha384, label=name)
        identity = child.ecc_certificate
        validity: str | None = None
        if name in DEVICES:
            info = rot.platform.config.devices[name]
            statements, _ = rot.platform.evidence(image.evidence)
            references = device_references(
                statements,
                trust_service_keys=rot.platform.config.trust.service_keys,
                service_issuer=rot.platform.config.trust.service_issuer,
                issuers=rot.platform.config.trust.issuers_of(name),
                vendor=info.vendor,
                model=info.model,
                now=now,
                outside_validity=expired,
            )
            device = PlatformDevice.open(rot.platform.directory / "devices", name)
            result = measure_device(device, data, root=info.root, references=references, now=now)
            if not result.ok:
                return False, result.code, result.detail, None, None
            validity = _outside_validity(references, now)
            if validity is not None:
                # As for the BMC's manifest: the device's signed measurements matched the
                # logged digests and SVN; the dates of those values are reported, not a hold.
                rot.event(
                    "Warning",
                    "ReferenceValuesOutsideValidity",
                    f"{name}: {validity}; booted (expired_manifest = report)",
                    name,
                    now=now,
                )
        return True, None, "", hashlib.sha256(identity).hexdigest(), validity
    except IronrootError as exc:
        return False, exc.code, exc.detail, None, None


def boot(rot: Rot, now: dt.datetime) -> BootReport:
    """One boot of the node (the RoT holds it; see the module docstring)."""
    assert rot.state is not None
    faults = rot.faults
    state = rot.state
    pending = state.pending
    if pending is not None and pending.step not in _ACTIVATED:
        rot.commit("abandoned", dataclasses.replace(state, pending=None), now)
        rot.drop_evidence(pending.image.evidence)
        rot.event(
            "Warning",
            "UpdateAbandoned",
            f"the {pending.component} update stopped at {pending.step}: the old firmware stays",
            pending.component,
            pending.step,
            now=now,
        )
        pending = None
    pfm, _ = rot.active_pfm(now)
    if pfm is None:
        rot.event(
            "Critical", "ComponentHeldInReset", "no verified PFM: the node stays in reset", now=now
        )
        held = tuple(
            ComponentBoot(n, False, None, code="no-pfm", detail="no verified PFM")
            for n in COMPONENTS
        )
        return BootReport(held, None)
    results = {"bmc": _boot_one(rot, "bmc", pfm, now)}
    bmc_running = results["bmc"].running
    for name in COMPONENTS[1:]:
        results[name] = _boot_one(rot, name, pfm, now, bmc_running=bmc_running)
    faults.enter("health")
    update_outcome: str | None = None
    update_component: str | None = None
    state = rot.state
    pending = state.pending
    if pending is not None:
        name = pending.component
        update_component = name
        outcome = results[name]
        # Healthy means the *new* image came up: a component that runs because boot restored
        # its slot from recovery (the new bytes were damaged) did not take the update, and a
        # PFM restored from its recovery copy is not the PFM the update carried.
        took = outcome.image is not None and outcome.image.sha384 == pending.image.sha384
        healthy = outcome.running and took and not faults.unhealthy
        if pending.pfm is not None and (
            not all(r.running for r in results.values()) or state.pfm.image != pending.pfm
        ):
            healthy = False
        if healthy:
            faults.enter("commit")
            cs = state.component(name)
            new = dataclasses.replace(cs, fallback=cs.slots[cs.inactive] is not None, healthy=0)
            pfm_state = state.pfm
            if pending.pfm is not None:
                pfm_state = dataclasses.replace(pfm_state, fallback=True)
            rot.commit(
                "committed",
                dataclasses.replace(state.with_component(name, new), pfm=pfm_state, pending=None),
                now,
                what="commit",
            )
            rot.event(
                "OK",
                "UpdateCommitted",
                f"{name} {pending.image.version} booted healthy and is committed",
                name,
                pending.image.version,
                now=now,
            )
            update_outcome = "committed"
        else:
            if faults.unhealthy:
                why = "the health-check drill"
            elif outcome.running and not took:
                why = "the new image did not come up: its slot was restored from recovery"
            elif outcome.running:
                why = "the PFM it carried is not the PFM in force"
            else:
                why = outcome.detail or "unhealthy"
            cs = state.component(name)
            back = dataclasses.replace(cs, active=cs.inactive, fallback=False, healthy=0)
            pfm_state = state.pfm
            if pending.pfm is not None:
                pfm_state = dataclasses.replace(
                    pfm_state, active=pfm_state.inactive, fallback=False, healthy=0
                )
            rot.commit(
                "rolled-back",
                dataclasses.replace(state.with_component(name, back), pfm=pfm_state, pending=None),
                now,
            )
            rot.event(
                "Critical",
                "UpdateRolledBack",
                f"{name} {pending.image.version} failed its health check ({why}): "
                "rolled back to the last known good",
                name,
                now=now,
            )
            update_outcome = "rolled-back"
            pfm2, _ = rot.active_pfm(now)
            if pfm2 is not None:
                pfm = pfm2
                # The BMC gates every other component, and a PFM gates them all: after
                # either rolls back, the whole node boots again.
                again_all = pending.pfm is not None or name == "bmc"
                for again in COMPONENTS if again_all else (name,):
                    results[again] = _boot_one(
                        rot, again, pfm, now, bmc_running=results["bmc"].running or again == "bmc"
                    )
    replaced = _count_healthy(rot, results, now)
    state = rot.state
    last = {n: ("running" if r.running else "held-in-reset") for n, r in results.items()}
    rot.commit("booted", dataclasses.replace(state, boots=state.boots + 1, last_boot=last), now)
    rot.event(
        "OK" if all(r.running for r in results.values()) else "Critical",
        "NodeBooted",
        "boot: " + ", ".join(f"{n} {v}" for n, v in last.items()),
        now=now,
    )
    pcrs: tuple[bytes, ...] = ()
    boot_state = rot.device.boot_state
    if boot_state is not None:
        pcrs = tuple(boot_state.pcrs)
    return BootReport(
        tuple(results[n] for n in COMPONENTS),
        pfm.svn,
        pcrs,
        update_outcome,
        update_component,
        replaced,
    )


def _boot_one(
    rot: Rot, name: str, pfm: Pfm, now: dt.datetime, *, bmc_running: bool = True
) -> ComponentBoot:
    assert rot.state is not None
    try:
        rot.flash.chip(name)
    except IronrootError as exc:
        # A chip that does not open (missing, resized, a forged header) holds its component
        # in reset; the rest of the node still boots.
        rot.event(
            "Critical", "ComponentHeldInReset", f"{name}: {exc.detail}", name, exc.code, now=now
        )
        return ComponentBoot(
            name, False, rot.state.component(name).image, False, exc.code, exc.detail
        )
    cs, data, recovered, problem = _flash_check(rot, name, pfm, now)
    image = cs.image
    if data is None or image is None:
        return ComponentBoot(name, False, image, False, "flash-check", problem)
    running, code, detail, identity, validity = _run_component(
        rot, name, data, image, now, bmc_running
    )
    if not running:
        rot.event(
            "Critical", "ComponentHeldInReset", f"{name}: {detail}", name, code or "", now=now
        )
    return ComponentBoot(name, running, image, recovered, code, detail, identity, validity)


def svn_floor_after_boots(cs: ComponentState, boots: int, needed: int) -> int:
    """The SVN floor of a component that keeps running its active image for ``boots`` more
    healthy boots (:func:`_count_healthy`): its image's SVN once it has booted healthy
    ``needed`` times and becomes the recovery image, else the floor it has. Pure: an update's
    check of a later component of one node (:class:`ironroot.platform.UpdatePreflight`) uses
    it for the boots that the node's earlier updates will make."""
    image = cs.image
    if image is None or image == cs.recovery or cs.healthy + boots < needed:
        return cs.min_svn
    return max(cs.min_svn, image.svn)


def _count_healthy(
    rot: Rot, results: dict[str, ComponentBoot], now: dt.datetime
) -> tuple[str, ...]:
    """Count healthy boots; after ``healthy_boots`` of them the active image replaces the
    recovery image (journaled as gone first, so a power loss mid-copy never leaves a recovery
    region the journal vouches for but that holds other bytes) and its SVN becomes the floor.
    The counts are journaled with the boot record."""
    assert rot.state is not None
    needed = rot.platform.config.trust.healthy_boots
    replaced: list[str] = []
    for name in COMPONENTS:
        cs = rot.state.component(name)
        if not results[name].running or cs.image is None or cs.image == cs.recovery:
            continue
        count = cs.healthy + 1
        if count < needed:
            rot.state = rot.state.with_component(name, dataclasses.replace(cs, healthy=count))
            continue
        chip = rot.flash.chip(name)
        read = chip.image(f"slot{cs.active}")
        if read is None or read[1] != cs.image.sha384:
            continue
        rot.commit(
            "replacing-recovery",
            rot.state.with_component(name, dataclasses.replace(cs, recovery=None)),
            now,
        )
        rot.writer.write_image(name, "recovery", read[0], what="recovery")
        if chip.image_digest("recovery") != cs.image.sha384:
            continue
        floor = svn_floor_after_boots(cs, 1, needed)
        if name == "bmc" and floor > rot.device.fuses.svn:
            rot.device.program(functools.partial(Fuses.advance_svn, svn=floor))
        rot.commit(
            "recovery-replaced",
            rot.state.with_component(
                name, dataclasses.replace(cs, recovery=cs.image, healthy=count, min_svn=floor)
            ),
            now,
        )
        replaced.append(name)
        rot.event(
            "OK",
            "RecoveryReplaced",
            f"{name} {cs.image.version} booted healthy {count} times: it is the recovery "
            f"image now, and svn {floor} the floor",
            name,
            now=now,
        )
    # The PFM's recovery copy follows once the PFM has been in force for ``healthy_boots``
    # boots and every component has settled (its active image is its recovery image).
    # Decided from the journaled state, not from what this boot replaced: a power loss
    # between a component's replacement and the PFM's must not leave the PFM's for ever.
    ps = rot.state.pfm
    pfm_image = ps.image
    if pfm_image is None or pfm_image == ps.recovery:
        return tuple(replaced)
    ps = dataclasses.replace(ps, healthy=ps.healthy + 1)
    rot.state = dataclasses.replace(rot.state, pfm=ps)
    settled = all(
        (cs := rot.state.component(name)).image is not None and cs.image == cs.recovery
        for name in COMPONENTS
    )
    if settled and ps.healthy >= needed:
        chip = rot.flash.chip("rot")
        data = chip.image(f"pfm{ps.active}")
        if data is not None and data[1] == pfm_image.sha384:
            pfm_svn = rot.verify_pfm_bytes(data[0], 0).svn
            rot.commit(
                "replacing-recovery",
                dataclasses.replace(rot.state, pfm=dataclasses.replace(ps, recovery=None)),
                now,
            )
            rot.writer.write_image("rot", "pfm-recovery", data[0], what="recovery")
            if chip.image_digest("pfm-recovery") != pfm_image.sha384:
                return tuple(replaced)
            rot.commit(
                "recovery-replaced",
                dataclasses.replace(
                    rot.state,
                    pfm=dataclasses.replace(
                        ps, recovery=pfm_image, min_svn=max(ps.min_svn, pfm_svn)
                    ),
                ),
                now,
            )
    return tuple(replaced)


def measure_devices(
    rot: Rot, now: dt.datetime, *, nonce: bytes | None = None
) -> list[DeviceMeasurement]:
    """Measure every SPDM device over SPDM, as boot does, without booting: what each active
    image reports against the reference values logged for it (signed measurements answering
    ``nonce`` when given). Reference values outside their dates are judged as boot judges
    them, under the trust's ``expired_manifest``: ``"report"`` measures the device against
    them and, when it matches, reports the finding in :attr:`DeviceMeasurement.validity`
    (its evidence is there for a verifier, which judges the dates itself); ``"refuse"``
    reports the device failed, ``rim-expired``, as boot holds it in reset."""
    expired = rot.platform.config.trust.expired_manifest
    assert rot.state is not None
    results: list[DeviceMeasurement] = []
    folder = rot.platform.directory / "devices"
    for name in DEVICES:
        cs = rot.state.component(name)
        info = rot.platform.config.devices[name]
        try:
            read = rot.flash.image(name, f"slot{cs.active}")
        except IronrootError as exc:
            results.append(DeviceMeasurement(name, False, exc.code, exc.detail, error=exc))
            continue
        if cs.image is None or read is None or read[1] != cs.image.sha384:
            results.append(
                DeviceMeasurement(
                    name, False, "flash-check", "the active slot holds no image the RoT wrote"
                )
            )
            continue
        try:
            statements, _ = rot.platform.evidence(cs.image.evidence)
            references = device_references(
                statements,
                trust_service_keys=rot.platform.config.trust.service_keys,
                service_issuer=rot.platform.config.trust.service_issuer,
                issuers=rot.platform.config.trust.issuers_of(name),
                vendor=info.vendor,
                model=info.model,
                now=now,
                outside_validity=expired,
            )
            device = PlatformDevice.open(folder, name)
            result = _measure_read(
                device, read, root=info.root, references=references, now=now, nonce=nonce
            )
            validity = _outside_validity(references, now) if result.ok else None
            results.append(dataclasses.replace(result, validity=validity) if validity else result)
        except IronrootError as exc:
            results.append(DeviceMeasurement(name, False, exc.code, exc.detail, error=exc))
    return results
