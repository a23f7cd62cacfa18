"""The transparency client (``TransparencyClient``, ``ironroot statement register|verify``)
against a hostile server on a real socket (tests/hostile_http.py).

An answer larger than any a service gives (endless, a petabyte, a gzip bomb) is the remote's
failure: ``StorageError`` ``answer-too-large``, exit 1 with one line — not
``payload-too-large`` (what the service says of a statement too large), and not exit 2
(nothing the user typed was wrong); so is a configuration that is not a JSON object, or an
answer in a content coding the client cannot undo (``malformed-answer``). No message, and no
line on stderr, shows the password of a URL's ``user:password@``. ``register`` polls a
pending registration as the service's ``Retry-After`` says, bounded by its poll interval below
and the time left of its wait above; one that is not a number of seconds, or beyond an hour,
is ignored; so does ``witness`` while the service answers its checkpoint with 503 (the same
reading of the header, the same bounds). The client's
clock and sleep are the test's: what is counted is the server's requests, not time."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hostile_http import (
    Answer,
    HostileServer,
    bounded,
    endless_body,
    gzip_bomb,
    huge_length,
    ok,
    redirect,
)
from ironroot.cli import main
from ironroot.cose import (
    InclusionProof,
    SignedStatement,
    build_receipt,
    create_statement,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, StorageError, Unreachable
from ironroot.log import NoteVerifier
from ironroot.merkle import leaf_hash
from ironroot.transparency import TransparencyClient
from ironroot.witness import CosignatureVerifier, WitnessPolicy

STORE_INDEPENDENT = True  # a client and a server that is no transparency service

STATEMENT = create_statement(
    PrivateKey.generate(Algorithm.ES256), b"payload", iss="https://vendor", sub="pkg:a"
)
ENTRY_ID = hashlib.sha256(SignedStatement.parse(STATEMENT).log_entry()).hexdigest()

BIG: dict[str, Callable[[], Answer]] = {
    "endless": endless_body,
    "endless chunked": lambda: endless_body(chunked=True),
    "a petabyte": huge_length,
    "gzip bomb": gzip_bomb,
}


@pytest.mark.parametrize("answer", list(BIG))
@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("checkpoint", lambda c: c.checkpoint()),
        (".well-known/scitt-keys", lambda c: c.service_keys()),
        ("entries", lambda c: c.register(STATEMENT)),
    ],
    ids=["checkpoint", "keys", "register"],
)
def test_an_answer_too_large_is_the_remotes_failure(
    answer: str, path: str, call: Callable[[TransparencyClient], object]
) -> None:
    with (
        HostileServer(attacks={path: BIG[answer]()}) as server,
        TransparencyClient(server.url, timeout=1.0) as client,
        bounded(30),
        pytest.raises(StorageError) as caught,
    ):
        call(client)
    assert type(caught.value) is StorageError
    assert caught.value.code == "answer-too-large"
    assert caught.value.exit_code == 1
    assert caught.value.detail.startswith(f"the transparency service {server.url} answered ")
    assert server.requests == [path]  # asked once


@pytest.mark.parametrize(
    ("path", "argv"),
    [
        ("entries", ["statement", "register", "{statement}", "--url", "{url}"]),
        (
            ".well-known/scitt-keys",
            ["statement", "verify", "{statement}", "--service-keys", "{url}"],
        ),
    ],
    ids=["register", "verify"],
)
def test_statement_commands_exit_1_with_one_line_on_an_answer_too_large(
    path: str, argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = tmp_path / "s.cose"
    statement.write_bytes(STATEMENT)
    with HostileServer(attacks={path: endless_body()}) as server, bounded(60):
        code = main([a.format(statement=statement, url=server.url) for a in argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"ironroot: answer-too-large: the transparency service {server.url} ")
    assert err.count("\n") == 1
    assert not (tmp_path / "s.cose.ts").exists()


class _Clock:
    """The client's monotonic clock and sleep: a sleep moves the clock, and is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _pending(retry_after: str | None) -> dict[str, Answer]:
    """A registration that stays pending: 303 to its entry, then 302 at every poll."""
    headers = {"Location": f"/entries/{ENTRY_ID}"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return {"entries": ok(b"", headers, 303), f"entries/{ENTRY_ID}": ok(b"", headers, 302)}


# What a poll waits for each Retry-After, with a poll interval of 0.5 s and a wait of 10 s
RETRY_AFTER_POLLS = pytest.mark.parametrize(
    ("retry_after", "sleeps"),
    [
        pytest.param("3", [3, 3, 3, 1], id="3 s: then the last second of the wait"),
        pytest.param("1", [1] * 10, id="1 s, as Ironroot's service says"),
        pytest.param("30", [10], id="beyond the wait: the rest of the wait"),
        pytest.param("3600", [10], id="an hour: the rest of the wait"),
        pytest.param("0", [0.5] * 20, id="0: the poll interval"),
        pytest.param(None, [0.5] * 20, id="none: the poll interval"),
        pytest.param("3601", [0.5] * 20, id="beyond an hour: ignored"),
        pytest.param("1000000000000", [0.5] * 20, id="10^12: ignored"),
        pytest.param("-1", [0.5] * 20, id="negative: ignored"),
        pytest.param("1.5", [0.5] * 20, id="a fraction: ignored"),
        pytest.param("Mon, 01 Jan 1900 00:00:00 GMT", [0.5] * 20, id="a date: ignored"),
        pytest.param("\x7fsoon", [0.5] * 20, id="garbage: ignored"),
        pytest.param("\xb2", [0.5] * 20, id="a superscript digit: ignored"),
    ],
)


@RETRY_AFTER_POLLS
def test_register_polls_as_retry_after_says_within_its_wait(
    retry_after: str | None, sleeps: list[float]
) -> None:
    clock = _Clock()
    with (
        HostileServer(attacks=_pending(retry_after)) as server,
        TransparencyClient(server.url, timeout=1.0, clock=clock.clock, sleep=clock.sleep) as c,
        bounded(60),
        pytest.raises(StorageError, match=f"entry {ENTRY_ID} was not integrated within 10"),
    ):
        c.register(STATEMENT, poll_interval=0.5, wait=10.0)
    assert clock.sleeps == sleeps
    assert server.requests == ["entries"] + [f"entries/{ENTRY_ID}"] * len(sleeps)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        pytest.param(ok(b"<html>"), "answered a configuration that is not JSON", id="not JSON"),
        pytest.param(
            ok(b"{}", {"Content-Encoding": "br"}),
            "answered GET /.well-known/transparency-configuration in a form this client "
            "cannot read: ",
            id="unknown content coding",
        ),
        pytest.param(
            ok(b"not gzip", {"Content-Encoding": "gzip"}),
            "answered GET /.well-known/transparency-configuration in a form this client "
            "cannot read: ",
            id="gzip that does not decode",
        ),
    ],
)
def test_a_configuration_that_does_not_parse_is_the_remotes_failure(
    answer: Answer, why: str
) -> None:
    path = ".well-known/transparency-configuration"
    with (
        HostileServer(attacks={path: answer}) as server,
        TransparencyClient(server.url, timeout=1.0) as client,
        bounded(30),
        pytest.raises(StorageError) as caught,
    ):
        client.configuration()
    assert type(caught.value) is StorageError
    assert caught.value.code == "malformed-answer"
    assert caught.value.exit_code == 1
    assert caught.value.detail.startswith(f"the transparency service {server.url} {why}")
    assert server.requests == [path]


