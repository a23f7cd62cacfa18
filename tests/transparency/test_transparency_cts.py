"""The Microsoft CTS API under ``cts_prefix``, in process: the exact wire format pyscitt reads
(202 + CBOR operation, running/succeeded, entries by EntryId), CTS error codes for every
refusal, and the SCRAPI API beside it unchanged. (pyscitt itself: test_transparency_pyscitt.)"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cbor2
import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot._trust import system_trust
from ironroot.cose import (
    Problem,
    SignedStatement,
    create_statement,
    decode_key_set,
    verify_transparent_statement,
)
from ironroot.crypto import Algorithm, PrivateKey, Verifier
from ironroot.errors import ConfigError, StorageError
from ironroot.transparency import ServiceThread, TransparencyService, load_config

COSE = "application/cose"
PROBLEM = "application/concise-problem-details+cbor"


def _config(data: Path, vendor: PrivateKey, prefix: str = "/cts", **kw: object) -> Path:
    write_config(data, issuers=[(VENDOR_ISS, vendor)], **kw)  # type: ignore[arg-type]
    if prefix:
        text = (data / "ironroot.toml").read_text()
        text = text.replace("[transparency]\n", f'[transparency]\ncts_prefix = "{prefix}"\n', 1)
        (data / "ironroot.toml").write_text(text)
    return data


@contextmanager
def _client(service: TransparencyService) -> Iterator[httpx.Client]:
    with (
        service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, verify=system_trust()) as c,
    ):
        yield c


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture
def client(tmp_path: Path, vendor: PrivateKey) -> Iterator[httpx.Client]:
    data = _config(tmp_path / "data", vendor, policy='sub != "pkg:fw/refused"')
    with _client(TransparencyService.open(data)) as c:
        yield c


def _stmt(key: PrivateKey, n: int = 0, sub: str | None = None) -> bytes:
    return create_statement(key, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=sub or f"pkg:fw/{n}")


def _post(client: httpx.Client, body: bytes, ctype: str = COSE) -> httpx.Response:
    return client.post("/cts/entries", content=body, headers={"Content-Type": ctype})


def _entry_id(statement: bytes) -> str:
    return hashlib.sha256(SignedStatement.parse(statement).log_entry()).hexdigest()


def test_register_poll_and_fetch_as_cts_does(client: httpx.Client, vendor: PrivateKey) -> None:
    statement = _stmt(vendor)
    entry_id = _entry_id(statement)
    r = _post(client, statement)
    assert r.status_code == 202
    assert r.headers["content-type"] == "application/cbor"
    assert r.headers["location"] == f"/cts/operations/{entry_id}"
    operation = cbor2.loads(r.content)
    assert operation["OperationId"] == entry_id
    assert operation["Status"] in ("running", "succeeded")

    g = client.get(f"/cts/operations/{entry_id}")
    assert g.status_code == 200
    # exactly the CTS map, in the CTS key order (scitt-ccf-ledger operation_to_cbor)
    assert list(cbor2.loads(g.content).items()) == [
        ("OperationId", entry_id),
        ("Status", "succeeded"),
        ("EntryId", entry_id),
    ]
    assert g.headers["location"] == f"/cts/entries/{entry_id}"

    receipt = client.get(f"/cts/entries/{entry_id}")
    assert receipt.status_code == 200
    assert receipt.headers["content-type"] == COSE
    assert receipt.content == client.get(f"/entries/{entry_id}").content  # the SCRAPI receipt
    ts = client.get(f"/cts/entries/{entry_id}/statement")
    assert ts.status_code == 200
    assert ts.headers["content-type"] == COSE
    assert ts.content == client.get(f"/entries/{entry_id}/statement").content
    keys = decode_key_set(client.get("/.well-known/scitt-keys").content)
    verify_transparent_statement(ts.content, keys)
    # registering the same statement again is the same operation
    again = _post(client, statement)
    assert again.status_code == 202
    assert list(cbor2.loads(again.content).items()) == [
        ("OperationId", entry_id),
        ("Status", "succeeded"),
        ("EntryId", entry_id),
    ]


def test_scrapi_is_unchanged_beside_cts(client: httpx.Client, vendor: PrivateKey) -> None:
    r = client.post("/entries", content=_stmt(vendor, 7), headers={"Content-Type": COSE})
    assert r.status_code == 201
    assert client.get(f"/cts/operations/{r.headers['location'].rsplit('/', 1)[1]}").is_success


def _problem(response: httpx.Response) -> Problem:
    assert response.headers["content-type"] == PROBLEM
    return Problem.from_cbor(response.content)


@pytest.mark.parametrize(
    ("case", "status", "title", "detail", "code"),
    [
        (
            "refused by the policy",
            400,
            "PolicyFailed",
            "Signed Statement not accepted by the current Registration Policy",
            "policy-rejected",
        ),
        (
            "unknown issuer key",
            400,
            "InvalidInput",
            "no key with this kid is configured for issuer 'https://vendor.example'",
            "unknown-issuer",
        ),
        ("bad signature", 400, "InvalidInput", None, "bad-signature"),
        ("not cbor", 400, "InvalidInput", None, "malformed-statement"),
        ("too large", 413, "PayloadTooLarge", None, "payload-too-large"),
        (
            "not cose",
            415,
            "UnsupportedContentType",
            "the request body must be application/cose",
            "unsupported-media-type",
        ),
        (
            "untyped",
            415,
            "UnsupportedContentType",
            "the request body must be application/cose",
            "unsupported-media-type",
        ),
    ],
)
def test_refusals_are_cts_problems(
    client: httpx.Client,
    vendor: PrivateKey,
    case: str,
    status: int,
    title: str,
    detail: str | None,
    code: str,
) -> None:
    ctype = COSE
    if case == "refused by the policy":
        body = _stmt(vendor, sub="pkg:fw/refused")
    elif case == "unknown issuer key":
        body = _stmt(PrivateKey.generate(Algorithm.ES256))
    elif case == "bad signature":
        good = _stmt(vendor)
        body = good[:-1] + bytes([good[-1] ^ 1])
    elif case == "not cbor":
        body = b"\xff not a statement"
    elif case == "too large":
        body = b"\0" * 70_000
    elif case == "untyped":
        body, ctype = _stmt(vendor), ""
    else:
        body, ctype = _stmt(vendor), "application/json"
    r = _post(client, body, ctype)
    assert r.status_code == status
    problem = _problem(r)
    assert problem.title == title
    assert problem.extra["code"] == code
    if detail is not None:
        assert problem.detail == detail
    assert client.get("/checkpoint").text.split("\n")[1] == "0"  # nothing was registered


def test_operation_ids_and_entries_that_do_not_exist(client: httpx.Client) -> None:
    unknown = "ab" * 32
    for path in (f"/cts/operations/{unknown}", f"/cts/entries/{unknown}"):
        r = client.get(path)
        assert r.status_code == 404
        assert _problem(r).title == "NotFound"
    assert _problem(client.get(f"/cts/operations/{unknown}")).detail == "Invalid operation ID"
    r = client.get("/cts/operations/2.15")  # a CCF transaction id is not one of ours
    assert r.status_code == 400
    assert (_problem(r).title, _problem(r).detail) == ("InvalidInput", "Invalid Operation ID: 2.15")
    r = client.get("/cts/entries/2.15/statement")
    assert r.status_code == 400
    assert _problem(r).title == "InvalidInput"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("%00", "\\x00"),  # NUL
        ("%1B%5B2J", "\\x1b[2J"),  # ESC: a terminal's clear-screen
        ("ab%E2%80%AEcd", "ab\\u202ecd"),  # RIGHT-TO-LEFT OVERRIDE
        ("a%5Cx00", "a\\\\x00"),  # a backslash is escaped too: never read as an escape
        ("%00" * 100, "\\x00" * 80),  # still the first 80 characters
    ],
)
def test_a_malformed_id_is_shown_escaped(client: httpx.Client, raw: str, shown: str) -> None:
    """The detail echoes the id with its controls and bidi overrides escaped, as repr does."""
    for path, what in ((f"/cts/operations/{raw}", "Operation"), (f"/cts/entries/{raw}", "Entry")):
        r = client.get(path)
        assert r.status_code == 400
        problem = _problem(r)
        assert (problem.title, problem.detail) == ("InvalidInput", f"Invalid {what} ID: {shown}")
        assert problem.detail.isprintable()


class GatedSigner:
    """A receipt signer that refuses until opened: integration waits, entries stay pending."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.gate = threading.Event()

    @property
    def algorithm(self) -> Algorithm:
        return self._key.algorithm

    @property
    def kid(self) -> bytes:
        return self._key.kid

    def sign(self, data: bytes) -> bytes:
        if not self.gate.is_set():
            raise StorageError("the receipt signer is offline")
        return self._key.sign(data)

    def verifier(self) -> Verifier:
        return self._key.verifier()


