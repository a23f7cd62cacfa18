"""Continuous scanning: which nodes a round re-attests (due by age with jitter, triggered by
statements on the log that concern their class), bounded concurrency, failures recorded."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import make_fleet, node_class
from tests.platform.node_world import NOW, OTHER, VENDOR, World, make_world

from ironroot.errors import ConfigError, StorageError
from ironroot.fleet import Fleet, Scanner, affected_classes
from ironroot.monitor import MonitorEvent
from pause_points import child_env

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("scan-world")) as w:
        yield w


@pytest.fixture(scope="module")
def fleet(world: World, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    made, _ = make_fleet(world, tmp_path_factory.mktemp("scan-fleet") / "fleet", 3)
    return made


def _boot_attest(fleet: Fleet) -> tuple[list[str], object]:
    """An attestation that boots the node and records the time (the scheduling under test
    does not depend on how a node is attested)."""
    seen: list[str] = []
    lock = threading.Lock()

    def attest(node_id: str, now: dt.datetime) -> str:
        report = fleet.node(node_id).boot(now=now)
        with lock:
            seen.append(node_id)
        status = "admitted" if report.ok else "quarantined"
        stamp = now.isoformat().replace("+00:00", "Z")
        fleet.set_status(node_id, status, "scan", now=now, last_attested=stamp)
        return status

    return seen, attest


def _event(iss: str | None, sub: str | None) -> MonitorEvent:
    return MonitorEvent("statement", "log.example", "http://log", 1, iss=iss, sub=sub)


def test_never_attested_nodes_are_due_then_not_until_the_period_passes(fleet: Fleet) -> None:
    seen, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=300, jitter=0.2, concurrency=2)  # type: ignore[arg-type]
    report = scanner.scan(NOW)
    assert sorted(seen) == fleet.node_ids()
    assert set(report.reasons.values()) == {"due"}
    assert report.statuses == dict.fromkeys(fleet.node_ids(), "admitted")
    assert scanner.due(NOW + dt.timedelta(seconds=200)) == []
    assert scanner.due(NOW + dt.timedelta(seconds=300)) == fleet.node_ids()
    spread = {n: scanner.due(NOW + dt.timedelta(seconds=s)) for n, s in (("a", 241), ("b", 299))}
    assert set(spread["a"]) <= set(spread["b"])  # jitter: some nodes come due earlier


def test_a_statement_concerning_the_class_triggers_every_node(fleet: Fleet, world: World) -> None:
    seen, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=3600)  # type: ignore[arg-type]
    scanner.scan(NOW)
    seen.clear()
    later = NOW + dt.timedelta(seconds=10)
    assert scanner.scan(later, [_event(OTHER, "pkg:unrelated")]).reasons == {}
    report = scanner.scan(later, [_event(VENDOR, "pkg:unrelated")])
    assert report.reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    klass = node_class(world)
    assert affected_classes([klass], [_event(OTHER, world.model("gpu"))]) == {klass.name}
    assert affected_classes([klass], [_event(OTHER, klass.trust.platform)]) == {klass.name}
    assert affected_classes([klass], [_event(OTHER, "sha384:" + "00" * 48)]) == set()
    desired = _event(OTHER, f"urn:ironroot:desired-state:{klass.name}")
    assert affected_classes([klass], [desired]) == {klass.name}


def test_a_failing_attestation_is_recorded_and_the_round_goes_on(fleet: Fleet) -> None:
    def attest(node_id: str, now: dt.datetime) -> str:
        if node_id == "node-0002":
            raise StorageError("the node's flash is gone", code="flash-missing")
        return "admitted"

    report = Scanner(fleet, attest).scan(NOW + dt.timedelta(days=1))
    assert report.failures == {"node-0002": "flash-missing"}
    assert set(report.statuses) == {"node-0001", "node-0003"}
    assert fleet.events(node="node-0002")[-1].kind == "scan-failed"


def test_bad_scanner_settings_are_refused(fleet: Fleet, tmp_path: Path) -> None:
    for kwargs in (
        {"period": 0},
        {"period": float("nan")},
        {"period": float("inf")},  # passed "> 0", and no timer waits that long
        {"period": 30 * 86400 + 1},
        {"jitter": 1.0},
        {"concurrency": 0},
    ):
        with pytest.raises(ConfigError):
            Scanner(fleet, lambda n, t: "admitted", **kwargs)  # type: ignore[arg-type]


def test_a_new_statement_on_the_log_triggers_the_class_through_the_monitor(
    fleet: Fleet, world: World
) -> None:
    from ironroot.fleet import LogTriggers

    triggers = LogTriggers(fleet, [world.urls["trusted"]], clock=lambda: NOW)
    first = triggers.poll()  # everything logged so far that concerns the class
    assert first
    assert {e.iss for e in first} == {VENDOR}
    assert triggers.poll() == []  # nothing new
    bundle = world.bundle("gpu", svn=9, tag="9.0")  # a release nobody here runs yet
    world.publish("gpu", bundle)
    new = triggers.poll()
    assert [e.sub for e in new] == [world.model("gpu")] * 2  # its manifest and its CoRIM
    _, attest = _boot_attest(fleet)
    report = Scanner(fleet, attest, period=86400).scan(NOW + dt.timedelta(days=3), new)  # type: ignore[arg-type]
    assert set(report.reasons) == set(fleet.node_ids())
    assert "triggered" in report.reasons.values()
    world.publish("gpu", bundle, client=world.untrusted)  # another log: not followed
    assert triggers.poll() == []


def test_a_node_last_attested_after_now_is_due(fleet: Fleet) -> None:
    """A last attestation dated after ``now`` (the clock was stepped back after it ran fast)
    is not a recent one: the node is due, not skipped until the clock catches up."""
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=300)  # type: ignore[arg-type]
    ahead = NOW + dt.timedelta(days=30)
    scanner.scan(ahead)  # every node stamped a month ahead
    assert scanner.due(ahead + dt.timedelta(seconds=10)) == []
    assert scanner.due(NOW) == fleet.node_ids()


def test_scanner_settings_of_the_wrong_type_are_refused(fleet: Fleet) -> None:
    for kwargs in (
        {"period": "300"},
        {"jitter": "0.1"},
        {"concurrency": "4"},
        {"concurrency": 2.5},
        {"concurrency": True},
        {"period": True},
        {"jitter": None},
    ):
        with pytest.raises(ConfigError) as caught:
            Scanner(fleet, lambda n, t: "admitted", **kwargs)  # type: ignore[arg-type]
        assert caught.value.detail == (
            "0 < period <= 2592000 s, 0 <= jitter < 1, concurrency 1 to 64"
        ), kwargs


def test_a_round_that_fails_does_not_end_the_scanning(fleet: Fleet) -> None:
    """A round whose logs cannot be read (``poll`` raising a typed error, as the fleet's event
    log refusing a write would make it) is recorded and the scanner goes on: the thread of
    ``fleet serve --scan`` must not die silently while the planes keep serving."""
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=300)  # type: ignore[arg-type]
    polls = iter([StorageError("the monitor's store is locked", code="monitor-busy")])

    def poll() -> list[MonitorEvent]:
        failure = next(polls, None)
        if failure is not None:
            raise failure
        return []

    reports = []
    when = iter([NOW + dt.timedelta(days=5), NOW + dt.timedelta(days=6)])
    scanner.follow(
        clock=lambda: next(when), poll=poll, interval=0, rounds=2, on_report=reports.append
    )
    assert len(reports) == 1
    assert reports[0].at == "2026-06-07T12:00:00Z"  # the second round ran
    failed = fleet.events(kind="scan-round-failed")[-1]
    assert failed.node is None
    assert failed.detail == {"code": "monitor-busy", "detail": "the monitor's store is locked"}


def test_a_statement_about_the_firmware_a_node_runs_since_an_update_triggers_its_class(
    world: World, tmp_path: Path
) -> None:
    """A SAFE review names the manifest digest of the firmware it reviews (``sha384:…``) and
    is registered by anyone: after an update (a rollout), the class runs firmware that is not
    its baseline image, and a review of *that* firmware concerns the class — through
    ``Scanner.triggered`` and through the watch ``LogTriggers`` keeps on the logs."""
    from ironroot.cose import create_statement
    from ironroot.firmware import FirmwareBundle
    from ironroot.fleet import LogTriggers

    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    triggers = LogTriggers(fleet, [world.urls["trusted"]], clock=lambda: NOW)
    triggers.poll()  # what was logged before
    release = world.release("host", "2.0")
    updated = fleet.node("node-0002").update("host", release.bundle, release.statements, now=NOW)
    assert updated.outcome == "committed"
    subject = "sha384:" + FirmwareBundle.parse(release.bundle).manifest_digest().hex()
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest)  # type: ignore[arg-type]
    assert scanner.triggered([_event(OTHER, subject)]) == fleet.node_ids()
    review = create_statement(
        world.other_key, b"a review", iss=OTHER, sub=subject, content_type="text/plain"
    )
    world.trusted.register(review)
    found = triggers.poll()
    assert [(e.iss, e.sub) for e in found] == [(OTHER, subject)]
    assert scanner.triggered(found) == fleet.node_ids()


def test_a_node_whose_credentials_cannot_be_written_fails_alone_in_its_round(
    world: World, tmp_path: Path
) -> None:
    """The node's side of an admission writes its credentials to its folder; a folder that
    cannot be written (a file in its place, a full disk) is a typed ``StorageError`` of that
    node, recorded as ``scan-failed``: never an ``OSError`` that ends the round (and with it
    the scanner of ``fleet serve --scan``)."""
    from tests.fleet.admission_world import admission_world

    from ironroot.fleet import scan_attest

    fleet, authority = admission_world(world).fleet(tmp_path / "fleet", 2)
    folder = fleet.directory / "nodes" / "node-0002" / "credentials"
    folder.rmdir()  # made empty at manufacture
    folder.write_bytes(b"a file where the folder goes")
    report = Scanner(fleet, scan_attest(fleet, authority)).scan(NOW)
    assert report.statuses == {"node-0001": "admitted"}
    assert report.failures == {"node-0002": "node-credentials-unwritable"}
    failed = fleet.events(node="node-0002", kind="scan-failed")[-1]
    assert failed.detail["detail"].startswith(
        "node-0002's credentials cannot be written to its folder"
    )


def test_a_naive_now_is_refused_by_a_round(fleet: Fleet) -> None:
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest)  # type: ignore[arg-type]
    scanner.scan(NOW)  # every node has a last attestation
    naive = NOW.replace(tzinfo=None)
    for call in (scanner.due, scanner.scan):
        with pytest.raises(ConfigError) as caught:
            call(naive)
        assert caught.value.detail == "now must be timezone-aware"


def test_a_held_node_is_attested_once_a_period_not_at_every_round(
    world: World, tmp_path: Path
) -> None:
    """An operator's hold refuses even an affirming attestation (``node-held``); the scanner
    still attests the node, once a period as every node: its refused attestation counts as
    one (``last_attested``), or it would be due at every round (``follow`` runs ten a period)
    and add an ``admission-held`` event each time, without end."""
    from tests.fleet.admission_world import admission_world

    from ironroot.fleet import quarantine, scan_attest

    fleet, authority = admission_world(world).fleet(tmp_path / "fleet", 2)
    scanner = Scanner(fleet, scan_attest(fleet, authority), period=300, jitter=0)
    assert scanner.scan(NOW).statuses == {"node-0001": "admitted", "node-0002": "admitted"}
    quarantine(fleet, "node-0002", "operator: investigating", now=NOW + dt.timedelta(seconds=10))
    later = NOW + dt.timedelta(seconds=400)
    first = scanner.scan(later)
    assert first.statuses == {"node-0001": "admitted", "node-0002": "quarantined"}
    assert fleet.record_of("node-0002").last_attested == "2026-06-01T12:06:40Z"
    assert scanner.scan(later + dt.timedelta(seconds=30)).reasons == {}
    assert len(fleet.events(node="node-0002", kind="admission-held")) == 1
    assert fleet.record_of("node-0002").status == "quarantined"  # still held


def test_a_node_failing_round_after_round_is_one_scan_failed_event_with_a_count(
    world: World, tmp_path: Path
) -> None:
    """A node whose attestation keeps failing is due at every round (ten a period under
    ``follow``): its failures for one reason fold into one ``scan-failed`` event with a
    ``count`` (as refused admissions do), not one more event per round without end."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)

    def attest(node_id: str, now: dt.datetime) -> str:
        if node_id == "node-0002":
            raise StorageError("the node's flash is gone", code="flash-missing")
        return "admitted"

    scanner = Scanner(fleet, attest)
    for i in range(5):
        report = scanner.scan(NOW + dt.timedelta(seconds=30 * i))
        assert report.failures == {"node-0002": "flash-missing"}
    (failed,) = fleet.events(node="node-0002", kind="scan-failed")
    assert failed.detail == {
        "code": "flash-missing",
        "detail": "the node's flash is gone",
        "count": 5,
        "first_at": "2026-06-01T12:00:00Z",
    }
    assert failed.at == "2026-06-01T12:02:00Z"


