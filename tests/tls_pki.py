"""A private CA, a server certificate for 127.0.0.1 and a client certificate, made with
``cryptography`` for the TLS tests of every service."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    second_client_cert: Path  # another client of the same CA: another identity
    second_client_key: Path


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


def make_pki(base: Path) -> Pki:
    """Write the CA, server and client files into ``base``."""
    ca = _ca("Ironroot test CA")
    server = _leaf(ca, "127.0.0.1", server=True)
    client = _leaf(ca, "a client", server=False)
    second = _leaf(ca, "another client", server=False)
    other = _ca("Another CA")
    pem = serialization.Encoding.PEM
    (base / "ca.pem").write_bytes(ca[0].public_bytes(pem))
    (base / "other-ca.pem").write_bytes(other[0].public_bytes(pem))
    (base / "server.pem").write_bytes(server[0].public_bytes(pem))
    (base / "client.pem").write_bytes(client[0].public_bytes(pem))
    (base / "second-client.pem").write_bytes(second[0].public_bytes(pem))
    return Pki(
        ca=base / "ca.pem",
        server_cert=base / "server.pem",
        server_key=_write_key(base / "server.key", server[1]),
        client_cert=base / "client.pem",
        client_key=_write_key(base / "client.key", client[1]),
        other_ca=base / "other-ca.pem",
        second_client_cert=base / "second-client.pem",
        second_client_key=_write_key(base / "second-client.key", second[1]),
    )