def test_running_until_integrated(tmp_path: Path, vendor: PrivateKey) -> None:
    data = _config(tmp_path / "data", vendor, registration_wait=0.0)
    signer = GatedSigner(PrivateKey.generate(Algorithm.ES384))
    service = TransparencyService.open(data, receipt_signers=[signer])
    with _client(service) as client:
        statement = _stmt(vendor)
        entry_id = _entry_id(statement)
        r = _post(client, statement)
        assert r.status_code == 202
        assert list(cbor2.loads(r.content).items()) == [
            ("OperationId", entry_id),
            ("Status", "running"),
        ]
        g = client.get(f"/cts/operations/{entry_id}")
        assert g.status_code == 202
        assert g.headers["retry-after"] == "1"
        # byte for byte CTS's encoding (its unit test: a2 6b"OperationId" 63"1.2" 66"Status"
        # 67"running"), with our 64-character id
        cts_running = "a26b4f7065726174696f6e4964" + "7840" + entry_id.encode().hex()
        assert g.content == bytes.fromhex(cts_running + "665374617475736772756e6e696e67")
        assert list(cbor2.loads(g.content).items()) == [
            ("OperationId", entry_id),
            ("Status", "running"),
        ]
        for path in (f"/cts/entries/{entry_id}", f"/cts/entries/{entry_id}/statement"):
            pending = client.get(path)
            assert pending.status_code == 503
            assert pending.headers["retry-after"] == "1"
            assert _problem(pending).title == "TransactionNotCached"  # pyscitt retries this
        signer.gate.set()
        deadline = time.monotonic() + 60
        while client.get(f"/cts/operations/{entry_id}").status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        done = cbor2.loads(client.get(f"/cts/operations/{entry_id}").content)
        assert (done["Status"], done["EntryId"]) == ("succeeded", entry_id)
        assert client.get(f"/cts/entries/{entry_id}").status_code == 200


