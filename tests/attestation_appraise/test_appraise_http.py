"""The attestation HTTP API (challenge, verify, keys), nonces, and policies as data."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from _ar_helpers import NOW, World
from starlette.applications import Starlette

import http_calls
from ironroot.attestation import (
    AR4SI,
    CWT_MEDIA_TYPE,
    DEFAULT_POLICY,
    JWT_MEDIA_TYPE,
    AppraisalPolicy,
    AttestationService,
    EvidenceClaims,
    NonceStore,
    TrustTier,
    appraise,
    create_attestation_app,
    verify_ear,
)
from ironroot.cose import Problem, decode_cbor, decode_key_set, encode_cbor
from ironroot.crypto import Algorithm, PrivateKey, PublicKey, b64url_decode, b64url_encode
from ironroot.errors import ConfigError, StaleNonce
from ironroot.rot import Device

# --- nonces -----------------------------------------------------------------------------------


def test_nonce_is_single_use_and_expires() -> None:
    store = NonceStore(lifetime=60)
    nonce, expires = store.issue(NOW)
    assert len(nonce) == 32
    assert expires == int(NOW.timestamp()) + 60
    store.redeem(nonce, NOW)
    with pytest.raises(StaleNonce) as reused:
        store.redeem(nonce, NOW)
    assert reused.value.code == "nonce-reused"
    late, _ = store.issue(NOW)
    with pytest.raises(StaleNonce) as expired:
        store.redeem(late, NOW + dt.timedelta(seconds=60))
    assert expired.value.code == "nonce-expired"
    with pytest.raises(StaleNonce) as unknown:
        store.redeem(bytes(32), NOW)
    assert unknown.value.code == "nonce-unknown"
    with pytest.raises(StaleNonce):
        store.redeem(b"short", NOW)


@pytest.mark.parametrize("kwargs", [{"lifetime": 0}, {"max_outstanding": 0}, {"lifetime": True}])
def test_nonce_store_config(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        NonceStore(**kwargs)


# --- HTTP -------------------------------------------------------------------------------------


class ApiClient:
    """A synchronous face over httpx's in-process ASGI transport."""

    def __init__(self, app: Starlette) -> None:
        self._app = app

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def run() -> httpx.Response:
            transport = httpx.ASGITransport(app=self._app)
            async with httpx.AsyncClient(transport=transport, base_url="http://verifier") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(run())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._request("POST", path, **kwargs)


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def api(world: World) -> tuple[ApiClient, _Clock, AttestationService]:
    clock = _Clock()
    service = AttestationService(
        endorsements=world.endorsements(),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        nonces=NonceStore(lifetime=120),
        lifetime=900,
        clock=clock,
    )
    return ApiClient(create_attestation_app(service)), clock, service


def _challenge(client: ApiClient) -> bytes:
    response = client.post("/attestation/challenge")
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    return b64url_decode(response.json()["nonce"], what="nonce")


