"""The shared system trust for HTTPS clients (``ironroot._trust``)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from ironroot._trust import client_verify
from tls_pki import make_pki


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
    bundle = make_pki(tmp_path).ca
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    shared = client_verify(True)
    assert isinstance(shared, ssl.SSLContext)
    subjects = [c["subject"] for c in shared.get_ca_certs()]
    assert subjects == [((("commonName", "Ironroot test CA"),),)]
    fresh = httpx.create_ssl_context()  # what httpx would have made for this client
    assert shared.get_ca_certs() == fresh.get_ca_certs()
    monkeypatch.delenv("SSL_CERT_FILE")
    assert client_verify(True) is not shared
