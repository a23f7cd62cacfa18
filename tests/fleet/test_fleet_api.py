"""The admission service and the control and data planes as real TLS servers on loopback,
driven by real TLS clients (httpx with client certificates): admission over HTTPS, the planes'
per-request credential checks with their exact problem codes, refusals at the handshake,
placements, the CRL."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.fleet.desired_world import ALICE, BOB, make_ops
from tests.fleet.fleet_site import (
    REFUSED_AT_HANDSHAKE,
    Answer,
    Clock,
    Site,
    problem,
    running_site,
)
from tests.platform.node_world import NOW, World, make_world
from tests.raw_http import read_all
from tests.tls_pki import make_pki

from ironroot.cose import Problem, encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.fleet import (
    PLANES,
    AdmissionRequest,
    DesiredState,
    DesiredStore,
    FleetServers,
    NodeEvidence,
    collect_evidence,
    decode_nonce,
    make_csr,
    quarantine,
    readmit,
)
from ironroot.fleet._credentials import SERVER_BACKDATE
from ironroot.http import PROBLEM_JSON, ServerTls, client_context

FIVE_MINUTES = dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("api-world")) as w:
        yield w


@pytest.fixture(scope="module")
def site(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(world, tmp_path_factory.mktemp("api")) as made:
        yield made


@pytest.fixture
def clock(site: Site) -> Iterator[Clock]:
    yield site.clock
    site.clock.now = NOW


# --- the good path ---------------------------------------------------------------------------


def test_a_node_admitted_over_https_reaches_both_planes_with_their_credentials(
    site: Site,
) -> None:
    with site.client("node-0001", "control") as control:
        me = control.get(f"{site.servers.control_url}/v1/whoami")
        assert me.status_code == 200
        assert me.json()["node"] == "node-0001"
        assert me.json()["plane"] == "control"
        assert me.json()["ear_id"] == site.fleet.record_of("node-0001").ear_id
        assert me.json()["role"] == "node"
        own = control.get(f"{site.servers.control_url}/v1/nodes/node-0001").json()
        assert own["id"] == "node-0001"
        assert own["status"] == "admitted"
    with site.client("node-0001", "data") as data:
        assert data.get(f"{site.servers.data_url}/v1/whoami").json()["plane"] == "data"
    with site.anonymous() as client:
        assert client.get(f"{site.servers.admission_url}/health").status_code == 200
        pem = client.get(f"{site.servers.admission_url}/fleet/ca").content
        assert x509.load_pem_x509_certificate(pem) == site.authority.ca.certificate


# --- must reject: credentials on the planes --------------------------------------------------


def test_a_control_plane_credential_is_refused_on_the_data_plane_and_back(site: Site) -> None:
    with site.client("node-0001", "control") as control:
        response = control.get(f"{site.servers.data_url}/v1/whoami")
        assert problem(response) == (403, "wrong-plane", "Role Not Permitted")
    with site.client("node-0001", "data") as data:
        response = data.get(f"{site.servers.control_url}/v1/nodes")
        assert problem(response) == (403, "wrong-plane", "Role Not Permitted")


def test_an_expired_credential_is_refused_on_the_control_plane(site: Site, clock: Clock) -> None:
    with site.client("node-0001", "control") as control:
        url = f"{site.servers.control_url}/v1/whoami"
        clock.now = NOW + dt.timedelta(minutes=59)
        assert control.get(url).status_code == 200
        clock.now = NOW + dt.timedelta(hours=1)
        assert problem(control.get(url)) == (401, "credential-expired", "Credential Rejected")
        clock.now = NOW - dt.timedelta(minutes=1)
        assert problem(control.get(url))[1] == "credential-not-yet-valid"


def test_a_revoked_credential_is_refused_at_once_even_on_an_open_connection(
    site: Site,
) -> None:
    url = f"{site.servers.control_url}/v1/whoami"
    with site.client("node-0002", "control") as control:
        assert control.get(url).status_code == 200  # the connection stays open
        quarantine(site.fleet, "node-0002", "compromised BMC", now=NOW)
        response = control.get(url)
        assert problem(response) == (401, "credential-revoked", "Credential Rejected")
        # the credential is the TLS client certificate: no HTTP scheme to ask for (no Bearer)
        assert "www-authenticate" not in response.headers
    with site.client("node-0002", "data") as data:
        assert problem(data.get(f"{site.servers.data_url}/v1/whoami"))[1] == "credential-revoked"
    # readmission: a fresh attestation and new credentials
    readmit(site.fleet, "node-0002", now=NOW, authority=site.authority)
    assert site.admit("node-0002").status_code == 200
    with site.client("node-0002", "control") as control:
        assert control.get(url).status_code == 200


def test_a_node_no_longer_admitted_is_refused_whatever_its_credential(site: Site) -> None:
    url = f"{site.servers.control_url}/v1/whoami"
    # the registry alone says so (no revocation): the status check refuses it
    site.fleet.set_status("node-0003", "quarantined", "drift seen by the scanner", now=NOW)
    try:
        with site.client("node-0003", "control") as control:
            response = control.get(url, headers={"accept": "application/json"})
            assert response.status_code == 403
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.json()["code"] == "node-not-admitted"
    finally:
        assert site.admit("node-0003").status_code == 200


def test_no_credential_or_another_cas_certificate_is_refused_at_the_handshake(
    site: Site, tmp_path: Path
) -> None:
    with site.anonymous() as client, pytest.raises(REFUSED_AT_HANDSHAKE):
        client.get(f"{site.servers.control_url}/v1/whoami")
    pki = make_pki(tmp_path)
    context = client_context(site.servers.ca_file, pki.client_cert, pki.client_key)
    with httpx.Client(verify=context) as client, pytest.raises(REFUSED_AT_HANDSHAKE):
        client.get(f"{site.servers.data_url}/v1/whoami")


def _whoami_on(sock: ssl.SSLSocket) -> tuple[int, dict[str, object]]:
    """One ``GET /v1/whoami`` on a TLS socket (JSON answers), the connection then closed."""
    sock.sendall(
        b"GET /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        b"Connection: close\r\n\r\n"
    )
    head, _, body = read_all(sock).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_tls_session_resumed_after_the_quarantine_does_not_carry_the_credential_past_it(
    site: Site, version: ssl.TLSVersion
) -> None:
    """A resumed TLS session (a session id or a ticket from before the quarantine) skips the
    certificate exchange; the credential it was made with is still checked, and refused, at
    the first request on it."""
    parsed = urllib.parse.urlsplit(site.servers.control_url)
    address = (str(parsed.hostname), int(parsed.port or 0))
    folder = site.files / "node-0002"
    context = client_context(
        site.servers.ca_file, folder / "control.cert.pem", folder / "control.key.pem"
    )
    context.maximum_version = version
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=address[0]) as first,
    ):
        assert _whoami_on(first)[0] == 200
        session = first.session
    assert session is not None
    quarantine(site.fleet, "node-0002", "resumption", now=NOW)
    try:
        with (
            socket.create_connection(address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=address[0], session=session) as resumed,
        ):
            assert resumed.session_reused  # no certificate was sent on this connection
            status, body = _whoami_on(resumed)
        assert (status, body["code"]) == (401, "credential-revoked")
    finally:
        readmit(site.fleet, "node-0002", now=NOW, authority=site.authority)
        assert site.admit("node-0002").status_code == 200


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_a_data_plane_tls_session_offered_to_the_control_plane_is_the_data_credential(
    site: Site, version: ssl.TLSVersion
) -> None:
    """A session (id or ticket) of the data plane offered to the control plane carries the
    data-plane credential there, if the control plane resumes it at all: 403
    ``wrong-plane``."""
    folder = site.files / "node-0001"
    context = client_context(
        site.servers.ca_file, folder / "data.cert.pem", folder / "data.key.pem"
    )
    context.maximum_version = version
    sessions = []
    for url in (site.servers.data_url, site.servers.control_url):
        parsed = urllib.parse.urlsplit(url)
        address = (str(parsed.hostname), int(parsed.port or 0))
        with (
            socket.create_connection(address, timeout=10) as raw,
            context.wrap_socket(
                raw, server_hostname=address[0], session=sessions[0] if sessions else None
            ) as tls,
        ):
            status, body = _whoami_on(tls)
            sessions.append(tls.session)
    assert (status, body["code"]) == (403, "wrong-plane")


def test_a_client_certificate_chain_over_the_limit_is_refused_at_the_handshake(
    site: Site, tmp_path: Path
) -> None:
    """A node's credential followed by 200 KB of certificates: the handshake ends (OpenSSL's
    100 KiB bound on a peer's chain) and the plane serves the next client."""
    folder = site.files / "node-0001"
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "p" * 64)] * 4
        + [x509.NameAttribute(x509.NameOID.COMMON_NAME, "padding")]
    )
    padding = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
        .public_bytes(serialization.Encoding.PEM)
    )
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        (folder / "control.cert.pem").read_bytes() + padding * (200_000 // len(padding))
    )
    context = client_context(site.servers.ca_file, chain, folder / "control.key.pem")
    with httpx.Client(verify=context) as client, pytest.raises(REFUSED_AT_HANDSHAKE):
        client.get(f"{site.servers.control_url}/v1/whoami")
    with site.client("node-0001", "control") as control:
        assert control.get(f"{site.servers.control_url}/v1/whoami").status_code == 200


