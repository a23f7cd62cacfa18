"""Release decisions, each asserted twice: the exact error from the service, and the exact
HTTP status, problem title and code from the API."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _kr_helpers import (
    APPROVED,
    DELETE,
    NOW,
    Harness,
    assert_problem,
    evidence,
    make_ear,
    problem_of,
)

from ironroot.attestation import TrustTier
from ironroot.cose import encode_cbor
from ironroot.crypto import Algorithm, PrivateKey, b64url_decode, b64url_encode
from ironroot.errors import (
    BadSignature,
    InvalidReleasePolicy,
    IronrootError,
    KeyBindingMismatch,
    KeyNotExportable,
    LimitExceeded,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    ReleaseDenied,
    ResultExpired,
    StaleNonce,
    UnknownIssuer,
    UnsupportedAlgorithm,
    UnsupportedMediaType,
)
from ironroot.hsm import KeyAttributes, KeyType
from ironroot.keyrelease import (
    RELEASED_KEY_CBOR,
    RELEASED_KEY_JSON,
    KeyReleaseClient,
    ReleasedKey,
)
from ironroot.keyrelease.tee import TeeKeyPair

EarMaker = Callable[[Harness, bytes], bytes]


def _refused(
    harness: Harness,
    name: str,
    make: EarMaker,
    cls: type[IronrootError],
    code: str | None = None,
    *,
    request_nonce: Callable[[Harness], bytes] | None = None,
) -> None:
    """Refused directly (exact class and code) and over HTTP (status, title, code)."""
    for over_http in (False, True):
        nonce = request_nonce(harness) if request_nonce else harness.nonce()
        ear = make(harness, nonce)
        if over_http:
            assert_problem(harness.post(name, ear, nonce), cls, code)
        else:
            with pytest.raises(cls) as info:
                harness.service.release(name, harness.request(ear, nonce))
            assert info.type is cls
            assert info.value.code == (code or cls.code)


# --- accepted releases ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cel-key", "azure-key"])
def test_release_unwraps_to_the_key(harness: Harness, name: str) -> None:
    nonce = harness.nonce()
    released = harness.service.release(name, harness.request(harness.ear(nonce), nonce))
    assert released.kid == name
    assert released.key_type is KeyType.AES_256
    assert released.alg == "ML-KEM-768+A256KWP"
    assert harness.holds(name, harness.unwrap(released, nonce))


def test_release_over_http_cbor_and_json(harness: Harness) -> None:
    nonce = harness.nonce()
    response = harness.post("azure-key", harness.ear(nonce), nonce)
    assert response.status_code == 200
    assert response.headers["content-type"] == RELEASED_KEY_CBOR
    assert response.headers["cache-control"] == "no-store"
    assert harness.holds(
        "azure-key", harness.unwrap(ReleasedKey.from_cbor(response.content), nonce)
    )

    nonce = harness.nonce()
    response = harness.post("cel-key", harness.ear(nonce, cwt=True), nonce, as_json=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == RELEASED_KEY_JSON
    assert harness.holds("cel-key", harness.unwrap(ReleasedKey.from_json(response.content), nonce))


@pytest.mark.parametrize(
    ("accept", "cbor", "expected"),
    [
        ("application/cbor;q=0, application/json", False, RELEASED_KEY_JSON),
        ("application/cbor;q=0", True, RELEASED_KEY_JSON),
        ("APPLICATION/CBOR", False, RELEASED_KEY_CBOR),
        (RELEASED_KEY_JSON, True, RELEASED_KEY_JSON),
    ],
    ids=["cbor-refused-json-asked", "cbor-refused-alone", "cbor-upper-case", "json-of-cbor"],
)
def test_the_released_key_is_in_the_form_the_accept_field_takes(
    harness: Harness, accept: str, cbor: bool, expected: str
) -> None:
    """RFC 9110 §12.5.1: a media range of quality 0 is "not acceptable", and media types are
    matched without regard to case; the release answered CBOR to a client that had refused
    it (its Accept held "cbor"), and JSON to one that asked for it in capitals."""
    nonce = harness.nonce()
    ear = harness.ear(nonce)
    spki = harness.tee.public_spki
    if cbor:
        body = encode_cbor({"ear": ear, "wrapping_key": spki, "nonce": nonce})
    else:
        body = json.dumps(
            {
                "ear": ear.decode(),
                "wrapping_key": b64url_encode(spki),
                "nonce": b64url_encode(nonce),
            }
        ).encode()
    response = harness.http.post(
        f"{harness.url}/keys/cel-key/release",
        content=body,
        headers={
            "Content-Type": "application/cbor" if cbor else "application/json",
            "Accept": accept,
        },
    )
    assert response.status_code == 200, response.content
    assert response.headers["content-type"] == expected
    assert harness.holds("cel-key", harness.unwrap(ReleasedKey.parse(response.content), nonce))


def test_client_round_trip_and_typed_refusal(harness: Harness) -> None:
    with KeyReleaseClient(harness.url) as client:
        nonce = client.challenge()
        ear = harness.ear(nonce)
        released = client.release(
            "cel-key", ear=ear, wrapping_key=harness.tee.public_spki, nonce=nonce, cbor=False
        )
        assert harness.holds("cel-key", harness.unwrap(released, nonce))
        with pytest.raises(StaleNonce) as info:
            client.release("cel-key", ear=ear, wrapping_key=harness.tee.public_spki, nonce=nonce)
        assert info.value.code == "nonce-reused"


@pytest.mark.parametrize(
    "name",
    ["../keys/challenge?", "..", ".", "cel-key/../cel-key", "cel-key#", "cel-key?", "%63el-key"],
)
def test_a_key_name_is_one_path_segment_of_the_release_request(harness: Harness, name: str) -> None:
    """The client put the key name into ``/keys/{name}/release`` as written: ``..`` and
    ``/`` left the ``/keys/`` path (``../keys/challenge?`` asked for a challenge, whose
    answer the client then failed to read as a released key), ``?`` and ``#`` cut the path
    short. Each name is one percent-encoded segment now, which the service decodes back to
    the name it holds no key by (``NotFound``, naming exactly that name), or, holding a
    ``/``, which none of its routes takes (``NotFound`` too)."""
    with KeyReleaseClient(harness.url) as client:
        nonce = client.challenge()
        ear = harness.ear(nonce)
        with pytest.raises(NotFound) as info:
            client.release(name, ear=ear, wrapping_key=harness.tee.public_spki, nonce=nonce)
    assert type(info.value) is NotFound
    if "/" in name:  # no route of the service holds a "/" in one segment
        assert info.value.detail == "no such resource"
    else:
        assert info.value.detail == f"no releasable key is named {name!r}"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("db-key", "/keys/db-key/release"),
        ("..", "/keys/%2E%2E/release"),
        (".", "/keys/%2E/release"),
        ("../admin/audit/prune?x=", "/keys/..%2Fadmin%2Faudit%2Fprune%3Fx%3D/release"),
        ("k#1 é", "/keys/k%231%20%C3%A9/release"),
        ("k%2F", "/keys/k%252F/release"),
    ],
)
def test_the_client_sends_a_key_name_percent_encoded(name: str, path: str) -> None:
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.raw_path)
        return httpx.Response(404, json={"title": "Not Found", "detail": "no such key"})

    transport = httpx.MockTransport(answer)
    with (
        KeyReleaseClient("https://keys.test", transport=transport) as client,
        pytest.raises(NotFound),
    ):
        client.release(name, ear=b"ear", wrapping_key=b"spki", nonce=bytes(32))
    assert sent == [path.encode()]


def test_the_cli_sends_a_cwt_ear_whole_even_when_it_ends_in_a_whitespace_byte(
    harness: Harness, tmp_path: Path
) -> None:
    """A CWT is binary: its last signature byte is 0x0a, 0x20, … in about one EAR in forty.
    The CLI trims the text of a JWT file, never the bytes of a CWT."""
    from ironroot.cli import main

    nonce = harness.nonce()
    ear = harness.ear(nonce, cwt=True)
    while ear[-1:] not in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
        ear = harness.ear(nonce, cwt=True)  # ECDSA: a fresh signature each time
    (tmp_path / "ear.cwt").write_bytes(ear)
    (tmp_path / "tee.key").write_bytes(harness.tee.to_pem())
    out = tmp_path / "released.cbor"
    args = ["--url", harness.url, "--key", "cel-key", "--ear", str(tmp_path / "ear.cwt")]
    args += ["--tee-key", str(tmp_path / "tee.key"), "--nonce", nonce.hex(), "--out", str(out)]
    assert main(["keyrelease", "request", *args]) == 0
    assert harness.holds("cel-key", harness.unwrap(ReleasedKey.parse(out.read_bytes()), nonce))


@pytest.mark.parametrize("kind", ["ML-KEM-1024", "RSA-3072"])
def test_release_to_other_wrapping_key_kinds(harness: Harness, kind: str) -> None:
    tee = TeeKeyPair.generate(kind)
    nonce = harness.nonce()
    ear = harness.ear(nonce, tee=tee)
    released = harness.service.release("azure-key", harness.request(ear, nonce, tee=tee))
    assert released.alg.startswith(kind.split("-")[0])
    assert harness.holds("azure-key", harness.unwrap(released.to_cbor(), nonce, tee=tee))


def test_warning_is_enough_where_the_key_allows_it(harness: Harness) -> None:
    nonce = harness.nonce()
    ear = harness.ear(nonce, status=TrustTier.WARNING)
    released = harness.service.release("warning-key", harness.request(ear, nonce))
    key = harness.tee.unwrap(
        released, nonce=nonce, hsm_roots=harness.hsm_roots, now=harness.clock.now
    )
    assert key.key_type is KeyType.HMAC_SHA384
    assert harness.holds("warning-key", key.material)


# --- the EAR ------------------------------------------------------------------------------------


def test_expired_ear(harness: Harness) -> None:
    old = dt.datetime(2026, 6, 1, 11, 0, tzinfo=dt.UTC)
    _refused(harness, "cel-key", lambda h, n: h.ear(n, iat=old, lifetime=600), ResultExpired)


def test_ear_issued_in_the_future(harness: Harness) -> None:
    later = dt.datetime(2026, 6, 1, 13, 0, tzinfo=dt.UTC)
    _refused(harness, "cel-key", lambda h, n: h.ear(n, iat=later), ResultExpired)


@pytest.mark.parametrize(
    ("before", "lifetime"),
    [(dt.timedelta(seconds=61), 600), (dt.timedelta(days=300), 400 * 86400)],
    ids=["a-minute-and-a-second", "300-days-with-a-long-life"],
)
def test_ear_issued_before_the_nonce_it_answers(
    harness: Harness, before: dt.timedelta, lifetime: int
) -> None:
    """An EAR whose ``iat`` is earlier than the HSM issued the nonce its evidence binds
    contradicts itself (the evidence quoted a nonce that did not exist yet): a back-dated or
    made-up result, refused however long it claims to live. The nonce is issued at ``NOW``."""
    _refused(
        harness,
        "cel-key",
        lambda h, n: h.ear(n, iat=NOW - before, lifetime=lifetime),
        ResultExpired,
        "result-predates-nonce",
    )


def test_an_ear_issued_a_minute_before_the_nonce_is_within_the_clock_skew(
    harness: Harness,
) -> None:
    nonce = harness.nonce()
    ear = harness.ear(nonce, iat=NOW - dt.timedelta(seconds=60))
    released = harness.service.release("cel-key", harness.request(ear, nonce))
    assert harness.holds("cel-key", harness.unwrap(released, nonce))


def test_ear_without_expiry(harness: Harness) -> None:
    _refused(
        harness,
        "cel-key",
        lambda h, n: h.ear(n, lifetime=None),
        ResultExpired,
        "result-no-expiry",
    )


@pytest.mark.parametrize("status", [TrustTier.WARNING, TrustTier.CONTRAINDICATED, TrustTier.NONE])
def test_not_affirming(harness: Harness, status: TrustTier) -> None:
    _refused(
        harness,
        "azure-key",
        lambda h, n: h.ear(n, status=status),
        ReleaseDenied,
        "not-affirming",
    )


def test_contraindicated_even_where_warning_is_allowed(harness: Harness) -> None:
    _refused(
        harness,
        "warning-key",
        lambda h, n: h.ear(n, status=TrustTier.CONTRAINDICATED),
        ReleaseDenied,
        "not-affirming",
    )


def test_unknown_verifier(harness: Harness) -> None:
    _refused(harness, "cel-key", lambda h, n: h.ear(n, signer=h.other_key), UnknownIssuer)


def test_unknown_verifier_cwt(harness: Harness) -> None:
    _refused(harness, "cel-key", lambda h, n: h.ear(n, signer=h.other_key, cwt=True), UnknownIssuer)


def test_altered_ear(harness: Harness) -> None:
    def altered(h: Harness, n: bytes) -> bytes:
        token = h.ear(n)
        head, payload, signature = token.split(b".")
        flipped = signature[:-2] + (b"A" if signature[-2:-1] != b"A" else b"B") + signature[-1:]
        return b".".join((head, payload, flipped))

    _refused(harness, "cel-key", altered, BadSignature)


def test_ear_that_is_not_an_ear(harness: Harness) -> None:
    _refused(harness, "cel-key", lambda h, n: b"not.a.token", MalformedInput)


def test_an_ear_whose_jws_header_names_its_kid_twice_is_refused(harness: Harness) -> None:
    """Signed by the installed verifier, so only the header's form is wrong: a kid given
    twice names one verifier to a reader that keeps the first member and another to one that
    keeps the last, and an Azure policy decides on which verifier signed."""

    def twice(h: Harness, n: bytes) -> bytes:
        _head, payload, _signature = h.ear(n).split(b".")
        kid = b64url_encode(h.verifier_key.kid)
        other = b64url_encode(h.other_key.kid)
        header = f'{{"alg": "ES384", "kid": "{other}", "kid": "{kid}", "typ": "JWT"}}'
        signing_input = b64url_encode(header.encode()).encode() + b"." + payload
        return signing_input + b"." + b64url_encode(h.verifier_key.sign(signing_input)).encode()

    _refused(harness, "azure-key", twice, MalformedInput)


# --- freshness -----------------------------------------------------------------------------------


def test_nonce_never_issued(harness: Harness) -> None:
    _refused(
        harness,
        "cel-key",
        lambda h, n: h.ear(n),
        StaleNonce,
        "nonce-unknown",
        request_nonce=lambda h: bytes(32),
    )


def test_nonce_used_twice(harness: Harness) -> None:
    nonce = harness.nonce()
    ear = harness.ear(nonce)
    harness.service.release("cel-key", harness.request(ear, nonce))
    with pytest.raises(StaleNonce) as info:
        harness.service.release("cel-key", harness.request(ear, nonce))
    assert info.value.code == "nonce-reused"
    assert_problem(harness.post("cel-key", ear, nonce), StaleNonce, "nonce-reused")


def test_one_nonce_sent_by_many_clients_at_once_releases_once(harness: Harness) -> None:
    """Eight connections race one nonce and one EAR: the HSM redeems it once; the others are
    told it was used."""
    nonce = harness.nonce()
    body = encode_cbor(
        {"ear": harness.ear(nonce), "wrapping_key": harness.tee.public_spki, "nonce": nonce}
    )
    start = threading.Barrier(8)

    def send() -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            start.wait()
            return client.post(
                f"{harness.url}/keys/cel-key/release",
                content=body,
                headers={"Content-Type": "application/cbor"},
            )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: send(), range(8)))
    released = [a for a in answers if a.status_code == 200]
    assert len(released) == 1
    assert harness.holds("cel-key", harness.unwrap(released[0].content, nonce))
    for answer in answers:
        if answer is not released[0]:
            assert_problem(answer, StaleNonce, "nonce-reused")


def test_nonce_expired(harness: Harness) -> None:
    nonces = [harness.nonce(), harness.nonce()]
    ears = [harness.ear(n, lifetime=3600) for n in nonces]
    harness.clock.now += dt.timedelta(seconds=301)
    with pytest.raises(StaleNonce) as info:
        harness.service.release("cel-key", harness.request(ears[0], nonces[0]))
    assert info.value.code == "nonce-expired"
    assert_problem(harness.post("cel-key", ears[1], nonces[1]), StaleNonce, "nonce-expired")


def test_ear_for_another_nonce(harness: Harness) -> None:
    """The request names a nonce this service issued; the evidence binds another one."""
    _refused(
        harness,
        "cel-key",
        lambda h, n: h.ear(h.nonce()),
        StaleNonce,
        "nonce-mismatch",
    )


def test_eat_nonce_disagrees_with_the_evidence(harness: Harness) -> None:
    _refused(
        harness,
        "cel-key",
        lambda h, n: h.ear(n, eat_nonce=bytes(32)),
        StaleNonce,
        "nonce-mismatch",
    )


def test_eat_nonce_may_be_absent(harness: Harness) -> None:
    nonce = harness.nonce()
    ear = harness.ear(nonce, eat_nonce=None)
    released = harness.service.release("cel-key", harness.request(ear, nonce))
    assert harness.holds("cel-key", harness.unwrap(released, nonce))


# --- the wrapping key binding --------------------------------------------------------------------


def test_evidence_binds_another_wrapping_key(harness: Harness) -> None:
    other = TeeKeyPair.generate("ML-KEM-768")
    _refused(harness, "cel-key", lambda h, n: h.ear(n, tee=other), KeyBindingMismatch)


def test_evidence_without_report_data(harness: Harness) -> None:
    def ear(h: Harness, n: bytes) -> bytes:
        rd = h.tee.report_data(n)
        return make_ear(h.verifier_key, rd, evidence_claims=evidence(rd, report_data=DELETE))

    _refused(harness, "cel-key", ear, KeyBindingMismatch)


def test_report_data_of_the_wrong_width(harness: Harness) -> None:
    def ear(h: Harness, n: bytes) -> bytes:
        rd = h.tee.report_data(n)[:48]
        return make_ear(h.verifier_key, rd)

    _refused(harness, "cel-key", ear, StaleNonce, "nonce-mismatch")


def test_a_jwt_ear_nested_past_the_limits_is_refused_as_such(harness: Harness) -> None:
    """Evidence claims nested 600 deep, signed by the verifier: once read, the policy's view of
    them was built by a walk that Python's recursion limit stops (an untyped error, no audit
    record, a 500). The JWT is held to a CWT's limits instead."""

    def ear(h: Harness, n: bytes) -> bytes:
        head, body, _signature = h.ear(n).split(b".")
        claims = json.loads(b64url_decode(body.decode()))
        deep: object = 0
        for _ in range(600):
            deep = {"a": deep}
        claims["submods"]["ironroot"]["ear.ironroot.evidence"]["deep"] = deep
        signing_input = head + b"." + b64url_encode(json.dumps(claims).encode()).encode()
        return signing_input + b"." + b64url_encode(h.verifier_key.sign(signing_input)).encode()

    _refused(harness, "cel-key", ear, LimitExceeded)


