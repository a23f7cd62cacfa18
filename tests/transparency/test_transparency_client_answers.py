"""What the transparency client makes of a service that answers what no transparency service
would: a typed error, never an exception of another kind."""

from __future__ import annotations

import logging
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ironroot.errors import MalformedInput, PayloadTooLarge
from ironroot.http import ServerThread, guarded, problem_app
from ironroot.transparency import TransparencyClient

pytestmark = pytest.mark.integration

_log = logging.getLogger("ironroot.test-client")

STORE_INDEPENDENT = True  # the client and a server that is not a transparency service


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>a proxy's error page</html>", "the transparency configuration is not JSON"),
        (b"\xff\xfe not text", "the transparency configuration is not JSON"),
        (b"[" * 100_000, "the transparency configuration is not JSON"),
        (b'["a list"]', "the transparency configuration is not a JSON object"),
    ],
)
def test_a_configuration_that_is_not_a_json_object_is_malformed_input(
    body: bytes, message: str
) -> None:
    async def answer(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = problem_app(
        [Route("/.well-known/transparency-configuration", guarded(answer, _log), methods=["GET"])]
    )
    with ServerThread(app, name="not-a-service") as server:
        client = TransparencyClient(server.url)
        try:
            with pytest.raises(MalformedInput) as caught:
                client.configuration()
        finally:
            client.close()
    assert str(caught.value.detail).startswith(message)


def test_an_endless_answer_is_refused_as_it_streams_in() -> None:
    # A service (or whatever answers in its place) that never stops sending: the client reads
    # no more than the largest answer a service gives (a checkpoint note with its
    # cosignatures: 1 MiB), not the 128 MiB on offer.
    sent = 0

    async def endless(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            for _ in range(128):
                sent += 1 << 20
                yield bytes(1 << 20)

        return StreamingResponse(chunks(), media_type="text/plain")

    app = problem_app([Route("/checkpoint", guarded(endless, _log), methods=["GET"])])
    with ServerThread(app, name="endless") as server:
        client = TransparencyClient(server.url)
        tracemalloc.start()
        try:
            with pytest.raises(PayloadTooLarge):
                client.checkpoint()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            client.close()
    assert sent > 2 << 20  # the server did send more than the limit
    assert peak < 16 << 20, f"{peak} bytes held"  # the whole process, server thread included
