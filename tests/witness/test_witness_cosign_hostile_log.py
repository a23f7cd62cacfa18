"""``ironroot witness cosign --log-url`` against a hostile log on a real socket
(tests/hostile_http.py): a checkpoint endless, a gzip bomb, not UTF-8 or of a size beyond
2^63 - 1 is the log's failure (exit 1, ``verification-failed``), never the user's (exit 2),
and the witness is never asked."""

from __future__ import annotations

import pytest

from hostile_http import Answer, HostileServer, bounded, endless_body, gzip_bomb, ok
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Checkpoint, NoteSigner, sign_note
from ironroot.witness import Cosigner

ORIGIN = "hostile.example/log"
SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
WITNESS = Cosigner("w.example/1", PrivateKey.generate(Algorithm.ED25519))


def _note(size: int) -> bytes:
    line = Checkpoint(ORIGIN, 1, bytes(32)).encode().split(b"\n")[2]
    return sign_note(f"{ORIGIN}\n{size}\n".encode() + line + b"\n", [SIGNER])


def _cosign(witness: HostileServer, log: HostileServer) -> int:
    """``ironroot witness cosign`` of ``log``'s checkpoint by ``witness``: its exit code."""
    return main(
        ["witness", "cosign", "--url", witness.url, "--log-url", log.url,
         "--key", SIGNER.verifier().vkey, "--witness-key", WITNESS.verifier().vkey]
    )  # fmt: skip


_LARGE = "{url}/checkpoint is larger than any log resource"
_MALFORMED = "{url}/checkpoint is served wrongly: "


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(endless_body(), _LARGE, id="endless"),
        pytest.param(gzip_bomb(), _LARGE, id="gzip bomb"),
        pytest.param(
            ok(_note(1 << 63)), _MALFORMED + "the checkpoint size is too large", id="2^63"
        ),
        pytest.param(
            ok(_note(3).replace(b"hostile.", b"hostile.\xff", 1)),
            _MALFORMED + "the signed note is not UTF-8",
            id="not UTF-8",
        ),
    ],
)
def test_a_hostile_checkpoint_is_the_log_s_failure(
    answer: Answer, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        HostileServer(attacks={"checkpoint": answer}) as log,
        HostileServer() as witness,
        bounded(30),
    ):
        code = _cosign(witness, log)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err == f"ironroot: verification-failed: {message.format(url=log.url)}\n"
    assert witness.requests == []


def test_a_witness_refusing_the_request_exits_1_with_its_detail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A witness answering 400 refuses the request it was sent: its refusal (exit 1,
    ``remote-problem``, its problem detail), not a usage error of the command's user (exit 2,
    ``malformed``) — nothing the user typed was wrong."""
    problem = b'{"title": "Bad Request", "status": 400, "detail": "the request is malformed"}'
    refusal = ok(problem, {"Content-Type": "application/problem+json"}, status=400)
    with (
        HostileServer(attacks={"checkpoint": ok(_note(3))}) as log,
        HostileServer(attacks={"add-checkpoint": refusal}) as witness,
        bounded(30),
    ):
        code = _cosign(witness, log)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err == (
        f"ironroot: remote-problem: the witness {witness.url} refused the request (400): "
        "the request is malformed\n"
    )
    assert witness.requests == ["add-checkpoint"]