def test_a_scan_that_finds_a_nodes_root_of_trust_tampered_quarantines_it(
    world: World, tmp_path: Path
) -> None:
    """The scanner asks the node's own RoT for its evidence: a RoT whose state does not verify
    (``DeviceStateTampered``) is drift of the root of trust itself. The node was left
    admitted, its credentials current on both planes and its VMs given keys until they
    expired; a scan quarantines it (no hold: a RoT put right is readmitted by the next)."""
    from tests.fleet.admission_world import admission_world

    from ironroot.fleet import scan_attest

    fleet, authority = admission_world(world).fleet(tmp_path / "fleet", 2)
    scanner = Scanner(fleet, scan_attest(fleet, authority), period=300, jitter=0)
    assert scanner.scan(NOW).statuses == {"node-0001": "admitted", "node-0002": "admitted"}
    state = fleet.directory / "nodes" / "node-0002" / "rot" / "boot.json"
    state.write_bytes(state.read_bytes().replace(b"a", b"b", 1))
    report = scanner.scan(NOW + dt.timedelta(seconds=400))
    assert report.statuses == {"node-0001": "admitted", "node-0002": "quarantined"}
    record = fleet.record_of("node-0002")
    assert record.status == "quarantined"
    assert record.reason.startswith(
        "attestation failed: the root of trust's state does not verify (device-state-tampered)"
    )
    assert all(c.revoked for c in authority.credentials.of_node("node-0002"))
    assert authority.state.held("node-0002") is None
    assert fleet.record_of("node-0001").status == "admitted"


