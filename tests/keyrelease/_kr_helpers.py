"""The key release tests' world: a verifier key, EARs made to order, keys with policies in a
real HSM (in memory, with the test's clock), and the service over real HTTP.

EARs for the refusal tests are built directly from :class:`AttestationResult` (the verifier's
own output type) and signed with the verifier key, so each test can set exactly one thing
wrong; the end-to-end tests get their EARs from the real verifier appraising real RoT quotes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm_devices import self_signed_device
from ironroot.attestation import (
    Appraisal,
    AttestationResult,
    ChallengeLimits,
    TrustTier,
    VerifierId,
    sign_ear_cwt,
    sign_ear_jwt,
)
from ironroot.cose import Problem, encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import IronrootError
from ironroot.hsm import (
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Role,
    Session,
)
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseService,
    ReleasableKey,
    ReleasedKey,
    ReleaseRequest,
    WrappingKey,
)
from ironroot.keyrelease.tee import TeeKeyPair

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
VERIFIER = "https://verifier.example"
APPROVED = hashlib.sha384(b"approved confidential VM").digest()
VECTORS = {
    TrustTier.AFFIRMING: {"instance-identity": 2, "configuration": 2, "executables": 2},
    TrustTier.WARNING: {"instance-identity": 2, "configuration": 32},
    TrustTier.CONTRAINDICATED: {"instance-identity": 2, "configuration": 96},
    TrustTier.NONE: {"instance-identity": 0},
}

CEL_POLICY = 'status == "affirming" && evidence.svns.firmware >= 3 && !evidence.debug'
AZURE_CONDITIONS: list[dict[str, Any]] = [
    {"claim": "ear.status", "equals": "affirming"},
    {"claim": "evidence.measurements.pcr2", "equals": APPROVED.hex()},
    {"claim": "evidence.identity.lifecycle", "notEquals": "manufacturing"},
    {"claim": "evidence.svns.firmware", "greaterOrEquals": 3},
    {"claim": "evidence.svns.firmware", "lessOrEquals": 10},
    {"claim": "evidence.svns.tcb", "greater": 1},
    {"claim": "evidence.svns.tcb", "less": 9},
    {"claim": "evidence.identity.ueid", "exists": True},
    {"claim": "evidence.identity.debug_token", "exists": False},
]


def azure_policy(conditions: list[dict[str, Any]], authority: str = VERIFIER) -> str:
    return json.dumps(
        {"version": "1.0.0", "anyOf": [{"authority": authority, "allOf": conditions}]}
    )


def evidence(report_data: bytes, /, **changes: Any) -> dict[str, Any]:
    """JSON-ready evidence claims of an approved VM (as the verifier annotates them)."""
    claims: dict[str, Any] = {
        "format": "ironroot",
        "measurements": {"pcr2": APPROVED.hex(), "fmc": "00" * 48},
        "report_data": report_data.hex(),
        "debug": False,
        "svns": {"firmware": 5, "tcb": 2},
        "identity": {"ueid": "01" * 17, "lifecycle": "production"},
        "signer": "CN=RT Alias",
    }
    for path, value in changes.items():
        node = claims
        *parents, last = path.split("__")
        for name in parents:
            node = node[name]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return claims


_DELETE = object()
DELETE: Any = _DELETE


def make_ear(
    signer: PrivateKey,
    report_data: bytes,
    *,
    status: TrustTier = TrustTier.AFFIRMING,
    iat: dt.datetime = NOW - dt.timedelta(minutes=1),
    lifetime: int | None = 600,
    eat_nonce: bytes | str | None = "report-data",
    evidence_claims: Mapping[str, Any] | None = None,
    cwt: bool = False,
    policy_id: str = "test",
) -> bytes:
    """An EAR as the verifier signs it, for evidence with ``report_data``, appraised under
    the verifier's policy ``policy_id``."""
    claims = dict(evidence_claims) if evidence_claims is not None else evidence(report_data)
    appraisal = Appraisal(status, VECTORS[status], policy_id=policy_id, evidence=claims)
    t = int(iat.timestamp())
    result = AttestationResult(
        iat=t,
        exp=None if lifetime is None else t + lifetime,
        verifier_id=VerifierId("Ironroot", "test"),
        submods={"ironroot": appraisal},
        nonce=report_data if eat_nonce == "report-data" else eat_nonce,  # type: ignore[arg-type]
    )
    return sign_ear_cwt(result, signer) if cwt else sign_ear_jwt(result, signer)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Harness:
    """A key service over a real HSM in memory (fixed clock), served over HTTP at ``url``."""

    verifier_key: PrivateKey
    other_key: PrivateKey
    tee: TeeKeyPair
    service: KeyReleaseService
    clock: Clock
    hsm: Hsm
    user: Session
    officer: Session
    handles: dict[str, str]
    url: str = ""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    def holds(self, name: str, material: bytes) -> bool:
        """Whether ``material`` is the key the HSM holds as ``name`` (checked by using it
        inside the HSM: the test never sees the key any other way)."""
        handle = self.handles[name]
        if len(material) == 48:  # HMAC-SHA-384
            tag = self.hsm.sign(self.user, handle, b"probe")
            return hmac.compare_digest(tag, hmac.new(material, b"probe", hashlib.sha384).digest())
        sealed = self.hsm.encrypt(self.user, handle, b"probe")
        return AESGCM(material).decrypt(sealed[:12], sealed[12:], b"") == b"probe"

    def nonce(self) -> bytes:
        return self.service.challenge()[0]

    @property
    def hsm_roots(self) -> list[x509.Certificate]:
        """What a TEE trusts the HSM by: the root of its device chain."""
        return [x509.load_der_x509_certificate(self.hsm.attestation_chain[-1])]

    def unwrap(
        self, released: ReleasedKey | bytes, nonce: bytes, *, tee: TeeKeyPair | None = None
    ) -> bytes:
        """What the TEE unwraps, its HSM release statement checked at the harness's time."""
        key = (tee or self.tee).unwrap(
            released, nonce=nonce, hsm_roots=self.hsm_roots, now=self.clock.now
        )
        return key.material

    def ear(self, nonce: bytes, *, tee: TeeKeyPair | None = None, **kwargs: Any) -> bytes:
        report_data = (tee or self.tee).report_data(nonce)
        signer = kwargs.pop("signer", self.verifier_key)
        return make_ear(signer, report_data, **kwargs)

    def request(self, ear: bytes, nonce: bytes, *, tee: TeeKeyPair | None = None) -> ReleaseRequest:
        return ReleaseRequest(ear=ear, wrapping_key=(tee or self.tee).public, nonce=nonce)

    def post(
        self,
        name: str,
        ear: bytes,
        nonce: bytes,
        *,
        wrapping_key: bytes | None = None,
        as_json: bool = False,
    ) -> httpx.Response:
        spki = self.tee.public_spki if wrapping_key is None else wrapping_key
        if as_json:
            import base64

            def b64(data: bytes) -> str:
                return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

            body = json.dumps(
                {
                    "ear": ear.decode() if ear[:1] != b"\xd2" else b64(ear),
                    "wrapping_key": b64(spki),
                    "nonce": b64(nonce),
                }
            ).encode()
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
        else:
            body = encode_cbor({"ear": ear, "wrapping_key": spki, "nonce": nonce})
            headers = {"Content-Type": "application/cbor"}
        return self.http.post(f"{self.url}/keys/{name}/release", content=body, headers=headers)


