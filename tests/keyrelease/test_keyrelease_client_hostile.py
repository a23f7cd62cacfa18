"""The key release client (``KeyReleaseClient``, ``ironroot keyrelease challenge|request``)
against a hostile server on a real socket (tests/hostile_http.py).

An answer larger than any the key service gives (endless, a petabyte, a gzip bomb) is the
remote's failure, as it is for the transparency client: ``StorageError`` ``answer-too-large``,
exit 1 with one line naming the service — not ``MalformedInput`` (exit 2: nothing the user
typed was wrong)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hostile_http import Answer, HostileServer, bounded, endless_body, gzip_bomb, huge_length
from ironroot.cli import main
from ironroot.errors import StorageError
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
