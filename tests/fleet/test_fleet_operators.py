"""Operators on the control plane: what a node's credential may no longer do (the whole
registry, other nodes' records and placements, placing VMs), what an operator's credential may
(and may not: the data plane, rollouts over HTTP), its revocation and expiry, forged and
unrecorded operator credentials, and ``ironroot fleet operator issue | revoke``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.fleet.fleet_site import REFUSED_AT_HANDSHAKE, Clock, Site, problem, running_site
from tests.platform.node_world import NOW, World, make_world

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey, load_signer
from ironroot.errors import (
    ConfigError,
    CredentialRejected,
    MalformedCertificate,
    NotFound,
    RoleNotPermitted,
)
from ironroot.fleet import (
    FLEET_CREDENTIAL_OID,
    FLEET_OPERATOR_OID,
    CredentialStore,
    FleetCA,
    OperatorCredential,
    check_caller,
    check_credential,
    parse_credential,
    verify_credential,
)
from ironroot.http import client_context


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("operators-world")) as w:
        yield w


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(world, tmp_path_factory.mktemp("operators")) as made:
        made.authority.place("cvm-on-2", node="node-0002", now=NOW)
        made.authority.place("cvm-on-3", node="node-0003", now=NOW)
        yield made


@pytest.fixture
def clock(site: Site) -> Iterator[Clock]:
    yield site.clock
    site.clock.now = NOW


def _vms(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(p["vm"] for p in response.json()["placements"])


# --- a node's credential: its own node only -----------------------------------------------


def test_a_node_reads_its_own_record_and_placements_only(site: Site) -> None:
    url = site.servers.control_url
    with site.client("node-0002", "control") as node:
        assert problem(node.get(f"{url}/v1/nodes")) == (
            403,
            "operator-required",
            "Role Not Permitted",
        )
        assert problem(node.get(f"{url}/v1/nodes/node-0003")) == (
            403,
            "not-own-node",
            "Role Not Permitted",
        )
        # refused before the registry is asked: an unknown node is the same answer
        assert problem(node.get(f"{url}/v1/nodes/node-9999"))[1] == "not-own-node"
        assert node.get(f"{url}/v1/nodes/node-0002").json()["id"] == "node-0002"
        assert _vms(node.get(f"{url}/v1/placements")) == ["cvm-on-2"]
    # the data plane too: a node's data credential lists the VMs on that node, not its peers'
    with site.client("node-0002", "data") as data:
        assert _vms(data.get(f"{site.servers.data_url}/v1/placements")) == ["cvm-on-2"]


def test_a_node_places_no_vm_and_its_body_is_not_read(site: Site) -> None:
    url = f"{site.servers.control_url}/v1/placements"
    events = site.fleet.events(limit=100_000)
    with site.client("node-0001", "control") as node:
        for body in ({"vm": "cvm-squat"}, {"vm": "cvm-squat", "node": "node-0001"}):
            assert problem(node.post(url, json=body)) == (
                403,
                "operator-required",
                "Role Not Permitted",
            )
        # a body that is not even JSON: the refusal comes first
        refused = node.post(url, content=b"\xff" * 100, headers={"content-type": "text/plain"})
        assert problem(refused)[1] == "operator-required"
    assert "cvm-squat" not in [p.vm for p in site.authority.placements()]
    assert site.fleet.events(limit=100_000) == events


def test_a_node_asking_for_what_is_not_its_own_is_a_warning(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    with site.client("node-0003", "control") as node, caplog.at_level("WARNING"):
        node.get(f"{site.servers.control_url}/v1/nodes")
    assert any(
        r.name == "ironroot.fleet"
        and "node-0003" in r.getMessage()
        and "operator-required" in r.getMessage()
        for r in caplog.records
    )


# --- an operator's credential ----------------------------------------------------------------


def test_an_operator_reads_the_registry_and_places_anywhere(site: Site) -> None:
    url = site.servers.control_url
    with site.operator("olivia") as operator:
        me = operator.get(f"{url}/v1/whoami").json()
        assert me["role"] == "operator"
        assert me["operator"] == "olivia"
        assert me["plane"] == "control"
        assert "node" not in me
        nodes = operator.get(f"{url}/v1/nodes").json()
        assert [n["id"] for n in nodes["nodes"]] == ["node-0001", "node-0002", "node-0003"]
        assert operator.get(f"{url}/v1/nodes/node-0003").json()["id"] == "node-0003"
        assert problem(operator.get(f"{url}/v1/nodes/node-9999"))[0] == 404
        assert {"cvm-on-2", "cvm-on-3"} <= set(_vms(operator.get(f"{url}/v1/placements")))
        placed = operator.post(f"{url}/v1/placements", json={"vm": "cvm-ops", "node": "node-0001"})
        assert placed.status_code == 201, placed.text
    event = [e for e in site.fleet.events(node="node-0001") if e.kind == "placed"][-1]
    assert event.detail == {"vm": "cvm-ops", "by": "operator:olivia"}


def test_an_operator_starts_no_rollout_over_http_and_is_refused_on_the_data_plane(
    site: Site,
) -> None:
    events = site.fleet.events(limit=100_000)
    with site.operator("oscar") as operator:
        rollout = operator.post(f"{site.servers.control_url}/v1/rollouts", json={"dry_run": True})
        assert problem(rollout) == (403, "node-required", "Role Not Permitted")
        data = operator.get(f"{site.servers.data_url}/v1/whoami")
        assert problem(data) == (403, "wrong-plane", "Role Not Permitted")
    assert site.fleet.events(limit=100_000) == events


def test_a_revoked_operator_is_refused_and_listed_on_the_crl(site: Site) -> None:
    url = site.servers.control_url
    with site.operator("rita") as operator:
        assert operator.get(f"{url}/v1/nodes").status_code == 200
        (serial,) = site.authority.revoke_operator("rita", "left the team", now=NOW)
        assert problem(operator.get(f"{url}/v1/nodes")) == (
            401,
            "credential-revoked",
            "Credential Rejected",
        )
    crl = x509.load_der_x509_crl(site.authority.crl(now=NOW))
    assert int(serial, 16) in {r.serial_number for r in crl}
    assert site.authority.revoke_operator("rita", "again", now=NOW) == []  # nothing current
    with pytest.raises(NotFound):
        site.authority.revoke_operator("nobody", "never issued", now=NOW)


def test_an_operator_revocation_keeps_a_bounded_reason_and_checks_the_name(site: Site) -> None:
    """The reason is echoed in every 401 the revoked credential gets: bounded as a
    quarantine's (2,000 characters); a name no operator can have is ConfigError."""
    with site.operator("rhea") as operator:
        site.authority.revoke_operator("rhea", "x" * 100_000, now=NOW)
        refused = operator.get(f"{site.servers.control_url}/v1/whoami")
    assert problem(refused)[:2] == (401, "credential-revoked")
    (status,) = site.authority.credentials.of_node("operator:rhea")
    assert status.reason == "x" * 2000
    assert len(refused.content) < 3000
    with pytest.raises(ConfigError) as caught:
        site.authority.revoke_operator("../rhea", "x", now=NOW)
    assert caught.value.code == "config"