def test_the_planes_refuse_tls_renegotiation(site: Site) -> None:
    """A renegotiation would let a client change the certificate of a connection whose first
    one the server already holds as the client's; the planes' TLS refuses it."""
    folder = site.authority.directory / "tls"  # what the running planes serve
    tls = ServerTls(
        folder / "server.cert.pem",
        folder / "server.key.pem",
        client_ca=site.servers.ca_file,
        check_client_time=False,
    )
    assert tls.context().options & ssl.OP_NO_RENEGOTIATION


@pytest.mark.parametrize(
    ("version", "ciphers", "accepted"),
    [
        (ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0", False),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256", False),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:AES128-SHA:AES256-SHA256", False),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384", True),
        (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305", True),
        (ssl.TLSVersion.TLSv1_3, None, True),
    ],
)
def test_the_planes_speak_tls_1_2_with_forward_secret_aead_suites_or_tls_1_3(
    site: Site, version: ssl.TLSVersion, ciphers: str | None, accepted: bool
) -> None:
    """No TLS 1.1 or older, and over TLS 1.2 an ECDHE key exchange with an AEAD cipher only:
    the CBC suites with HMAC-SHA-256/384 (MAC-then-encrypt, Lucky13's kind) were accepted."""
    parsed = urllib.parse.urlsplit(site.servers.control_url)
    address = (str(parsed.hostname), int(parsed.port or 0))
    folder = site.files / "node-0001"
    context = client_context(
        site.servers.ca_file, folder / "control.cert.pem", folder / "control.key.pem"
    )
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: what this client is for
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with socket.create_connection(address, timeout=10) as raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=address[0])
        except (ssl.SSLError, OSError):
            served = None
        else:
            with tls:
                served = _whoami_on(tls)[0]
    assert served == (200 if accepted else None)


