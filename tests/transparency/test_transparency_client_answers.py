"""What the transparency client makes of a service that answers what no transparency service
would: a typed error, never an exception of another kind."""

from __future__ import annotations

import hashlib
import logging
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ironroot.cose import (
    InclusionProof,
    SignedStatement,
    build_receipt,
    create_statement,
    encode_cbor,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError, VerificationFailed
from ironroot.http import ServerThread, guarded, problem_app
from ironroot.merkle import leaf_hash
from ironroot.transparency import TransparencyClient

pytestmark = pytest.mark.integration

_log = logging.getLogger("ironroot.test-client")

STORE_INDEPENDENT = True  # the client and a server that is not a transparency service


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>a proxy's error page</html>", "answered a configuration that is not JSON"),
        (b"\xff\xfe not text", "answered a configuration that is not JSON"),
        (b"[" * 100_000, "answered a configuration that is not JSON"),
        (b'["a list"]', "answered a configuration that is not a JSON object"),
    ],
)
def test_a_configuration_that_is_not_a_json_object_is_the_services_failure(
    body: bytes, message: str
) -> None:
    # Was MalformedInput (exit 2), which says the user's input was wrong: it is the service's
    # answer that is, as for an answer too large (StorageError, exit 1), and as the key release
    # client and the log readers (fetch_document: VerificationFailed, exit 1) now say too.
    async def answer(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = problem_app(
        [Route("/.well-known/transparency-configuration", guarded(answer, _log), methods=["GET"])]
    )
    with ServerThread(app, name="not-a-service") as server:
        client = TransparencyClient(server.url)
        try:
            with pytest.raises(StorageError) as caught:
                client.configuration()
        finally:
            client.close()
    assert type(caught.value) is StorageError
    assert caught.value.code == "malformed-answer"
    assert caught.value.exit_code == 1
    assert caught.value.detail.startswith(f"the transparency service {server.url} {message}")


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
            with pytest.raises(StorageError) as caught:
                client.checkpoint()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            client.close()
    assert caught.value.code == "answer-too-large"  # the service's failure (exit 1)
    assert sent > 2 << 20  # the server did send more than the limit
    assert peak < 16 << 20, f"{peak} bytes held"  # the whole process, server thread included


def _transparent(statement: bytes, service: PrivateKey) -> tuple[str, bytes, bytes]:
    """The entry id, a receipt (tree of one) and the transparent form of ``statement``."""
    entry = SignedStatement.parse(statement).log_entry()
    protected = receipt_protected_header(service.algorithm, service.kid, "https://ts", 1)
    signature = service.sign(receipt_to_be_signed(protected, leaf_hash(entry)))
    receipt = build_receipt(protected, signature, InclusionProof(1, 0, ()))
    return hashlib.sha256(entry).hexdigest(), receipt, make_transparent(statement, [receipt])


@pytest.mark.parametrize("lie", ["entry id", "transparent statement"])
def test_an_answer_for_another_statement_is_refused(lie: str) -> None:
    # The client wrote whatever transparent statement the service returned: a service could
    # hand out another statement's, and `statement verify` would then pass it.
    vendor, service = PrivateKey.generate(Algorithm.ES256), PrivateKey.generate(Algorithm.ES256)
    mine = create_statement(vendor, b"mine", iss="https://vendor", sub="pkg:a")
    other = create_statement(vendor, b"other", iss="https://vendor", sub="pkg:a")
    mine_id, _, _ = _transparent(mine, service)
    other_id, receipt, other_ts = _transparent(other, service)
    answered_id = other_id if lie == "entry id" else mine_id

    async def post(request: Request) -> Response:
        headers = {"Location": f"/entries/{answered_id}"}
        return Response(receipt, 201, media_type="application/cose", headers=headers)

    async def receipts(request: Request) -> Response:
        return Response(encode_cbor([receipt]), media_type="application/cbor")

    async def statement(request: Request) -> Response:
        return Response(other_ts, media_type="application/cose")

    app = problem_app(
        [
            Route("/entries", guarded(post, _log), methods=["POST"]),
            Route("/entries/{id}/receipts", guarded(receipts, _log), methods=["GET"]),
            Route("/entries/{id}/statement", guarded(statement, _log), methods=["GET"]),
        ]
    )
    with ServerThread(app, name="another-statement") as server:
        client = TransparencyClient(server.url)
        try:
            with pytest.raises(VerificationFailed) as caught:
                client.register(mine)
        finally:
            client.close()
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "entry-mismatch"
