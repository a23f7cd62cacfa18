"""Members the seal covers but no step reads, and parts a bundle leaves out.

The index is sealed, so a member in it is the node's word; but a member no step checks is
one an auditor (or a tool unpacking the bundle) may read as verified: a second EAR beside the
one verified, a checkpoint past a gap, a statement under a name the firmware step does not
read, release statements with no audit chain to check them against. Verify refuses each
(``AuditBundleRejected`` ``member-unread``, step ``members``). And a step with nothing to
check says the part is not present: the reason the exporter gives is quoted as its word,
never shown as if a step had established it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world

from ironroot.audit import AuditExport, check_bundle, render_html, verify_bundle
from ironroot.cli import main
from ironroot.errors import AuditBundleRejected

JWT, CWT = "application/jwt", "application/cwt"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-unread"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _reseal(aw: AuditWorld, export: AuditExport, **changes: object) -> bytes:
    return export.replace(**changes).seal(aw.fleet.rot(NODE))  # type: ignore[arg-type]


def _unread(aw: AuditWorld, data: bytes) -> AuditBundleRejected:
    with pytest.raises(AuditBundleRejected) as info:
        verify_bundle(data, aw.trust())
    error = info.value
    assert (error.code, error.check) == ("member-unread", "members")
    return error


def test_the_real_export_has_no_unread_member(aw: AuditWorld, collected: AuditExport) -> None:
    assert verify_bundle(_reseal(aw, collected), aw.trust()).ok


def test_a_second_ear_beside_the_verified_one_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: ``attestation/ear.jwt`` was verified and ``attestation/ear.cwt`` (any EAR, of
    any node, expired, contraindicated) rode along sealed and unread, exit 0."""
    token = collected.members["attestation/ear.jwt"][0]
    data = _reseal(aw, collected, members={"attestation/ear.cwt": (token, CWT)})
    error = _unread(aw, data)
    assert "attestation/ear.cwt" in error.detail


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("notes/verified.txt", "node/record.json"),  # a name no step knows
        ("firmware/bmc/statement-01.cose", "firmware/bmc/statement-1.cose"),  # leading zero
        ("firmware/bmc/statement-10000.cose", "firmware/bmc/statement-1.cose"),  # too far
        ("firmware/fpga/statement-0.cose", "firmware/bmc/statement-0.cose"),  # no component
        ("spdm/fpga.cbor", "spdm/nic.cbor"),  # no device
        ("transparency/5/checkpoint", "transparency/0/checkpoint"),  # after a gap
        ("transparency/1/proofs.cbor", "transparency/0/proofs.cbor"),  # no checkpoint
        ("attestation/credential-admin-ear.jwt", "attestation/ear.jwt"),  # no plane
    ],
)
def test_a_member_no_step_reads_is_refused(
    aw: AuditWorld, collected: AuditExport, name: str, source: str
) -> None:
    data = _reseal(aw, collected, members={name: collected.members[source]})
    error = _unread(aw, data)
    assert name in error.detail


def test_evidence_without_its_ear_is_refused(aw: AuditWorld, collected: AuditExport) -> None:
    """The evidence is read only to bind the EAR it was issued for."""
    data = _reseal(
        aw,
        collected,
        members={"attestation/ear.jwt": None},
        absent={"attestation/ear": "the registry holds no EAR for the node"},
    )
    error = _unread(aw, data)
    assert "attestation/evidence.cbor" in error.detail