def _registrations(client: httpx.Client) -> dict[str, float]:
    found = re.findall(
        r'^ironroot_registrations_total\{outcome="(\w+)"\} (\S+)$',
        client.get("/metrics").text,
        re.MULTILINE,
    )
    return {outcome: float(value) for outcome, value in found}


def test_cts_registrations_are_counted_by_outcome(tmp_path: Path, vendor: PrivateKey) -> None:
    """``POST <prefix>/entries`` counts in ``ironroot_registrations_total`` as SCRAPI's does:
    a 202 running is ``pending`` (SCRAPI's 303), a 202 succeeded ``integrated`` (its 201)."""
    data = _config(tmp_path / "data", vendor, registration_wait=0.0, policy='sub != "pkg:no"')
    signer = GatedSigner(PrivateKey.generate(Algorithm.ES384))
    service = TransparencyService.open(data, receipt_signers=[signer])
    with _client(service) as client:
        statement = _stmt(vendor)
        entry_id = _entry_id(statement)
        assert cbor2.loads(_post(client, statement).content)["Status"] == "running"
        assert _registrations(client) == {"integrated": 0.0, "pending": 1.0}
        refused = _post(client, _stmt(vendor, 1, sub="pkg:no"))  # a refusal is not counted
        assert refused.status_code == 400
        signer.gate.set()
        deadline = time.monotonic() + 60
        while client.get(f"/cts/operations/{entry_id}").status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert cbor2.loads(_post(client, statement).content)["Status"] == "succeeded"
        assert _registrations(client) == {"integrated": 1.0, "pending": 1.0}
        scrapi = client.post("/entries", content=_stmt(vendor, 2), headers={"Content-Type": COSE})
        assert scrapi.status_code in (201, 303)  # the same counter, the same outcome names
        scrapi_outcome = "integrated" if scrapi.status_code == 201 else "pending"
        expected = {"integrated": 1.0, "pending": 1.0}
        expected[scrapi_outcome] += 1
        assert _registrations(client) == expected