# --- policies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("  \n ", MalformedInput),
        ('{"version": "1.0.0", "anyOf": [', InvalidReleasePolicy),
        ("status == ", InvalidReleasePolicy),
        # 16 KiB of iat+iat+...: compiled, it killed the service (SIGSEGV) at each release
        # whose thread stack was 2 MiB (ulimit -s unlimited); ironroot._cel.refuse_deep
        ('status == "affirming" && ' + "iat+" * 4000 + "iat > 0", InvalidReleasePolicy),
    ],
    ids=["empty", "bad-json", "bad-cel", "too-deep"],
)
def test_a_key_with_an_empty_or_malformed_policy_is_never_made(
    harness: Harness, text: str, error: type[IronrootError]
) -> None:
    """The HSM compiles the policy when the key is generated: a key that could only ever be
    refused does not exist."""
    before = len(harness.hsm.keys(harness.officer))
    with pytest.raises(error) as info:
        harness.hsm.generate(
            harness.officer,
            KeyType.AES_256,
            KeyAttributes.of(["encrypt"], exportable=True, release_policy=text),
        )
    assert info.type is error
    assert info.value.code == error.code
    assert len(harness.hsm.keys(harness.officer)) == before


def test_key_without_release_policy(harness: Harness) -> None:
    _refused(harness, "no-policy", lambda h, n: h.ear(n), KeyNotExportable)


