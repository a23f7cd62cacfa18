"""``ironroot fleet attest`` cut short between an admission's commit and the node's credential
files: the registry says *admitted* (a credential issued, the attestation recent) while the node
holds none of it, half of it (one plane), or an older credential that has been revoked.
``fleet status`` says so (``unusable_credentials``: the typed error), and the next ``fleet
attest`` — nodes pending, due, or holding no usable credential — attests the node again, where
it used to answer "nothing to attest" until the node was due (300 s later): the node had no
credential to present meanwhile.

The states are built the way a ``kill -9`` leaves them (``attest_node(store=False)``: the
admission committed, nothing stored; a plane's files removed: the kill fell between the
planes' renames), and a real ``kill -9`` of ``fleet attest --all`` at its file operations
(``kill_points``) is followed by ``fleet attest``: every node ends admitted with the credential
the registry names."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.platform.node_world import NOW, World, make_world

from ironroot.cli import main
from ironroot.errors import (
    CredentialRejected,
    MalformedCertificate,
    NotFound,
    SealedStoreError,
)
from ironroot.fleet import (
    AdmissionAuthority,
    Fleet,
    Scanner,
    _credentials,
    attest_node,
    node_credential_key,
    quarantine,
    scan_attest,
    stored_credential_fault,
    unusable_credentials,
)
from kill_points import KillServer, some_points
from scratch import in_memory

AT = NOW.isoformat().replace("+00:00", "Z")
LATER = NOW + dt.timedelta(seconds=30)  # well before the node is due (300 s)
LATER_AT = LATER.isoformat().replace("+00:00", "Z")
_POINTS = 8


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("attest-kill-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _holds_its_credentials(fleet: Fleet, node: str) -> None:
    """The node's stored credentials open and are the current ones the registry names."""
    authority = AdmissionAuthority.open(fleet)
    current = {s.plane: s.serial for s in authority.credentials.of_node(node) if not s.revoked}
    assert set(current) == {"control", "data"}
    assert fleet.record_of(node).credential_serial == current["control"]
    for plane, serial in current.items():
        node_credential_key(fleet, node, plane)
        pem = (fleet.directory / "nodes" / node / "credentials" / f"{plane}.cert.pem").read_bytes()
        assert format(x509.load_pem_x509_certificate(pem).serial_number, "x") == serial
    assert stored_credential_fault(fleet, node, authority.credentials.of_node(node)) is None