def test_the_fleet_ca_key_alone_makes_no_credential_the_fleet_issued(
    site: Site, tmp_path: Path
) -> None:
    """The store's record of a credential is the fleet's word that it issued it. With the CA's
    key alone (a leaked copy of ``ca.key.pem``, not ``fleet.db``), a certificate copying
    node-0002's credential — its public serial, subject and extensions — for a key of one's
    own was that record's credential: 200. The record names the key it certified: 401
    ``credential-unknown``."""
    ca_key = serialization.load_pem_private_key(
        (site.authority.directory / "ca.key.pem").read_bytes(), None
    )
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    for plane, url in (("control", site.servers.control_url), ("data", site.servers.data_url)):
        victim = x509.load_pem_x509_certificate(
            (site.files / "node-0002" / f"{plane}.cert.pem").read_bytes()
        )
        key = ec.generate_private_key(ec.SECP384R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(victim.subject)
            .issuer_name(victim.issuer)
            .public_key(key.public_key())
            .serial_number(victim.serial_number)
            .not_valid_before(victim.not_valid_before_utc)
            .not_valid_after(victim.not_valid_after_utc)
        )
        for extension in victim.extensions:
            value = extension.value
            if isinstance(value, x509.SubjectKeyIdentifier):
                value = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
            builder = builder.add_extension(value, extension.critical)
        forged = tmp_path / f"{plane}.cert.pem"
        forged.write_bytes(
            builder.sign(ca_key, hashes.SHA384()).public_bytes(serialization.Encoding.PEM)
        )
        context = client_context(site.servers.ca_file, forged, _write_key(tmp_path / "k", key))
        with httpx.Client(verify=context) as client:
            response = client.get(f"{url}/v1/whoami")
        assert problem(response) == (401, "credential-unknown", "Credential Rejected")


def test_a_nodes_credential_cannot_issue_a_credential_for_another_node(
    site: Site, tmp_path: Path
) -> None:
    """A node holds its credential's key; a certificate it signs with it — another node's
    data-plane credential for the node's own key, sent with the node's credential as its
    intermediate — is refused at the handshake (a credential is no CA)."""
    own = site.files / "node-0001"
    issuer = x509.load_pem_x509_certificate((own / "control.cert.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key((own / "control.key.pem").read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    victim = x509.load_pem_x509_certificate(
        (site.files / "node-0003" / "data.cert.pem").read_bytes()
    )
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(victim.subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(victim.serial_number)
        .not_valid_before(victim.not_valid_before_utc)
        .not_valid_after(victim.not_valid_after_utc)
    )
    for extension in victim.extensions:
        value = extension.value
        if isinstance(value, x509.AuthorityKeyIdentifier):
            continue
        if isinstance(value, x509.SubjectKeyIdentifier):
            value = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(value, extension.critical)
    forged = builder.sign(issuer_key, hashes.SHA384())
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        forged.public_bytes(serialization.Encoding.PEM)
        + issuer.public_bytes(serialization.Encoding.PEM)
    )
    context = client_context(site.servers.ca_file, chain, _write_key(tmp_path / "k.pem", key))
    for url in (site.servers.control_url, site.servers.data_url):
        with httpx.Client(verify=context) as client, pytest.raises(REFUSED_AT_HANDSHAKE):
            client.get(f"{url}/v1/whoami")


