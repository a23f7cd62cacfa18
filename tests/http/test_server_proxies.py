"""Whom a server believes about a client's address: its connection's peer, unless the peer is a
configured reverse proxy (``[server] trusted_proxies``), over real sockets."""

from __future__ import annotations

import logging

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import http_calls
from ironroot.errors import ConfigError
from ironroot.http import ServerLimits, ServerThread, guarded, problem_app

pytestmark = pytest.mark.integration

_log = logging.getLogger("ironroot.test-http")

_FORGED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


async def _who(request: Request) -> Response:
    client = request.client.host if request.client is not None else "-"
    return Response(f"{client} {request.url.scheme}".encode())


def _who_answers(limits: ServerLimits) -> str:
    app = problem_app([Route("/who", guarded(_who, _log), methods=["GET"])])
    with ServerThread(app, limits=limits, name="proxies-test") as server:
        answer = http_calls.get(server.url + "/who", headers=_FORGED)
    assert answer.status_code == 200
    return answer.text


def test_forwarded_headers_from_loopback_are_not_believed_by_default() -> None:
    # uvicorn alone would believe any client on 127.0.0.1 and name 203.0.113.9.
    assert _who_answers(ServerLimits()) == "127.0.0.1 http"


def test_forwarded_headers_from_a_trusted_proxy_name_the_client() -> None:
    limits = ServerLimits.from_table({"trusted_proxies": ["127.0.0.0/8"]}, "[server]")
    assert limits.trusted_proxies == ("127.0.0.0/8",)
    assert _who_answers(limits) == "203.0.113.9 https"


def test_forwarded_headers_from_a_peer_that_is_not_the_trusted_proxy_are_ignored() -> None:
    assert _who_answers(ServerLimits(trusted_proxies=("10.0.0.5",))) == "127.0.0.1 http"


@pytest.mark.parametrize(
    ("proxies", "message"),
    [
        ("10.0.0.5", "server.trusted_proxies must be a list of addresses or networks"),
        (
            ["proxy.example"],
            "server.trusted_proxies: 'proxy.example' is not an IP address or network",
        ),
        (["*"], "server.trusted_proxies: '*' is not an IP address or network"),
        ([5], "server.trusted_proxies: 5 is not an IP address or network"),
    ],
)
def test_bad_trusted_proxies_are_configuration_errors(proxies: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerLimits.from_table({"trusted_proxies": proxies}, "[server]")
    assert str(caught.value) == message
