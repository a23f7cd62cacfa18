"""The HTTP API in process: SCRAPI flows, problems, C2SP reads, auth, receipts verified offline."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cbor2
import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config
from test_transparency_cts import GatedSigner

from ironroot._trust import system_trust
from ironroot.cose import (
    Problem,
    SignedStatement,
    TransparentStatement,
    create_statement,
    decode_key_set,
    verify_receipt,
    verify_transparent_statement,
)
from ironroot.crypto import Algorithm, PrivateKey, b64url_encode
from ironroot.errors import BadSignature, ConfigError, InvalidProof, NotFound
from ironroot.log import parse_tile_path  # noqa: F401  (the app serves these paths)
from ironroot.merkle import verify_consistency
from ironroot.transparency import ServiceThread, TransparencyService, load_config

COSE = "application/cose"
PROBLEM = "application/concise-problem-details+cbor"


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


def _service(tmp_path: Path, vendor: PrivateKey, **kw: object) -> TransparencyService:
    write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)], **kw)  # type: ignore[arg-type]
    return TransparencyService.open(tmp_path / "data")


@contextmanager
def _client(service: TransparencyService) -> Iterator[httpx.Client]:
    with (
        service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, verify=system_trust()) as c,
    ):
        yield c


@pytest.fixture
def client(tmp_path: Path, vendor: PrivateKey) -> Iterator[httpx.Client]:
    with _client(_service(tmp_path, vendor)) as c:
        yield c


def _stmt(key: PrivateKey, n: int = 0, **kw: object) -> bytes:
    return create_statement(
        key,
        f'{{"n": {n}}}'.encode(),
        iss=VENDOR_ISS,
        sub=f"pkg:fw/{n}",
        **kw,  # type: ignore[arg-type]
    )


def _post(client: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return client.post("/entries", content=body, headers={"Content-Type": COSE, **headers})


def test_register_returns_201_with_a_receipt_that_verifies_offline(
    client: httpx.Client, vendor: PrivateKey
) -> None:
    statement = _stmt(vendor)
    r = _post(client, statement)
    assert r.status_code == 201, r.content
    assert r.headers["content-type"] == COSE
    entry_id = r.headers["location"].rsplit("/", 1)[1]
    keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
    entry = SignedStatement.parse(statement).log_entry()
    receipt = verify_receipt(r.content, entry, keys)
    assert receipt.issuer == "https://transparency.example"
    # GET /entries/{id} gives the same receipt; the statement carries it in header 394
    assert client.get(f"/entries/{entry_id}").content == r.content
    ts = client.get(f"/entries/{entry_id}/statement")
    assert ts.status_code == 200
    parsed = verify_transparent_statement(ts.content, keys)
    assert parsed.receipts == (r.content,)


def test_duplicate_registration_is_idempotent(client: httpx.Client, vendor: PrivateKey) -> None:
    statement = _stmt(vendor)
    a = _post(client, statement)
    b = _post(client, statement)
    assert a.headers["location"] == b.headers["location"]
    assert client.get("/health").json()["tree_size"] == 1


def test_receipt_for_another_statement_does_not_verify(
    client: httpx.Client, vendor: PrivateKey
) -> None:
    s1, s2 = _stmt(vendor, 1), _stmt(vendor, 2)
    r1 = _post(client, s1)
    _post(client, s2)
    keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
    with pytest.raises((BadSignature, InvalidProof)):
        verify_receipt(r1.content, SignedStatement.parse(s2).log_entry(), keys)


def test_unknown_entry_is_404_problem(client: httpx.Client) -> None:
    r = client.get("/entries/" + "ab" * 32)
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    assert Problem.from_cbor(r.content).title == "Not Found"


def test_malformed_locator_is_400(client: httpx.Client) -> None:
    r = client.get("/entries/not-an-id")
    assert r.status_code == 400
    assert Problem.from_cbor(r.content).title == "Invalid locator"


@pytest.mark.parametrize(
    ("body", "status", "title"),
    [
        (b"\xff\x00", 400, None),
        (cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"", b""])), 400, None),
    ],
)
def test_malformed_statement_is_400_problem(
    client: httpx.Client, body: bytes, status: int, title: str | None
) -> None:
    r = _post(client, body)
    assert r.status_code == status
    assert r.headers["content-type"] == PROBLEM
    assert Problem.from_cbor(r.content).detail


def test_bad_signature_is_400(client: httpx.Client, vendor: PrivateKey) -> None:
    data = bytearray(_stmt(vendor))
    data[-2] ^= 0x40
    r = _post(client, bytes(data))
    assert r.status_code == 400
    assert Problem.from_cbor(r.content).title == BadSignature.title


def test_unknown_issuer_is_400(client: httpx.Client) -> None:
    r = _post(client, _stmt(PrivateKey.generate(Algorithm.ES256)))
    assert r.status_code == 400
    assert Problem.from_cbor(r.content).title == "Unknown Issuer"


def test_problem_is_json_when_client_accepts_only_json(client: httpx.Client) -> None:
    r = client.post(
        "/entries",
        content=b"\xff",
        headers={"Content-Type": COSE, "Accept": "application/json"},
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    body = json.loads(r.content)
    assert body["status"] == 400
    assert body["title"]


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("application/json, application/cbor;q=0", "application/problem+json"),
        (
            "application/problem+json, application/concise-problem-details+cbor; q=0.0",
            "application/problem+json",
        ),
        ("application/json;q=0", "application/concise-problem-details+cbor"),
        (
            "application/json;q=0.5, application/cbor;q=0.1",
            "application/concise-problem-details+cbor",
        ),
        ("application/json;q=oops, application/cbor", "application/concise-problem-details+cbor"),
    ],
)
def test_a_problem_is_in_a_form_the_client_accepts(
    client: httpx.Client, accept: str, media: str
) -> None:
    # q=0 says "not this one": it was read as accepting CBOR (or JSON) all the same
    r = client.post("/entries", content=b"\xff", headers={"Content-Type": COSE, "Accept": accept})
    assert (r.status_code, r.headers["content-type"]) == (400, media)
    problem = Problem.from_json(r.content) if "json" in media else Problem.from_cbor(r.content)
    assert problem.error(r.status_code).code == "malformed-statement"


@pytest.mark.parametrize(
    "headers", [{"Content-Type": "text/plain"}, {}], ids=["another type", "no type"]
)
def test_wrong_media_type_is_415(
    client: httpx.Client, vendor: PrivateKey, headers: dict[str, str]
) -> None:
    r = client.post(
        "/entries", content=_stmt(vendor), headers={"Accept": "application/json", **headers}
    )
    assert r.status_code == 415
    problem = r.json()
    assert (problem["status"], problem["code"], problem["title"]) == (
        415,
        "unsupported-media-type",
        "Unsupported Media Type",
    )
    assert problem["detail"] == "the request body must be application/cose"


def test_oversized_body_is_413(tmp_path: Path, vendor: PrivateKey) -> None:
    with _client(_service(tmp_path, vendor, max_statement_bytes=500)) as client:
        r = _post(client, b"\x00" * 600)
        assert r.status_code == 413
        assert Problem.from_cbor(r.content).title == "Payload Too Large"


def test_bearer_token_required(tmp_path: Path, vendor: PrivateKey) -> None:
    with _client(_service(tmp_path, vendor, tokens=["s3cret-token"])) as client:
        missing = _post(client, _stmt(vendor))
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = _post(client, _stmt(vendor), Authorization="Bearer nope")
        assert wrong.status_code == 401
        ok = _post(client, _stmt(vendor), Authorization="Bearer s3cret-token")
        assert ok.status_code == 201


@pytest.mark.parametrize(
    "given",
    ["s3cret-toke", "s3cret-tokenn", "s3cret-tokeN", "other-token", "x" * 4096, "s3cret-token2"],
    ids=["prefix", "longer", "same-length", "the-other-s-prefix", "long", "extended-other"],
)
def test_a_token_of_another_length_or_value_is_refused(
    tmp_path: Path, vendor: PrivateKey, given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token check compared the given bytes with each token by ``hmac.compare_digest``,
    whose time tells whether the lengths differ: a client learned each token's length. It
    now compares SHA-256 digests, 32 bytes on both sides, whatever was sent; right tokens
    still pass and every other value, of any length, is refused."""
    import hmac

    from ironroot.transparency import _app

    lengths: list[tuple[int, int]] = []
    compare = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        lengths.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(_app.hmac, "compare_digest", recording)
    service = _service(tmp_path, vendor, tokens=["s3cret-token", "other-token-2"])
    with _client(service) as client:
        wrong = _post(client, _stmt(vendor, 1), Authorization=f"Bearer {given}")
        assert wrong.status_code == 401
        problem = Problem.from_cbor(wrong.content)
        assert (problem.extra["code"], problem.detail) == (
            "unauthorized",
            "the bearer token is not valid",
        )
        for n, right in enumerate(["s3cret-token", "other-token-2"], start=2):
            ok = _post(client, _stmt(vendor, n), Authorization=f"Bearer {right}")
            assert ok.status_code == 201
    assert lengths
    assert set(lengths) == {(32, 32)}


