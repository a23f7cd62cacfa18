"""Manifest validity dates limit when an image may be *installed*, not whether an installed
image boots (docs/platform.md "Boot", step 4, "Manifest validity")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, Release, World, make_world, raises_exactly

from ironroot.errors import ConfigError, EndorsementMismatch, ManifestExpired, VerificationFailed
from ironroot.platform import COMPONENTS, DEVICES, Platform, PlatformTrust
from scratch import in_memory

LATER = NOW + dt.timedelta(days=400)  # every 1.0 release's manifest ended at NOW + 365 days


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with in_memory("platform-validity-world-") as root, make_world(root) as w:
        yield w


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    with in_memory("platform-validity-") as directory:
        yield directory


@pytest.fixture
def node(world: World, tmp_path: Path) -> Platform:
    return world.node(tmp_path)


def _bmc(node: Platform, now: dt.datetime) -> tuple[bool, str | None, str]:
    bmc = next(c for c in node.boot(now=now).components if c.name == "bmc")
    return bmc.running, bmc.code, bmc.detail


# --- 1. an installed BMC image whose manifest has since expired --------------------------


def test_an_installed_bmc_image_whose_manifest_expired_still_boots_and_is_reported(
    node: Platform,
) -> None:
    """Old behaviour: ``ManifestExpired`` held the BMC (and so the whole node) in reset on
    the day after the manifest's not-after."""
    assert _bmc(node, LATER) == (True, None, "")
    event = [e for e in node.events() if e.message_id == "ManifestOutsideValidity"]
    assert len(event) == 1
    assert event[0].severity == "Warning"
    expired = "the manifest expired at 2027-06-01T12:00:00+00:00 (vendor)"
    assert event[0].message == f"bmc: {expired}; booted (expired_manifest = report)"
    with node.rot() as rot:
        state = rot.device.boot_state
        assert state is not None
        assert state.manifest_validity == expired
        assert state.public_json()["manifest_validity"] == expired


def test_a_bmc_manifest_within_its_dates_reports_nothing(node: Platform) -> None:
    assert _bmc(node, NOW)[0]
    assert not [e for e in node.events() if e.message_id == "ManifestOutsideValidity"]
    with node.rot() as rot:
        assert rot.device.boot_state is not None
        assert rot.device.boot_state.manifest_validity is None


def test_expired_manifest_refuse_keeps_the_fail_closed_boot(world: World, tmp_path: Path) -> None:
    node = world.create(tmp_path, trust=world.trust(expired_manifest="refuse"))
    assert _bmc(node, NOW)[0]
    running, code, detail = _bmc(node, LATER)
    assert (running, code) == (False, "manifest-expired")
    assert detail == "the manifest expired at 2027-06-01T12:00:00+00:00 (vendor)"


def test_an_update_to_an_expired_manifest_is_refused(node: Platform, world: World) -> None:
    """Installing is where the dates decide, whatever ``expired_manifest`` says."""
    bundle = world.bundle("host", svn=4, tag="stale", not_after=NOW - dt.timedelta(days=1))
    statements = world.publish("host", bundle)
    error = raises_exactly(
        ManifestExpired,
        "manifest-expired",
        lambda: node.update("host", bundle, statements, now=NOW),
    )
    assert error.check == "validity"
    assert error.detail == "the manifest expired at 2026-05-31T12:00:00+00:00 (vendor)"
    assert node.state().pending is None


def test_expired_manifest_is_report_or_refuse_and_persists(world: World) -> None:
    assert world.trust().expired_manifest == "report"
    refuse = world.trust(expired_manifest="refuse")
    assert PlatformTrust.from_json(refuse.to_json()).expired_manifest == "refuse"
    older = {k: v for k, v in refuse.to_json().items() if k != "expired_manifest"}
    assert PlatformTrust.from_json(older).expired_manifest == "report"  # written before it
    error = raises_exactly(ConfigError, "config", lambda: world.trust(expired_manifest="ignore"))
    assert error.detail == 'expired_manifest is "report" or "refuse"'


# --- 2. installed devices whose logged reference values have since expired ---------------