def test_no_message_shows_the_password_of_the_services_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = tmp_path / "s.cose"
    statement.write_bytes(STATEMENT)
    attacks = {"entries": endless_body(), ".well-known/transparency-configuration": ok(b"<")}
    with HostileServer(attacks=attacks) as server, bounded(60):
        given = server.url.replace("http://", "http://alice:s3cr3t-pw@")
        with TransparencyClient(given, timeout=1.0) as client:
            with pytest.raises(StorageError) as not_json:
                client.configuration()
            with pytest.raises(StorageError) as too_large:
                client.register(STATEMENT)
        code = main(["statement", "register", str(statement), "--url", given])
    err = capsys.readouterr().err
    for caught in (not_json, too_large):
        assert "s3cr3t-pw" not in caught.value.detail
        assert caught.value.detail.startswith(f"the transparency service {server.url} ")
    assert code == 1, err
    assert "s3cr3t-pw" not in err
    assert err.startswith(f"ironroot: answer-too-large: the transparency service {server.url} ")


@RETRY_AFTER_POLLS
def test_witness_polls_a_busy_checkpoint_as_retry_after_says_within_its_wait(
    retry_after: str | None, sleeps: list[float]
) -> None:
    service = PrivateKey.generate(Algorithm.ES256)
    entry = SignedStatement.parse(STATEMENT).log_entry()
    protected = receipt_protected_header(service.algorithm, service.kid, "https://ts", 1)
    signature = service.sign(receipt_to_be_signed(protected, leaf_hash(entry)))
    receipt = build_receipt(protected, signature, InclusionProof(1, 0, ()))
    witness = PrivateKey.generate(Algorithm.ED25519).public_key
    policy = WitnessPolicy((CosignatureVerifier("witness.example/w", witness),), 1)
    log_key = NoteVerifier("log.example/log", PrivateKey.generate(Algorithm.ED25519).public_key)
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    attacks = {
        ".well-known/transparency-configuration": ok(b'{"checkpoint_origin": "log.example/log"}'),
        "checkpoint": ok(b"busy", headers, 503),
    }
    clock = _Clock()
    with (
        HostileServer(attacks=attacks) as server,
        TransparencyClient(
            server.url,
            timeout=1.0,
            log_verifiers=(log_key,),
            clock=clock.clock,
            sleep=clock.sleep,
        ) as c,
        bounded(60),
        pytest.raises(StorageError, match="no witnessed checkpoint covers the receipt yet"),
    ):
        c.witness(
            make_transparent(STATEMENT, [receipt]),
            policy=policy,
            service_keys={service.kid: service.public_key},
            poll_interval=0.5,
            wait=10.0,
        )
    assert clock.sleeps == sleeps
    assert server.requests == [".well-known/transparency-configuration"] + ["checkpoint"] * (
        len(sleeps) + 1
    )


