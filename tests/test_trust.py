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


_TRUST = """
import sys
from ironroot._trust import system_trust
from ironroot.errors import ConfigError
try:
    system_trust()
except ConfigError as exc:
    print(exc.detail)
"""


@pytest.mark.parametrize("kind", ["fifo", "directory", "not a bundle"])
def test_an_ssl_cert_file_that_is_no_bundle_is_a_config_error_never_waited_on(
    tmp_path: Path, kind: str
) -> None:
    """``SSL_CERT_FILE`` naming a named pipe held every HTTPS client (OpenSSL opens it and
    waits for a writer); a folder, or a file holding no certificate, was an ``input-unavailable``
    that did not say which setting was wrong. Each is a ``ConfigError`` naming the variable."""
    import os
    import subprocess
    import sys

    path = tmp_path / "bundle"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"no certificate here\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "SSL_CERT_FILE": str(path)}
    env.pop("SSL_CERT_DIR", None)
    try:
        done = subprocess.run([sys.executable, "-c", _TRUST], capture_output=True, text=True,
                              timeout=30, env=env, check=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the system trust waited on SSL_CERT_FILE")
    if kind == "not a bundle":
        assert done.stdout.startswith(f"SSL_CERT_FILE={path}: the CA bundle does not load: ")
    else:
        assert done.stdout.strip() == f"SSL_CERT_FILE={path}: not a regular file (a CA bundle)"