def _devices_report(node: Platform, now: dt.datetime) -> dict[str, tuple[bool, str | None, str]]:
    report = node.boot(now=now)
    return {d: (c.running, c.code, c.detail) for d in DEVICES if (c := report.component(d))}


def _corim_expired(device: str) -> str:
    return (
        f"the reference values of 'pkg:firmware/acme/{device}' expired at 2027-06-01T12:00:00+00:00"
    )


def test_devices_whose_reference_values_expired_still_boot_and_are_reported(
    node: Platform,
) -> None:
    """Old behaviour: ``rim-expired`` held every SPDM device in reset the day after its
    vendor's CoRIM ended, although its signed measurements matched the logged values."""
    report = node.boot(now=LATER)
    assert report.ok
    for device in DEVICES:
        booted = report.component(device)
        assert (booted.running, booted.code, booted.detail) == (True, None, "")
        assert booted.validity == _corim_expired(device)
        assert booted.to_json()["validity"] == _corim_expired(device)
    assert report.component("bmc").validity == (
        "the manifest expired at 2027-06-01T12:00:00+00:00 (vendor)"
    )
    events = [e for e in node.events() if e.message_id == "ReferenceValuesOutsideValidity"]
    assert [(e.severity, e.message, e.args) for e in events] == [
        ("Warning", f"{d}: {_corim_expired(d)}; booted (expired_manifest = report)", (d,))
        for d in DEVICES
    ]


def test_devices_within_their_reference_values_report_nothing(node: Platform) -> None:
    report = node.boot(now=NOW)
    assert report.ok
    assert all(c.validity is None for c in report.components)
    assert not [e for e in node.events() if e.message_id == "ReferenceValuesOutsideValidity"]


@pytest.fixture(scope="module")
def lasting_bmc(world: World) -> tuple[Release, bytes, bytes]:
    """A BMC release whose manifest outlives LATER, and a PFM (and its statement) listing it
    with the 1.0 release of every other component."""
    bundle = world.bundle("bmc", svn=3, tag="lasting", not_after=NOW + dt.timedelta(days=900))
    release = Release("bmc", "1.1", 3, bundle, world.publish("bmc", bundle))
    versions = {c: [world.release(c, "1.0")] for c in COMPONENTS}
    versions["bmc"] = [release]
    pfm = world.make_pfm(1, versions)
    return release, pfm, world.log_pfm(pfm)


def _lasting_node(
    world: World, directory: Path, lasting: tuple[Release, bytes, bytes], **overrides: object
) -> Platform:
    release, pfm, pfm_ts = lasting
    args: dict[str, object] = {
        "pfm": pfm,
        "pfm_statement": pfm_ts,
        "images": {c: world.release(c, "1.0").bundle for c in COMPONENTS} | {"bmc": release.bundle},
        "statements": {c: world.release(c, "1.0").statements for c in COMPONENTS}
        | {"bmc": release.statements},
    }
    args.update(overrides)
    return world.create(directory, **args)


def test_expired_manifest_refuse_holds_devices_whose_reference_values_expired(
    world: World, tmp_path: Path, lasting_bmc: tuple[Release, bytes, bytes]
) -> None:
    node = _lasting_node(world, tmp_path, lasting_bmc, trust=world.trust(expired_manifest="refuse"))
    assert node.boot(now=NOW).ok
    report = node.boot(now=LATER)
    assert report.component("bmc").running
    for device in DEVICES:
        held = report.component(device)
        assert (held.running, held.code, held.detail, held.validity) == (
            False,
            "rim-expired",
            f"the reference values of 'pkg:firmware/acme/{device}' are outside their validity",
            None,
        )
    assert not [e for e in node.events() if e.message_id == "ReferenceValuesOutsideValidity"]


