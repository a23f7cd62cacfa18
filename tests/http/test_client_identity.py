"""``client_identity``: whom a per-client limit (challenges, the key service's refusals) counts a
request against — the client certificate over mutual TLS, else the peer address."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tests.tls_pki import Pki, make_pki

from ironroot.http import ServerThread, ServerTls, client_context, client_identity, problem_app


async def _whoami(request: Request) -> Response:
    return PlainTextResponse(str(client_identity(request)))


APP = problem_app([Route("/whoami", _whoami)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _digest(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def test_over_mutual_tls_a_client_is_its_certificate_not_its_address(pki: Pki) -> None:
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    with ServerThread(APP, tls=tls) as server:
        seen = []
        for cert, key in (
            (pki.client_cert, pki.client_key),
            (pki.second_client_cert, pki.second_client_key),
        ):
            with httpx.Client(verify=client_context(pki.ca, cert, key)) as client:
                seen.append(client.get(f"{server.url}/whoami").text)
    assert seen == [
        f"cert:sha256:{_digest(pki.client_cert)}",
        f"cert:sha256:{_digest(pki.second_client_cert)}",
    ]


def test_without_a_client_certificate_a_client_is_its_address() -> None:
    with ServerThread(APP) as server:
        seen = []
        for address in ("127.0.0.1", "127.0.0.2"):
            transport = httpx.HTTPTransport(local_address=address)
            with httpx.Client(transport=transport) as client:
                seen.append(client.get(f"{server.url}/whoami").text)
    assert seen == ["127.0.0.1", "127.0.0.2"]