def test_a_node_admitted_without_its_credential_files_is_reported_and_attested_again(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    attest_node(fleet, "node-0002", now=NOW, authority=authority, store=False)  # killed there
    fault = stored_credential_fault(fleet, "node-0002", authority.credentials.of_node("node-0002"))
    assert isinstance(fault, NotFound)
    assert fault.code == "not-found"
    assert (
        stored_credential_fault(fleet, "node-0001", authority.credentials.of_node("node-0001"))
        is None
    )
    f = ("--fleet", str(fleet.directory))
    code, out = _run(capsys, "fleet", "status", *f)
    assert code == 0
    assert out["unusable_credentials"] == {  # type: ignore[index]
        "node-0002": {"code": "not-found", "detail": str(fault)}
    }
    assert main(["fleet", "status", *f]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "node-0002 does not hold its credential (not-found:" in text
    code, out = _run(capsys, "fleet", "attest", *f, "--at", LATER_AT)
    assert code == 0, out
    assert [r["node"] for r in out["nodes"]] == ["node-0002"]  # type: ignore[union-attr]
    reopened = Fleet.open(fleet.directory)
    for node in ("node-0001", "node-0002"):
        _holds_its_credentials(reopened, node)
    code, out = _run(capsys, "fleet", "status", *f)
    assert out["unusable_credentials"] == {}  # type: ignore[index]
    code, out = _run(capsys, "fleet", "attest", *f, "--at", LATER_AT)
    assert (code, out["nodes"]) == (0, [])  # nothing left to attest


def test_a_node_holding_one_plane_of_its_credentials_is_attested_again(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    folder = fleet.directory / "nodes" / "node-0001" / "credentials"
    for name in ("data.key.sealed", "data.cert.pem"):  # killed before the data plane's renames
        (folder / name).unlink()
    fault = stored_credential_fault(fleet, "node-0001", authority.credentials.of_node("node-0001"))
    assert isinstance(fault, NotFound)
    assert "data-plane" in str(fault)
    code, out = _run(capsys, "fleet", "attest", "--fleet", str(fleet.directory), "--at", LATER_AT)
    assert code == 0, out
    assert [r["node"] for r in out["nodes"]] == ["node-0001"]  # type: ignore[union-attr]
    _holds_its_credentials(Fleet.open(fleet.directory), "node-0001")


def test_a_node_holding_its_older_credential_is_reported_and_attested_again(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    # quarantined (its credentials revoked), then readmitted by an attestation killed after
    # its commit: the node keeps the revoked credential (an older one still current is not a
    # fault: it is valid until it expires)
    quarantine(fleet, "node-0001", "drift", now=NOW, hold=False)
    attest_node(fleet, "node-0001", now=NOW, authority=authority, store=False)
    fault = stored_credential_fault(fleet, "node-0001", authority.credentials.of_node("node-0001"))
    assert isinstance(fault, CredentialRejected)
    assert fault.code == "credential-not-current"
    f = ("--fleet", str(fleet.directory))
    code, out = _run(capsys, "fleet", "status", *f)
    assert out["unusable_credentials"]["node-0001"]["code"] == "credential-not-current"  # type: ignore[index]
    code, out = _run(capsys, "fleet", "attest", *f, "--at", LATER_AT)
    assert code == 0, out
    assert [r["node"] for r in out["nodes"]] == ["node-0001"]  # type: ignore[union-attr]
    _holds_its_credentials(Fleet.open(fleet.directory), "node-0001")


def test_the_scanner_attests_again_a_node_admitted_without_its_credential(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    attest_node(fleet, "node-0002", now=NOW, authority=authority, store=False)
    report = Scanner(fleet, scan_attest(fleet, authority), period=300).scan(LATER)
    assert dict(report.reasons) == {"node-0002": "credential"}  # node-0001 is not due
    assert dict(report.statuses) == {"node-0002": "admitted"}
    for node in ("node-0001", "node-0002"):
        _holds_its_credentials(fleet, node)


def test_a_quarantined_node_is_not_attested_for_its_credential_files(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    quarantine(fleet, "node-0001", "BMC swapped", now=NOW)
    shutil.rmtree(fleet.directory / "nodes" / "node-0001" / "credentials")
    f = ("--fleet", str(fleet.directory))
    code, out = _run(capsys, "fleet", "status", *f)
    assert out["unusable_credentials"] == {}  # type: ignore[index]  # it holds none to use
    code, out = _run(capsys, "fleet", "attest", *f, "--at", LATER_AT)
    assert (code, out["nodes"]) == (0, [])  # held: only `fleet readmit` attests it
    assert Fleet.open(fleet.directory).record_of("node-0001").status == "quarantined"


@pytest.fixture
def scratch() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("attest-kill-") as directory:
        yield directory


_PRELOAD = (
    *("ironroot.cli", "ironroot.cli.fleet", "ironroot.fleet._fleet", "ironroot.fleet._admission"),
    *("ironroot.fleet._verifier", "ironroot.fleet._desired", "ironroot.fleet._reviews"),
    *("ironroot.fleet._revocation", "ironroot.attestation._appraise", "ironroot.platform._boot"),
    *("ironroot.spdm._requester", "ironroot.spdm._responder", "ironroot.rim._appraise"),
    *("ironroot.ear._token", "ironroot.hsm._storage", "ironroot._cel", "sqlite3"),
)


def test_an_attest_batch_killed_at_any_file_operation_is_finished_by_the_next_attest(
    aw: AdmissionWorld, scratch: Path
) -> None:
    fleet, _ = aw.fleet(scratch / "template", 2)

    def argv(directory: Path, at: str, *more: str) -> list[str]:
        return ["fleet", "attest", "--fleet", str(directory), "--at", at, "--json", *more]

    counted = scratch / "counted"
    shutil.copytree(fleet.directory, counted)
    tally = scratch / "tally"
    (scratch / "server").mkdir()
    with KillServer(scratch / "server", _PRELOAD) as killer:
        batch = ("--all", "--concurrency", "1")
        done = killer.run(argv(counted, AT, *batch), IRONROOT_TEST_KILL_TALLY=str(tally))
        assert done.returncode == 0, done
        operations = int(tally.read_text())
        for kill_at in some_points(1, operations - 1, _POINTS):
            directory = scratch / f"kill-{kill_at}"
            shutil.copytree(fleet.directory, directory)
            done = killer.run(argv(directory, AT, *batch), IRONROOT_TEST_KILL_AT=str(kill_at))
            assert done.returncode == -9, (kill_at, done)
            done = killer.run(argv(directory, LATER_AT))
            assert done.returncode == 0, (kill_at, done)
            reopened = Fleet.open(directory)
            for node in reopened.node_ids():
                assert reopened.record_of(node).status == "admitted", (kill_at, node)
                _holds_its_credentials(reopened, node)
            shutil.rmtree(directory)


# --- the verdicts kept between checks (a scanner's rounds, an authority's status) --------------


def _settled(folder: Path) -> None:
    """The files' modification times an hour back: a write in place moves them (the ctime
    cannot be set back; _SETTLED_NS is 0 in these tests, so the verdict is kept)."""
    old = (NOW - dt.timedelta(hours=1)).timestamp()
    for path in folder.iterdir():
        os.utime(path, (old, old))


def _faults(fleet: Fleet) -> dict[str, tuple[type, str, str]]:
    return {n: (type(e), e.code, str(e)) for n, e in unusable_credentials(fleet).items()}


def test_a_credential_file_changed_after_a_check_is_reported_at_the_next_one(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_credentials, "_SETTLED_NS", 0)
    fleet, authority = aw.fleet(tmp_path / "fleet", 5)
    folders = {}
    for node in fleet.node_ids():
        attest_node(fleet, node, now=NOW, authority=authority)
        folders[node] = fleet.directory / "nodes" / node / "credentials"
        _settled(folders[node])
    held = len(_credentials._held)
    assert _faults(fleet) == {}
    assert len(_credentials._held) == held + 5  # each node's verdict kept
    assert _faults(fleet) == {}  # from what was kept
    # replaced (a rename: another inode) by the node's other plane's certificate
    other = folders["node-0001"] / "control.cert.pem"
    shutil.copyfile(other, folders["node-0001"] / "other.pem")
    (folders["node-0001"] / "other.pem").replace(folders["node-0001"] / "data.cert.pem")
    # written in place, the same size: not a sealed file any more
    sealed = folders["node-0002"] / "data.key.sealed"
    data = sealed.read_bytes()
    with sealed.open("r+b") as f:
        f.write(b"X" * 8)
    assert sealed.stat().st_size == len(data)
    # emptied (a power cut before its data reached the disk), and removed
    (folders["node-0003"] / "control.cert.pem").write_bytes(b"")
    (folders["node-0004"] / "control.key.sealed").unlink()
    serial = format(x509.load_pem_x509_certificate(other.read_bytes()).serial_number, "x")
    assert _faults(fleet) == {
        "node-0001": (
            CredentialRejected,
            "credential-not-current",
            f"node-0001's data.cert.pem (serial {serial}) is not a current data-plane "
            "credential of its: an admission committed and its files were not stored "
            "(attest again)",
        ),
        "node-0002": (
            SealedStoreError,
            "sealed-store",
            "data.key.sealed of node-0002 is not a sealed key (attest again)",
        ),
        "node-0003": (
            MalformedCertificate,
            "malformed-certificate",
            "credential is empty",
        ),
        "node-0004": (
            NotFound,
            "not-found",
            "node-0004 holds no control-plane credential: attest it",
        ),
    }
    assert set(_faults(fleet)) == {"node-0001", "node-0002", "node-0003", "node-0004"}


def test_a_credential_file_written_in_place_just_after_a_check_is_reported(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    # files written within the settling time keep no verdict: a write in the same tick of
    # the file system's clock, the same size, would leave every time and the size as they were
    fleet, authority = aw.fleet(tmp_path / "fleet", 1)
    attest_node(fleet, "node-0001", now=NOW, authority=authority)
    held = len(_credentials._held)
    assert _faults(fleet) == {}
    assert len(_credentials._held) == held
    sealed = fleet.directory / "nodes" / "node-0001" / "credentials" / "control.key.sealed"
    with sealed.open("r+b") as f:
        f.write(b"X" * 8)
    assert _faults(fleet) == {
        "node-0001": (
            SealedStoreError,
            "sealed-store",
            "control.key.sealed of node-0001 is not a sealed key (attest again)",
        )
    }