def test_challenge_verify_keys_jwt(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, _ = api
    nonce = _challenge(client)
    body = {"evidence": b64url_encode(good_device.quote(nonce)), "nonce": b64url_encode(nonce)}
    response = client.post("/attestation/verify", json=body)
    assert response.status_code == 200, response.content
    assert response.headers["content-type"] == JWT_MEDIA_TYPE
    jwks = client.get("/attestation/keys").json()
    keys = [PublicKey.from_jwk(k) for k in jwks["keys"]]
    result = verify_ear(response.content, keys, now=NOW)
    assert result.status is TrustTier.AFFIRMING
    assert result.nonce == nonce
    assert result.exp == result.iat + 900


def test_challenge_verify_keys_cbor_cwt(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, _ = api
    challenge = client.post("/attestation/challenge", headers={"Accept": "application/cbor"})
    decoded = decode_cbor(challenge.content)
    assert isinstance(decoded, dict)
    nonce = decoded["nonce"]
    body = encode_cbor({"evidence": good_device.quote(nonce), "nonce": nonce, "format": "ironroot"})
    response = client.post(
        "/attestation/verify",
        content=body,
        headers={"Content-Type": "application/cbor", "Accept": CWT_MEDIA_TYPE},
    )
    assert response.status_code == 200, response.content
    assert response.headers["content-type"] == CWT_MEDIA_TYPE
    key_set = client.get("/attestation/keys", headers={"Accept": "application/cose-key-set"})
    keys = decode_key_set(key_set.content)
    assert verify_ear(response.content, keys, now=NOW).status is TrustTier.AFFIRMING


def test_reused_nonce_is_a_400_problem(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, _ = api
    nonce = _challenge(client)
    body = {"evidence": b64url_encode(good_device.quote(nonce)), "nonce": b64url_encode(nonce)}
    assert client.post("/attestation/verify", json=body).status_code == 200
    again = client.post("/attestation/verify", json=body)
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/concise-problem-details+cbor"
    problem = Problem.from_cbor(again.content)
    assert problem.title == StaleNonce.title
    assert problem.extra["code"] == "nonce-reused"


def test_expired_nonce_is_a_400_problem(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, clock, _ = api
    nonce = _challenge(client)
    clock.now = NOW + dt.timedelta(seconds=121)
    body = {"evidence": b64url_encode(good_device.quote(nonce)), "nonce": b64url_encode(nonce)}
    response = client.post(
        "/attestation/verify", json=body, headers={"Accept": "application/problem+json"}
    )
    assert response.status_code == 400
    problem = json.loads(response.content)
    assert problem["title"] == "Stale Or Mismatching Nonce"
    assert problem["code"] == "nonce-expired"


def test_bad_evidence_is_still_an_ear(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, service = api
    nonce = _challenge(client)
    quote = good_device.quote(bytes(32))  # answers another nonce
    body = {"evidence": b64url_encode(quote), "nonce": b64url_encode(nonce)}
    response = client.post("/attestation/verify", json=body)
    result = verify_ear(response.content, service.public_keys, now=NOW)
    assert result.status is TrustTier.CONTRAINDICATED
    assert result.submods["ironroot"].trust_vector == {
        "instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"evidence": "AA"}',
        b'{"evidence": "A A", "nonce": "AA"}',
        b'{"evidence": "AA", "nonce": "AA", "extra": 1}',
    ],
)
def test_malformed_requests(api: tuple[ApiClient, _Clock, AttestationService], body: bytes) -> None:
    client, _, _ = api
    response = client.post(
        "/attestation/verify", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert Problem.from_cbor(response.content).title == "Malformed Input"


@pytest.mark.parametrize("ctype", ["text/plain", "application/not-cbor", "application/jsonx"])
def test_a_request_of_another_media_type_is_a_415(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device, ctype: str
) -> None:
    # before, any type was read as JSON, and any type naming "cbor" as CBOR
    client, _, _ = api
    nonce = _challenge(client)
    body = {"evidence": b64url_encode(good_device.quote(nonce)), "nonce": b64url_encode(nonce)}
    response = client.post(
        "/attestation/verify", content=json.dumps(body).encode(), headers={"Content-Type": ctype}
    )
    assert response.status_code == 415
    problem = Problem.from_cbor(response.content)
    assert (problem.title, problem.extra["code"]) == (
        "Unsupported Media Type",
        "unsupported-media-type",
    )
    assert problem.detail == "the request body must be application/json or application/cbor"
    # untyped is JSON, and the nonce was not spent by the refusal
    untyped = client.post("/attestation/verify", content=json.dumps(body).encode())
    assert untyped.status_code == 200, untyped.content


def test_unknown_route_and_method(api: tuple[ApiClient, _Clock, AttestationService]) -> None:
    client, _, _ = api
    assert client.get("/attestation/nope").status_code == 404
    refused = client.get("/attestation/verify")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


def test_service_needs_an_es384_key(world: World) -> None:
    with pytest.raises(ConfigError):
        AttestationService(
            endorsements=world.endorsements(),
            signing_key=PrivateKey.generate(Algorithm.ML_DSA_87),
        )


# --- policies as data -------------------------------------------------------------------------

_CLAIMS = EvidenceClaims(
    format="snp",
    measurements={"measurement": b"\x01" * 48},
    report_data=b"\x02" * 64,
    debug=False,
    svns={"guest_svn": 1},
    identity={"product": "Milan"},
    signer="CN=SEV-VCEK",
)


def test_custom_policy_from_toml(world: World) -> None:
    policy = AppraisalPolicy.from_toml(
        """
        [policy]
        name = "lab"
        [[policy.rules]]
        name = "milan-only"
        expression = 'identity.product == "Genoa"'
        category = "hardware"
        code = 97
        reason = "product {format} is not allowed"
        [[policy.rules]]
        name = "fresh"
        expression = "nonce_ok"
        category = "instance-identity"
        code = 96
        reason = "stale"
        gate = true
        """
    )
    assert policy.policy_id.startswith("urn:ironroot:appraisal-policy:lab:")
    assert policy.policy_id != DEFAULT_POLICY.policy_id
    result = appraise(_CLAIMS, world.endorsements(), policy, nonce=b"\x02" * 64, now=NOW)
    appraisal = result.submods["snp"]
    assert appraisal.trust_vector["hardware"] == AR4SI.UNRECOGNIZED_HARDWARE
    assert appraisal.reasons == ("milan-only: product snp is not allowed",)
    assert appraisal.policy_id == policy.policy_id


def test_rule_that_cannot_be_evaluated_fails_closed(world: World) -> None:
    policy = AppraisalPolicy.from_mapping(
        {
            "name": "broken",
            "rules": [
                {
                    "name": "missing",
                    # a claim the evidence does not carry (a name no rule may read is refused
                    # when the policy is compiled: test_a_rule_naming_an_unknown_variable_...)
                    "expression": "identity.no_such_claim > 1",
                    "category": "configuration",
                    "code": 32,
                    "reason": "never true",
                }
            ],
        }
    )
    appraisal = appraise(_CLAIMS, world.endorsements(), policy, nonce=None, now=NOW).submods["snp"]
    assert appraisal.trust_vector["configuration"] == AR4SI.UNSAFE_CONFIG
    assert "could not be evaluated" in appraisal.reasons[0]


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [{"name": "x", "expression": "(", "category": "hardware", "code": 96, "reason": "r"}],
        [{"name": "x", "expression": "true", "category": "hardware", "code": 2, "reason": "r"}],
        [{"name": "x", "expression": "true", "category": "wheels", "code": 96, "reason": "r"}],
        [{"name": "X!", "expression": "true", "category": "hardware", "code": 96, "reason": "r"}],
        [{"name": "x", "expression": "true", "category": "hardware", "code": 96}],
    ],
    ids=["empty", "bad-cel", "affirming-code", "category", "name", "no-reason"],
)
def test_invalid_policies(rules: list[dict[str, object]]) -> None:
    with pytest.raises(ConfigError):
        AppraisalPolicy.from_mapping({"rules": rules})


def test_a_rule_chained_deeper_than_the_stack_holds_is_refused_before_it_is_compiled() -> None:
    """A chain of 1,500 additions compiles and evaluates by recursion 1,500 deep (the key
    service's release policies could crash the process this way): refused from its text."""
    expression = "tcb.svn > 0 && " + "1+" * 1500 + "1 > 0"
    rule = {"name": "deep", "expression": expression, "category": "hardware", "code": 96}
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping({"rules": [{**rule, "reason": "r"}]})
    assert type(caught.value) is ConfigError
    assert caught.value.detail.startswith("rule deep nests its operators 1501 deep, more than")


def test_policy_round_trips_as_data(tmp_path: Path) -> None:
    again = AppraisalPolicy.from_mapping(DEFAULT_POLICY.to_mapping())
    assert again.policy_id == DEFAULT_POLICY.policy_id
    with pytest.raises(ConfigError):
        AppraisalPolicy.from_toml("not = [toml")
    with pytest.raises(ConfigError):
        AppraisalPolicy.from_mapping({"surprise": 1})


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("cvss_threshold = 1" + "0" * 400, "cvss_threshold must be 0.0..10.0"),
        ("cvss_threshold = 1" + "0" * 4400, "the policy is not TOML"),
    ],
    ids=["401-digit-threshold", "4401-digit-integer"],
)
def test_a_policy_with_a_huge_integer_is_a_config_error(text: str, detail: str) -> None:
    """A threshold of 401 digits escaped as ``OverflowError`` (float() of the integer), and
    an integer of 4,401 digits anywhere as ``ValueError`` (tomllib's int() of its text,
    which is no ``TOMLDecodeError``)."""
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_toml(text)
    assert type(caught.value) is ConfigError
    assert caught.value.code == "config"
    assert caught.value.detail.startswith(detail)


def test_runtime_data_chosen_by_a_relying_party(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    """The Trustee/KBS flow: the relying party's own nonce ‖ key hash is the report data."""
    client, _, service = api
    runtime_data = bytes(range(64))
    body = {
        "evidence": b64url_encode(good_device.quote(runtime_data)),
        "runtime_data": b64url_encode(runtime_data),
    }
    response = client.post("/attestation/verify", json=body)
    assert response.status_code == 200, response.content
    result = verify_ear(response.content, service.public_keys, now=NOW)
    assert result.status is TrustTier.AFFIRMING
    assert result.nonce == runtime_data


def test_runtime_data_the_evidence_does_not_answer(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, service = api
    body = {
        "evidence": b64url_encode(good_device.quote(bytes(64))),
        "runtime_data": b64url_encode(b"\x01" * 64),
    }
    response = client.post("/attestation/verify", json=body)
    assert response.status_code == 200
    result = verify_ear(response.content, service.public_keys, now=NOW)
    assert result.status is not TrustTier.AFFIRMING
    assert result.nonce == b"\x01" * 64


@pytest.mark.parametrize("size", [1, 7, 65])
def test_runtime_data_an_ear_cannot_carry_is_a_400(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device, size: int
) -> None:
    # before, the evidence was appraised against it (one byte of freshness: SEV-SNP and TDX
    # report data zero-padded) and the EAR left eat_nonce out (8..64 bytes): a result the
    # relying party could not tie to its challenge
    client, _, _ = api
    body = {
        "evidence": b64url_encode(good_device.quote(bytes(32))),
        "runtime_data": b64url_encode(b"\x01" * size),
    }
    response = client.post("/attestation/verify", json=body)
    assert response.status_code == 400, response.content
    problem = Problem.from_cbor(response.content)
    assert (problem.title, problem.extra["code"]) == ("Malformed Input", "malformed")
    assert problem.detail == "runtime_data is 8 to 64 bytes, as the EAR's eat_nonce carries it"


@pytest.mark.parametrize("members", [{"nonce", "runtime_data"}, set()])
def test_exactly_one_of_nonce_and_runtime_data(
    api: tuple[ApiClient, _Clock, AttestationService], members: set[str]
) -> None:
    client, _, _ = api
    body = {"evidence": b64url_encode(b"x")}
    body.update({m: b64url_encode(bytes(32)) for m in members})
    response = client.post("/attestation/verify", json=body)
    assert response.status_code == 400


def test_formats_lists_the_table(api: tuple[ApiClient, _Clock, AttestationService]) -> None:
    from ironroot.attestation import EVIDENCE_FORMATS

    client, _, _ = api
    response = client.get("/attestation/formats")
    assert response.status_code == 200
    rows = response.json()["formats"]
    assert [r["name"] for r in rows] == list(EVIDENCE_FORMATS)
    assert rows[0]["nonce_binding"]["rule"] == "exact"


def test_unknown_format_is_a_400_naming_the_known_ones(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, _ = api
    nonce = _challenge(client)
    body = {
        "evidence": b64url_encode(good_device.quote(nonce)),
        "nonce": b64url_encode(nonce),
        "format": "sgx",
    }
    response = client.post(
        "/attestation/verify", json=body, headers={"Accept": "application/problem+json"}
    )
    assert response.status_code == 400
    assert (
        "known: auto, ironroot, spdm, nvidia-gpu, azure-hcl, snp, tdx" in response.json()["detail"]
    )


def test_ear_lists_the_checks_that_ran(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    client, _, _ = api
    nonce = _challenge(client)
    body = {"evidence": b64url_encode(good_device.quote(nonce)), "nonce": b64url_encode(nonce)}
    response = client.post("/attestation/verify", json=body)
    jwks = client.get("/attestation/keys").json()
    result = verify_ear(response.content, [PublicKey.from_jwk(k) for k in jwks["keys"]], now=NOW)
    evidence = result.submods["ironroot"].evidence
    assert evidence is not None
    assert [c["name"] for c in evidence["checks"]] == ["quote", "nonce"]
    assert all(c["ok"] for c in evidence["checks"])


def test_the_verifier_serves_https(
    api: tuple[ApiClient, _Clock, AttestationService], tmp_path: Path
) -> None:
    import httpx

    from ironroot.http import ServerThread, ServerTls, client_context
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    _client, _clock, service = api
    tls = ServerTls(pki.server_cert, pki.server_key)
    with ServerThread(create_attestation_app(service), name="attestation", tls=tls) as server:
        ok = http_calls.get(f"{server.url}/health", verify=client_context(pki.ca), timeout=30)
        assert ok.status_code == 200
        with pytest.raises(httpx.ConnectError):
            http_calls.get(f"{server.url}/health", timeout=30)  # not a system CA


def test_the_verifier_is_observable(
    api: tuple[ApiClient, _Clock, AttestationService], good_device: Device
) -> None:
    """/health, /ready, /metrics (appraisals by status, outstanding challenges) and /."""
    client, _, _ = api
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"signing-key": "ok", "endorsements": "ok"}
    affirmed = _challenge(client)
    body = {
        "evidence": b64url_encode(good_device.quote(affirmed)),
        "nonce": b64url_encode(affirmed),
    }
    assert client.post("/attestation/verify", json=body).status_code == 200
    other = _challenge(client)
    body = {"evidence": b64url_encode(good_device.quote(bytes(32))), "nonce": b64url_encode(other)}
    assert client.post("/attestation/verify", json=body).status_code == 200
    _challenge(client)  # one left outstanding
    metrics = client.get("/metrics").text
    assert 'ironroot_appraisals_total{status="affirming"} 1.0' in metrics
    assert 'ironroot_appraisals_total{status="contraindicated"} 1.0' in metrics
    assert "ironroot_challenges_outstanding 1.0" in metrics
    assert 'route="/attestation/verify",status="200"' in metrics
    index = client.get("/", headers={"Accept": "application/json"}).json()
    assert index["service"] == "attestation"
    assert index["docs"] == "docs/attestation.md"
    assert "POST /attestation/verify" in index["endpoints"]
    page = client.get("/", headers={"Accept": "text/html"}).text
    assert "<h1>Ironroot attestation</h1>" in page


def test_a_verifier_without_endorsements_is_not_ready(world: World) -> None:
    from ironroot.attestation import Endorsements

    service = AttestationService(
        endorsements=Endorsements(),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        nonces=NonceStore(lifetime=120),
    )
    ready = ApiClient(create_attestation_app(service)).get("/ready")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"] == "1"
    assert ready.json()["checks"]["endorsements"] == "no-endorsements: Invalid Configuration"


def test_a_failing_readiness_check_names_no_path(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/ready`` answers anyone: a signing key that cannot be used (its file unreadable)
    is said as the check's error kind, never as the detail naming the key's file."""
    secret = "/srv/ironroot/verifier/ear-signing.key"

    def unusable(self: AttestationService) -> object:
        raise ConfigError(f"cannot read {secret}: permission denied")

    service = AttestationService(
        endorsements=world.endorsements(),
        signing_key=PrivateKey.generate(Algorithm.ES384),
        nonces=NonceStore(lifetime=120),
    )
    monkeypatch.setattr(AttestationService, "public_keys", property(unusable))
    ready = ApiClient(create_attestation_app(service)).get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["signing-key"] == "config: Invalid Configuration"
    assert secret not in ready.text