@pytest.mark.parametrize(
    "fields",
    [
        ("Bearer s3cret-token", "Bearer nope"),
        ("Bearer nope", "Bearer s3cret-token"),
        ("Bearer s3cret-token", "Bearer s3cret-token"),
    ],
    ids=["valid first", "valid second", "the same twice"],
)
def test_two_authorization_fields_are_refused(
    tmp_path: Path, vendor: PrivateKey, fields: tuple[str, str]
) -> None:
    # RFC 9110 §11.6.2 allows one: the first was believed here, where a proxy in front that
    # checked or replaced the token may have read the other
    with _client(_service(tmp_path, vendor, tokens=["s3cret-token"])) as client:
        r = client.post(
            "/entries",
            content=_stmt(vendor),
            headers=[("Content-Type", COSE), *(("Authorization", f) for f in fields)],
        )
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        problem = Problem.from_cbor(r.content)
        assert (problem.title, problem.extra["code"]) == ("Unauthorized", "unauthorized")
        assert problem.detail == "the request has more than one Authorization field"
        assert client.get("/health").json()["tree_size"] == 0


@pytest.mark.parametrize(
    "token", [" s3cret", "s3cret\t", "s3c\x00ret", "s\u00e9cret", "s3cret\u00a0", "s3c\nret"]
)
def test_a_token_no_client_can_present_is_a_configuration_error(
    tmp_path: Path, vendor: PrivateKey, token: str
) -> None:
    # The Authorization field's value is stripped, and read as Latin-1 then compared in
    # UTF-8: such a token was accepted and refused every registration (401)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)], tokens=["ok"])
    config = data / "ironroot.toml"
    tokens = f'write_tokens = ["ok", {json.dumps(token)}]'  # TOML reads JSON's escapes
    config.write_text(config.read_text().replace('write_tokens = ["ok"]', tokens))
    with pytest.raises(ConfigError) as raised:
        load_config(data)
    assert raised.value.detail == f"{config}: " + (
        "auth.write_tokens[1] cannot be sent as 'Authorization: Bearer <token>': a token is"
        " printable ASCII, without spaces at either end"
    )
    assert token.strip() not in str(raised.value)  # a secret is never in a message