def test_expired_reference_values_still_refuse_a_digest_mismatch(
    world: World, tmp_path: Path
) -> None:
    """The NIC runs 1.0 but its logged CoRIM is 2.0's: held for the digest in report mode, at
    any date (old code at LATER: ``rim-expired``, the mismatch never reached)."""
    statements = {c: world.release(c, "1.0").statements for c in COMPONENTS}
    statements["nic"] = (
        world.release("nic", "1.0").statements[0],
        world.release("nic", "2.0").statements[1],
    )
    node = world.create(tmp_path, statements=statements)
    for at in (NOW, LATER):
        running, code, detail = _devices_report(node, at)["nic"]
        assert (running, code) == (False, "measurement-mismatch")
        assert detail.startswith("measurement 2 (runtime) ")
        assert detail.endswith(" matches no logged reference value of 'pkg:firmware/acme/nic'")
    assert not [
        e
        for e in node.events()
        if e.message_id == "ReferenceValuesOutsideValidity" and e.args == ("nic",)
    ]


def test_expired_reference_values_still_refuse_an_svn_rollback(
    world: World, tmp_path: Path
) -> None:
    """The NIC runs 1.0 (SVN 3) while 2.0's CoRIM (SVN 4) is logged too: a rollback, held
    in report mode at any date (old code at LATER: ``rim-expired``)."""
    statements = {c: world.release(c, "1.0").statements for c in COMPONENTS}
    statements["nic"] = (
        *world.release("nic", "1.0").statements,
        world.release("nic", "2.0").statements[1],
    )
    node = world.create(tmp_path, statements=statements)
    rollback = "the device runs SVN 3, below the logged minimum SVN 4 of 'pkg:firmware/acme/nic'"
    for at in (NOW, LATER):
        assert _devices_report(node, at)["nic"] == (False, "svn-rollback", rollback)


# --- 3. the evidence path (Platform.measure) judges the dates as boot does -----------------


def test_measure_takes_devices_whose_reference_values_expired_as_boot_does(
    node: Platform,
) -> None:
    """Old behaviour: boot ran the devices and reported the expiry, but ``Platform.measure``
    (the node's evidence for admission) refused them ``rim-expired`` before any SPDM session,
    so the node sent no device evidence at all. Now both take them under ``"report"``: the
    session runs, its signed evidence is there for a verifier, and the finding is reported."""
    assert node.boot(now=LATER).ok
    measured = {m.name: m for m in node.measure(now=LATER)}
    assert sorted(measured) == sorted(DEVICES)
    for device in DEVICES:
        m = measured[device]
        assert (m.ok, m.code, m.detail) == (True, None, "")
        assert m.evidence
        assert m.validity == _corim_expired(device)
        assert m.to_json()["validity"] == _corim_expired(device)
    assert all(m.validity is None for m in node.measure(now=NOW))


def test_measure_with_expired_manifest_refuse_fails_as_boot_holds(
    world: World, tmp_path: Path, lasting_bmc: tuple[Release, bytes, bytes]
) -> None:
    node = _lasting_node(world, tmp_path, lasting_bmc, trust=world.trust(expired_manifest="refuse"))
    assert node.boot(now=NOW).ok
    measured = {m.name: m for m in node.measure(now=LATER)}
    booted = node.boot(now=LATER)
    for device in DEVICES:
        m = measured[device]
        detail = f"the reference values of 'pkg:firmware/acme/{device}' are outside their validity"
        assert (m.ok, m.code, m.detail, m.validity, m.evidence) == (
            False,
            "rim-expired",
            detail,
            None,
            None,
        )
        assert type(m.error) is VerificationFailed
        held = booted.component(device)
        assert (held.running, held.code, held.detail) == (False, m.code, m.detail)


def test_measure_against_expired_reference_values_still_refuses_a_digest_mismatch(
    world: World, tmp_path: Path
) -> None:
    statements = {c: world.release(c, "1.0").statements for c in COMPONENTS}
    statements["nic"] = (
        world.release("nic", "1.0").statements[0],
        world.release("nic", "2.0").statements[1],
    )
    node = world.create(tmp_path, statements=statements)
    nic = next(m for m in node.measure(now=LATER) if m.name == "nic")
    assert (nic.ok, nic.code, nic.validity) == (False, "measurement-mismatch", None)
    assert type(nic.error) is EndorsementMismatch
    assert nic.detail.endswith(" matches no logged reference value of 'pkg:firmware/acme/nic'")