@pytest.mark.parametrize(
    ("path", "body", "call", "why"),
    [
        pytest.param(
            ".well-known/transparency-configuration",
            b'{"issuer": 7}',
            lambda c: c.service_issuer(),
            "answered a configuration whose issuer is not text",
            id="issuer not text",
        ),
        pytest.param(
            ".well-known/transparency-configuration",
            b"{}",
            lambda c: c.log_identity(),
            "answered a configuration with no checkpoint_origin",
            id="no origin",
        ),
        pytest.param(
            ".well-known/transparency-configuration",
            b'{"checkpoint_origin": "o.example/log", "checkpoint_keys": "k"}',
            lambda c: c.log_identity(),
            "answered a configuration with no checkpoint_keys list",
            id="keys not a list",
        ),
        pytest.param(
            ".well-known/transparency-configuration",
            b'{"checkpoint_origin": "o.example/log", "checkpoint_keys": ["not a key"]}',
            lambda c: c.log_identity(),
            "answered a checkpoint key that does not parse: ",
            id="a key that does not parse",
        ),
        pytest.param(
            f"entries/{ENTRY_ID}/receipts",
            b"\xa0",
            lambda c: c.receipts(ENTRY_ID),
            "answered a receipt list that is not an array of receipts",
            id="receipts not an array",
        ),
        pytest.param(
            f"entries/{ENTRY_ID}/receipts",
            b"\xff\xff",
            lambda c: c.receipts(ENTRY_ID),
            "answered a receipt list that is not CBOR: ",
            id="receipts not CBOR",
        ),
    ],
)
def test_every_answer_that_does_not_parse_is_the_remotes_failure(
    path: str, body: bytes, call: Any, why: str
) -> None:
    """Every field of an answer the client reads: what the service sent wrong is its failure
    (exit 1), not the caller's input (``MalformedInput``, exit 2)."""
    with (
        HostileServer(attacks={path: ok(body)}) as server,
        TransparencyClient(server.url, timeout=1.0) as client,
        bounded(30),
        pytest.raises(StorageError) as caught,
    ):
        call(client)
    assert (type(caught.value), caught.value.code) == (StorageError, "malformed-answer")
    assert caught.value.detail.startswith(f"the transparency service {server.url} {why}")