def test_a_tampered_root_of_trust_is_quarantined_once_a_period_not_every_round(
    world: World, tmp_path: Path
) -> None:
    """The tampered-RoT quarantine left the node's ``last_attested`` at its last good
    attestation, so the node was due at every later round and each quarantined it again (two
    more events a round, its credentials revoked anew); like the revocation quarantine, it is
    now dated by the scan: due again a period later."""
    from tests.fleet.admission_world import admission_world

    from ironroot.fleet import scan_attest

    fleet, authority = admission_world(world).fleet(tmp_path / "fleet", 2)
    scanner = Scanner(fleet, scan_attest(fleet, authority), period=300, jitter=0)
    scanner.scan(NOW)
    state = fleet.directory / "nodes" / "node-0002" / "rot" / "boot.json"
    state.write_bytes(state.read_bytes().replace(b"a", b"b", 1))
    later = NOW + dt.timedelta(seconds=400)
    assert scanner.scan(later).statuses == {"node-0001": "admitted", "node-0002": "quarantined"}

    def count() -> tuple[int, int]:
        kinds = [e.kind for e in fleet.events(node="node-0002")]
        return kinds.count("quarantined"), kinds.count("quarantine-effects")

    assert count() == (1, 1)
    scanner.scan(later + dt.timedelta(seconds=10))  # the next round: not due
    assert count() == (1, 1)
    assert fleet.record_of("node-0002").last_attested == "2026-06-01T12:06:40Z"
    assert scanner.due(later + dt.timedelta(seconds=10)) == []
    # a period later it is due again, and still quarantined
    assert scanner.scan(later + dt.timedelta(seconds=300)).statuses == {
        "node-0001": "admitted",
        "node-0002": "quarantined",
    }
    assert count() == (2, 2)


