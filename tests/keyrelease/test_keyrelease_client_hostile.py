"""The key release client (``KeyReleaseClient``, ``ironroot keyrelease challenge|request``)
against a hostile server on a real socket (tests/hostile_http.py).

An answer larger than any the key service gives (endless, a petabyte, a gzip bomb) is the
remote's failure, as it is for the transparency client: ``StorageError`` ``answer-too-large``,
exit 1 with one line naming the service — not ``MalformedInput`` (exit 2: nothing the user
typed was wrong). So is an answer that does not parse (a challenge that is not a JSON
object, a release that is no released key, an admin answer that is not the request's, a
content coding the client cannot undo): ``StorageError`` ``malformed-answer``, exit 1. No
message, and no line on stderr, shows the password of a URL's ``user:password@``. A redirect
(any ``3xx``) is never followed: ``ConfigError`` ``redirect`` (exit 2) naming the status and
where it points, as the transparency client's, the witness client's and the log fetcher's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
from ironroot.errors import ConfigError, StorageError
from ironroot.keyrelease import KeyReleaseClient
from ironroot.keyrelease.tee import TeeKeyPair

TEE = TeeKeyPair.generate("ML-KEM-768")

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
        ("keys/challenge", lambda c: c.challenge()),
        (
            "keys/db-key/release",
            lambda c: c.release(
                "db-key", ear=b"ear", wrapping_key=TEE.public_spki, nonce=bytes(32)
            ),
        ),
    ],
    ids=["challenge", "release"],
)
def test_an_answer_too_large_is_the_remotes_failure(
    answer: str, path: str, call: Callable[[KeyReleaseClient], object]
) -> None:
    with (
        HostileServer(attacks={path: BIG[answer]()}) as server,
        KeyReleaseClient(server.url, timeout=1.0) as client,
        bounded(30),
        pytest.raises(StorageError) as caught,
    ):
        call(client)
    assert type(caught.value) is StorageError
    assert caught.value.code == "answer-too-large"
    assert caught.value.exit_code == 1
    assert caught.value.detail.startswith(f"the key service {server.url} answered ")
    assert server.requests == [path]  # asked once


def test_challenge_exits_1_with_one_line_on_an_answer_too_large(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with HostileServer(attacks={"keys/challenge": endless_body()}) as server, bounded(60):
        code = main(["keyrelease", "challenge", "--url", server.url])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert err.startswith(f"ironroot: answer-too-large: the key service {server.url} ")
    assert err.count("\n") == 1
    assert out == ""


def test_request_exits_1_and_writes_nothing_on_an_answer_too_large(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tee_file, ear, out = tmp_path / "tee.key", tmp_path / "ear.jwt", tmp_path / "released.cbor"
    tee_file.write_bytes(TEE.to_pem())
    ear.write_text("a.b.c\n")
    argv = ["--key", "db-key", "--ear", str(ear), "--tee-key", str(tee_file)]
    argv += ["--nonce", bytes(32).hex(), "--out", str(out)]
    with HostileServer(attacks={"keys/db-key/release": gzip_bomb()}) as server, bounded(60):
        code = main(["keyrelease", "request", "--url", server.url, *argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"ironroot: answer-too-large: the key service {server.url} ")
    assert err.count("\n") == 1
    assert not out.exists()


_RELEASE = "keys/db-key/release"


def _release(client: KeyReleaseClient) -> object:
    return client.release("db-key", ear=b"ear", wrapping_key=TEE.public_spki, nonce=bytes(32))


def _remove(client: KeyReleaseClient) -> object:
    client.remove_verifier("v1", identity="officer", credential=b"pw")
    return None


def _prune(client: KeyReleaseClient) -> object:
    return client.prune_audit(5, identity="officer", credential=b"pw")


@pytest.mark.parametrize(
    ("path", "answer", "call", "why"),
    [
        pytest.param(
            "keys/challenge",
            ok(b"<html>a proxy's page</html>"),
            lambda c: c.challenge(),
            "answered a challenge that is not JSON",
            id="challenge not JSON",
        ),
        pytest.param(
            "keys/challenge",
            ok(b"[" * 100_000),
            lambda c: c.challenge(),
            "answered a challenge that is not JSON",
            id="challenge nested too deep",
        ),
        pytest.param(
            "keys/challenge",
            ok(b'["nonce"]'),
            lambda c: c.challenge(),
            "answered a challenge that is not a JSON object",
            id="challenge not an object",
        ),
        pytest.param(
            "keys/challenge",
            ok(b'{"nonce": "not base64url!"}'),
            lambda c: c.challenge(),
            "answered a challenge without a nonce: ",
            id="challenge without a nonce",
        ),
        pytest.param(
            _RELEASE,
            ok(b"not a released key", {"Content-Type": "application/cbor"}),
            _release,
            "answered a release that is not a released key: ",
            id="release not a released key",
        ),
        pytest.param(
            "keys/challenge",
            ok(b"{}", {"Content-Encoding": "br"}),
            lambda c: c.challenge(),
            "answered POST /keys/challenge in a form this client cannot read",
            id="unknown content coding",
        ),
        pytest.param(
            "keys/challenge",
            ok(b"not gzip at all", {"Content-Encoding": "gzip"}),
            lambda c: c.challenge(),
            "answered POST /keys/challenge in a form this client cannot read",
            id="gzip that does not decode",
        ),
        pytest.param(
            "admin/verifiers/v1",
            ok(b"<html>"),
            _remove,
            "answered the removal with what is not JSON",
            id="admin answer not JSON",
        ),
        pytest.param(
            "admin/verifiers/v1",
            ok(b'{"name": "v2", "removed": true}'),
            _remove,
            "did not answer the removal of 'v1'",
            id="admin answer of another removal",
        ),
        pytest.param(
            "admin/audit/prune",
            ok(b'{"first_kept": 6, "removed": []}'),
            _prune,
            "did not answer the prune before 5",
            id="admin answer of another prune",
        ),
    ],
)
def test_an_answer_that_does_not_parse_is_the_remotes_failure(
    path: str, answer: Answer, call: Callable[[KeyReleaseClient], object], why: str
) -> None:
    with (
        HostileServer(attacks={path: answer}) as server,
        KeyReleaseClient(server.url, timeout=1.0) as client,
        bounded(30),
        pytest.raises(StorageError) as caught,
    ):
        call(client)
    assert type(caught.value) is StorageError
    assert caught.value.code == "malformed-answer"
    assert caught.value.exit_code == 1
    assert caught.value.detail.startswith(f"the key service {server.url} ")
    assert why in caught.value.detail
    assert server.requests == [path]


def test_challenge_exits_1_with_one_line_on_an_answer_that_is_not_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with HostileServer(attacks={"keys/challenge": ok(b"<html>")}) as server, bounded(60):
        code = main(["keyrelease", "challenge", "--url", server.url])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert err == (
        f"ironroot: malformed-answer: the key service {server.url} answered a challenge that "
        "is not JSON\n"
    )
    assert out == ""


@pytest.mark.parametrize("answer", [endless_body(), ok(b"<html>")], ids=["too large", "not JSON"])
def test_no_message_shows_the_password_of_the_services_url(
    answer: Answer, capsys: pytest.CaptureFixture[str]
) -> None:
    with HostileServer(attacks={"keys/challenge": answer}) as server, bounded(60):
        given = server.url.replace("http://", "http://officer:s3cr3t-pw@")
        with KeyReleaseClient(given, timeout=1.0) as client, pytest.raises(StorageError) as caught:
            client.challenge()
        code = main(["keyrelease", "challenge", "--url", given])
    err = capsys.readouterr().err
    assert "s3cr3t-pw" not in caught.value.detail
    assert caught.value.detail.startswith(f"the key service {server.url} ")
    assert code == 1, err
    assert "s3cr3t-pw" not in err
    assert err.startswith(f"ironroot: {caught.value.code}: the key service {server.url} ")


def _redirected(url: str, status: int, request: str, where: str) -> str:
    return (
        f"the key service {url} answered {request} with {status}, a redirect to {where}: a "
        "key service is asked only at its URL, no redirect is followed; if the service "
        "moved, give its new URL"
    )


@pytest.mark.parametrize(
    ("request_line", "call"),
    [
        ("POST /keys/challenge", lambda c: c.challenge()),
        (f"POST /{_RELEASE}", _release),
        ("DELETE /admin/verifiers/v1", _remove),
        ("POST /admin/audit/prune", _prune),
    ],
    ids=["challenge", "release", "remove verifier", "prune"],
)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_from_the_key_service_is_a_config_error_naming_where_never_followed(
    status: int, request_line: str, call: Callable[[KeyReleaseClient], object]
) -> None:
    """A key service (or a proxy before it) answering any request with a redirect:
    ``ConfigError`` ``redirect`` (exit 2) naming the status and where it points without its
    query; the target is never asked (a 307 or 308 would have it the EAR, the wrapping key or
    an HSM officer's credential). It was a ``malformed-answer`` that named neither."""
    path = request_line.split(" /", 1)[1]
    with HostileServer() as target, bounded(60):
        where = f"{target.url}/moved/{path}"
        with (
            HostileServer(attacks={path: redirect(f"{where}?sig=s3cret", status)}) as server,
            KeyReleaseClient(server.url, timeout=1.0) as client,
            pytest.raises(ConfigError) as caught,
        ):
            call(client)
        assert target.requests == []
    assert type(caught.value) is ConfigError
    assert caught.value.code == "redirect"
    assert caught.value.exit_code == 2
    assert caught.value.detail == _redirected(server.url, status, request_line, f"{where}?(hidden)")
    assert server.requests == [path]


def test_challenge_exits_2_with_one_line_on_a_redirect(capsys: pytest.CaptureFixture[str]) -> None:
    with HostileServer() as target, bounded(60):
        attacks = {"keys/challenge": redirect(f"{target.url}/keys/challenge", 308)}
        with HostileServer(attacks=attacks) as server:
            code = main(["keyrelease", "challenge", "--url", server.url])
        assert target.requests == []
    out, err = capsys.readouterr()
    assert code == 2, err
    expected = _redirected(server.url, 308, "POST /keys/challenge", f"{target.url}/keys/challenge")
    assert err == f"ironroot: redirect: {expected}\n"
    assert out == ""
