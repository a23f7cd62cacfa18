"""HTTPS and mutual TLS for the services, and ``--ca`` / ``--client-cert`` on the clients.

A private CA, a server certificate for 127.0.0.1 and a client certificate are made here with
``cryptography``; the transparency service is served over real TLS from a thread.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from _tx_helpers import VENDOR_ISS, write_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ironroot.cli import main
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, StorageError
from ironroot.http import ServerTls, client_context
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], cn: str, *, server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), False
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(ca[1], hashes.SHA256()), key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    base = tmp_path_factory.mktemp("pki")
    ca = _ca("Ironroot test CA")
    server = _leaf(ca, "127.0.0.1", server=True)
    client = _leaf(ca, "a client", server=False)
    other = _ca("Another CA")
    pem = serialization.Encoding.PEM
    (base / "ca.pem").write_bytes(ca[0].public_bytes(pem))
    (base / "other-ca.pem").write_bytes(other[0].public_bytes(pem))
    (base / "server.pem").write_bytes(server[0].public_bytes(pem))
    (base / "client.pem").write_bytes(client[0].public_bytes(pem))
    return Pki(
        ca=base / "ca.pem",
        server_cert=base / "server.pem",
        server_key=_write_key(base / "server.key", server[1]),
        client_cert=base / "client.pem",
        client_key=_write_key(base / "client.key", client[1]),
        other_ca=base / "other-ca.pem",
    )


def _statement(tmp_path: Path, vendor: PrivateKey) -> Path:
    path = tmp_path / "statement.cose"
    path.write_bytes(create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:fw/tls"))
    return path


def test_https_and_the_clients_ca(pki: Pki, tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    statement = _statement(tmp_path, vendor)
    tls = ServerTls(pki.server_cert, pki.server_key)
    with (
        TransparencyService.open(data) as service,
        ServiceThread(service, tls=tls) as server,
    ):
        assert server.url.startswith("https://127.0.0.1:")
        register = ["statement", "register", str(statement), "--url", server.url]
        assert main([*register, "--ca", str(pki.ca), "--out", str(tmp_path / "a.ts")]) == 0
        # the system's CAs do not know the private CA; another CA does not either
        assert main([*register, "--out", str(tmp_path / "b.ts")]) != 0
        assert main([*register, "--ca", str(pki.other_ca)]) != 0
        with (
            TransparencyClient(server.url, verify=client_context(pki.other_ca)) as client,
            pytest.raises(StorageError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.service_keys()


def test_mutual_tls_needs_a_client_certificate(pki: Pki, tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)])
    statement = _statement(tmp_path, vendor)
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    with (
        TransparencyService.open(data) as service,
        ServiceThread(service, tls=tls) as server,
    ):
        with (
            TransparencyClient(server.url, verify=client_context(pki.ca)) as client,
            pytest.raises(StorageError),
        ):
            client.service_keys()  # no client certificate: the handshake is refused
        mutual = client_context(pki.ca, pki.client_cert, pki.client_key)
        with TransparencyClient(server.url, verify=mutual) as client:
            assert client.service_keys()
        argv = ["statement", "register", str(statement), "--url", server.url,
                "--ca", str(pki.ca), "--client-cert", str(pki.client_cert),
                "--client-key", str(pki.client_key), "--out", str(tmp_path / "m.ts")]  # fmt: skip
        assert main(argv) == 0


def test_bad_tls_files_are_one_line_errors(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        ServerTls(tmp_path / "missing.pem", pki.server_key)
    with pytest.raises(ConfigError, match="not a PEM certificate chain and its key"):
        ServerTls(pki.server_cert, pki.client_key)  # a key that is not the certificate's
    with pytest.raises(ConfigError, match="both --client-cert and --client-key"):
        client_context(pki.ca, pki.client_cert)
    assert (
        main(["serve", "--data", str(tmp_path / "d"), "--port", "0", "--tls-cert", str(pki.ca)])
        == 2
    )
    assert not (tmp_path / "d").exists()  # refused before anything was created
