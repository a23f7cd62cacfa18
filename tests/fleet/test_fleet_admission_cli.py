"""``ironroot fleet attest | quarantine | readmit | serve`` as an operator runs them: admission
set up on the first run, the summary, endorsements, a hold and readmission, and the three
servers started by ``fleet serve`` answering a node's credential."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.platform.node_world import NOW, World, make_world

from ironroot.cli import main
from ironroot.crypto import load_certificate
from ironroot.fleet import Fleet, node_tls_context
from ironroot.http import client_context
from serving import accepts_connections, free_port, start_server

AT = NOW.isoformat().replace("+00:00", "Z")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("admission-cli-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


def _fleet(aw: AdmissionWorld, root: Path, nodes: int) -> tuple[Path, Path]:
    """A fleet (admission not set up) and a folder with the vendor CA's certificates, as
    ``rot ca-init`` writes them."""
    fleet = Fleet.create(root / "fleet", node_class=aw.node_class())
    fleet.add_nodes(nodes, vendor_ca=aw.vendor_ca, now=NOW)
    roots = root / "vendor-ca"
    roots.mkdir()
    for name, der in zip(("ecc", "mldsa"), aw.vendor_ca.trust_anchors, strict=True):
        pem = load_certificate(der, der_only=True).public_bytes(Encoding.PEM)
        (roots / f"vendor-ca-{name}.cert.pem").write_bytes(pem)
    (roots / "vendor-ca-ecc.key.pem").write_text("not read: keys are skipped\n")
    return root / "fleet", roots


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_attest_quarantine_and_readmit(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_dir, roots = _fleet(aw, tmp_path, 2)
    f = ("--fleet", str(fleet_dir))
    code, out = _run(capsys, "fleet", "attest", *f, "--at", AT)
    assert code == 2
    assert out["error"]["code"] == "config"  # type: ignore[index]
    # a lifetime of 0 is refused, not taken for the default: nothing is set up
    code, out = _run(
        capsys, "fleet", "attest", *f, "--vendor-root", str(roots), "--lifetime", "0", "--at", AT
    )
    assert (code, out["error"]["code"]) == (2, "config")  # type: ignore[index]
    assert not (fleet_dir / "admission" / "config.json").exists()
    code, out = _run(capsys, "fleet", "attest", *f, "--vendor-root", str(roots), "--at", AT)
    assert code == 0, out
    assert out["counts"] == {"pending": 0, "admitted": 2, "quarantined": 0}
    rows = out["nodes"]
    assert [r["node"] for r in rows] == ["node-0001", "node-0002"]  # type: ignore[union-attr]
    assert rows[0]["credential_not_after"] == "2026-06-01T13:00:00Z"  # type: ignore[index]
    # nothing is due a minute later; --all attests anyway, and --endorse adds a statement
    code, out = _run(capsys, "fleet", "attest", *f, "--at", "2026-06-01T12:01:00Z")
    assert (code, out["attested"]) == (0, 0)
    rim = tmp_path / "bmc-2.0.rim.ts"
    rim.write_bytes(aw.bmc_rim("2.0"))  # a newer release: SVN 3 is below the minimum now
    code, out = _run(capsys, "fleet", "attest", *f, "--all", "--endorse", str(rim), "--at", AT)
    assert code == 1
    assert out["ok"] is False
    assert out["counts"] == {"pending": 0, "admitted": 0, "quarantined": 2}
    assert all(r["error"] == "admission-denied" for r in out["nodes"])  # type: ignore[union-attr]


def test_attest_several_nodes_at_a_time(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--concurrency`` attests that many nodes at a time (the signature checks run outside
    Python's lock): every node admitted once, each with its own credential and EAR, the rows
    in node order, one per node; a count out of 1..64 is a usage error (exit 2)."""
    fleet_dir, roots = _fleet(aw, tmp_path, 6)
    f = ("--fleet", str(fleet_dir))
    for bad in ("0", "65"):
        code, out = _run(capsys, "fleet", "attest", *f, "--concurrency", bad, "--at", AT)
        assert (code, out["error"]["code"]) == (2, "config")  # type: ignore[index]
        assert out["error"]["message"] == "--concurrency is a number of nodes from 1 to 64"  # type: ignore[index]
    code, out = _run(
        capsys, "fleet", "attest", *f, "--vendor-root", str(roots), "--concurrency", "3", "--at", AT
    )
    assert code == 0, out
    assert out["counts"] == {"pending": 0, "admitted": 6, "quarantined": 0}
    rows = out["nodes"]
    assert [r["node"] for r in rows] == [f"node-{n:04d}" for n in range(1, 7)]  # type: ignore[union-attr]
    ears = {r["ear_id"] for r in rows}  # type: ignore[union-attr]
    assert len(ears) == 6
    assert None not in ears
    fleet = Fleet.open(fleet_dir)
    assert all(fleet.record_of(n).status == "admitted" for n in fleet.node_ids())