def test_an_operator_credential_expires(site: Site, clock: Clock) -> None:
    url = f"{site.servers.control_url}/v1/whoami"
    with site.operator("eve") as operator:
        clock.now = NOW + dt.timedelta(minutes=59)
        assert operator.get(url).status_code == 200
        clock.now = NOW + dt.timedelta(hours=1)
        assert problem(operator.get(url)) == (401, "credential-expired", "Credential Rejected")


def test_an_operator_credential_the_fleet_never_recorded_is_refused(site: Site) -> None:
    """Signed by the fleet CA but not in the credential store (a copy of the CA key used
    behind the fleet's back): ``credential-unknown``."""
    key = PrivateKey.generate(Algorithm.ES384)
    unrecorded = site.authority.ca.issue_operator(
        key.public_key.to_der(), operator="mallory", now=NOW
    )
    with pytest.raises(CredentialRejected) as caught:
        _check(site, unrecorded.pem)
    assert caught.value.code == "credential-unknown"


_FORGER: Final = bytes.fromhex("300b020101") + b"\x0c\x06forger"  # SEQUENCE {1, "forger"}


def _forged(
    site: Site,
    *,
    oids: tuple[str, ...],
    ou: str = "operator",
    value: bytes = _FORGER,
    key: PrivateKey | None = None,
    names: tuple[tuple[x509.ObjectIdentifier, str], ...] | None = None,
    critical: bool = False,
) -> bytes:
    """A certificate signed by the fleet CA's own key with the given extensions (each with
    ``value``, by default an operator extension value for ``forger``, ``critical`` or not)
    for ``key`` (a new one by default), its subject ``names`` (by default ``CN=forger``,
    ``OU=<ou>``)."""
    ca_key = load_signer(site.authority.directory / "ca.key.pem")
    key = key or PrivateKey.generate(Algorithm.ES384)
    subject = names or ((NameOID.COMMON_NAME, "forger"), (NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(oid, text) for oid, text in subject]))
        .issuer_name(site.authority.ca.certificate.subject)
        .public_key(key.public_key.raw)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    for oid in oids:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=critical
        )
    cert = builder.sign(ca_key.raw, hashes.SHA384())  # type: ignore[arg-type]
    return cert.public_bytes(Encoding.PEM)