def test_cel_policy_rejection_is_400_rejected(tmp_path: Path, vendor: PrivateKey) -> None:
    with _client(_service(tmp_path, vendor, policy='sub.startsWith("pkg:fw/1")')) as client:
        assert _post(client, _stmt(vendor, 1)).status_code == 201
        r = _post(client, _stmt(vendor, 2))
        assert r.status_code == 400
        assert Problem.from_cbor(r.content).title == "Rejected"


def test_two_receipt_algorithms_give_two_receipts(tmp_path: Path, vendor: PrivateKey) -> None:
    with _client(_service(tmp_path, vendor, receipt_algorithms=["ES384", "ML-DSA-87"])) as client:
        r = _post(client, _stmt(vendor))
        assert r.status_code == 201
        entry_id = r.headers["location"].rsplit("/", 1)[1]
        keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
        assert sorted(k.algorithm.label for k in keys.values()) == ["ES384", "ML-DSA-87"]
        ts = client.get(f"/entries/{entry_id}/statement").content
        parsed: TransparentStatement = verify_transparent_statement(ts, keys)
        assert len(parsed.receipts) == 2
        algs = {cbor2.loads(cbor2.loads(x).value[0])[1] for x in parsed.receipts}
        assert algs == {Algorithm.ES384.cose_id, Algorithm.ML_DSA_87.cose_id}


