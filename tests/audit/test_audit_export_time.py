"""A bundle's ``exported_at`` is the exporter's word: the RoT that seals signs the index it is
given and keeps no trusted clock. The report says so, and states what signed data bounds it:
"exported no earlier than" the newest time a party the trust names signed (a receipt, an EAR,
the fleet CA's CRL, a credential, an HSM audit checkpoint), among what the steps verified."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from ironroot.audit import AuditExport, check_bundle, render_html
from ironroot.cli import main

WORD = "is the exporter's word (the RoT that sealed the bundle keeps no trusted clock)"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-time"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _at(export: AuditExport, when: dt.datetime) -> AuditExport:
    return dataclasses.replace(export, exported_at=when)


def test_the_report_bounds_the_export_time_with_signed_data(
    aw: AuditWorld, collected: AuditExport
) -> None:
    report = check_bundle(collected.seal(aw.fleet.rot(NODE)), aw.trust())
    assert report.ok
    assert report.exported_at == "2026-06-01T12:10:00Z"
    assert report.exported_no_earlier_than == "2026-06-01T12:10:00Z"  # the CRL signed at export
    assert report.caveats[0] == (
        f"exported_at 2026-06-01T12:10:00Z {WORD}; signed data bounds it: exported no earlier "
        "than 2026-06-01T12:10:00Z (the fleet CA's CRL (thisUpdate))"
    )
    document = report.to_json()
    assert document["exported_no_earlier_than"] == "2026-06-01T12:10:00Z"
    assert document["caveats"] == list(report.caveats)
    page = render_html(report)
    assert "exported no earlier than (signed)" in page
    assert "is the exporter&#x27;s word" in page


def test_an_export_time_moved_later_is_bounded_only_by_what_was_signed(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Sealed with a later time, the bundle verifies (nothing signed says when it was made),
    but the report states the signed bound, not the claimed time."""
    later = _at(collected, EXPORTED + dt.timedelta(minutes=5))
    report = check_bundle(later.seal(aw.fleet.rot(NODE)), aw.trust())
    assert report.ok
    assert report.exported_at == "2026-06-01T12:15:00Z"
    assert report.exported_no_earlier_than == "2026-06-01T12:10:00Z"
    assert "exported no earlier than 2026-06-01T12:10:00Z" in report.caveats[0]


def test_without_a_fleet_ca_the_receipts_and_the_ear_bound_it(
    aw: AuditWorld, collected: AuditExport
) -> None:
    report = check_bundle(collected.seal(aw.fleet.rot(NODE)), aw.trust(fleet_ca=None))
    assert report.step("identity").status == "skipped"
    assert report.exported_no_earlier_than == "2026-06-01T12:00:00Z"  # receipts and EAR: NOW
    assert report.caveats[0].endswith(
        "exported no earlier than 2026-06-01T12:00:00Z (the latest EAR (iat))"
    )


def test_times_of_a_step_that_failed_do_not_bound_it(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """A day later the credentials have expired: the identity step fails and its CRL's time
    is not counted (only what a step verified is)."""
    later = _at(collected, EXPORTED + dt.timedelta(days=1))
    report = check_bundle(later.seal(aw.fleet.rot(NODE)), aw.trust())
    assert report.step("identity").status == "failed"
    assert report.exported_no_earlier_than == "2026-06-01T12:00:00Z"


def test_audit_verify_prints_the_caveats(
    aw: AuditWorld, collected: AuditExport, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "node.audit"
    bundle.write_bytes(collected.seal(aw.fleet.rot(NODE)))
    trust = aw.write_trust(tmp_path / "auditor")
    capsys.readouterr()
    assert main(["audit", "verify", str(bundle), "--trust", str(trust)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "note: exported_at 2026-06-01T12:10:00Z is the exporter's word" in out
    assert "note: the trust file pairs no receipt key with its log" in out
    assert main(["audit", "verify", str(bundle), "--trust", str(trust), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["exported_no_earlier_than"] == "2026-06-01T12:10:00Z"
    assert len(document["caveats"]) == 2