def test_unknown_key(harness: Harness) -> None:
    with pytest.raises(NotFound):
        harness.service.release("nope", harness.request(b"x", bytes(32)))
    nonce = harness.nonce()
    assert_problem(harness.post("nope", harness.ear(nonce), nonce), NotFound)


def test_cel_policy_claims_fail(harness: Harness) -> None:
    def low_svn(h: Harness, n: bytes) -> bytes:
        rd = h.tee.report_data(n)
        return make_ear(h.verifier_key, rd, evidence_claims=evidence(rd, svns__firmware=2))

    _refused(harness, "cel-key", low_svn, ReleaseDenied, "policy-claims")


def test_cel_policy_missing_claim_denies(harness: Harness) -> None:
    def no_svns(h: Harness, n: bytes) -> bytes:
        rd = h.tee.report_data(n)
        return make_ear(h.verifier_key, rd, evidence_claims=evidence(rd, svns=DELETE))

    _refused(harness, "cel-key", no_svns, ReleaseDenied, "policy-claims")


_COMPARATOR_FAILURES: dict[str, dict[str, Any]] = {
    "equals": {"measurements__pcr2": "ab" * 48},
    "notEquals": {"identity__lifecycle": "manufacturing"},
    "greaterOrEquals": {"svns__firmware": 2},
    "lessOrEquals": {"svns__firmware": 11},
    "greater": {"svns__tcb": 1},
    "less": {"svns__tcb": 9},
    "exists-true": {"identity__ueid": DELETE},
    "exists-false": {"identity__debug_token": "present"},
    "equals-type": {"measurements__pcr2": 7},
    "ordering-type": {"svns__firmware": "5"},
}