def test_303_then_302_then_200_when_integration_is_slow(tmp_path: Path, vendor: PrivateKey) -> None:
    with _client(_service(tmp_path, vendor, registration_wait=0.0)) as client:
        r = client.post(
            "/entries",
            content=_stmt(vendor),
            headers={"Content-Type": COSE},
            follow_redirects=False,
        )
        assert r.status_code in (201, 303)
        location = r.headers["location"]
        for _ in range(200):
            g = client.get(location, follow_redirects=False)
            if g.status_code == 200:
                break
            assert g.status_code == 302
        assert g.status_code == 200


def test_a_pending_registration_says_when_to_poll(tmp_path: Path, vendor: PrivateKey) -> None:
    # SCRAPI: the 303 and 302 of a registration that runs carry Retry-After, as CTS's 202 does
    write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)], registration_wait=0.0)
    signer = GatedSigner(PrivateKey.generate(Algorithm.ES384))
    service = TransparencyService.open(tmp_path / "data", receipt_signers=[signer])
    with _client(service) as client:
        r = client.post(
            "/entries",
            content=_stmt(vendor),
            headers={"Content-Type": COSE},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert r.headers["retry-after"] == "1"
        g = client.get(r.headers["location"], follow_redirects=False)
        assert g.status_code == 302
        assert g.headers["retry-after"] == "1"
        assert g.headers["location"] == r.headers["location"]
        for what in ("statement", "receipts"):
            pending = client.get(f"{r.headers['location']}/{what}", follow_redirects=False)
            assert pending.status_code == 302
            assert pending.headers["retry-after"] == "1"


@pytest.mark.parametrize("path", ["/tile/0/000.p%2F1", "/tile/entries%2F000.p/1"])
def test_a_tile_named_with_an_encoded_slash_is_refused(
    client: httpx.Client, vendor: PrivateKey, path: str
) -> None:
    # RFC 3986 §2.2: "%2F" is not "/"; the tile was served under that name
    assert _post(client, _stmt(vendor)).status_code == 201
    assert client.get(path.replace("%2F", "/")).status_code == 200
    r = client.get(path)
    assert r.status_code == 400
    problem = Problem.from_cbor(r.content)
    assert (problem.title, problem.extra["code"]) == ("Malformed Input", "malformed")
    assert problem.detail == "not a canonical tile path: it holds an encoded '/'"


def test_configuration_keys_and_openapi(client: httpx.Client) -> None:
    cfg = client.get(
        "/.well-known/transparency-configuration", headers={"Accept": "application/json"}
    ).json()
    assert cfg["issuer"] == "https://transparency.example"
    assert cfg["receipt_algorithms"] == ["ES384"]
    assert cfg["checkpoint_origin"] == "transparency.example"
    assert cfg["checkpoint_keys"][0].startswith("transparency.example+")
    cbor_cfg = cbor2.loads(client.get("/.well-known/transparency-configuration").content)
    assert cbor_cfg["issuer"] == cfg["issuer"]
    keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
    (kid,) = keys
    one = client.get(f"/.well-known/scitt-keys/{kid.hex()}")
    assert one.status_code == 200
    assert cbor2.loads(one.content)[2] == kid
    for other in ("00", kid.hex().upper(), f"%20{kid.hex()}", f"{kid.hex()[:2]}%20{kid.hex()[2:]}"):
        # one name per key; and a typed client reads the 404 as NotFound (it had no code)
        missing = client.get(f"/.well-known/scitt-keys/{other}")
        assert missing.status_code == 404
        problem = Problem.from_cbor(missing.content)
        assert problem.title == "No such key"
        assert isinstance(problem.error(missing.status_code), NotFound)
    spec = client.get("/openapi.json").json()
    assert "/entries" in spec["paths"]
    assert spec["openapi"].startswith("3.")


def test_a_key_is_also_found_by_its_kid_in_unpadded_base64url(client: httpx.Client) -> None:
    """SCRAPI: a kid that is not URL-safe (a thumbprint's bytes) MUST be accepted as its
    unpadded base64url encoding; padded, standard base64 or re-cased, it names no key."""
    keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
    (kid,) = keys
    name = b64url_encode(kid)
    one = client.get(f"/.well-known/scitt-keys/{name}", headers={"Accept": "application/cbor"})
    assert one.status_code == 200
    assert one.headers["content-type"] == "application/cbor"
    assert cbor2.loads(one.content)[2] == kid
    # standard base64 may hold a "/": then no route takes it (a 404 "Not Found" problem)
    standard = base64.b64encode(kid).decode().replace("/", "%2F")
    for other in (f"{name}=", f"{name}%3D", standard, name.swapcase(), name[:-1]):
        missing = client.get(f"/.well-known/scitt-keys/{other}")
        assert missing.status_code == 404, other
        problem = Problem.from_cbor(missing.content)
        assert problem.extra["code"] == "not-found"
        assert isinstance(problem.error(missing.status_code), NotFound)


def test_checkpoint_and_tiles_match_the_receipts(client: httpx.Client, vendor: PrivateKey) -> None:
    for n in range(5):
        assert _post(client, _stmt(vendor, n)).status_code == 201
    note = client.get("/checkpoint").text
    origin, size, _root_b64 = note.split("\n")[:3]
    assert origin == "transparency.example"
    assert int(size) == 5
    tile = client.get("/tile/0/000.p/5")
    assert tile.status_code == 200
    assert len(tile.content) == 5 * 32
    bundle = client.get("/tile/entries/000.p/5")
    assert bundle.status_code == 200
    assert client.get("/tile/0/000.p/6").status_code == 404
    assert client.get("/tile/0/0").status_code == 400
    assert client.get("/tile/0/000").status_code == 404  # no full tile yet


def test_consistency_between_successive_checkpoints(tmp_path: Path, vendor: PrivateKey) -> None:
    service = _service(tmp_path, vendor)
    with _client(service) as client:
        _post(client, _stmt(vendor, 1))
        size1, root1 = service.log.tree_size, service.log.root()
        for n in range(2, 9):
            _post(client, _stmt(vendor, n))
        size2, root2 = service.log.tree_size, service.log.root()
        proof = service.log.consistency_proof(size1, size2)
        verify_consistency(size1, size2, proof, root1, root2)
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof, root2, root1)