def _redirected(url: str, status: int, request: str, where: str) -> str:
    return (
        f"the transparency service {url} answered {request} with {status}, a redirect to "
        f"{where}: a transparency service is asked only at its URL, no redirect is followed; "
        "if the service moved, give its new URL"
    )


# Each request of the client, and its path: a redirect from any is unexpected. Registering
# also stands for the register flow's poll (GET /entries/{id}), where 302 is the protocol's
# "still running" and every other 3xx unexpected (test below).
REQUESTS = pytest.mark.parametrize(
    ("request_line", "call"),
    [
        ("POST /entries", lambda c: c.register(STATEMENT)),
        ("GET /checkpoint", lambda c: c.checkpoint()),
        ("GET /.well-known/scitt-keys", lambda c: c.service_keys()),
        ("GET /.well-known/transparency-configuration", lambda c: c.configuration()),
        (f"GET /entries/{ENTRY_ID}/receipts", lambda c: c.receipts(ENTRY_ID)),
        (f"GET /entries/{ENTRY_ID}/statement", lambda c: c.transparent_statement(ENTRY_ID)),
    ],
    ids=["register", "checkpoint", "keys", "configuration", "receipts", "statement"],
)


@REQUESTS
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_from_the_service_is_a_config_error_naming_where_never_followed(
    status: int, request_line: str, call: Callable[[TransparencyClient], object]
) -> None:
    """A service (or a proxy before it) answering a redirect where SCRAPI has none:
    ``ConfigError`` ``redirect`` (exit 2), as the log fetcher's and the witness client's,
    naming the status and where it points without its query; the target is never asked.
    It was ``RemoteProblem`` (exit 1), which named neither the cause nor the target."""
    path = request_line.split(" /", 1)[1]
    with HostileServer() as target, bounded(60):
        where = f"{target.url}/moved/{path}"
        with (
            HostileServer(attacks={path: redirect(f"{where}?token=s3cret", status)}) as server,
            TransparencyClient(server.url, timeout=1.0) as client,
            pytest.raises(ConfigError) as caught,
        ):
            call(client)
        assert target.requests == []
    assert type(caught.value) is ConfigError
    assert caught.value.code == "redirect"
    assert caught.value.exit_code == 2
    assert caught.value.detail == _redirected(server.url, status, request_line, f"{where}?(hidden)")
    assert server.requests == [path]


@pytest.mark.parametrize("status", [301, 303, 307, 308])
def test_a_poll_answered_with_another_redirect_than_302_is_a_config_error(status: int) -> None:
    """The register flow's own redirects are SCRAPI's (``303`` to the entry, then ``302``
    while it runs, tested above); any other at a poll is unexpected: ``ConfigError``
    ``redirect``, and its target never asked."""
    poll = f"entries/{ENTRY_ID}"
    with HostileServer() as target, bounded(60):
        attacks = {
            "entries": ok(b"", {"Location": f"/{poll}"}, 303),
            poll: redirect(f"{target.url}/elsewhere", status),
        }
        clock = _Clock()
        with (
            HostileServer(attacks=attacks) as server,
            TransparencyClient(server.url, timeout=1.0, clock=clock.clock, sleep=clock.sleep) as c,
            pytest.raises(ConfigError) as caught,
        ):
            c.register(STATEMENT)
        assert target.requests == []
    assert (type(caught.value), caught.value.code, caught.value.exit_code) == (
        ConfigError,
        "redirect",
        2,
    )
    assert caught.value.detail == _redirected(
        server.url, status, f"GET /{poll}", f"{target.url}/elsewhere"
    )
    assert server.requests == ["entries", poll]


