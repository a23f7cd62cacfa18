"""A real ``kill -9`` of ``ironroot fleet quarantine`` and ``ironroot fleet readmit`` at their
commits to ``fleet.db`` (right before one, and right after it landed; the first and the last
always, another drawn afresh each run: ``kill_points.some_points``), and of ``ironroot
fleet attest --endorse`` right after the endorsement's file landed, then the fleet opened
again, as a restarted control plane opens it:

* a quarantine is all or nothing: the node admitted with its credentials current, or
  quarantined, held, every credential revoked and the effects recorded; once ``quarantine``
  returned, the control plane refuses the node's credential (``CredentialRejected``
  ``credential-revoked``);
* a readmission cut short leaves no state without its record: no hold lifted without its
  ``hold-lifted`` event, no credential current without the registry row that names it.

* an endorsement whose file landed before a kill gets its ``endorsement-added`` event from the
  next add of it, once: none is in force without its record.

SQLite writes its files from C, where :data:`kill_points.KILLER`'s audit hook sees nothing: the
CLI runs under :data:`kill_points.SQLITE_COMMITS`, which kills it at a chosen ``COMMIT``.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.platform.node_world import NOW, World, make_world

from ironroot.errors import AdmissionDenied, CredentialRejected
from ironroot.fleet import AdmissionAuthority, Fleet, attest_node, check_credential, quarantine
from kill_points import KILLER, SQLITE_COMMITS, KillServer, run_killer, some_points
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
NODE = "node-0001"

_COMMIT_KILLER = SQLITE_COMMITS + textwrap.dedent(
    """
    import runpy, sys

    sys.argv = ["ironroot", *sys.argv[1:]]
    runpy.run_module("ironroot", run_name="__main__", alter_sys=True)
    """
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("quarantine-kill-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("quarantine-kill-") as directory:
        yield directory


# What ``fleet quarantine`` and ``fleet readmit`` import, once for each sweep's runs
# (kill_points.KillServer; ``ironroot.fleet`` is a lazy package, its modules are named).
_PRELOAD = (
    *("ironroot.cli", "ironroot.cli.fleet", "ironroot.fleet._fleet", "ironroot.fleet._admission"),
    *("ironroot.fleet._verifier", "ironroot.fleet._desired", "ironroot.fleet._reviews"),
    *("ironroot.fleet._revocation", "ironroot.attestation._appraise", "ironroot.platform._boot"),
    *("ironroot.attestation.evidence._tdx_verify", "ironroot.attestation.evidence._snp_verify"),
    *("ironroot.spdm._requester", "ironroot.spdm._responder", "ironroot.rim._appraise"),
    *("ironroot.ear._token", "ironroot.hsm._storage", "ironroot._cel", "sqlite3"),
)


def _scripts(directory: Path) -> tuple[Path, Path]:
    killer, script = directory / "killer.py", directory / "commit-killer.py"
    killer.write_text(KILLER)
    script.write_text(_COMMIT_KILLER)
    return killer, script


def _server(directory: Path) -> KillServer:
    (directory / "server").mkdir()
    return KillServer(directory / "server", _PRELOAD)


def _commits(
    killer: KillServer, script: Path, template: Path, argv: list[str], scratch: Path
) -> int:
    """How many commits the command makes, run whole on a copy of ``template``."""
    counted = scratch / "counted"
    shutil.copytree(template, counted)
    tally = scratch / "tally"
    done = killer.run(
        [*argv, "--fleet", str(counted)],
        script=script,
        IRONROOT_TEST_KILL_COMMITS=str(tally),
    )
    assert done.returncode == 0, done
    shutil.rmtree(counted)
    return int(tally.read_text())


def _killed_copies(
    killer: KillServer, script: Path, template: Path, argv: list[str], scratch: Path
) -> Iterator[tuple[str, Fleet]]:
    """The fleet after a kill right before, then right after, commits of ``argv``."""
    commits = _commits(killer, script, template, argv, scratch)
    assert commits >= 1
    for at in some_points(1, commits, 3):  # the first, the last, one drawn afresh each run
        for after in ("0", "1"):
            directory = scratch / f"kill-{at}-{after}"
            shutil.copytree(template, directory)
            done = killer.run(
                [*argv, "--fleet", str(directory)],
                script=script,
                IRONROOT_TEST_KILL_COMMIT=str(at),
                IRONROOT_TEST_KILL_COMMIT_AFTER=after,
            )
            assert done.returncode == -9, (at, after, done)
            yield f"commit {at} {'after' if after == '1' else 'before'}", Fleet.open(directory)
            shutil.rmtree(directory)


def test_a_quarantine_killed_at_any_commit_is_whole_or_absent_and_refused_once_returned(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "template", 1)
    admitted = attest_node(fleet, NODE, now=NOW, authority=authority)
    credential = admitted.credentials["control"]
    _, script = _scripts(tmp_path)
    argv = ["fleet", "quarantine", NODE, "--reason", "BMC swapped", "--at", AT]
    with _server(tmp_path) as killer:
        for point, killed in _killed_copies(killer, script, fleet.directory, argv, tmp_path):
            reopened = AdmissionAuthority.open(killed)
            revoked = {s.revoked for s in reopened.credentials.of_node(NODE)}
            kinds = [e.kind for e in killed.events(node=NODE)]
            if killed.record_of(NODE).status == "admitted":
                assert revoked == {False}, point
                assert reopened.state.held(NODE) is None, point
                assert "quarantine-effects" not in kinds, point
            else:
                assert revoked == {True}, point
                assert reopened.state.held(NODE) == "BMC swapped", point
                assert "quarantine-effects" in kinds, point
        # once quarantine returned, a kill of any process after it loses nothing: a control plane
        # started afterwards refuses the node's credential
        done = killer.run([*argv, "--fleet", str(fleet.directory)], script=script)
        assert done.returncode == 0, done
    restarted = Fleet.open(fleet.directory)
    plane = AdmissionAuthority.open(restarted)
    with pytest.raises(CredentialRejected) as refused:
        check_credential(
            credential.der,
            plane="control",
            ca=plane.ca,
            store=plane.credentials,
            fleet=restarted,
            now=NOW,
        )
    assert refused.value.code == "credential-revoked"


def test_a_readmission_killed_at_any_commit_leaves_nothing_without_its_record(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "template", 1)
    attest_node(fleet, NODE, now=NOW, authority=authority)
    quarantine(fleet, NODE, "BMC swapped", now=NOW)
    _, script = _scripts(tmp_path)
    argv = ["fleet", "readmit", NODE, "--at", AT]
    with _server(tmp_path) as killer:
        for point, killed in _killed_copies(killer, script, fleet.directory, argv, tmp_path):
            reopened = AdmissionAuthority.open(killed)
            kinds = [e.kind for e in killed.events(node=NODE)]
            if "hold-lifted" not in kinds:
                # the operator's hold stands until its lifting is recorded: an affirming
                # attestation (the scanner's) does not readmit the node
                try:
                    attest_node(killed, NODE, now=NOW, authority=reopened, store=False)
                    outcome = "admitted"
                except AdmissionDenied as refused:
                    outcome = refused.code
                assert outcome == "node-held", point
                assert reopened.state.held(NODE) == "BMC swapped", point
            record = killed.record_of(NODE)
            current = [s for s in reopened.credentials.of_node(NODE) if not s.revoked]
            for status in current:
                assert record.status == "admitted", point
                assert status.ear_id == record.ear_id, point
            if record.status == "admitted":
                assert record.credential_serial in {s.serial for s in current}, point


def test_an_endorsement_killed_after_its_file_landed_gets_its_event_when_added_again(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, _ = aw.fleet(tmp_path / "fleet", 1)
    statement = aw.bmc_rim("2.0")
    endorsed = tmp_path / "bmc-2.0.rim.ts"
    endorsed.write_bytes(statement)
    name = hashlib.sha256(statement).hexdigest() + ".ts"
    killer, _script = _scripts(tmp_path)
    argv = ["fleet", "attest", "--fleet", str(fleet.directory), "--endorse", str(endorsed)]
    done = run_killer(killer, [*argv, "--at", AT], IRONROOT_TEST_KILL_AFTER_REPLACING=name)
    assert done.returncode == -9, done
    assert (fleet.directory / "admission" / "endorsements" / name).is_file()  # in force
    authority = AdmissionAuthority.open(Fleet.open(fleet.directory))
    assert authority.add_endorsement(statement, now=NOW) == name
    assert authority.add_endorsement(statement, now=NOW) == name  # and recorded once only
    events = authority.fleet.events(kind="endorsement-added")
    assert [e.detail["file"] for e in events] == [name]