@pytest.mark.parametrize("case", sorted(_COMPARATOR_FAILURES))
def test_azure_policy_comparator_fails(harness: Harness, case: str) -> None:
    changes = _COMPARATOR_FAILURES[case]

    def ear(h: Harness, n: bytes) -> bytes:
        rd = h.tee.report_data(n)
        return make_ear(h.verifier_key, rd, evidence_claims=evidence(rd, **changes))

    _refused(harness, "azure-key", ear, ReleaseDenied, "policy-claims")


def test_azure_policy_of_another_authority(harness: Harness) -> None:
    _refused(harness, "elsewhere-key", lambda h, n: h.ear(n), ReleaseDenied, "policy-claims")


def test_azure_policy_boundaries_pass(harness: Harness) -> None:
    """The inclusive comparators accept their bounds."""
    for svn in (3, 10):
        nonce = harness.nonce()
        rd = harness.tee.report_data(nonce)
        ear = make_ear(
            harness.verifier_key,
            rd,
            evidence_claims=evidence(rd, svns__firmware=svn, measurements__pcr2=APPROVED.hex()),
        )
        released = harness.service.release("azure-key", harness.request(ear, nonce))
        assert harness.holds("azure-key", harness.unwrap(released, nonce))


# --- requests ------------------------------------------------------------------------------------


