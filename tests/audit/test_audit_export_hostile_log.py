"""``ironroot audit export --log-url URL`` (``fetch_log``) against a hostile log on a real socket
(tests/hostile_http.py): a checkpoint larger than any log resource (endless, a petabyte, a
gzip bomb) or that is no checkpoint at all (not UTF-8, a size beyond 2^63 - 1) is the log's
failure, ``VerificationFailed`` (exit 1, one line), as to ``log verify`` and the monitor:
never the user's ``MalformedInput`` (exit 2), never a traceback, and nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from hostile_http import Answer, HostileServer, bounded, endless_body, gzip_bomb, huge_length, ok
from ironroot.audit._proofs import fetch_log
from ironroot.cli import main
from ironroot.cose import encode_key_set
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import VerificationFailed
from ironroot.log import CONFIG_PATH, Checkpoint, HttpLogFetcher, NoteSigner, sign_note

ORIGIN = "hostile.example/audit-log"
SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
SERVICE_KEY = PrivateKey.generate(Algorithm.ES256)


def _signed(size: int) -> bytes:
    """A checkpoint note the log's key signed, of any size (beyond what ``Checkpoint`` takes)."""
    line = Checkpoint(ORIGIN, 1, bytes(32)).encode().split(b"\n")[2]
    return sign_note(f"{ORIGIN}\n{size}\n".encode() + line + b"\n", [SIGNER])


def _source(path: str) -> bytes | None:
    """The hostile log's identity, honest: its configuration names its key, its receipt keys
    are a key set; everything else is the attack's (or not found)."""
    if path == CONFIG_PATH:
        vkey = SIGNER.verifier().vkey
        return json.dumps({"checkpoint_origin": ORIGIN, "checkpoint_keys": [vkey]}).encode()
    if path == ".well-known/scitt-keys":
        return encode_key_set([SERVICE_KEY.public_key])
    return None


_TOO_LARGE = "/checkpoint is larger than any log resource"
_MALFORMED = "/checkpoint is served wrongly: "

ATTACKS: dict[str, tuple[Callable[[], Answer], str]] = {
    "endless checkpoint": (endless_body, _TOO_LARGE),
    "checkpoint of a petabyte": (huge_length, _TOO_LARGE),
    "gzip bomb checkpoint": (gzip_bomb, _TOO_LARGE),
    "checkpoint of size 2^63": (
        lambda: ok(_signed(1 << 63)),
        _MALFORMED + "the checkpoint size is too large",
    ),
    "checkpoint of size 2^64": (
        lambda: ok(_signed(1 << 64)),
        _MALFORMED + "the checkpoint size is too large",
    ),
    "checkpoint not UTF-8": (
        lambda: ok(_signed(1).replace(b"hostile.example", b"hostile.\xff\xfeexample", 1)),
        _MALFORMED + "the signed note is not UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(ATTACKS))
def test_fetch_log_refuses_a_checkpoint_that_is_none_as_the_logs_failure(case: str) -> None:
    attack, message = ATTACKS[case]
    with (
        HostileServer(_source, {"checkpoint": attack()}) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(30),
        pytest.raises(VerificationFailed) as caught,
    ):
        fetch_log(fetcher, {})
    assert type(caught.value) is VerificationFailed
    assert message in caught.value.detail
    assert server.requests.count("checkpoint") == 1  # asked once


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-hostile-log"))


@pytest.mark.parametrize(
    "case", ["endless checkpoint", "gzip bomb checkpoint", "checkpoint of size 2^63"]
)
def test_audit_export_of_a_hostile_log_exits_1_with_one_line(
    aw: AuditWorld, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    attack, message = ATTACKS[case]
    out = tmp_path / "node.audit"
    at = EXPORTED.isoformat().replace("+00:00", "Z")
    with HostileServer(_source, {"checkpoint": attack()}) as server, bounded(60):
        capsys.readouterr()
        code = main(
            ["audit", "export", NODE, "--fleet", str(aw.fleet.directory),
             "--log-url", server.url, "--out", str(out), "--at", at, "--json"]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert captured.err.startswith("ironroot: verification-failed: "), captured.err
    assert captured.err.count("\n") == 1
    assert message in captured.err
    assert json.loads(captured.out)["error"]["code"] == "verification-failed"
    assert not out.exists()


_KEYS = ".well-known/scitt-keys"

# What the log serves as its transparency configuration or its receipt key set: a document
# that does not parse, or is larger than any log resource, is the log's failure too.
IDENTITY_ATTACKS: dict[str, tuple[str, Callable[[], Answer], str]] = {
    "configuration not JSON": (
        CONFIG_PATH,
        lambda: ok(b"<html>a proxy's error page</html>"),
        "{url}/" + CONFIG_PATH + " is served wrongly: the transparency configuration is not JSON",
    ),
    "configuration a list": (
        CONFIG_PATH,
        lambda: ok(b"[]"),
        "{url}/" + CONFIG_PATH + " is served wrongly: the transparency configuration is not a "
        "JSON object",
    ),
    "configuration endless": (
        CONFIG_PATH,
        endless_body,
        "{url}/" + CONFIG_PATH + " is larger than any log resource",
    ),
    "key set not CBOR": (
        _KEYS,
        lambda: ok(b"<html>a proxy's error page</html>"),
        "{url}/" + _KEYS + " is served wrongly: ",
    ),
    "key set a map": (
        _KEYS,
        lambda: ok(b"\xa0"),
        "{url}/" + _KEYS + " is served wrongly: a COSE Key Set is an array of COSE_Key maps",
    ),
    "key set a gzip bomb": (
        _KEYS,
        gzip_bomb,
        "{url}/" + _KEYS + " is larger than any log resource",
    ),
}


@pytest.mark.parametrize("case", list(IDENTITY_ATTACKS))
def test_fetch_log_refuses_an_identity_that_is_none_as_the_logs_failure(case: str) -> None:
    """A configuration or key set that does not parse was ``MalformedInput`` (exit 2) naming
    no log; it is ``VerificationFailed`` naming the resource's URL."""
    path, attack, message = IDENTITY_ATTACKS[case]
    with (
        HostileServer(_source, {path: attack()}) as server,
        HttpLogFetcher(server.url, timeout=1.0) as fetcher,
        bounded(30),
        pytest.raises(VerificationFailed) as caught,
    ):
        fetch_log(fetcher, {})
    assert type(caught.value) is VerificationFailed
    assert caught.value.detail.startswith(message.format(url=server.url)), caught.value.detail
    assert server.requests.count(path) == 1
    assert "checkpoint" not in server.requests


@pytest.mark.parametrize("case", ["configuration not JSON", "key set not CBOR"])
def test_audit_export_of_a_log_serving_no_identity_exits_1_with_one_line(
    aw: AuditWorld, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, attack, message = IDENTITY_ATTACKS[case]
    out = tmp_path / "node.audit"
    at = EXPORTED.isoformat().replace("+00:00", "Z")
    with HostileServer(_source, {path: attack()}) as server, bounded(60):
        capsys.readouterr()
        code = main(
            ["audit", "export", NODE, "--fleet", str(aw.fleet.directory),
             "--log-url", server.url, "--out", str(out), "--at", at]
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"ironroot: verification-failed: {message.format(url=server.url)}"), err
    assert err.count("\n") == 1
    assert not out.exists()