def test_a_credential_is_current_from_not_before_to_just_before_not_after(
    site: Site, clock: Clock
) -> None:
    """The clock edges of a credential issued at NOW for an hour, on one open connection:
    current from notBefore itself, not a microsecond before; current a microsecond before
    notAfter, expired at notAfter."""
    url = f"{site.servers.control_url}/v1/whoami"
    credential = x509.load_pem_x509_certificate(
        (site.files / "node-0001" / "control.cert.pem").read_bytes()
    )
    start, end = credential.not_valid_before_utc, credential.not_valid_after_utc
    assert (start, end) == (NOW, NOW + dt.timedelta(hours=1))
    tick = dt.timedelta(microseconds=1)
    with site.client("node-0001", "control") as control:
        for at, expected in (
            (start - tick, (401, "credential-not-yet-valid")),
            (start, (200, "")),
            (end - tick, (200, "")),
            (end, (401, "credential-expired")),
            (end + dt.timedelta(seconds=1), (401, "credential-expired")),
        ):
            clock.now = at
            response = control.get(url)
            got = (200, "") if response.status_code == 200 else problem(response)[:2]
            assert got == expected, at


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_a_lookalike_of_the_fleet_ca_and_of_a_nodes_credential_is_refused_at_the_handshake(
    site: Site, tmp_path: Path
) -> None:
    """Another CA with the fleet CA's exact name, serial and extensions issues a copy of a
    real node's control credential — its subject, serial, validity, the fleet credential
    extension, AKI — for the attacker's key, and the client sends that CA along: both planes
    refuse it at the handshake (nothing but the fleet CA's own signature counts)."""
    real = x509.load_pem_x509_certificate(
        (site.files / "node-0001" / "control.cert.pem").read_bytes()
    )
    ca = site.authority.ca.certificate
    ca_key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(ca.subject)
        .issuer_name(ca.issuer)
        .public_key(ca_key.public_key())
        .serial_number(ca.serial_number)
        .not_valid_before(ca.not_valid_before_utc)
        .not_valid_after(ca.not_valid_after_utc)
    )
    for extension in ca.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    lookalike_ca = builder.sign(ca_key, hashes.SHA384())
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .public_key(key.public_key())
        .serial_number(real.serial_number)
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
    )
    for extension in real.extensions:
        value = extension.value
        if isinstance(value, x509.SubjectKeyIdentifier):
            value = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(value, extension.critical)
    copy = builder.sign(ca_key, hashes.SHA384())
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        copy.public_bytes(serialization.Encoding.PEM)
        + lookalike_ca.public_bytes(serialization.Encoding.PEM)
    )
    context = client_context(site.servers.ca_file, chain, _write_key(tmp_path / "k.pem", key))
    for url in (site.servers.control_url, site.servers.data_url):
        with httpx.Client(verify=context) as client, pytest.raises(REFUSED_AT_HANDSHAKE):
            client.get(f"{url}/v1/whoami")


def test_a_revoked_credential_stays_revoked_after_its_node_is_readmitted(
    site: Site, tmp_path: Path
) -> None:
    """Readmission issues new credentials; the ones quarantine revoked stay refused — on the
    connection opened before the quarantine and on a new one."""
    url = f"{site.servers.control_url}/v1/whoami"
    old = tmp_path / "old"
    old.mkdir()
    for name in ("control.cert.pem", "control.key.pem"):
        (old / name).write_bytes((site.files / "node-0001" / name).read_bytes())
    with site.client("node-0001", "control") as kept:
        assert kept.get(url).status_code == 200
        quarantine(site.fleet, "node-0001", "stolen credential", now=NOW)
        readmit(site.fleet, "node-0001", now=NOW, authority=site.authority)
        assert site.admit("node-0001").status_code == 200
        assert site.fleet.record_of("node-0001").status == "admitted"
        assert problem(kept.get(url))[:2] == (401, "credential-revoked")
    context = client_context(
        site.servers.ca_file, old / "control.cert.pem", old / "control.key.pem"
    )
    with httpx.Client(verify=context) as fresh:
        assert problem(fresh.get(url))[:2] == (401, "credential-revoked")
    with site.client("node-0001", "control") as renewed:
        assert renewed.get(url).status_code == 200


def test_an_answer_sent_when_its_challenge_expires_is_refused(site: Site, clock: Clock) -> None:
    answer = site.prepare("node-0002")
    before = site.fleet.record_of("node-0002")
    clock.now = NOW + dt.timedelta(seconds=120)  # the nonce's lifetime, to the second
    assert problem(site.send(answer)) == (400, "nonce-expired", "Stale Or Mismatching Nonce")
    assert site.fleet.record_of("node-0002") == before


# --- must reject: admission over HTTPS -------------------------------------------------------


def test_admission_refusals_over_https(site: Site, tmp_path: Path) -> None:
    fleet, authority = site.fleet, site.authority
    with site.anonymous() as client:
        challenge = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge", json={"node": "node-0001"}
        )
        nonce = decode_nonce(challenge.json()["nonce"])
        keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        others = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
        spkis = {p: k.public_key.to_der() for p, k in keys.items()}
        evidence = collect_evidence(fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
        unbound = AdmissionRequest(
            "node-0001",
            nonce,
            evidence.encode(),
            {p: make_csr(k, node="node-0001", plane=p) for p, k in others.items()},
        )
        response = site.post_admission(client, unbound.encode())
        assert problem(response) == (
            403,
            "key-binding-mismatch",
            "Evidence Binds Another Wrapping Key",
        )
        replayed = site.post_admission(client, unbound.encode())
        assert problem(replayed) == (400, "nonce-reused", "Stale Or Mismatching Nonce")
        garbage = site.post_admission(client, b"\xa1\x01")
        assert problem(garbage)[0] == 400
        unknown = client.post(  # no node-id oracle: refused at admission, not here
            f"{site.servers.admission_url}/fleet/admission/challenge", json={"node": "node-9999"}
        )
        assert unknown.status_code == 200
    assert fleet.record_of("node-0001").status == "admitted"
    # a node whose RoT booted never-logged firmware: admission denied, node quarantined
    fleet.rot("node-0003").boot(site.world.world.bundle("bmc", svn=3, tag="x"), now=NOW)
    try:
        assert problem(site.admit("node-0003")) == (403, "admission-denied", "Admission Denied")
        assert fleet.record_of("node-0003").status == "quarantined"
    finally:
        fleet.node("node-0003").boot(now=NOW)
        assert site.admit("node-0003").status_code == 200
    del authority


def _probe(site: Site, target: str) -> tuple[httpx.Response, httpx.Response]:
    """What an anonymous client holding a genuine RoT (node-0002's) learns of ``target``: the
    answer to a challenge for it, and to an admission for it with node-0002's own genuine
    evidence for that challenge, relabelled as ``target``'s."""
    with site.anonymous() as client:
        challenge = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge", json={"node": target}
        )
    assert challenge.status_code == 200, challenge.text
    nonce = decode_nonce(challenge.json()["nonce"])
    keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
    spkis = {p: k.public_key.to_der() for p, k in keys.items()}
    own = collect_evidence(site.fleet, "node-0002", nonce=nonce, keys=spkis, now=NOW)
    relabelled = NodeEvidence(target, own.quote, own.devices)
    return challenge, site.send(Answer(target, nonce, keys, relabelled))