def test_malformed_requests(harness: Harness) -> None:
    url = f"{harness.url}/keys/cel-key/release"
    cases = [
        (b"{not json", "application/json"),
        (b'{"ear": "a.b.c"}', "application/json"),
        (b"\xa1\x61x\x01", "application/cbor"),
        (b'{"ear": "a.b.c", "wrapping_key": 5, "nonce": "AAAA"}', "application/json"),
    ]
    for body, ctype in cases:
        response = harness.http.post(url, content=body, headers={"Content-Type": ctype})
        assert_problem(response, MalformedInput)


@pytest.mark.parametrize(
    "ctype", ["text/plain", "application/x-www-form-urlencoded", "application/not-cbor"]
)
def test_a_request_of_another_media_type_is_a_415(harness: Harness, ctype: str) -> None:
    # before, any type was read as JSON, and any type naming "cbor" as CBOR
    nonce = harness.nonce()
    ear = harness.ear(nonce)
    body = encode_cbor({"ear": ear, "wrapping_key": harness.tee.public_spki, "nonce": nonce})
    response = harness.http.post(
        f"{harness.url}/keys/cel-key/release", content=body, headers={"Content-Type": ctype}
    )
    assert_problem(response, UnsupportedMediaType)
    assert problem_of(response).detail == (
        "the request body must be application/json or application/cbor"
    )