def test_statement_register_exits_2_with_one_line_on_a_redirect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = tmp_path / "s.cose"
    statement.write_bytes(STATEMENT)
    with HostileServer() as target, bounded(60):
        attacks = {"entries": redirect(f"{target.url}/entries", 307)}
        with HostileServer(attacks=attacks) as server:
            code = main(["statement", "register", str(statement), "--url", server.url])
        assert target.requests == []
    out, err = capsys.readouterr()
    assert code == 2, err
    expected = _redirected(server.url, 307, "POST /entries", f"{target.url}/entries")
    assert err == f"ironroot: redirect: {expected}\n"
    assert out == ""
    assert not (tmp_path / "s.cose.ts").exists()


def _off_origin(url: str, status: int, request: str, where: str) -> str:
    return (
        f"the transparency service {url} answered {request} with {status}, a Location at "
        f"{where}: another origin than the service's (scheme, host and port); a registration "
        "is read only from the service it was sent to, and nothing is asked there"
    )


# A registration's Location that leaves the service's origin (scheme, host, port), and where
# the refusal says it points: {target} is another server, {port} the service's own port.
_OFF_ORIGIN = [
    pytest.param("{target}/entries/{entry}", "{target}/entries/{entry}", id="another port"),
    pytest.param(
        "//localhost:{port}/entries/{entry}",
        "http://localhost:{port}/entries/{entry}",
        id="another host, scheme-relative",
    ),
    pytest.param(
        "https://127.0.0.1:{port}/entries/{entry}?token=s3cret",
        "https://127.0.0.1:{port}/entries/{entry}?(hidden)",
        id="another scheme",
    ),
]
OFF_ORIGIN = pytest.mark.parametrize(("location", "where"), _OFF_ORIGIN)
NO_URL = "http://[::1/entries/{entry}"


def _refused_registration(server: HostileServer) -> tuple[ConfigError, _Clock]:
    """``register`` against ``server``, refused with ``ConfigError``: the error and the
    client's clock."""
    clock = _Clock()
    with (
        TransparencyClient(server.url, timeout=1.0, clock=clock.clock, sleep=clock.sleep) as c,
        pytest.raises(ConfigError) as caught,
    ):
        c.register(STATEMENT)
    return caught.value, clock


def _filled(text: str, target: HostileServer, server: HostileServer) -> str:
    port = server.url.rsplit(":", 1)[1]
    return text.format(target=target.url, port=port, entry=ENTRY_ID)


@pytest.mark.parametrize(
    ("status", "location", "where"),
    [
        *(
            pytest.param(status, *case.values, id=f"{status}-{case.id}")
            for status in (201, 303)
            for case in _OFF_ORIGIN
        ),
        pytest.param(201, NO_URL, "a Location that is no URL", id="201-no URL"),
    ],
)
def test_a_registration_location_off_the_services_origin_is_a_config_error_never_asked(
    status: int, location: str, where: str
) -> None:
    """``POST /entries`` answered with a ``Location`` (SCRAPI's ``303`` to the pending entry,
    or the ``201`` of one registered at once) on another origin than the service's: a front
    end pointing the client elsewhere. The entry id was taken from it whatever its origin;
    now ``ConfigError`` ``redirect`` (exit 2), as every unexpected redirect, naming where it
    points (without its query); nothing is asked there, or anywhere after."""
    with HostileServer() as target, HostileServer() as server, bounded(60):
        server.attacks["entries"] = ok(b"", {"Location": _filled(location, target, server)}, status)
        error, clock = _refused_registration(server)
        assert target.requests == []
    assert (type(error), error.code, error.exit_code) == (ConfigError, "redirect", 2)
    expected = _off_origin(server.url, status, "POST /entries", _filled(where, target, server))
    assert error.detail == expected
    assert server.requests == ["entries"]
    assert clock.sleeps == []