def test_admission_does_not_tell_an_anonymous_client_whether_a_node_id_exists(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """The challenge is answered alike for a registered and an unknown node id, and the
    admission that follows is refused alike: the unknown id is refused as a registered node
    is when the evidence is not its RoT's (``node-identity``). The server still says what it
    refused, in its log."""
    before = site.fleet.record_of("node-0003")
    with caplog.at_level(logging.INFO, logger="ironroot.fleet"):
        known_challenge, known = _probe(site, "node-0003")
        unknown_challenge, unknown = _probe(site, "node-9999")
    assert known_challenge.headers["content-type"] == unknown_challenge.headers["content-type"]
    assert sorted(known_challenge.json()) == sorted(unknown_challenge.json())
    assert known_challenge.json()["expires"] == unknown_challenge.json()["expires"]
    assert problem(known) == (400, "node-identity", "Untrusted Certificate Chain")
    assert problem(unknown) == problem(known)
    details = [Problem.from_cbor(r.content).detail for r in (known, unknown)]
    assert details[1] == details[0].replace("node-0003", "node-9999")
    assert site.fleet.record_of("node-0003") == before
    logged = [r.getMessage() for r in caplog.records if "node-9999" in r.getMessage()]
    assert any("not in the fleet" in m and "challenge" in m for m in logged), logged
    assert any("not in the fleet" in m and "admission" in m for m in logged), logged


def test_a_challenge_for_a_name_no_node_can_have_is_refused_alike(site: Site) -> None:
    """A name outside the node-id syntax (what the registry can never hold) is 400 before
    the registry is asked: its refusal says nothing about which ids exist."""
    with site.anonymous() as client:
        response = client.post(
            f"{site.servers.admission_url}/fleet/admission/challenge", json={"node": "a/b"}
        )
    assert problem(response) == (400, "malformed", "Malformed Input")


def test_a_challenge_issued_to_one_node_is_refused_for_another(site: Site) -> None:
    """The challenge names the node it is for: another node's genuine answer to it is
    refused, changes nothing, and spends the nonce."""
    nonce = site.challenge("node-0001")
    keys = {p: PrivateKey.generate(Algorithm.ES384) for p in PLANES}
    spkis = {p: k.public_key.to_der() for p, k in keys.items()}
    evidence = collect_evidence(site.fleet, "node-0002", nonce=nonce, keys=spkis, now=NOW)
    before = site.fleet.record_of("node-0002")
    issued = len(site.authority.credentials.of_node("node-0002"))
    response = site.send(Answer("node-0002", nonce, keys, evidence))
    assert problem(response) == (400, "nonce-node", "Stale Or Mismatching Nonce")
    assert site.fleet.record_of("node-0002") == before
    assert len(site.authority.credentials.of_node("node-0002")) == issued
    mine = collect_evidence(site.fleet, "node-0001", nonce=nonce, keys=spkis, now=NOW)
    again = site.send(Answer("node-0001", nonce, keys, mine))
    assert problem(again) == (400, "nonce-reused", "Stale Or Mismatching Nonce")


def test_an_answer_older_than_a_quarantine_does_not_readmit_the_node(site: Site) -> None:
    """The node answers a challenge while it runs logged firmware and keeps the answer; it
    then boots firmware nobody logged and its next attestation quarantines it. The kept
    answer — its nonce unexpired and unused — says what the node ran before the quarantine:
    it must not readmit the node, and changes nothing."""
    kept = site.prepare("node-0003")
    site.fleet.rot("node-0003").boot(site.world.world.bundle("bmc", svn=3, tag="kept"), now=NOW)
    try:
        assert problem(site.admit("node-0003")) == (403, "admission-denied", "Admission Denied")
        record = site.fleet.record_of("node-0003")
        assert record.status == "quarantined"
        issued = len(site.authority.credentials.of_node("node-0003"))
        events = len(site.fleet.events(node="node-0003"))
        response = site.send(kept)
        assert problem(response) == (400, "nonce-superseded", "Stale Or Mismatching Nonce")
        assert site.fleet.record_of("node-0003") == record
        assert len(site.authority.credentials.of_node("node-0003")) == issued
        assert len(site.fleet.events(node="node-0003")) == events
    finally:
        site.fleet.node("node-0003").boot(now=NOW)
        assert site.admit("node-0003").status_code == 200


def test_one_key_for_both_planes_is_refused(site: Site) -> None:
    """A control-plane credential sharing its key with the data plane's would let whoever
    holds the data-plane key use the control plane (a certificate is no secret: TLS 1.2
    sends it in the clear): each plane needs its own key, even when the quote binds both."""
    nonce = site.challenge("node-0002")
    key = PrivateKey.generate(Algorithm.ES384)
    keys = dict.fromkeys(PLANES, key)
    spkis = {p: k.public_key.to_der() for p, k in keys.items()}
    evidence = collect_evidence(site.fleet, "node-0002", nonce=nonce, keys=spkis, now=NOW)
    before = site.fleet.record_of("node-0002")
    issued = len(site.authority.credentials.of_node("node-0002"))
    response = site.send(Answer("node-0002", nonce, keys, evidence))
    assert problem(response) == (400, "plane-key-shared", "Rejected")
    assert site.fleet.record_of("node-0002") == before
    assert len(site.authority.credentials.of_node("node-0002")) == issued


@pytest.mark.parametrize("plane", PLANES)
def test_an_admission_asking_for_one_plane_only_is_refused(site: Site, plane: str) -> None:
    """One attestation yields both planes' credentials (a CSR per plane): a request for one,
    its quote binding that key alone, is malformed and changes nothing. It used to admit the
    node with one fresh credential, the registry keeping the control-plane credential of an
    earlier admission, or none (after a quarantine: an admitted node key release refuses)."""
    nonce = site.challenge("node-0002")
    key = PrivateKey.generate(Algorithm.ES384)
    spkis = {plane: key.public_key.to_der()}
    evidence = collect_evidence(site.fleet, "node-0002", nonce=nonce, keys=spkis, now=NOW)
    before = site.fleet.record_of("node-0002")
    issued = len(site.authority.credentials.of_node("node-0002"))
    request = {  # as the node sends it (AdmissionRequest refuses to make it)
        "node": "node-0002",
        "nonce": nonce,
        "evidence": evidence.encode(),
        "csrs": {plane: make_csr(key, node="node-0002", plane=plane)},
    }
    with site.anonymous() as client:
        response = site.post_admission(client, encode_cbor(request))
    assert problem(response) == (400, "malformed", "Malformed Input")
    assert site.fleet.record_of("node-0002") == before
    assert len(site.authority.credentials.of_node("node-0002")) == issued


# --- placements and the CRL ------------------------------------------------------------------


def test_placements_go_to_admitted_nodes_only(site: Site) -> None:
    control_url, data_url = site.servers.control_url, site.servers.data_url
    with site.operator("placer") as control:
        placed = control.post(f"{control_url}/v1/placements", json={"vm": "cvm-1"})
        assert placed.status_code == 201
        node = placed.json()["node"]
        assert site.fleet.record_of(node).status == "admitted"
        # the node's record says who put the VM there: the operator
        event = [e for e in site.fleet.events(node=node) if e.kind == "placed"][-1]
        assert event.detail == {"vm": "cvm-1", "by": "operator:placer"}
        site.fleet.set_status("node-0003", "quarantined", "drift", now=NOW)
        try:
            refused = control.post(
                f"{control_url}/v1/placements", json={"vm": "cvm-2", "node": "node-0003"}
            )
            assert problem(refused) == (409, "node-not-admitted", "Conflict")
        finally:
            assert site.admit("node-0003").status_code == 200
        again = control.post(f"{control_url}/v1/placements", json={"vm": "cvm-1"})
        assert problem(again)[1] == "vm-placed"
    with site.client(node, "data") as data:
        mine = data.get(f"{data_url}/v1/placements").json()["placements"]
        assert [p["vm"] for p in mine] == ["cvm-1"]


def test_no_vm_is_placed_on_a_node_whose_attestation_lapsed(site: Site, clock: Clock) -> None:
    """A node whose credential expired un-renewed (its scans failing: it stays ``admitted``)
    gets no key released to its VMs; it used to get new VMs all the same — named, or chosen
    as the least loaded, which a node that runs nothing because it fails always is."""
    lapsed = dt.datetime.fromisoformat(
        str(site.fleet.record_of("node-0002").credential_not_after).replace("Z", "+00:00")
    )
    clock.now = lapsed - dt.timedelta(microseconds=1)  # still current: placed
    with site.operator("lapse-edge", at=clock.now) as control:
        placed = control.post(
            f"{site.servers.control_url}/v1/placements", json={"vm": "lapse-0", "node": "node-0002"}
        )
        assert placed.status_code == 201, placed.text
    clock.now = lapsed  # every node's credential has lapsed: each was admitted at NOW
    with site.operator("lapse", at=lapsed) as control:
        named = control.post(
            f"{site.servers.control_url}/v1/placements", json={"vm": "lapse-1", "node": "node-0002"}
        )
        assert problem(named) == (409, "attestation-expired", "Conflict")
        anywhere = control.post(f"{site.servers.control_url}/v1/placements", json={"vm": "lapse-2"})
        assert problem(anywhere) == (409, "no-admitted-node", "Conflict")
    placed_vms = {p.vm for p in site.authority.placements()}
    assert "lapse-0" in placed_vms
    assert not placed_vms & {"lapse-1", "lapse-2"}


def test_the_crl_lists_revoked_credentials(site: Site) -> None:
    serial = site.fleet.record_of("node-0001").credential_serial
    assert serial is not None
    with site.anonymous() as client:
        before = x509.load_der_x509_crl(
            client.get(f"{site.servers.admission_url}/fleet/crl").content
        )
        assert before.get_revoked_certificate_by_serial_number(int(serial, 16)) is None
        quarantine(site.fleet, "node-0001", "for the CRL", now=NOW)
        crl = x509.load_der_x509_crl(client.get(f"{site.servers.admission_url}/fleet/crl").content)
    assert crl.is_signature_valid(site.authority.ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    readmit(site.fleet, "node-0001", now=NOW, authority=site.authority)
    assert site.admit("node-0001").status_code == 200


def test_a_rollout_to_the_desired_state_is_started_on_the_control_plane(
    site: Site, tmp_path: Path
) -> None:
    url = f"{site.servers.control_url}/v1/rollouts"
    with site.client("node-0001", "control") as control:
        none = control.post(url, json={"dry_run": True})
        assert problem(none)[:2] == (404, "not-found")  # no desired state in force
        assert problem(control.post(url, json={"firmware": "mine"}))[0] == 400
        with make_ops(tmp_path / "ops") as ops:
            store = DesiredStore(site.fleet)
            store.init(ops.governance())
            bundles = {"host": site.world.world.release("host", "2.0").bundle}
            state = DesiredState.build(
                site.fleet.node_class("node-7"), 1, bundles=bundles, fleet=site.fleet.identity()
            )
            store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
        plan = control.post(url, json={"dry_run": True, "wave_size": 2})
        assert plan.status_code == 200, plan.text
        report = plan.json()
        assert report["dry_run"] is True
        assert [n["node"] for n in report["nodes"]] == ["node-0001"]  # its own node only
        assert {n["outcome"] for n in report["nodes"]} == {"planned"}
    assert site.fleet.events(node="node-0001")[-1].kind == "rollout-requested"


# --- the servers' TLS certificate -------------------------------------------------------------


def _served_certificate(url: str, context: ssl.SSLContext) -> x509.Certificate:
    """The certificate the server at ``url`` presents to a new connection."""
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_the_servers_renew_their_tls_certificate_before_it_expires(site: Site) -> None:
    """The servers' certificate is valid 7 days: a fleet served longer must renew it, or no
    node reaches admission or a plane once it expires. Started 4 days ago (past half its
    validity), the servers renew it when asked whether it is due, and every new connection
    — a node's own, verifying it — gets the new one."""
    wall = [dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=4)]
    context = client_context(
        site.servers.ca_file,
        site.files / "node-0001" / "control.cert.pem",
        site.files / "node-0001" / "control.key.pem",
    )
    with FleetServers(site.authority, clock=site.clock, tls_clock=lambda: wall[0]) as servers:
        urls = (servers.admission_url, servers.control_url, servers.data_url)
        first = _served_certificate(servers.control_url, context)
        assert first.not_valid_before_utc == wall[0] - SERVER_BACKDATE
        assert servers.renew_tls() is False  # not due when just issued
        wall[0] += dt.timedelta(days=4)  # the wall clock now: past half its validity
        assert servers.renew_tls() is True
        assert servers.renew_tls() is False  # not due again before 3.5 days
        for url in urls:
            renewed = _served_certificate(url, context)
            assert renewed.not_valid_before_utc == wall[0] - SERVER_BACKDATE
            assert renewed.not_valid_after_utc == wall[0] + dt.timedelta(days=7)
        with httpx.Client(verify=context) as control:
            me = control.get(f"{servers.control_url}/v1/whoami")
        assert me.status_code == 200


def test_a_node_whose_clock_runs_behind_the_servers_reaches_them_after_a_start(
    site: Site,
) -> None:
    """The servers' certificate is issued at each start and renewal; dated from that very
    instant, a node whose clock ran a minute behind the servers' refused it as not yet valid
    until its own clock caught up. It is dated 5 minutes back (the end still 7 days on)."""
    ahead = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=1)
    context = client_context(
        site.servers.ca_file,
        site.files / "node-0001" / "control.cert.pem",
        site.files / "node-0001" / "control.key.pem",
    )
    with FleetServers(site.authority, clock=site.clock, tls_clock=lambda: ahead) as servers:
        with httpx.Client(verify=context) as control:
            me = control.get(f"{servers.control_url}/v1/whoami")
        assert me.status_code == 200, me.text
        served = _served_certificate(servers.admission_url, context)
    assert served.not_valid_before_utc == ahead - SERVER_BACKDATE == ahead - FIVE_MINUTES
    assert served.not_valid_after_utc == ahead + dt.timedelta(days=7)


