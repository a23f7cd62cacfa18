"""The transparency client puts a caller's entry id into a request's path as one segment.

``receipts(entry_id)`` and ``transparent_statement(entry_id)`` put the id into
``/entries/{id}/...`` as written: ``..`` and ``/`` left ``/entries/``, ``?`` and ``#`` cut the
path short, and ``%`` escapes were decoded by the service. ``transparent_statement`` of
``'../checkpoint?'`` returned the service's checkpoint note, of ``'<id>/receipts?'`` the
receipt list, of ``'%62<rest of id>'`` the entry ``b<rest of id>``. Each id is one
percent-encoded segment now (``ironroot._httpclient.path_segment``): the service answers for
exactly that id, and refuses those that are none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _tx_helpers import VENDOR_ISS, write_config

from http_calls import RecordingTransport
from ironroot.cose import TransparentStatement, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.transparency import (
    RemoteProblem,
    ServiceThread,
    TransparencyClient,
    TransparencyService,
)

pytestmark = pytest.mark.integration

STORE_INDEPENDENT = True  # the client's requests, the same on every store


@dataclass(frozen=True)
class _Served:
    url: str
    entry_id: str
    statement: bytes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = Path(tmp_path_factory.mktemp("paths")) / "data"
    write_config(data, issuers=[(VENDOR_ISS, vendor)])
    statement = create_statement(vendor, b'{"n": 1}', iss=VENDOR_ISS, sub="pkg:fw/1")
    with (
        TransparencyService.open(data) as service,
        ServiceThread(service) as server,
        TransparencyClient(server.url) as client,
    ):
        registered = client.register(statement)
        yield _Served(server.url, registered.entry_id, statement)


def _ask(served: _Served, method: str, entry_id: str) -> tuple[list[bytes], object]:
    transport = RecordingTransport()
    with TransparencyClient(served.url, transport=transport) as client:
        try:
            answer: object = getattr(client, method)(entry_id)
        except RemoteProblem as exc:
            answer = exc
    return transport.paths, answer


_WHAT = {"receipts": "receipts", "transparent_statement": "statement"}


@pytest.mark.parametrize("method", sorted(_WHAT))
@pytest.mark.parametrize(
    ("value", "segment", "status", "title"),
    [
        ("../checkpoint?", "..%2Fcheckpoint%3F", 404, "Not Found"),
        ("../.well-known/scitt-keys?", "..%2F.well-known%2Fscitt-keys%3F", 404, "Not Found"),
        ("{id}/receipts?", "{id}%2Freceipts%3F", 404, "Not Found"),
        ("{id}/statement#", "{id}%2Fstatement%23", 404, "Not Found"),
        ("{id}#", "{id}%23", 400, "Invalid locator"),
        ("%{x}{rest}", "%25{x}{rest}", 400, "Invalid locator"),
        ("..", "%2E%2E", 400, "Invalid locator"),
        (".", "%2E", 400, "Invalid locator"),
        ("", "", 404, "Not Found"),
    ],
)
def test_an_entry_id_is_one_path_segment(
    served: _Served, method: str, value: str, segment: str, status: int, title: str
) -> None:
    """``%{x}{rest}``: the id with its first digit written as a percent escape, which the
    service decoded into the genuine entry's id."""
    fields = {"id": served.entry_id, "x": f"{ord(served.entry_id[0]):02x}"}
    fields["rest"] = served.entry_id[1:]
    paths, answer = _ask(served, method, value.format(**fields))
    assert paths == [f"/entries/{segment.format(**fields)}/{_WHAT[method]}".encode()]
    assert isinstance(answer, RemoteProblem)
    assert type(answer) is RemoteProblem
    assert (answer.status, answer.remote_title) == (status, title)


@pytest.mark.parametrize("method", sorted(_WHAT))
def test_an_unknown_entry_id_is_refused_for_that_id(served: _Served, method: str) -> None:
    unknown = "ab" * 32
    paths, answer = _ask(served, method, unknown)
    assert paths == [f"/entries/{unknown}/{_WHAT[method]}".encode()]
    assert type(answer) is RemoteProblem
    assert answer.status == 404


def test_the_entry_itself_is_still_read(served: _Served) -> None:
    paths, statement = _ask(served, "transparent_statement", served.entry_id)
    assert paths == [f"/entries/{served.entry_id}/statement".encode()]
    assert isinstance(statement, bytes)
    parsed = TransparentStatement.parse(statement)
    assert parsed.statement.payload == b'{"n": 1}'
    paths, receipts = _ask(served, "receipts", served.entry_id)
    assert paths == [f"/entries/{served.entry_id}/receipts".encode()]
    assert isinstance(receipts, tuple)
    assert len(receipts) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://transparency.example",
        "HTTP://transparency.example:8080",
        "http://10.0.0.7",
        "http://localhost.attacker.example",  # a name that only starts like the loopback
        "http://foo.localhost",  # resolved by whatever resolver is asked: not taken as it
        "http://[::ffff:8.8.8.8]",
    ],
)
def test_a_bearer_token_is_never_sent_in_the_clear_to_another_host(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        TransparencyClient(url, token="write-token-0123456789")
    assert info.value.detail == (
        "a bearer token is sent over https://, or to the loopback, only: the transparency "
        "service's URL is plain http:// to another host"
    )
    assert "example" not in info.value.detail  # the URL may carry a password


@pytest.mark.parametrize(
    "url",
    [
        "https://transparency.example",
        "http://127.0.0.1:8000",
        "http://127.9.9.9",
        "http://localhost:8000",
        "http://LOCALHOST.",
        "http://[::1]:8000",
    ],
)
def test_a_bearer_token_goes_over_https_or_to_the_loopback(url: str) -> None:
    TransparencyClient(url, token="write-token-0123456789").close()
    TransparencyClient("http://transparency.example").close()  # no token: nothing to guard