def test_the_write_token_guards_cts_registration(tmp_path: Path, vendor: PrivateKey) -> None:
    data = _config(tmp_path / "data", vendor, tokens=["s3cret"])
    with _client(TransparencyService.open(data)) as client:
        r = _post(client, _stmt(vendor))
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert _problem(r).title == "Unauthorized"
        ok = client.post(
            "/cts/entries",
            content=_stmt(vendor),
            headers={"Content-Type": COSE, "Authorization": "Bearer s3cret"},
        )
        assert ok.status_code == 202


def test_without_a_prefix_there_is_no_cts_api(tmp_path: Path, vendor: PrivateKey) -> None:
    data = _config(tmp_path / "data", vendor, prefix="")
    assert load_config(data).cts_prefix == ""
    with _client(TransparencyService.open(data)) as client:
        assert _post(client, _stmt(vendor)).status_code == 404
        assert client.get(f"/cts/operations/{'ab' * 32}").status_code == 404


@pytest.mark.parametrize(
    "prefix", ["cts", "/cts/", "/", "/entries", "/tile/x", "/.well-known", "/a b", "/a//b", "/.."]
)
def test_a_prefix_that_cannot_carry_the_api_is_refused(
    tmp_path: Path, vendor: PrivateKey, prefix: str
) -> None:
    data = _config(tmp_path / "data", vendor, prefix=prefix)
    with pytest.raises(ConfigError, match="cts_prefix"):
        load_config(data)


def test_a_deeper_prefix(tmp_path: Path, vendor: PrivateKey) -> None:
    data = _config(tmp_path / "data", vendor, prefix="/compat/cts-v1")
    with _client(TransparencyService.open(data)) as client:
        r = client.post(
            "/compat/cts-v1/entries", content=_stmt(vendor), headers={"Content-Type": COSE}
        )
        assert r.status_code == 202