def _handshake(url: str, name: str, ca: Path) -> x509.Certificate:
    """A TLS handshake with the server at ``url``, verifying its certificate against the
    fleet CA ``ca`` for ``name``, as a client that reached it by that name does."""
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_the_servers_certificate_names_the_server_names_given(site: Site) -> None:
    names = ["Fleet.Example.", "127.0.0.2", "2001:db8::0:1", "bücher.example"]
    with FleetServers(site.authority, clock=site.clock, server_names=names) as servers:
        for url in (servers.admission_url, servers.control_url, servers.data_url):
            cert = _handshake(url, "fleet.example", servers.ca_file)
            for name in ("127.0.0.2", "2001:db8::1", "xn--bcher-kva.example", "localhost"):
                assert _handshake(url, name, servers.ca_file) == cert
            for other in ("other.example", "127.0.0.3", "example", "fleet.example.org"):
                with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
                    _handshake(url, other, servers.ca_file)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == [
        "127.0.0.1",  # the host it listens on
        "fleet.example",
        "127.0.0.2",
        "2001:db8::1",
        "xn--bcher-kva.example",
        "localhost",
    ]


def test_a_wildcard_listening_address_is_not_named_in_the_certificate(site: Site) -> None:
    # 0.0.0.0 is no address a client connects to; --host 0.0.0.0 is where --server-name is for
    with FleetServers(site.authority, host="0.0.0.0", server_names=["fleet.example"]) as servers:
        url = servers.admission_url.replace("0.0.0.0", "127.0.0.1")
        cert = _handshake(url, "fleet.example", servers.ca_file)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == ["fleet.example", "localhost", "127.0.0.1"]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("*.example.com", "the fleet CA issues no wildcard name; name each host"),
        ("0.0.0.0", "no client connects to this address"),
        ("::", "no client connects to this address"),
        ("ff02::1", "no client connects to this address"),
        ("fe80::1%eth0", "a certificate names an address without a zone index"),
        ("a..example", "not a DNS name or an IP address"),
        ("ex ample.com", "not a DNS name or an IP address"),
        ("-fleet.example", "not a DNS name or an IP address"),
        ("10.1.1", "not a DNS name or an IP address"),
        ("300.1.1.1", "not a DNS name or an IP address"),
        ("a" * 64 + ".example", "not a DNS name or an IP address"),
        ("https://fleet.example", "not a DNS name or an IP address"),
        ("", "a server name is a DNS name or an IP address"),
    ],
)
def test_a_server_name_that_is_no_dns_name_or_address_is_refused(
    site: Site, name: str, why: str
) -> None:
    cert = site.authority.directory / "tls" / "server.cert.pem"
    before = cert.read_bytes()
    with pytest.raises(ConfigError) as refused:
        FleetServers(site.authority, server_names=["fleet.example", name])
    assert str(refused.value) == f"--server-name {name!r}: {why}"
    assert cert.read_bytes() == before  # refused before any certificate was issued