def _check(site: Site, pem: bytes, plane: str = "control") -> object:
    return check_caller(
        pem,
        plane=plane,
        ca=site.authority.ca,
        store=site.authority.credentials,
        fleet=site.fleet,
        now=NOW,
    )


def test_a_certificate_claiming_to_be_a_node_and_an_operator_is_malformed(site: Site) -> None:
    with pytest.raises(CredentialRejected) as alone:
        _check(site, _forged(site, oids=(FLEET_OPERATOR_OID,)))
    assert alone.value.code == "credential-unknown"  # well-formed, never recorded
    both = _forged(site, oids=(FLEET_OPERATOR_OID, FLEET_CREDENTIAL_OID))
    with pytest.raises(CredentialRejected) as caught:
        _check(site, both)
    assert caught.value.code == "credential-malformed"
    assert "not both" in caught.value.detail
    with pytest.raises(CredentialRejected) as unit:
        _check(site, _forged(site, oids=(FLEET_OPERATOR_OID,), ou="control-plane"))
    assert unit.value.code == "credential-malformed"
    assert "OU=operator" in unit.value.detail


# An INTEGER whose long-form length (8 bytes, 0xa30c05616c696365) is past any index: pyasn1
# raises OverflowError, not its own error, from deep in its decoder.
_OVERLONG: Final = bytes.fromhex("300a0288a30c05616c696365")


@pytest.mark.parametrize("oid", [FLEET_OPERATOR_OID, FLEET_CREDENTIAL_OID])
def test_an_extension_with_an_overlong_length_is_malformed_not_a_crash(
    site: Site, oid: str
) -> None:
    """The decoder's plain Python errors are ``MalformedCertificate`` too: an auditor's
    ``verify_credential`` of a tampered bundle reads the extension before the signature."""
    pem = _forged(site, oids=(oid,), value=_OVERLONG)
    with pytest.raises(CredentialRejected) as caught:
        _check(site, pem)
    assert caught.value.code == "credential-malformed"
    assert "does not parse" in caught.value.detail
    if oid == FLEET_CREDENTIAL_OID:  # the offline readers read a node's only
        with pytest.raises(MalformedCertificate) as offline:
            verify_credential(pem, site.authority.ca.der, at=NOW)
        assert "does not parse" in offline.value.detail


def test_an_overlong_operator_extension_over_tls_is_401_not_500(site: Site, tmp_path: Path) -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    pem = _forged(site, oids=(FLEET_OPERATOR_OID,), value=_OVERLONG, key=key)
    (tmp_path / "cert.pem").write_bytes(pem)
    context = client_context(site.servers.ca_file, tmp_path / "cert.pem", tmp_path / "key.pem")
    with httpx.Client(verify=context) as forger:
        answer = forger.get(f"{site.servers.control_url}/v1/whoami")
    assert problem(answer) == (401, "credential-malformed", "Credential Rejected")


def _operator_value(name: str) -> bytes:
    """The fleet operator extension's DER for ``name``, whatever it is."""
    text = name.encode()
    return bytes([0x30, 5 + len(text)]) + bytes.fromhex("020101") + bytes([0x0C, len(text)]) + text