@OFF_ORIGIN
def test_a_polls_302_off_the_services_origin_is_a_config_error_never_asked(
    location: str, where: str
) -> None:
    """The poll's ``302`` (the registration still runs) names the entry's ``Location`` too:
    one on another origin is refused as the ``303``'s is, at the first poll."""
    poll = f"entries/{ENTRY_ID}"
    with HostileServer() as target, HostileServer() as server, bounded(60):
        server.attacks["entries"] = ok(b"", {"Location": f"/{poll}"}, 303)
        server.attacks[poll] = ok(b"", {"Location": _filled(location, target, server)}, 302)
        error, _ = _refused_registration(server)
        assert target.requests == []
    assert (type(error), error.code, error.exit_code) == (ConfigError, "redirect", 2)
    expected = _off_origin(server.url, 302, f"GET /{poll}", _filled(where, target, server))
    assert error.detail == expected
    assert server.requests == ["entries", poll]


@pytest.mark.parametrize("poll", [False, True], ids=["303", "302"])
def test_a_redirects_location_that_is_no_url_is_refused_never_asked(poll: bool) -> None:
    """A ``303`` or ``302`` whose ``Location`` is no URL at all (an IPv6 bracket left open)
    never reaches the client's check: httpx refuses the answer, and the client says it
    cannot reach the service (``Unreachable``, exit 1); nothing more is asked."""
    path = f"entries/{ENTRY_ID}" if poll else "entries"
    with HostileServer() as server, bounded(60):
        server.attacks["entries"] = ok(b"", {"Location": f"/entries/{ENTRY_ID}"}, 303)
        server.attacks[path] = ok(
            b"", {"Location": NO_URL.format(entry=ENTRY_ID)}, 302 if poll else 303
        )
        clock = _Clock()
        with (
            TransparencyClient(server.url, timeout=1.0, clock=clock.clock, sleep=clock.sleep) as c,
            pytest.raises(Unreachable) as caught,
        ):
            c.register(STATEMENT)
    assert (type(caught.value), caught.value.code, caught.value.exit_code) == (
        Unreachable,
        "unreachable",
        1,
    )
    assert caught.value.detail.startswith("cannot reach the transparency service: ")
    assert server.requests == (["entries", path] if poll else ["entries"])


@pytest.mark.parametrize(
    "location",
    [
        "/entries/{entry}",
        "entries/{entry}",
        "http://127.0.0.1:{port}/entries/{entry}",
        "HTTP://127.0.0.1:{port}/entries/{entry}",
        "//127.0.0.1:{port}/entries/{entry}",
    ],
    ids=["absolute path", "relative path", "absolute URL", "scheme in capitals", "scheme-relative"],
)
def test_a_registration_location_on_the_services_origin_is_polled(location: str) -> None:
    """A ``Location`` relative to the request, or absolute on the service's own scheme, host
    and port, is the SCRAPI flow: the client polls the entry (here until its wait ends)."""
    poll = f"entries/{ENTRY_ID}"
    with HostileServer() as server, bounded(60):
        port = server.url.rsplit(":", 1)[1]
        headers = {"Location": location.format(port=port, entry=ENTRY_ID)}
        server.attacks["entries"] = ok(b"", headers, 303)
        server.attacks[poll] = ok(b"", headers, 302)
        clock = _Clock()
        with (
            TransparencyClient(server.url, timeout=1.0, clock=clock.clock, sleep=clock.sleep) as c,
            pytest.raises(StorageError, match=f"entry {ENTRY_ID} was not integrated within 1 s"),
        ):
            c.register(STATEMENT, poll_interval=0.5, wait=1.0)
    assert server.requests == ["entries", poll, poll]


def test_statement_register_exits_2_with_one_line_on_a_location_off_the_services_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = tmp_path / "s.cose"
    statement.write_bytes(STATEMENT)
    with HostileServer() as target, HostileServer() as server, bounded(60):
        where = f"{target.url}/entries/{ENTRY_ID}"
        server.attacks["entries"] = ok(b"", {"Location": where}, 303)
        code = main(["statement", "register", str(statement), "--url", server.url])
        assert target.requests == []
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err == f"ironroot: redirect: {_off_origin(server.url, 303, 'POST /entries', where)}\n"
    assert out == ""
    assert server.requests == ["entries"]
    assert not (tmp_path / "s.cose.ts").exists()