def test_the_crl_is_rfc5280_conformant_and_signed_once_per_change(site: Site) -> None:
    """RFC 5280 §5.2: a conforming CRL issuer includes the authority key identifier and a CRL
    number that grows. The anonymous route answers the CRL signed last until a credential is
    revoked or it is CRL_REUSE seconds old: signing one per request spent the CA's key at
    anyone's will."""
    from ironroot.fleet._admission import CRL_REUSE

    authority = site.authority
    first = authority.crl(now=NOW)
    assert authority.crl(now=NOW + dt.timedelta(seconds=CRL_REUSE - 1)) == first
    crl = x509.load_der_x509_crl(first)
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_key = authority.ca.certificate.public_key()
    assert aki.key_identifier == x509.SubjectKeyIdentifier.from_public_key(ca_key).digest  # type: ignore[arg-type]
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    serial = site.fleet.record_of("node-0001").credential_serial
    assert serial is not None
    quarantine(site.fleet, "node-0001", "for the CRL", now=NOW)
    revoked = x509.load_der_x509_crl(authority.crl(now=NOW + dt.timedelta(seconds=1)))
    assert revoked.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    later = revoked.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert later > number
    stale = NOW + dt.timedelta(seconds=1 + CRL_REUSE)
    renewed = x509.load_der_x509_crl(authority.crl(now=stale))
    assert renewed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number > later
    assert renewed.last_update_utc == stale
    assert authority.crl(now=NOW) != renewed.public_bytes(serialization.Encoding.DER)  # clock back