def test_a_store_that_fails_for_now_is_retry_later_for_entries(
    tmp_path: Path, vendor: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database away or a receipt signer offline while pyscitt fetches the entry: it
    retries only the 503 whose title is TransactionNotCached, so any other title (the old
    "Service Unavailable") ended submit_signed_statement_and_wait with an error at once."""
    from ironroot.errors import StoreUnavailable

    data = _config(tmp_path / "data", vendor)
    service = TransparencyService.open(data)
    with _client(service) as client:
        statement = _stmt(vendor)
        entry_id = _entry_id(statement)
        assert _post(client, statement).status_code == 202

        def away(*args: object) -> None:
            raise StoreUnavailable("the database is away", retry_after=3)

        monkeypatch.setattr(service, "receipts", away)
        for path in (f"/cts/entries/{entry_id}", f"/cts/entries/{entry_id}/statement"):
            r = client.get(path)
            assert (r.status_code, r.headers["retry-after"]) == (503, "3")
            problem = _problem(r)
            assert (problem.title, problem.detail) == (
                "TransactionNotCached",
                "the database is away",
            )
            assert problem.extra["code"] == "store-unavailable"
        monkeypatch.undo()
        assert client.get(f"/cts/entries/{entry_id}/statement").status_code == 200


_SECURITY = {  # the headers of every Ironroot problem (ironroot.http.REFUSAL_HEADERS)
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}


def test_every_cts_problem_carries_the_headers_of_every_problem(
    client: httpx.Client, vendor: PrivateKey
) -> None:
    """A CTS problem was answered without them (no ``nosniff``, no CSP, no ``no-store``),
    unlike the same refusal of SCRAPI beside it: a 404 for an unknown operation or entry,
    which a shared cache may keep, said nothing against it."""
    answers = [
        client.get("/cts/operations/2.15"),  # 400
        client.get(f"/cts/operations/{'ab' * 32}"),  # 404
        client.get(f"/cts/entries/{'ab' * 32}"),  # 404
        _post(client, _stmt(vendor), "application/json"),  # 415
        _post(client, _stmt(vendor, sub="pkg:fw/refused")),  # 400 PolicyFailed
    ]
    for r in answers:
        assert r.headers["content-type"] == PROBLEM
        assert {name: r.headers.get(name) for name in _SECURITY} == _SECURITY, r.status_code


def test_an_operation_asked_while_the_store_is_away_says_the_store_s_retry_after(
    tmp_path: Path, vendor: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /operations/{id}`` while the database is away answered ``Retry-After: 1``
    whatever the store said (3 s here), unlike ``GET /entries/{id}`` beside it."""
    from ironroot.errors import StoreUnavailable

    data = _config(tmp_path / "data", vendor)
    service = TransparencyService.open(data)
    with _client(service) as client:
        statement = _stmt(vendor)
        assert _post(client, statement).status_code == 202

        def away(*args: object) -> None:
            raise StoreUnavailable("the database is away", retry_after=3)

        monkeypatch.setattr(service, "receipts", away)
        r = client.get(f"/cts/operations/{_entry_id(statement)}")
        assert (r.status_code, r.headers["retry-after"]) == (503, "3")
        problem = _problem(r)
        assert (problem.detail, problem.extra["code"]) == (
            "the database is away",
            "store-unavailable",
        )
        assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("prefix", ["/cts/..", "/cts/.", "/a/../entries"])
def test_a_prefix_with_a_dot_segment_past_the_first_is_refused(
    tmp_path: Path, vendor: PrivateKey, prefix: str
) -> None:
    """``/cts/..`` was accepted: a client resolves ``<url>/cts/../entries`` to ``/entries``
    (SCRAPI's, which answers 201, not CTS's 202), so the prefix could never be reached."""
    data = _config(tmp_path / "data", vendor, prefix=prefix)
    with pytest.raises(ConfigError) as info:
        load_config(data)
    assert "cts_prefix" in info.value.detail
    assert "'.' or '..'" in info.value.detail


def test_an_entry_not_yet_durable_is_no_running_operation(
    tmp_path: Path, vendor: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operation is ``running`` only once its entry is durable (what ``202`` promises): an
    entry whose store write has not returned is ``NotFound``, as it is after that write fails
    (the ``POST`` then answers ``503`` and nothing was registered). It was ``running`` until
    the write failed, then ``NotFound``: a client that polled the id saw its registration
    accepted, then lost."""
    from ironroot.errors import StoreUnavailable

    data = _config(tmp_path / "data", vendor, registration_wait=0.0)
    service = TransparencyService.open(data)
    store = service.log.store
    entered, release = threading.Event(), threading.Event()
    write = store.write

    def away(batch: object) -> None:
        entered.set()
        release.wait(30)
        raise StoreUnavailable("the database is away", retry_after=2)

    with _client(service) as client:
        monkeypatch.setattr(store, "write", away)
        statement = _stmt(vendor)
        entry_id = _entry_id(statement)
        answers: list[httpx.Response] = []

        def post() -> None:  # a client of its own: an httpx.Client is for one thread
            with httpx.Client(base_url=client.base_url, verify=system_trust(), timeout=60) as own:
                answers.append(_post(own, statement))

        poster = threading.Thread(target=post)
        poster.start()
        try:
            assert entered.wait(30)
            for path in (f"/cts/operations/{entry_id}", f"/entries/{entry_id}"):
                r = client.get(path)
                assert r.status_code == 404, (path, r.status_code)
            r = client.get(f"/cts/operations/{entry_id}")
            assert (_problem(r).title, _problem(r).extra["code"]) == ("NotFound", "not-found")
        finally:
            release.set()
        poster.join(30)
        assert answers[0].status_code == 503
        assert client.get(f"/cts/operations/{entry_id}").status_code == 404
        monkeypatch.setattr(store, "write", write)
        assert _post(client, statement).status_code == 202
        assert client.get(f"/cts/operations/{entry_id}").status_code in (200, 202)