def test_an_operators_hold(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_dir, roots = _fleet(aw, tmp_path, 1)
    f = ("--fleet", str(fleet_dir))
    assert _run(capsys, "fleet", "attest", *f, "--vendor-root", str(roots), "--at", AT)[0] == 0
    code, out = _run(
        capsys, "fleet", "quarantine", "node-0001", *f, "--reason", "BMC swapped", "--at", AT
    )
    assert code == 0
    assert out["node"]["status"] == "quarantined"  # type: ignore[index]
    assert len(out["effects"]["revoked"]) == 2  # type: ignore[index]
    code, out = _run(capsys, "fleet", "attest", *f, "--node", "node-0001", "--at", AT)
    assert code == 1
    assert out["nodes"][0]["error"] == "node-held"  # type: ignore[index]
    code, out = _run(capsys, "fleet", "readmit", "node-0001", *f, "--at", AT)
    assert code == 0
    assert out["status"] == "admitted"
    assert out["ear_status"] == "affirming"
    # the table, for people
    assert main(["fleet", "attest", *f, "--all", "--at", AT]) == 0
    shown = capsys.readouterr().out
    assert "attested 1 node(s)" in shown
    assert "node-0001" in shown


def test_quarantine_and_events_read_the_latest_of_a_long_log(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node with more events than one page (1,000): `fleet quarantine` reports the effects
    of the quarantine it made (it read the 1,000th oldest event of the node), and `fleet
    events` shows the latest events, or pages from `--since`."""
    fleet_dir, roots = _fleet(aw, tmp_path, 1)
    f = ("--fleet", str(fleet_dir))
    assert _run(capsys, "fleet", "attest", *f, "--vendor-root", str(roots), "--at", AT)[0] == 0
    fleet = Fleet.open(fleet_dir)
    for n in range(1_200):
        fleet.record("node-0001", "placed", {"vm": f"vm-{n}"}, now=NOW)
    code, out = _run(
        capsys, "fleet", "quarantine", "node-0001", *f, "--reason", "BMC swapped", "--at", AT
    )
    assert code == 0, out
    assert out["effects"] == {  # type: ignore[index]
        "revoked": out["effects"]["revoked"],  # type: ignore[index]
        "placements_stopped": [],
        "held": True,
    }
    assert len(out["effects"]["revoked"]) == 2  # type: ignore[index]
    code, out = _run(capsys, "fleet", "events", *f, "--node", "node-0001", "--limit", "3")
    kinds = [e["kind"] for e in out["events"]]  # type: ignore[union-attr]
    assert (code, kinds) == (0, ["placed", "quarantined", "quarantine-effects"])
    seqs = [e["seq"] for e in out["events"]]  # type: ignore[union-attr]
    assert seqs == sorted(seqs)
    code, out = _run(capsys, "fleet", "events", *f, "--since", "0", "--limit", "2")
    first = [e["seq"] for e in out["events"]]  # type: ignore[union-attr]
    assert (code, first) == (0, [1, 2])
    code, out = _run(capsys, "fleet", "events", *f, "--since", "2", "--limit", "1")
    assert [e["seq"] for e in out["events"]] == [3]  # type: ignore[union-attr]
    code, out = _run(capsys, "fleet", "events", *f, "--kind", "quarantined")
    assert [e["kind"] for e in out["events"]] == ["quarantined"]  # type: ignore[union-attr]
    for bad in (("--limit", "0"), ("--since", "-1")):
        code, out = _run(capsys, "fleet", "events", *f, *bad)
        assert (code, out["error"]["code"]) == (2, "config")  # type: ignore[index]


def test_serve_answers_a_node_with_its_credential(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet_dir, roots = _fleet(aw, tmp_path, 1)
    f = ("--fleet", str(fleet_dir))
    # now (the servers judge credentials by the wall clock)
    assert _run(capsys, "fleet", "attest", *f, "--vendor-root", str(roots))[0] == 0

    def command(port: int, control: int, data: int) -> list[str]:
        serve = [sys.executable, "-m", "ironroot", "fleet", "serve", *f, "--port", str(port)]
        return [*serve, "--control-port", str(control), "--data-port", str(data)]

    refused = command(free_port(), free_port(), free_port())[3:]
    for period in ("inf", "nan", "0", "2592001"):  # inf passed "> 0", then no timer waited it
        assert main([*refused, "--scan", period]) == 2, period
        assert "--scan is a number of seconds above 0" in capsys.readouterr().err
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    started = start_server(command, accepts_connections, ports=3, env=env, pipes=True)
    ports = started.ports
    with started.process as child:
        try:
            assert child.stderr is not None
            line = child.stderr.readline().decode()
            assert f"control plane https://127.0.0.1:{ports[1]}" in line, line
            context = node_tls_context(Fleet.open(fleet_dir), "node-0001", "control")
            with httpx.Client(verify=context) as client:
                me = client.get(f"https://127.0.0.1:{ports[1]}/v1/whoami")
                assert me.status_code == 200, me.text
                assert me.json()["node"] == "node-0001"
                wrong = client.get(f"https://127.0.0.1:{ports[2]}/v1/whoami")
                assert wrong.status_code == 403
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
    assert child.returncode == 0


def test_serve_on_every_address_names_its_server_names_in_the_certificate(
    aw: AdmissionWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --host 0.0.0.0 issued a certificate for 0.0.0.0, localhost and 127.0.0.1 only: a node
    # that reached the servers by any other name or address failed TLS verification
    fleet_dir, roots = _fleet(aw, tmp_path, 1)
    f = ("--fleet", str(fleet_dir))
    assert _run(capsys, "fleet", "attest", *f, "--vendor-root", str(roots))[0] == 0
    names = ("--server-name", "127.0.0.2", "--server-name", "fleet.example")

    def command(port: int, control: int, data: int) -> list[str]:
        serve = [sys.executable, "-m", "ironroot", "fleet", "serve", *f, "--host", "0.0.0.0"]
        ports = ["--port", str(port), "--control-port", str(control), "--data-port", str(data)]
        return [*serve, *names, *ports]

    for bad in ("*.example.com", "0.0.0.0", "a..example"):
        argv = command(free_port(), free_port(), free_port())[3:]
        assert main([*argv, "--server-name", bad]) == 2, bad
        err = capsys.readouterr().err
        assert f"--server-name {bad!r}: " in err, err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    started = start_server(command, accepts_connections, ports=3, env=env, pipes=True)
    port = started.ports[0]
    ca = fleet_dir / "admission" / "ca.cert.pem"
    with started.process as child:
        try:
            with httpx.Client(verify=client_context(ca)) as client:
                assert client.get(f"https://127.0.0.2:{port}/health").status_code == 200
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    client.get(f"https://127.0.0.3:{port}/health")  # not a name it carries
            context = client_context(ca)
            with (
                socket.create_connection(("127.0.0.2", port), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="fleet.example") as tls,
            ):
                assert tls.version() is not None
            with (
                socket.create_connection(("127.0.0.2", port), timeout=10) as raw,
                pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
            ):
                context.wrap_socket(raw, server_hostname="other.example")
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=30)
    assert child.returncode == 0