_CN, _OU = NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME
_LOOKALIKE: Final = "\u0430lice"  # CYRILLIC SMALL LETTER A, then "lice"
_MALFORMED: Final = {
    "two CNs": {"names": ((_CN, "forger"), (_CN, "forger"), (_OU, "operator"))},
    "two OUs": {"names": ((_CN, "forger"), (_OU, "operator"), (_OU, "operator"))},
    "a look-alike CN": {"names": ((_CN, "forg\u0435r"), (_OU, "operator"))},
    "a look-alike name": {
        "names": ((_CN, _LOOKALIKE), (_OU, "operator")),
        "value": _operator_value(_LOOKALIKE),
    },
    "an empty name": {"value": _operator_value("")},
    "a 65-character name": {
        "names": ((_CN, "a" * 64), (_OU, "operator")),  # a CN is at most 64
        "value": _operator_value("a" * 65),
    },
    "trailing bytes": {"value": _FORGER + b"\x00"},
    "a long-form length": {"value": b"\x30\x81\x0b" + _FORGER[2:]},
    "an over-long length": {"value": _OVERLONG},
}


def _present(site: Site, folder: Path, pem: bytes, key: PrivateKey) -> httpx.Response:
    (folder / "key.pem").write_bytes(key.to_pem())
    (folder / "cert.pem").write_bytes(pem)
    context = client_context(site.servers.ca_file, folder / "cert.pem", folder / "key.pem")
    with httpx.Client(verify=context) as client:
        return client.get(f"{site.servers.control_url}/v1/nodes")


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_a_malformed_operator_certificate_over_tls_is_401(
    site: Site, tmp_path: Path, case: str
) -> None:
    """Signed by the fleet CA's key, so the handshake passes: refused as malformed by the
    control plane before the store is asked."""
    key = PrivateKey.generate(Algorithm.ES384)
    pem = _forged(site, oids=(FLEET_OPERATOR_OID,), key=key, **_MALFORMED[case])  # type: ignore[arg-type]
    assert problem(_present(site, tmp_path, pem, key)) == (
        401,
        "credential-malformed",
        "Credential Rejected",
    )


def test_a_critical_operator_extension_or_another_fleet_s_operator_fails_the_handshake(
    site: Site, tmp_path: Path
) -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    critical = _forged(site, oids=(FLEET_OPERATOR_OID,), key=key, critical=True)
    with pytest.raises(REFUSED_AT_HANDSHAKE):
        _present(site, tmp_path, critical, key)
    other = FleetCA.create(tmp_path / "other-fleet", now=NOW)
    theirs = other.issue_operator(key.public_key.to_der(), operator="alice", now=NOW)
    site.authority.credentials.add(theirs)  # even recorded by this fleet
    with pytest.raises(REFUSED_AT_HANDSHAKE):
        _present(site, tmp_path, theirs.pem, key)
    with pytest.raises(CredentialRejected) as caught:
        _check(site, theirs.pem)
    assert caught.value.code == "credential-unknown-issuer"