def test_release_statements_without_an_hsm_audit_chain_are_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: the ``hsm`` step was skipped, ``releases`` not run, and the report ``ok``
    (exit 0) with release statements nothing checked."""
    data = _reseal(aw, collected, members={"hsm/releases.cbor": (b"\x80", "application/cbor")})
    error = _unread(aw, data)
    assert "hsm/releases.cbor" in error.detail


def test_the_command_line_exits_1_naming_the_unread_member(
    aw: AuditWorld,
    collected: AuditExport,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = collected.members["attestation/ear.jwt"][0]
    bundle = tmp_path / "two-ears.audit"
    bundle.write_bytes(_reseal(aw, collected, members={"attestation/ear.cwt": (token, CWT)}))
    trust = aw.write_trust(tmp_path / "auditor")
    capsys.readouterr()
    assert main(["audit", "verify", str(bundle), "--trust", str(trust)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ironroot: member-unread: members: member attestation/ear.cwt ")


def test_an_absent_part_is_shown_not_present_with_the_exporter_s_reason(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: the step's only line was the exporter's reason, whatever it said ("EAR
    verified: affirming" under a skipped mark)."""
    claim = "EAR verified: affirming, every submodule affirming"
    data = _reseal(
        aw,
        collected,
        members={"attestation/ear.jwt": None, "attestation/evidence.cbor": None},
        absent={"attestation/ear": claim, "hsm": "<script>alert(1)</script> audit chain intact"},
    )
    report = check_bundle(data, aw.trust())
    step = report.step("attestation")
    assert step.status == "skipped"
    assert step.lines == (f"not present; the exporter's reason (its word, not checked): {claim}",)
    hsm = report.step("hsm")
    assert hsm.lines[0].startswith("not present; the exporter's reason (its word, not checked): ")
    page = render_html(report)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; audit chain intact" in page


def test_a_report_with_skipped_steps_does_not_say_every_step_holds(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: a bundle without its EAR, verified with no fleet CA trusted (attestation and
    identity skipped, as hsm and releases), was "Every step of the chain of trust holds."
    on the page and "every step holds" on the terminal: the EAR was never checked."""
    import io

    from rich.console import Console

    from ironroot.audit import render_console

    data = _reseal(
        aw,
        collected,
        members={"attestation/ear.jwt": None, "attestation/evidence.cbor": None},
        absent={"attestation/ear": "never admitted"},
    )
    report = check_bundle(data, aw.trust(fleet_ca=None))
    assert report.ok
    document = report.to_json()
    assert document["unchecked"] == ["attestation", "identity", "hsm", "releases"]
    page = render_html(report)
    assert "Every step of the chain of trust holds." not in page
    assert (
        "No step failed. Not checked (not present, or nothing trusted to check it with): "
        "attestation, identity, hsm, releases." in page
    )
    terminal = io.StringIO()
    render_console(report, Console(file=terminal, force_terminal=False, width=200))
    out = terminal.getvalue()
    assert "every step holds" not in out
    assert "no step failed; not checked: attestation, identity, hsm, releases" in out


def test_a_safe_review_shipped_without_a_receipt_fails_the_reviews_step(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Each SAFE review shipped with the firmware must verify, receipts included. Before:
    one that was a plain Signed Statement (never logged; a review anyone with a key could
    write, of no findings) was passed over, and the reviews step held."""
    from tests.audit.audit_world import PROVIDER
    from tests.platform.node_world import VENDOR, sfr_report

    from ironroot.firmware import FirmwareBundle
    from ironroot.safe import sfr_statement, sign_report

    bmc = collected.members["firmware/bmc/bundle.bin"][0]
    digest = FirmwareBundle.parse(bmc).manifest_digest()
    unlogged = sfr_statement(
        sign_report(sfr_report(digest, ()), aw.provider, PROVIDER),
        aw.world.statement_key,
        iss=VENDOR,
    )
    data = _reseal(
        aw, collected, members={"firmware/bmc/statement-3.cose": (unlogged, "application/cose")}
    )
    report = check_bundle(data, aw.trust())
    step = report.step("reviews")
    assert step.status == "failed", step.lines
    assert step.error is not None
    assert (step.error.code, step.error.check) == ("no-receipt", "reviews")
    assert "firmware/bmc/statement-3.cose" in step.error.detail


@pytest.mark.parametrize(
    ("name", "step"),
    [("firmware/bmc/statement-9.cose", "firmware:bmc"), ("pfm/statement-1.cose", "pfm")],
)
def test_a_statement_no_check_can_read_is_named_in_its_step(
    aw: AuditWorld, collected: AuditExport, name: str, step: str
) -> None:
    """The update path passes over a statement that is no Signed Statement, and keeps it with
    the image: the audit cannot refuse the node for it, but must not let it pass unseen.
    Before: the step's lines did not mention it, as if it were among what verified."""
    data = _reseal(aw, collected, members={name: (b"not a statement", "application/cose")})
    report = check_bundle(data, aw.trust())
    assert report.step(step).status == "ok"
    assert f"{name}: not a Signed Statement, so no check reads it" in report.step(step).lines
