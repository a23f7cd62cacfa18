"""Manifest validity dates limit when an image may be *installed*, not whether an installed
image boots (docs/platform.md "Boot", step 4, "Manifest validity")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, World, make_world, raises_exactly

from ironroot.errors import ConfigError, ManifestExpired
from ironroot.platform import Platform, PlatformTrust
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