def test_wrapping_key_of_another_algorithm(harness: Harness) -> None:
    nonce = harness.nonce()
    ec = PrivateKey.generate(Algorithm.ES256).public_key.to_pem()
    from cryptography.hazmat.primitives import serialization

    der = serialization.load_pem_public_key(ec).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    response = harness.post("cel-key", harness.ear(nonce), nonce, wrapping_key=der)
    assert_problem(response, UnsupportedAlgorithm)


def test_request_too_large(harness: Harness) -> None:
    response = harness.http.post(
        f"{harness.url}/keys/cel-key/release",
        content=b"\x00" * (600 * 1024),
        headers={"Content-Type": "application/cbor"},
    )
    assert_problem(response, PayloadTooLarge)


def test_wrong_method_names_the_allowed_one(harness: Harness) -> None:
    response = harness.http.get(f"{harness.url}/keys/challenge")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_challenge_and_key_list(harness: Harness) -> None:
    response = harness.http.post(f"{harness.url}/keys/challenge")
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    assert len(response.json()["nonce"]) == 43
    cbor = harness.http.post(
        f"{harness.url}/keys/challenge", headers={"Accept": "application/cbor"}
    )
    assert cbor.status_code == 201
    assert cbor.headers["content-type"] == "application/cbor"
    listed = harness.http.get(f"{harness.url}/keys").json()["keys"]
    assert "cel-key" in listed
    assert "azure-key" in listed
    missing = harness.http.get(
        f"{harness.url}/nothing-here", headers={"Accept": "application/json"}
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("name", "path"), [("..", "/admin/verifiers/%2E%2E"), ("a/b?", "/admin/verifiers/a%2Fb%3F")]
)
def test_the_client_sends_a_verifier_name_as_one_segment(name: str, path: str) -> None:
    """``..`` was quoted as itself and resolved away: ``DELETE /admin/`` for ``..``."""
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.raw_path)
        return httpx.Response(404, json={"title": "Not Found", "detail": "no such verifier"})

    transport = httpx.MockTransport(answer)
    with (
        KeyReleaseClient("https://keys.test", transport=transport) as client,
        pytest.raises(NotFound),
    ):
        client.remove_verifier(name, identity="officer", credential=b"secret")
    assert sent == [path.encode()]