def test_ml_dsa_44_checkpoints_are_cosigned_with_ed25519(
    tmp_path: Path, vendor: PrivateKey
) -> None:
    from ironroot.log import NoteVerifier, open_checkpoint

    with _client(_service(tmp_path, vendor, checkpoint_algorithm="ML-DSA-44")) as client:
        assert _post(client, _stmt(vendor)).status_code == 201
        cfg = client.get(
            "/.well-known/transparency-configuration", headers={"Accept": "application/json"}
        ).json()
        vkeys = [NoteVerifier.from_vkey(v) for v in cfg["checkpoint_keys"]]
        assert sorted(v.public_key.algorithm.label for v in vkeys) == ["EdDSA", "ML-DSA-44"]
        note = client.get("/checkpoint").content
        assert note.count("— transparency.example ".encode()) == 2
        for verifier in vkeys:  # each signature verifies on its own
            assert open_checkpoint(note, [verifier]).size == 1


def test_backpressure_answers_503_with_retry_after(tmp_path: Path, vendor: PrivateKey) -> None:
    """Past max_pending entries awaiting integration, registrations are refused, not queued."""
    write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    with (tmp_path / "data" / "ironroot.toml").open("r+") as f:
        text = f.read().replace("[transparency]\n", "[transparency]\nmax_pending = 3\n", 1)
        f.seek(0)
        f.write(text)
    service = TransparencyService.open(tmp_path / "data")  # writer not started: nothing drains
    try:
        for n in range(3):
            service.submit(_stmt(vendor, n))
        assert service.log.in_flight == 3
        with ServiceThread(service) as server, httpx.Client(base_url=server.url) as client:
            r = _post(client, _stmt(vendor, 99))
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1"
            assert Problem.from_cbor(r.content).title == "Service Unavailable"
    finally:
        service.close()