def test_a_request_pipelined_behind_one_in_flight_at_a_quarantine_is_refused(site: Site) -> None:
    """HTTP/1.1 pipelining: a request whose head reached the server, on one connection, before
    its node was quarantined is checked when it is served, not when it arrived — the
    quarantine lands while the request ahead of it is in flight, and the one behind it is
    refused."""
    entered, release = threading.Event(), threading.Event()

    def trigger(body: Mapping[str, Any]) -> Callable[[dt.datetime], Mapping[str, Any]]:
        entered.set()  # the first request is in flight, the second queued behind it
        assert release.wait(10)
        return lambda now: {"started": True}

    folder = site.files / "node-0002"
    context = client_context(
        site.servers.ca_file, folder / "control.cert.pem", folder / "control.key.pem"
    )
    with FleetServers(site.authority, clock=site.clock, rollout=trigger) as servers:
        parsed = urllib.parse.urlsplit(servers.control_url)
        address = (str(parsed.hostname), int(parsed.port or 0))
        body = b"{}"
        pipelined = (
            b"POST /v1/rollouts HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            b"GET /v1/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
            b"Connection: close\r\n\r\n" % (len(body), body)
        )
        with (
            socket.create_connection(address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=address[0]) as sock,
        ):
            sock.sendall(pipelined)  # both heads in one write
            try:
                assert entered.wait(10)
                quarantine(site.fleet, "node-0002", "pipelined", now=NOW)
            finally:
                release.set()
            answers = read_all(sock)
    readmit(site.fleet, "node-0002", now=NOW, authority=site.authority)
    assert site.admit("node-0002").status_code == 200
    first, _, rest = answers.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 "), answers
    second = rest[rest.index(b"HTTP/1.1 ") :]
    head, _, problem_body = second.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), answers
    assert json.loads(problem_body)["code"] == "credential-revoked"