def test_the_scanner_runs_its_maintenance_after_each_round(fleet: Fleet) -> None:
    """The service's scanner prunes the credential store after each round (``maintain``); a
    failure there is logged and the round's report stands."""
    seen: list[dt.datetime] = []

    def attest(node: str, now: dt.datetime) -> str:
        return "admitted"

    Scanner(fleet, attest, maintain=seen.append).scan(NOW)  # type: ignore[arg-type]
    assert seen == [NOW]

    def failing(now: dt.datetime) -> None:
        raise StorageError("the store is gone")

    report = Scanner(fleet, attest, maintain=failing).scan(NOW)  # type: ignore[arg-type]
    assert report.failures == {}


def test_a_review_logged_under_another_encoding_of_the_firmware_digest_triggers_the_class(
    world: World, tmp_path: Path
) -> None:
    """A SAFE review statement's subject is accepted whatever the case of its digest
    (``SHA384:<HEX>``) and under the SFR's SHA-512 too (``sha512:<hex>``,
    :func:`ironroot.safe.review_from_statement`): the same review must trigger the class, not
    only one spelled ``sha384:<lower hex>`` — else a new high finding waits a period."""
    import hashlib

    from ironroot.cose import create_statement
    from ironroot.firmware import FirmwareBundle
    from ironroot.fleet import LogTriggers

    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    triggers = LogTriggers(fleet, [world.urls["trusted"]], clock=lambda: NOW)
    triggers.poll()  # what was logged before
    klass = fleet.node_class(fleet.classes()[0])
    manifest = FirmwareBundle.parse(klass.images["host"]).manifest.encode()
    subjects = [
        "SHA384:" + hashlib.sha384(manifest).hexdigest().upper(),
        "sha512:" + hashlib.sha512(manifest).hexdigest(),
    ]
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest)  # type: ignore[arg-type]
    for subject in subjects:
        assert scanner.triggered([_event(OTHER, subject)]) == fleet.node_ids(), subject
    for subject in subjects:
        review = create_statement(
            world.other_key, b"a review", iss=OTHER, sub=subject, content_type="text/plain"
        )
        world.trusted.register(review)
    found = triggers.poll()
    assert sorted(e.sub for e in found) == sorted(subjects)
    assert scanner.triggered(found) == fleet.node_ids()


