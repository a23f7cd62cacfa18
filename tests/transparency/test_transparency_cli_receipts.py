"""`ironroot statement verify` and `statement register` against receipts a service should not
have given: another service's (its ``iss``), dated in the future, over another statement, or
no receipt at all; and service keys fetched where anyone on the path could swap them."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ironroot.cli import main
from ironroot.cose import (
    InclusionProof,
    SignedStatement,
    build_receipt,
    create_statement,
    encode_cbor,
    encode_key_set,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, MalformedStatement, UnknownIssuer, VerificationFailed
from ironroot.http import ServerThread, guarded, problem_app
from ironroot.merkle import leaf_hash
from ironroot.transparency import TransparencyClient

pytestmark = pytest.mark.integration

STORE_INDEPENDENT = True  # the CLI, and servers that only answer as a service would

_log = logging.getLogger("ironroot.test-cli-receipts")
TS = "https://ts.example"
VENDOR = PrivateKey.generate(Algorithm.ES256)
SERVICE = PrivateKey.generate(Algorithm.ES256)
STATEMENT = create_statement(VENDOR, b"release 1", iss="https://vendor", sub="pkg:fw")
OTHER = create_statement(VENDOR, b"release 2", iss="https://vendor", sub="pkg:fw")


def _entry(statement: bytes) -> bytes:
    return SignedStatement.parse(statement).log_entry()


def receipt(
    statement: bytes = STATEMENT,
    *,
    iss: str = TS,
    iat: int | None = None,
    signer: PrivateKey = SERVICE,
) -> bytes:
    """A receipt of ``statement`` in a tree of one, signed by ``signer``."""
    when = int(time.time()) if iat is None else iat
    protected = receipt_protected_header(signer.algorithm, signer.kid, iss, when)
    signature = signer.sign(receipt_to_be_signed(protected, leaf_hash(_entry(statement))))
    return build_receipt(protected, signature, InclusionProof(1, 0, ()))


def _run(*args: str | Path) -> int:
    return main([str(a) for a in args])


@dataclass
class FakeService:
    """What a transparency service answers, each part replaceable: the transparent statement
    and receipts it hands back, its keys and the issuer its configuration names."""

    transparent: bytes = field(default_factory=lambda: make_transparent(STATEMENT, [receipt()]))
    keys: bytes = field(default_factory=lambda: encode_key_set([SERVICE.public_key]))
    issuer: str | None = TS
    has_configuration: bool = True
    posts: int = 0
    receipts: Callable[[FakeService], list[bytes]] = lambda svc: [receipt()]
    url: str = ""


@pytest.fixture
def fake() -> Iterator[FakeService]:
    svc = FakeService()
    entry_id = hashlib.sha256(_entry(STATEMENT)).hexdigest()

    async def post(request: Request) -> Response:
        svc.posts += 1
        headers = {"Location": f"/entries/{entry_id}"}
        return Response(b"", 201, media_type="application/cose", headers=headers)

    async def receipts(request: Request) -> Response:
        return Response(encode_cbor(svc.receipts(svc)), media_type="application/cbor")

    async def statement(request: Request) -> Response:
        return Response(svc.transparent, media_type="application/cose")

    async def keys(request: Request) -> Response:
        return Response(svc.keys, media_type="application/cbor")

    async def configuration(request: Request) -> Response:
        if not svc.has_configuration:
            return Response(b"", 404)
        return JSONResponse({} if svc.issuer is None else {"issuer": svc.issuer})

    app = problem_app(
        [
            Route("/entries", guarded(post, _log), methods=["POST"]),
            Route("/entries/{id}/receipts", guarded(receipts, _log), methods=["GET"]),
            Route("/entries/{id}/statement", guarded(statement, _log), methods=["GET"]),
            Route("/.well-known/scitt-keys", guarded(keys, _log), methods=["GET"]),
            Route(
                "/.well-known/transparency-configuration",
                guarded(configuration, _log),
                methods=["GET"],
            ),
        ]
    )
    with ServerThread(app, name="fake-service") as server:
        svc.url = server.url
        yield svc


# --- statement verify --------------------------------------------------------------------


def test_verify_holds_receipts_to_the_service_issuer_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.cbor"
    keys.write_bytes(encode_key_set([SERVICE.public_key]))
    ts = tmp_path / "release.ts"
    ts.write_bytes(make_transparent(STATEMENT, [receipt(iss="https://other.example")]))
    # the key alone (no issuer named): it verifies, as before
    assert _run("statement", "verify", ts, "--service-keys", keys) == 0
    capsys.readouterr()
    assert _run("statement", "verify", ts, "--service-keys", keys, "--service-issuer", TS) == 1
    assert capsys.readouterr().err == (
        "ironroot: NOT VERIFIED: untrusted-service: the receipt is issued by "
        "'https://other.example', not by the transparency service 'https://ts.example'\n"
    )
    ts.write_bytes(make_transparent(STATEMENT, [receipt()]))
    assert _run("statement", "verify", ts, "--service-keys", keys, "--service-issuer", TS) == 0


def test_verify_from_a_service_url_takes_its_issuer_from_the_configuration(
    fake: FakeService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts = tmp_path / "release.ts"
    ts.write_bytes(make_transparent(STATEMENT, [receipt()]))
    assert _run("statement", "verify", ts, "--service-keys", fake.url) == 0
    ts.write_bytes(make_transparent(STATEMENT, [receipt(iss="https://other.example")]))
    capsys.readouterr()
    assert _run("statement", "verify", ts, "--service-keys", fake.url) == 1
    assert capsys.readouterr().err == (
        "ironroot: NOT VERIFIED: untrusted-service: the receipt is issued by "
        "'https://other.example', not by the transparency service 'https://ts.example'\n"
    )
    # a --service-issuer given wins over the configuration's
    assert _run(
        "statement", "verify", ts, "--service-keys", fake.url,
        "--service-issuer", "https://other.example",
    ) == 0  # fmt: skip
    # a service whose configuration names no issuer: the keys alone decide
    fake.issuer = None
    assert _run("statement", "verify", ts, "--service-keys", fake.url) == 0
    # nor does one that publishes no configuration at all (404)
    fake.has_configuration = False
    assert _run("statement", "verify", ts, "--service-keys", fake.url) == 0


def test_verify_refuses_a_receipt_issued_in_the_future(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.cbor"
    keys.write_bytes(encode_key_set([SERVICE.public_key]))
    ts = tmp_path / "release.ts"
    later = int(time.time()) + 3600
    ts.write_bytes(make_transparent(STATEMENT, [receipt(iat=later)]))
    capsys.readouterr()
    # --at judges the statement's own validity; the receipt time is judged against the clock
    assert _run("statement", "verify", ts, "--service-keys", keys, "--at", "2100-01-01") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"ironroot: NOT VERIFIED: receipt-from-the-future: the receipt is issued at {later} "
        "(CWT iat), "
    )
    assert err.endswith("more than the 300 s a clock may be ahead\n")


@pytest.mark.parametrize(
    "source",
    [
        "http://transparency.example",
        "HTTP://transparency.example/",
        "http://10.0.0.7:8443",
        "http://localhost.attacker.example",
        "http://[::ffff:8.8.8.8]/",
        "http://user:secret@transparency.example",
    ],
)
def test_service_keys_over_plain_http_are_refused(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts = tmp_path / "release.ts"
    ts.write_bytes(make_transparent(STATEMENT, [receipt()]))
    capsys.readouterr()
    assert _run("statement", "verify", ts, "--service-keys", source) == 2
    err = capsys.readouterr().err
    assert err == (
        "ironroot: config: --service-keys: keys fetched over plain HTTP could be swapped by "
        "anyone on the path: give an https:// URL, or a key file (http:// is accepted for a "
        "loopback address only)\n"
    )
    assert "secret" not in err


def test_service_keys_over_plain_http_on_loopback_are_fetched(
    fake: FakeService, tmp_path: Path
) -> None:
    ts = tmp_path / "release.ts"
    ts.write_bytes(make_transparent(STATEMENT, [receipt()]))
    port = fake.url.rsplit(":", 1)[1]
    assert _run("statement", "verify", ts, "--service-keys", f"http://localhost:{port}") == 0


# --- statement register ------------------------------------------------------------------


def _register(fake: FakeService, tmp_path: Path, *extra: str | Path) -> int:
    stmt = tmp_path / "release.cose"
    stmt.write_bytes(STATEMENT)
    return _run("statement", "register", stmt, "--url", fake.url, *extra)


def test_register_writes_a_receipt_that_verifies(fake: FakeService, tmp_path: Path) -> None:
    assert _register(fake, tmp_path) == 0
    assert (tmp_path / "release.cose.ts").read_bytes() == fake.transparent


@pytest.mark.parametrize(
    ("lie", "code", "exit_code"),
    [
        # a receipt signed by a key the service does not publish
        ("unknown key", "untrusted-service", 1),
        # a receipt of another statement, put in this statement's transparent form
        ("other statement", "bad-signature", 1),
        # a receipt naming another issuer than the service's configuration
        ("other issuer", "untrusted-service", 1),
        # a receipt dated an hour ahead
        ("future", "receipt-from-the-future", 1),
        # bytes that are no transparent statement
        ("garbage", "malformed-statement", 2),
    ],
)
def test_register_refuses_a_receipt_that_does_not_verify_and_writes_nothing(
    lie: str,
    code: str,
    exit_code: int,
    fake: FakeService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = {
        "unknown key": lambda: receipt(signer=PrivateKey.generate(Algorithm.ES256)),
        "other statement": lambda: receipt(OTHER),
        "other issuer": lambda: receipt(iss="https://other.example"),
        "future": lambda: receipt(iat=int(time.time()) + 3600),
    }
    if lie == "garbage":
        fake.transparent = b"\xd2\x84garbage"
    else:
        fake.transparent = make_transparent(STATEMENT, [bad[lie]()])
    out = tmp_path / "release.cose.ts"
    out.write_bytes(b"kept")  # what was there before stays, whole
    capsys.readouterr()
    assert _register(fake, tmp_path, "--out", out) == exit_code
    assert capsys.readouterr().err.startswith(f"ironroot: {code}: ")
    assert out.read_bytes() == b"kept"


def test_register_checks_the_receipt_list_it_returns_too(fake: FakeService) -> None:
    # the transparent statement is right; the receipt list the service answers is another's
    fake.receipts = lambda svc: [receipt(OTHER)]
    with TransparencyClient(fake.url) as client, pytest.raises(BadSignature):
        client.register(STATEMENT)


def test_register_with_service_keys_given_uses_them_not_the_service_s(
    fake: FakeService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a service that publishes the key it signs with: only the keys the caller trusts count
    impostor = PrivateKey.generate(Algorithm.ES256)
    fake.keys = encode_key_set([impostor.public_key])
    fake.transparent = make_transparent(STATEMENT, [receipt(signer=impostor)])
    fake.receipts = lambda svc: [receipt(signer=impostor)]
    trusted = tmp_path / "trusted.cbor"
    trusted.write_bytes(encode_key_set([SERVICE.public_key]))
    assert _register(fake, tmp_path) == 0  # its own keys: consistent, so it is written
    (tmp_path / "release.cose.ts").unlink()
    capsys.readouterr()
    assert _register(fake, tmp_path, "--service-keys", trusted) == 1
    assert capsys.readouterr().err == (
        "ironroot: untrusted-service: the receipt's kid is not a trusted service key\n"
    )
    assert not (tmp_path / "release.cose.ts").exists()
    # and the library: keys given to the client are the ones it checks with
    with (
        TransparencyClient(fake.url, service_keys={SERVICE.kid: SERVICE.verifier()}) as client,
        pytest.raises(UnknownIssuer) as untrusted,
    ):
        client.register(STATEMENT)
    assert untrusted.value.code == "untrusted-service"
    with (
        TransparencyClient(fake.url, service_issuer="https://other.example") as client,
        pytest.raises(UnknownIssuer, match="not by the transparency service") as other,
    ):
        client.register(STATEMENT)
    assert other.value.code == "untrusted-service"


def test_register_errors_are_typed(fake: FakeService) -> None:
    fake.transparent = b"\x00"
    with TransparencyClient(fake.url) as client, pytest.raises(MalformedStatement):
        client.register(STATEMENT)
    fake.transparent = make_transparent(STATEMENT, [receipt(iat=int(time.time()) + 3600)])
    with TransparencyClient(fake.url) as client, pytest.raises(VerificationFailed) as caught:
        client.register(STATEMENT)
    assert caught.value.code == "receipt-from-the-future"


def test_register_refuses_service_keys_over_plain_http_before_registering(
    fake: FakeService, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert _register(fake, tmp_path, "--service-keys", "http://transparency.example") == 2
    assert capsys.readouterr().err.startswith("ironroot: config: --service-keys: keys fetched ")
    assert fake.posts == 0
    assert not (tmp_path / "release.cose.ts").exists()
