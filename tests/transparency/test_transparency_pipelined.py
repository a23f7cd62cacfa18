"""Requests pipelined on one connection to the transparency service, where a later one is
malformed: every request read before it is answered first, in order (RFC 9112 §9.3.2), then
the refusal, then the close. The refusal was written at once while the earlier request was
still in the app, so its answer was lost: a ``POST /entries`` that registered its statement
was answered by the refusal of the bytes after it (a ``Content-Length`` too short left the
tail of the statement to be read as the next request: its 501), and a client that pipelines
took that for the answer to its registration."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import cbor2
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cose import Problem, SignedStatement, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedInput
from ironroot.transparency import ServiceThread, TransparencyService

STORE_INDEPENDENT = True  # the HTTP layer's framing: one store kind is enough

_COSE = "application/cose"


@pytest.fixture(scope="module")
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, vendor: PrivateKey) -> Iterator[str]:
    data = write_config(tmp_path_factory.mktemp("pipelined") / "ts", issuers=[(VENDOR_ISS, vendor)])
    text = (data / "ironroot.toml").read_text()
    text = text.replace("[transparency]\n", '[transparency]\ncts_prefix = "/cts"\n', 1)
    (data / "ironroot.toml").write_text(text)
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as thread:
        yield thread.url


def _exchange(url: str, data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Send ``data`` in one write; every answer until the server closes, as (status,
    headers, body), split by their ``Content-Length``."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        size = int(headers["content-length"])
        answers.append((int(status_line.split()[1]), headers, rest[:size]))
        raw = rest[size:]
    return answers


def _post(path: str, body: bytes, length: int) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {_COSE}\r\n"
    return f"{head}Content-Length: {length}\r\n\r\n".encode() + body


@pytest.mark.parametrize("path", ["/entries", "/cts/entries"])
def test_a_registration_pipelined_before_a_malformed_request_is_answered_first(
    server: str, vendor: PrivateKey, path: str
) -> None:
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub=f"pkg:fw/pipe{path}")
    entry_id = hashlib.sha256(SignedStatement.parse(statement).log_entry()).hexdigest()
    smuggled = (
        b"GET /checkpoint HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    )
    answers = _exchange(server, _post(path, statement, len(statement)) + smuggled)
    assert [status for status, _, _ in answers] == [201 if path == "/entries" else 202, 400]
    (_, first, body), (_, refusal, problem) = answers
    assert first["location"].endswith(entry_id)
    if path == "/cts/entries":
        assert cbor2.loads(body)["OperationId"] == entry_id
    assert refusal["content-type"] == "application/problem+json"
    assert refusal["connection"] == "close"
    assert b'"detail": "the request is not valid HTTP/1.1"' in problem


def test_a_content_length_too_short_gets_the_statement_refused_then_its_tail(
    server: str, vendor: PrivateKey
) -> None:
    """The body is the first ``Content-Length`` bytes (a truncated statement: 400 *Invalid
    Statement*); the bytes sent after them are read as the next request: a 501 (its first
    bytes cannot be read back as a method), then the close."""
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:fw/short")
    truncated = statement[:-16]
    answers = _exchange(server, _post("/entries", truncated, len(truncated)) + b"\xff" * 16)
    assert [status for status, _, _ in answers] == [MalformedInput.http_status, 501]
    (_, first, body), (_, refusal, _) = answers
    assert first["content-type"] == "application/concise-problem-details+cbor"
    problem = Problem.from_cbor(body)
    assert (problem.title, problem.extra["code"]) == ("Invalid Statement", "malformed-statement")
    assert refusal["connection"] == "close"