def problem_of(response: httpx.Response) -> Problem:
    if "cbor" in response.headers.get("content-type", ""):
        return Problem.from_cbor(response.content)
    return Problem.from_json(response.content)


def assert_problem(
    response: httpx.Response, cls: type[IronrootError], code: str | None = None
) -> None:
    """The response is the refusal ``cls`` would make: its status, title and code."""
    assert response.status_code == cls.http_status, response.content
    problem = problem_of(response)
    assert problem.title == cls.title
    assert problem.extra.get("code") == (code or cls.code)


_RELEASABLE = KeyAttributes.of  # shorthand below


def build_harness(
    clock: Clock | None = None, *, challenges: ChallengeLimits | None = None
) -> Harness:
    """``challenges``: the HSM's release challenge limits (default: none that a test meets)."""
    verifier_key = PrivateKey.generate(Algorithm.ES384)
    other_key = PrivateKey.generate(Algorithm.ES384)
    clock = clock or Clock()
    hsm = Hsm.initialize(
        MemoryStorage(),
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(NOW),
        # the harness's clock stands still, so a token bucket would never refill
        config=HsmConfig(
            scrypt_n=2**10,
            release_challenges=challenges or ChallengeLimits(per_client=10_000, burst=10_000),
        ),
        clock=lambda: clock.now.timestamp(),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "keyrelease", Role.USER, b"user-credential")
    hsm.add_release_verifier(officer, VERIFIER, verifier_key.public_key.to_pem())
    aes = ["encrypt", "decrypt"]
    specs: dict[str, tuple[KeyType, KeyAttributes]] = {
        "cel-key": (KeyType.AES_256, _RELEASABLE(aes, exportable=True, release_policy=CEL_POLICY)),
        "azure-key": (
            KeyType.AES_256,
            _RELEASABLE(aes, exportable=True, release_policy=azure_policy(AZURE_CONDITIONS)),
        ),
        "elsewhere-key": (
            KeyType.AES_256,
            _RELEASABLE(
                aes,
                exportable=True,
                release_policy=azure_policy(
                    AZURE_CONDITIONS, authority="https://elsewhere.example"
                ),
            ),
        ),
        "warning-key": (
            KeyType.HMAC_SHA384,
            _RELEASABLE(
                ["sign", "verify"],
                exportable=True,
                release_policy='status != "none"',
                release_on_warning=True,
            ),
        ),
        "no-policy": (KeyType.AES_256, _RELEASABLE(aes, exportable=True)),
    }
    handles = {name: hsm.generate(officer, t, attrs) for name, (t, attrs) in specs.items()}
    user = hsm.login("keyrelease", b"user-credential")
    service = KeyReleaseService(
        keys=[ReleasableKey(name, handle) for name, handle in handles.items()],
        vault=HsmVault(hsm, user),
    )
    return Harness(
        verifier_key=verifier_key,
        other_key=other_key,
        tee=TeeKeyPair.generate("ML-KEM-768"),
        service=service,
        clock=clock,
        hsm=hsm,
        user=user,
        officer=officer,
        handles=handles,
    )


__all__ = [
    "APPROVED",
    "AZURE_CONDITIONS",
    "CEL_POLICY",
    "DELETE",
    "NOW",
    "VERIFIER",
    "Clock",
    "Harness",
    "WrappingKey",
    "assert_problem",
    "azure_policy",
    "build_harness",
    "evidence",
    "make_ear",
    "problem_of",
]
