"""HTTPS and mutual TLS for the services, and ``--ca`` / ``--client-cert`` on the clients.

A private CA, a server certificate for 127.0.0.1 and a client certificate are made here with
``cryptography``; the transparency service is served over real TLS from a thread.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cli import main
from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, Unreachable
from ironroot.http import ServerTls, client_context
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
from tls_pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


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
        assert main([*register, "--out", str(tmp_path / "b.ts")]) == 1
        assert main([*register, "--ca", str(pki.other_ca)]) == 1
        with (
            TransparencyClient(server.url, verify=client_context(pki.other_ca)) as client,
            pytest.raises(Unreachable, match=r"certificate is not trusted \(unable to get local"),
        ):
            client.service_keys()
        # a name the certificate was not issued for
        localhost = server.url.replace("127.0.0.1", "localhost")
        with (
            TransparencyClient(localhost, verify=client_context(pki.ca)) as client,
            pytest.raises(Unreachable, match=r"not for this host .*use a name it was issued for"),
        ):
            client.service_keys()
        # plain HTTP to the TLS port
        plain = server.url.replace("https://", "http://")
        with (
            TransparencyClient(plain) as client,
            pytest.raises(Unreachable, match="it may serve HTTPS only"),
        ):
            client.service_keys()


def test_https_to_a_plain_port_says_so(tmp_path: Path) -> None:
    data = write_config(tmp_path / "ts")
    with TransparencyService.open(data) as service, ServiceThread(service) as server:
        tls = server.url.replace("http://", "https://")
        with (
            TransparencyClient(tls) as client,
            pytest.raises(Unreachable, match="does not speak TLS on this port: use an http:// URL"),
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
            pytest.raises(Unreachable, match="may require a client certificate"),
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