def test_an_operator_named_localhost_cannot_pose_as_the_control_plane(
    site: Site, tmp_path: Path
) -> None:
    """An operator's credential is the fleet CA's and ``CN=localhost`` when the operator is
    named so: a node's client (trusting only the fleet CA, and checking the host against the
    CN when there is no SAN) still refuses it as a server, its purpose being clientAuth only."""
    key, credential = site.authority.issue_operator("localhost", now=NOW)
    (tmp_path / "key.pem").write_bytes(key.to_pem())
    (tmp_path / "cert.pem").write_bytes(credential.pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    node = site.files / "node-0001"
    client = client_context(
        site.servers.ca_file, node / "control.cert.pem", node / "control.key.pem"
    )
    with socket.create_server(("127.0.0.1", 0)) as listening:
        port = listening.getsockname()[1]

        def serve() -> None:
            accepted, _ = listening.accept()
            with accepted, contextlib.suppress(ssl.SSLError, OSError):
                server.wrap_socket(accepted, server_side=True).recv(1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            pytest.raises(ssl.SSLCertVerificationError) as caught,
        ):
            client.wrap_socket(raw, server_hostname="localhost")
        thread.join(timeout=10)
    assert "unsuitable certificate purpose" in str(caught.value)


def test_the_node_only_check_and_the_offline_readers_refuse_an_operator(site: Site) -> None:
    _, credential = site.authority.issue_operator("ada", now=NOW)
    assert isinstance(_check(site, credential.pem), OperatorCredential)
    kwargs = {
        "ca": site.authority.ca,
        "store": site.authority.credentials,
        "fleet": site.fleet,
        "now": NOW,
    }
    with pytest.raises(RoleNotPermitted) as data:
        check_credential(credential.pem, plane="data", **kwargs)  # type: ignore[arg-type]
    assert data.value.code == "wrong-plane"
    with pytest.raises(RoleNotPermitted) as control:
        check_credential(credential.pem, plane="control", **kwargs)  # type: ignore[arg-type]
    assert control.value.code == "operator-not-permitted"
    with pytest.raises(MalformedCertificate):
        parse_credential(credential.pem)
    with pytest.raises(MalformedCertificate):
        verify_credential(credential.pem, site.authority.ca.der, at=NOW)


def test_pruning_keeps_an_operator_s_current_and_revoked_credentials(
    site: Site, tmp_path: Path
) -> None:
    """``CredentialStore.prune`` forgets an operator's expired, unrevoked credentials but its
    newest — never a current one (an operator may hold several at once, unlike a node's one
    a plane), nor a revoked one (the CRL) — and a node named like the operator is not
    touched by the operator's revocation, nor the operator by the node's."""
    store = CredentialStore(tmp_path / "credentials.db")
    ca = site.authority.ca
    week = 7 * 86400

    def issued(name: str, minutes: int, lifetime: int) -> OperatorCredential:
        key = PrivateKey.generate(Algorithm.ES384)
        at = NOW + dt.timedelta(minutes=minutes)
        made = ca.issue_operator(key.public_key.to_der(), operator=name, now=at, lifetime=lifetime)
        store.add(made)
        return made

    current = issued("paula", 0, week)  # issued first, current for a week
    expired = issued("paula", 1, 60)
    newest = issued("paula", 2, 60)
    revoked = issued("rhys", 0, 60)
    assert store.revoke_node("operator:rhys", "left", now=NOW) == [revoked.serial]
    issued("rhys", 1, 60)  # a newer one: the revoked one is not the newest
    key = PrivateKey.generate(Algorithm.ES384)
    node = ca.issue(
        key.public_key.to_der(),
        node="paula",
        node_class="c",
        plane="control",
        ear_id="urn:ironroot:ear:sha256:" + "0" * 64,
        now=NOW,
        lifetime=week,
    )
    store.add(node)
    assert store.revoke_node("paula", "the node", now=NOW) == [node.serial]
    assert not any(s.revoked for s in store.of_node("operator:paula"))
    later = NOW + dt.timedelta(days=2)
    assert store.prune(now=later) == 1
    assert {s.serial for s in store.of_node("operator:paula")} == {current.serial, newest.serial}
    assert expired.serial not in {s.serial for s in store.of_node("operator:paula")}
    assert revoked.serial in {s.serial for s in store.of_node("operator:rhys")}
    assert store.revoke_node("operator:paula", "rotated", now=later) == [current.serial]
    assert [s.serial for s in store.of_node("paula")] == [node.serial]


# --- the CLI ---------------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_operator_issue_and_revoke_from_the_cli(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = ("--fleet", str(site.fleet.directory))
    at = ("--at", NOW.isoformat().replace("+00:00", "Z"))
    out = tmp_path / "grace"
    code, issued = _run(
        capsys, "fleet", "operator", "issue", "grace", *fleet, "--out", str(out), *at
    )
    assert code == 0, issued
    assert issued["role"] == "operator"
    assert issued["operator"] == "grace"
    assert stat.S_IMODE((out / "operator.key.pem").stat().st_mode) == 0o600
    assert (out / "ca.cert.pem").read_bytes() == site.authority.ca.pem
    context = client_context(
        out / "ca.cert.pem", out / "operator.cert.pem", out / "operator.key.pem"
    )
    with httpx.Client(verify=context) as operator:
        assert operator.get(f"{site.servers.control_url}/v1/nodes").status_code == 200
    # the directory holds a credential already: refused, nothing issued or replaced
    key = (out / "operator.key.pem").read_bytes()
    before = len(site.authority.credentials.of_node("operator:grace"))
    code, again = _run(
        capsys, "fleet", "operator", "issue", "grace", *fleet, "--out", str(out), *at
    )
    assert (code, again["error"]["code"]) == (2, "config")  # type: ignore[index]
    assert (out / "operator.key.pem").read_bytes() == key
    assert len(site.authority.credentials.of_node("operator:grace")) == before
    code, bad = _run(
        capsys, "fleet", "operator", "issue", "../x", *fleet, "--out", str(tmp_path / "x"), *at
    )
    assert (code, bad["error"]["code"]) == (2, "config")  # type: ignore[index]
    code, revoked = _run(
        capsys, "fleet", "operator", "revoke", "grace", *fleet, "--reason", "rotated", *at
    )
    assert code == 0, revoked
    assert revoked["revoked"] == [issued["serial"]]
    with httpx.Client(verify=context) as operator:
        response = operator.get(f"{site.servers.control_url}/v1/nodes")
    assert problem(response) == (401, "credential-revoked", "Credential Rejected")
    code, unknown = _run(
        capsys, "fleet", "operator", "revoke", "nobody", *fleet, "--reason", "x", *at
    )
    assert (code, unknown["error"]["code"]) == (1, "not-found")  # type: ignore[index]


def _issue_into(
    site: Site, capsys: pytest.CaptureFixture[str], name: str, out: Path
) -> tuple[int, dict[str, object]]:
    fleet = ("--fleet", str(site.fleet.directory))
    at = ("--at", NOW.isoformat().replace("+00:00", "Z"))
    return _run(capsys, "fleet", "operator", "issue", name, *fleet, "--out", str(out), *at)


def test_operator_issue_refuses_a_dangling_symlink_before_issuing(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A link to nowhere is a file there already (``exists()`` says no): refused before a
    credential is issued, so none is recorded that nobody holds, and nothing is written."""
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    target = tmp_path / "elsewhere" / "cert.pem"
    (out / "operator.cert.pem").symlink_to(target)
    code, refused = _issue_into(site, capsys, "dana", out)
    assert (code, refused["error"]["code"]) == (2, "config")  # type: ignore[index]
    assert "operator.cert.pem" in refused["error"]["message"]  # type: ignore[index]
    assert site.authority.credentials.of_node("operator:dana") == []
    assert sorted(p.name for p in out.iterdir()) == ["operator.cert.pem"]
    assert not target.parent.exists()


def test_operator_issue_refuses_an_out_directory_others_control(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key goes where ``--out`` says: never through a symbolic link (what another user
    may plant where the operator will write), nor into a folder another user owns or may
    write (who could swap ``ca.cert.pem`` for a CA of their own, or the key for theirs)."""
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(mine)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    refused = [(link, "symbolic link"), (shared, "others")]
    if os.geteuid() == 0:  # only root can give a folder to another user
        foreign = tmp_path / "foreign"
        foreign.mkdir(mode=0o700)
        os.chown(foreign, 65534, 65534)
        refused.append((foreign, "owned by"))
    for out, why in refused:
        code, refused = _issue_into(site, capsys, "vera", out)
        assert (code, refused["error"]["code"]) == (2, "config"), out  # type: ignore[index]
        assert why in refused["error"]["message"]  # type: ignore[index]
    assert site.authority.credentials.of_node("operator:vera") == []
    assert list(mine.iterdir()) == []
    assert list(shared.iterdir()) == []
    # a new folder is made the operator's own: 0700
    made = tmp_path / "new" / "vera"
    code, issued = _issue_into(site, capsys, "vera", made)
    assert code == 0, issued
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_an_operator_credential_lives_at_most_seven_days(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for lifetime in (7 * 86400 + 1, 59, 0, -60):
        with pytest.raises(ConfigError) as caught:
            site.authority.issue_operator("lena", now=NOW, lifetime=lifetime)
        assert "60 to 604800 seconds" in caught.value.detail
        fleet = ("--fleet", str(site.fleet.directory))
        out = tmp_path / f"lena{lifetime}"
        code, refused = _run(
            capsys, "fleet", "operator", "issue", "lena", *fleet, "--out", str(out),
            "--lifetime", str(lifetime),
        )  # fmt: skip
        assert (code, refused["error"]["code"]) == (2, "config")  # type: ignore[index]
        assert not (out / "operator.key.pem").exists()
    assert site.authority.credentials.of_node("operator:lena") == []
    _, longest = site.authority.issue_operator("lena", now=NOW, lifetime=7 * 86400)
    assert longest.not_after - longest.not_before == dt.timedelta(days=7)


def test_the_served_crl_names_an_operator_revoked_after_it_was_fetched(site: Site) -> None:
    """The admission service answers the CRL it signed last while nothing changed: an
    operator's revocation is a change, at once, not once the reused CRL ages out."""
    _, credential = site.authority.issue_operator("cora", now=NOW)
    url = f"{site.servers.admission_url}/fleet/crl"
    with site.anonymous() as client:
        before = x509.load_der_x509_crl(client.get(url).content)
        site.authority.revoke_operator("cora", "lost laptop", now=NOW)
        after = x509.load_der_x509_crl(client.get(url).content)
    serial = int(credential.serial, 16)
    assert serial not in {r.serial_number for r in before}
    assert serial in {r.serial_number for r in after}


def test_concurrent_issues_into_one_directory_record_one_credential(
    site: Site, tmp_path: Path
) -> None:
    """Six ``operator issue`` into one new directory at once: one writes its key and
    certificate; the others are refused before issuing, so no credential is recorded that
    nobody holds."""
    out = tmp_path / "zed"
    argv = ["fleet", "operator", "issue", "zed", "--fleet", str(site.fleet.directory)]
    argv += ["--out", str(out), "--at", NOW.isoformat().replace("+00:00", "Z"), "--json"]
    start = threading.Barrier(6)
    codes: list[int] = []

    def issue() -> None:
        start.wait()
        codes.append(main(argv))

    threads = [threading.Thread(target=issue) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [0, 2, 2, 2, 2, 2]
    (recorded,) = site.authority.credentials.of_node("operator:zed")
    held = x509.load_pem_x509_certificate((out / "operator.cert.pem").read_bytes())
    assert format(held.serial_number, "x") == recorded.serial
    key = load_signer(out / "operator.key.pem")
    assert key.public_key.to_der() == held.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )


def _out_of_length(parent: Path, length: int) -> Path:
    """A folder path beneath ``parent`` exactly ``length`` characters long (names of at most
    200 characters; the folders are not made)."""
    out = parent
    while len(str(out)) < length:
        out /= "d" * min(200, length - len(str(out)) - 1)
    assert len(str(out)) == length
    return out


def test_an_issue_whose_certificate_cannot_be_written_revokes_it_and_leaves_no_key(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key is written, then the certificate cannot be: its temporary file's path
    (``.operator.cert.pem.XXXXXXXX.tmp``) is past the system's 4,095 characters where the key's
    is not. The credential just recorded is revoked (nobody holds it: listed on the CRL) and
    the key file removed, and the error is the write's. The operator's other credential
    stays good: only the one just issued is revoked."""
    _, held = site.authority.issue_operator("ursula", now=NOW)
    out = _out_of_length(tmp_path, 4095 - len("/operator.key.pem"))
    code, failed = _issue_into(site, capsys, "ursula", out)
    assert (code, failed["error"]["code"]) == (1, "storage")  # type: ignore[index]
    assert "File name too long" in failed["error"]["message"]  # type: ignore[index]
    recorded = {c.serial: c for c in site.authority.credentials.of_node("operator:ursula")}
    assert not recorded.pop(held.serial).revoked
    ((serial, dropped),) = recorded.items()
    assert dropped.reason == "not delivered: its files could not be written"
    crl = x509.load_der_x509_crl(site.authority.crl(now=NOW))
    assert {int(serial, 16)} == {r.serial_number for r in crl} & {
        int(serial, 16),
        int(held.serial, 16),
    }
    assert list(out.iterdir()) == []
    # revoked once: a second revocation of the serial (or of one never issued) does nothing
    assert not site.authority.credentials.revoke(serial, "again", now=NOW)
    assert not site.authority.credentials.revoke("00", "never issued", now=NOW)
    assert site.authority.credentials.status(serial).reason == dropped.reason  # type: ignore[union-attr]