def test_a_trigger_polled_in_a_round_that_fails_is_not_lost(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old behaviour: ``follow`` polled the logs (the monitor then stands past the new
    statements) and the round failed (the registry unreadable a moment): the statements were
    dropped, and the nodes they concern waited a period for their re-attestation."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)  # every node attested: none due for a day
    polls = iter([[_event(VENDOR, "pkg:unrelated")], []])
    records = fleet.records
    failures = iter([StorageError("the registry is locked", code="registry-busy")])

    def flaky() -> object:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return records()

    monkeypatch.setattr(fleet, "records", flaky)
    reports: list[object] = []
    when = iter([NOW + dt.timedelta(seconds=10), NOW + dt.timedelta(seconds=20)])
    scanner.follow(
        clock=lambda: next(when),
        poll=lambda: next(polls),
        interval=0,
        rounds=2,
        on_report=reports.append,
    )
    assert fleet.events(kind="scan-round-failed")[-1].detail["code"] == "registry-busy"
    assert [r.reasons for r in reports] == [dict.fromkeys(fleet.node_ids(), "triggered")]  # type: ignore[attr-defined]


def test_a_round_that_fails_on_a_bug_is_recorded_and_the_scanner_goes_on(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Old behaviour: an exception that is no typed error (a bug in a round) ended
    ``follow``, the scanner thread with it, while the planes kept serving: no node was
    re-attested again and nothing said so. The round is now recorded as failed (code
    ``internal``, with a correlation id the logged traceback repeats), the statements it
    polled trigger the next round, and the next round runs."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)  # every node attested: none due for a day
    polls = iter([[_event(VENDOR, "pkg:unrelated")], []])
    records = fleet.records
    failures = iter([KeyError("a bug")])

    def buggy() -> object:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return records()

    monkeypatch.setattr(fleet, "records", buggy)
    reports: list[object] = []
    when = iter([NOW + dt.timedelta(seconds=10), NOW + dt.timedelta(seconds=20)])
    with caplog.at_level("ERROR", logger="ironroot.fleet"):
        scanner.follow(
            clock=lambda: next(when),
            poll=lambda: next(polls),
            interval=0,
            rounds=2,
            on_report=reports.append,
        )
    failed = fleet.events(kind="scan-round-failed")[-1].detail
    assert failed["code"] == "internal"
    incident = failed["correlation_id"]
    assert any(incident in r.getMessage() and r.exc_info for r in caplog.records)
    assert [r.reasons for r in reports] == [dict.fromkeys(fleet.node_ids(), "triggered")]  # type: ignore[attr-defined]


def test_nodes_triggered_in_a_round_cut_short_are_attested_after_a_restart(
    world: World, tmp_path: Path
) -> None:
    """Old behaviour: the monitor stands past the statements a round was triggered by; the
    process died in that round (killed, a crash) and the scanner started again knew nothing
    of them: the nodes not yet attested waited a period."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    _, attest = _boot_attest(fleet)
    Scanner(fleet, attest, period=86400).scan(NOW)  # type: ignore[arg-type]

    def dies(node_id: str, now: dt.datetime) -> str:
        raise SystemExit("killed")

    later = NOW + dt.timedelta(seconds=10)
    with pytest.raises(SystemExit):
        Scanner(fleet, dies, period=86400, concurrency=1).scan(later, [_event(VENDOR, "x")])
    restarted = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    report = restarted.scan(later + dt.timedelta(seconds=10))
    assert report.reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    assert restarted.scan(later + dt.timedelta(seconds=20)).reasons == {}  # once


def test_triggered_nodes_that_cannot_be_written_down_fail_the_round_not_the_scanner(
    world: World, tmp_path: Path
) -> None:
    """``scan-pending.json`` that cannot be written (a full disk, a read-only folder) is a
    ``StorageError`` the round records (``scan-round-failed``), never an ``OSError`` that
    would end the scanner's thread while the planes serve."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    pending = fleet.directory / "scan-pending.json"
    pending.unlink(missing_ok=True)
    pending.mkdir()  # a rename over it fails: EISDIR
    when = iter([NOW + dt.timedelta(seconds=10)])
    scanner.follow(
        clock=lambda: next(when), poll=lambda: [_event(VENDOR, "x")], interval=0, rounds=1
    )
    assert fleet.events(kind="scan-round-failed")[-1].detail["code"] == "storage"


@pytest.mark.parametrize("stamp", ["not a time", "2026-06-01T12:00:00"])
def test_a_last_attestation_that_is_no_aware_time_makes_the_node_due(
    world: World, tmp_path: Path, stamp: str
) -> None:
    """Old behaviour: a registry's ``last_attested`` that does not parse (``ValueError``) or
    names no time zone (``TypeError`` subtracting it from ``now``) raised out of the round, an
    untyped error ``follow`` does not survive: the scanner's thread ended while the planes
    served. Such a node is due (its last attestation is not known to be recent)."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    _, attest = _boot_attest(fleet)
    scanner = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    scanner.scan(NOW)
    fleet.set_status("node-0001", "admitted", "damaged", now=NOW, last_attested=stamp)
    assert scanner.due(NOW + dt.timedelta(seconds=10)) == ["node-0001"]


def test_a_scanner_keeps_the_triggers_another_left_pending(world: World, tmp_path: Path) -> None:
    """Old behaviour: each scanner read ``scan-pending.json`` once, as it started, and wrote
    its own set over it: a scanner started before another's round was cut short (``fleet
    serve --scan`` beside a ``fleet attest`` run, two serve instances) wrote the file again
    without the nodes the other had left triggered, and no one attested them (fail-open)."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    _, attest = _boot_attest(fleet)
    Scanner(fleet, attest, period=86400).scan(NOW)  # type: ignore[arg-type]
    serving = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]

    def dies(node_id: str, now: dt.datetime) -> str:
        raise SystemExit("killed")

    later = NOW + dt.timedelta(seconds=10)
    with pytest.raises(SystemExit):
        Scanner(fleet, dies, period=86400, concurrency=1).scan(later, [_event(VENDOR, "x")])
    assert serving.scan(later + dt.timedelta(seconds=5)).reasons == dict.fromkeys(
        fleet.node_ids(), "triggered"
    )
    assert Scanner(fleet, attest).scan(later + dt.timedelta(seconds=10)).reasons == {}  # type: ignore[arg-type]


