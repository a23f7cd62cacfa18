"""The ASGI TLS extension every service's requests carry over TLS (the client's certificate),
and ``ServerTls(check_client_time=False)``: the chain is still required, the validity window is
left to the application."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.tls_pki import Pki, make_pki

from ironroot.http import ServerThread, ServerTls, client_context, problem_app


async def _echo(request: Request) -> Response:
    tls = request.scope.get("extensions", {}).get("tls")
    return JSONResponse({"tls": tls})


APP = problem_app([Route("/echo", _echo)])


def _write(base: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    (base / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (base / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _expired_pki(base: Path) -> None:
    """ca.pem, server.pem/.key (127.0.0.1) and expired.pem/.key: a client certificate from
    that CA whose validity ended yesterday."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=10))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (base / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, days, usage in (
        ("server", (-1, 1), ExtendedKeyUsageOID.SERVER_AUTH),
        ("expired", (-3, -1), ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if name == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        _write(base, name, builder.sign(ca_key, hashes.SHA256()), key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_the_client_certificate_reaches_the_app(pki: Pki) -> None:
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    context = client_context(pki.ca, pki.client_cert, pki.client_key)
    with ServerThread(APP, tls=tls) as server, httpx.Client(verify=context) as client:
        extension = client.get(f"{server.url}/echo").json()["tls"]
    assert extension["tls_version"] in (0x0303, 0x0304)
    (pem,) = extension["client_cert_chain"]
    presented = x509.load_pem_x509_certificate(pem.encode())
    assert presented == x509.load_pem_x509_certificate(pki.client_cert.read_bytes())


def test_plain_tls_and_plain_http_carry_no_client_certificate(pki: Pki) -> None:
    tls = ServerTls(pki.server_cert, pki.server_key)
    with ServerThread(APP, tls=tls) as server, httpx.Client(verify=client_context(pki.ca)) as c:
        assert c.get(f"{server.url}/echo").json()["tls"]["client_cert_chain"] == []
    with ServerThread(APP) as server, httpx.Client() as c:
        assert c.get(f"{server.url}/echo").json()["tls"] is None


def test_an_expired_client_certificate_is_left_to_the_app_only_when_asked(
    tmp_path: Path,
) -> None:
    _expired_pki(tmp_path)
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "expired.pem", "expired.key"))
    context = client_context(ca, cert, key)
    files = (tmp_path / "server.pem", tmp_path / "server.key", ca)
    relaxed = ServerTls(*files, check_client_time=False)
    with ServerThread(APP, tls=relaxed) as server, httpx.Client(verify=context) as client:
        assert client.get(f"{server.url}/echo").json()["tls"]["client_cert_chain"]
    refused = (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)
    with (
        ServerThread(APP, tls=ServerTls(*files)) as server,
        httpx.Client(verify=context) as c,
        pytest.raises(refused),
    ):
        c.get(f"{server.url}/echo")
