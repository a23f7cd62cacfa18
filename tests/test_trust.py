"""The shared system trust for HTTPS clients (``ironroot._trust``)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ironroot._trust import client_verify


def _ca_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trust test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_true_is_one_verifying_context_for_every_client() -> None:
    first, second = client_verify(True), client_verify(True)
    assert isinstance(first, ssl.SSLContext)
    assert first is second
    assert first.verify_mode == ssl.CERT_REQUIRED
    assert first.check_hostname


def test_a_context_of_its_own_and_false_pass_through_unchanged() -> None:
    own = ssl.create_default_context()
    assert client_verify(own) is own
    assert client_verify(False) is False


def test_the_trust_follows_ssl_cert_file_as_httpx_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(_ca_pem())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    shared = client_verify(True)
    assert isinstance(shared, ssl.SSLContext)
    assert [c["subject"] for c in shared.get_ca_certs()] == [((("commonName", "trust test CA"),),)]
    fresh = httpx.create_ssl_context()  # what httpx would have made for this client
    assert shared.get_ca_certs() == fresh.get_ca_certs()
    monkeypatch.delenv("SSL_CERT_FILE")
    assert client_verify(True) is not shared
