"""Every EAR claim given a value of the wrong type is refused with ``MalformedInput``.

Relying parties (key release, admission) decode EARs from the network: a list where text is
expected, a map where a number is, must be a typed refusal, never a ``TypeError``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ironroot.attestation import Appraisal, AttestationResult, VerifierId, decode_ear, sign_ear_jwt
from ironroot.crypto import Algorithm, PrivateKey, b64url_encode
from ironroot.errors import MalformedInput

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KEY = PrivateKey.generate(Algorithm.ES384)

# Values of every JSON/CBOR type; each claim gets all those that are not its own type.
WRONG: dict[str, object] = {
    "null": None,
    "true": True,
    "int": 7,
    "negative": -5,
    "float": 1.5,
    "text": "x",
    "bytes": b"\x01\x02",
    "list": ["a", 1],
    "empty-list": [],
    "map": {"a": 1},
    "nested": [{"b": [1]}],
}


def _result() -> AttestationResult:
    appraisal = Appraisal.from_vector(
        {"instance-identity": 2, "executables": 33},
        policy_id="urn:ironroot:appraisal-policy:default:0",
        reasons=["a reason"],
        evidence={"format": "ironroot"},
    )
    return AttestationResult(
        iat=int(NOW.timestamp()),
        exp=int(NOW.timestamp()) + 600,
        verifier_id=VerifierId("Ironroot", "ironroot 0.1.0"),
        submods={"ironroot": appraisal},
        nonce=b"n" * 32,
        raw_evidence=b"evidence",
    )


def _set(path: tuple[object, ...], value: object) -> Callable[[Any], Any]:
    def change(claims: Any) -> Any:
        claims = copy.deepcopy(claims)
        target = claims
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return claims

    return change


JSON_PATHS: dict[str, tuple[object, ...]] = {
    "eat_profile": ("eat_profile",),
    "iat": ("iat",),
    "exp": ("exp",),
    "eat_nonce": ("eat_nonce",),
    "verifier-id": ("ear.verifier-id",),
    "verifier-id.developer": ("ear.verifier-id", "developer"),
    "verifier-id.build": ("ear.verifier-id", "build"),
    "raw-evidence": ("ear.raw-evidence",),
    "submods": ("submods",),
    "submod": ("submods", "ironroot"),
    "status": ("submods", "ironroot", "ear.status"),
    "vector": ("submods", "ironroot", "ear.trustworthiness-vector"),
    "vector.claim": ("submods", "ironroot", "ear.trustworthiness-vector", "executables"),
    "policy-id": ("submods", "ironroot", "ear.appraisal-policy-id"),
    "reasons": ("submods", "ironroot", "ear.ironroot.reasons"),
    "evidence": ("submods", "ironroot", "ear.ironroot.evidence"),
}
CBOR_PATHS: dict[str, tuple[object, ...]] = {
    "eat_profile": (265,),
    "iat": (6,),
    "exp": (4,),
    "eat_nonce": (10,),
    "verifier-id": (1004,),
    "verifier-id.developer": (1004, 0),
    "verifier-id.build": (1004, 1),
    "raw-evidence": (1002,),
    "submods": (266,),
    "submod": (266, "ironroot"),
    "status": (266, "ironroot", 1000),
    "vector": (266, "ironroot", 1001),
    "vector.claim": (266, "ironroot", 1001, 2),
    "policy-id": (266, "ironroot", 1003),
    "reasons": (266, "ironroot", -70100),
    "evidence": (266, "ironroot", -70101),
}
# The types that are right for a claim (optional claims may be null): every other is wrong.
ACCEPTED: dict[str, set[str]] = {
    "exp": {"null", "int"},
    "eat_nonce": {"null"},
    "iat": {"int"},
    "verifier-id.developer": {"text"},
    "verifier-id.build": {"text"},
    "vector.claim": {"int", "negative"},
    "policy-id": {"null", "text"},
    "reasons": {"null", "empty-list"},
    "evidence": {"null", "map"},
}
JSON_ACCEPTED: dict[str, set[str]] = {"raw-evidence": {"null", "text"}}
CBOR_ACCEPTED: dict[str, set[str]] = {"raw-evidence": {"null", "bytes"}}


def _cases(paths: dict[str, tuple[object, ...]], extra: dict[str, set[str]]) -> list[Any]:
    return [
        pytest.param(paths[claim], value, id=f"{claim}={kind}")
        for claim in paths
        for kind, value in WRONG.items()
        if kind not in ACCEPTED.get(claim, set()) | extra.get(claim, set())
    ]


@pytest.mark.parametrize(("path", "value"), _cases(JSON_PATHS, JSON_ACCEPTED))
def test_json_claim_of_the_wrong_type(path: tuple[object, ...], value: object) -> None:
    claims = _set(path, value)(_result().to_json_claims())
    with pytest.raises(MalformedInput):
        AttestationResult.from_json_claims(claims)


@pytest.mark.parametrize(("path", "value"), _cases(CBOR_PATHS, CBOR_ACCEPTED))
def test_cbor_claim_of_the_wrong_type(path: tuple[object, ...], value: object) -> None:
    claims = _set(path, value)(_result().to_cbor_claims())
    with pytest.raises(MalformedInput):
        AttestationResult.from_cbor_claims(claims)


@pytest.mark.parametrize("value", [["tag:github.com,2023:veraison/ear"], {"a": 1}, 3])
def test_signed_jwt_with_a_non_text_profile(value: object) -> None:
    """The reported case: a signed EAR whose eat_profile is a list or a map."""
    claims = _result().to_json_claims()
    claims["eat_profile"] = value
    token = sign_ear_jwt(_result(), KEY)
    header = token.split(b".")[0]
    payload = b64url_encode(json.dumps(claims).encode()).encode()
    signing_input = header + b"." + payload
    signature = KEY.sign(signing_input)
    forged = signing_input + b"." + b64url_encode(signature).encode()
    with pytest.raises(MalformedInput, match="eat_profile"):
        decode_ear(forged, [KEY.public_key])