def test_a_scanner_keeps_the_triggers_another_process_left_pending(
    world: World, tmp_path: Path
) -> None:
    """The same across processes: ``fleet serve --scan`` runs while another scanner of the
    fleet, in another process, writes down the nodes a statement triggers and is killed
    (``kill -9``) before attesting them; the serving one attests them in its next round."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    _, attest = _boot_attest(fleet)
    serving = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    serving.scan(NOW)
    done = subprocess.run(
        [sys.executable, str(HERE / "scan_killed.py"), str(fleet.directory), VENDOR],
        env=child_env(),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 9, done.stderr
    report = serving.scan(NOW + dt.timedelta(seconds=20))
    assert report.reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    assert serving.scan(NOW + dt.timedelta(seconds=30)).reasons == {}  # once


def test_a_trigger_added_while_another_scanner_attests_the_node_is_not_lost(
    world: World, tmp_path: Path
) -> None:
    """Two scanners racing on one fleet (two threads here; two processes share the file the
    same way): one attests the nodes a statement triggered; meanwhile another is triggered
    by a new statement (a revocation) for the same nodes, writes them down and is killed.
    Old behaviour: the first one, its round over, wrote its own set (its nodes done) over
    the file: the second's triggers were lost, and the nodes not attested after the
    revocation (fail-open). A trigger is removed now only by an attestation that began after
    it was written down."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 3)
    _, attest = _boot_attest(fleet)
    Scanner(fleet, attest, period=86400).scan(NOW)  # type: ignore[arg-type]
    started, release = threading.Event(), threading.Event()

    def slow(node_id: str, now: dt.datetime) -> str:
        started.set()
        assert release.wait(60)
        return attest(node_id, now)  # type: ignore[operator,no-any-return]

    first = Scanner(fleet, slow, period=86400, concurrency=1)
    later = NOW + dt.timedelta(seconds=10)
    reports: list[dict[str, str]] = []
    thread = threading.Thread(
        target=lambda: reports.append(dict(first.scan(later, [_event(VENDOR, "x")]).reasons))
    )
    thread.start()
    try:
        assert started.wait(60)  # the first scanner is attesting, its triggers written down

        def dies(node_id: str, now: dt.datetime) -> str:
            raise SystemExit("killed")

        with pytest.raises(SystemExit):
            Scanner(fleet, dies, period=86400, concurrency=1).scan(later, [_event(VENDOR, "y")])
    finally:
        release.set()
        thread.join()
    assert reports == [dict.fromkeys(fleet.node_ids(), "triggered")]
    restarted = Scanner(fleet, attest, period=86400)  # type: ignore[arg-type]
    report = restarted.scan(later + dt.timedelta(seconds=10))
    assert report.reasons == dict.fromkeys(fleet.node_ids(), "triggered")
    assert restarted.scan(later + dt.timedelta(seconds=20)).reasons == {}  # once
