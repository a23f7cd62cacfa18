"""The attestation verifier over HTTP (Starlette routes, mountable next to the transparency app).

``POST /attestation/challenge``
    a fresh nonce: JSON ``{"nonce": b64url, "expires": epoch}`` or, with ``Accept:
    application/cbor``, CBOR ``{"nonce": bstr, "expires": int}``. Single use, expiring.
``POST /attestation/verify``
    JSON ``{"evidence": b64url, "nonce": b64url, ? "format": text, ? "certificates":
    [b64url]}`` or the same map in CBOR (``Content-Type: application/cbor``, byte strings as
    such). The nonce is redeemed (``StaleNonce`` → 400 problem when unknown, expired or
    reused), the evidence verified and appraised, and the EAR returned signed: a JWT
    (``application/eat+jwt``) by default, a CWT with ``Accept: application/eat+cwt``. Evidence
    that fails appraisal is still a 200 with an EAR that says why.
    Instead of ``nonce``, a relying party that runs its own challenge (a key release service,
    as in Trustee's KBS) sends ``runtime_data``: the exact bytes the evidence must answer
    (its report data, e.g. the relying party's nonce ‖ a key hash), 8 to 64 bytes. No verifier
    nonce is redeemed; the EAR carries those bytes (``eat_nonce``), and their freshness is the
    relying party's check.
    A **composite** (a CVM and its GPUs) adds ``"gpus": [{"evidence": b64url,
    "certificates": [b64url]}, …]`` (at most 16; each GPU's ``nvidia-gpu`` report and chain):
    the nonce (or ``runtime_data``) is then the challenge of the composite rule
    (:mod:`ironroot.attestation._composite`, ``docs/evidence.md``) and the EAR has one
    submodule per device, ``cvm``, ``gpu0``, … .
``GET /attestation/formats``
    the evidence formats this verifier takes, one entry per row of the format table: name,
    description, nonce binding, pinned vendor roots, default policy settings (JSON).
``GET /attestation/keys``
    the verifier's public keys: a JWK Set (``application/jwk-set+json``) by default, a COSE
    Key Set (``application/cose-key-set``) when asked for.

Errors are RFC 9290 concise problems (CBOR), or RFC 9457 JSON when the client accepts JSON;
the problem carries the error's machine code as the ``code`` extension member.

:class:`AttestationService` is the verifier's state (endorsements, policy, keys, the nonce
store, chain caches and the clock): the only impure part, kept out of the appraisal core.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from prometheus_client import Counter, Gauge
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.attestation._appraise import appraise_evidence
from ironroot.attestation._composite import GpuReport, GpuRimCache, appraise_composite
from ironroot.attestation._endorsements import Endorsements
from ironroot.attestation._policy import DEFAULT_POLICY, AppraisalPolicy
from ironroot.attestation.evidence import EVIDENCE_FORMATS, EvidenceCaches, TdxCollateral
from ironroot.cose import Limits, encode_key_set
from ironroot.crypto import Algorithm, PublicKey, Signer, b64url_decode
from ironroot.ear import (
    CWT_MEDIA_TYPE,
    JWT_MEDIA_TYPE,
    AttestationResult,
    NonceStore,
    sign_ear_cwt,
    sign_ear_jwt,
)
from ironroot.errors import (
    ConfigError,
    LimitExceeded,
    MalformedInput,
)
from ironroot.http import (
    CBOR,
    Handler,
    ServiceInfo,
    challenge_handler,
    decode_request_map,
    guarded,
    problem_app,
    read_body,
    require_media_type,
)

__all__ = ["AttestationService", "attestation_routes", "create_attestation_app"]

_log = logging.getLogger("ironroot.attestation")

JWK_SET: Final = "application/jwk-set+json"
COSE_KEY_SET: Final = "application/cose-key-set"
MAX_REQUEST_BYTES: Final = 2 * 1024 * 1024
_MAX_CERTIFICATES: Final = 8
_MAX_HTTP_GPUS: Final = 16
# runtime_data comes back as the EAR's eat_nonce (RFC 9711: 8 to 64 bytes); shorter bytes bind
# next to no freshness (SEV-SNP and TDX report data is the nonce zero-padded)
_MIN_RUNTIME_DATA: Final = 8
_MAX_RUNTIME_DATA: Final = 64
_BODY_LIMITS: Final = Limits(max_bytes=MAX_REQUEST_BYTES, max_depth=5, max_items=16)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AttestationService:
    """The verifier: what it trusts, how it decides, how it signs, and its challenges.

    ``signing_key`` signs every EAR (ES384 for JWTs; any algorithm for CWTs); ``lifetime`` is
    how long an EAR is valid (its ``exp``), in seconds. ``collateral`` (Intel TDX TCB Info,
    QE Identity, their CRLs) and ``crls`` (AMD's and Intel's) are checked for every evidence
    format that takes them; stale ones are refused unless ``allow_stale_collateral``.
    ``collateral_problems`` (configured files that did not load) are repeated in the reasons
    of those formats' EARs. ``gpu_root`` replaces the built-in NVIDIA Device Identity CA for
    the GPUs of composites (a private or test CA).
    """

    endorsements: Endorsements
    signing_key: Signer
    policy: AppraisalPolicy = DEFAULT_POLICY
    lifetime: int = 3600
    nonces: NonceStore = field(default_factory=NonceStore)
    caches: EvidenceCaches = field(default_factory=EvidenceCaches)
    clock: Callable[[], datetime] = _utcnow
    collateral: TdxCollateral | None = None
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    allow_stale_collateral: bool = False
    collateral_problems: tuple[str, ...] = ()
    gpu_root: x509.Certificate | None = None
    rim_cache: GpuRimCache = field(default_factory=GpuRimCache)

    def __post_init__(self) -> None:
        if self.signing_key.algorithm is not Algorithm.ES384:
            raise ConfigError("the verifier signs EARs with an ES384 key")
        if self.lifetime < 1:
            raise ConfigError("the result lifetime is a positive number of seconds")

    @property
    def public_keys(self) -> tuple[PublicKey, ...]:
        key = self.signing_key.verifier()
        if not isinstance(key, PublicKey):
            raise ConfigError("the EAR signer must expose its public key")
        return (key,)

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        """A new single-use nonce for ``client`` and when it expires (epoch seconds)."""
        return self.nonces.issue(self.clock(), client)

    def verify(
        self,
        evidence: bytes,
        *,
        nonce: bytes | None = None,
        runtime_data: bytes | None = None,
        format: str = "auto",
        certificates: Sequence[bytes] = (),
        gpus: Sequence[GpuReport] | None = None,
    ) -> AttestationResult:
        """Verify and appraise ``evidence`` answering either a nonce this verifier issued
        (redeemed here: ``StaleNonce`` when unknown, expired or reused) or ``runtime_data``
        a relying party chose (whose freshness that party checks in the EAR). With ``gpus``,
        ``evidence`` is a CVM's and the whole is appraised as a composite (one EAR,
        submodules ``cvm``, ``gpu0``…)."""
        if (nonce is None) == (runtime_data is None):
            raise MalformedInput("give exactly one of nonce and runtime_data")
        if runtime_data is not None and not (
            _MIN_RUNTIME_DATA <= len(runtime_data) <= _MAX_RUNTIME_DATA
        ):
            raise MalformedInput(
                f"runtime_data is {_MIN_RUNTIME_DATA} to {_MAX_RUNTIME_DATA} bytes, as the "
                "EAR's eat_nonce carries it"
            )
        now = self.clock()
        if nonce is not None:
            self.nonces.redeem(nonce, now)
        answered = nonce if nonce is not None else runtime_data
        common: dict[str, Any] = {
            "format": format,
            "nonce": answered,
            "now": now,
            "certificates": certificates,
            "crls": self.crls,
            "collateral": self.collateral,
            "allow_stale_collateral": self.allow_stale_collateral,
            "collateral_problems": self.collateral_problems,
            "lifetime": self.lifetime,
            "caches": self.caches,
        }
        if gpus is None:
            return appraise_evidence(evidence, self.endorsements, self.policy, **common)
        assert answered is not None  # exactly one of the two was given
        return appraise_composite(
            evidence,
            gpus,
            self.endorsements,
            self.policy,
            gpu_root=self.gpu_root,
            rim_cache=self.rim_cache,
            **common,
        )

    def sign(self, result: AttestationResult, media_type: str = JWT_MEDIA_TYPE) -> bytes:
        if media_type == CWT_MEDIA_TYPE:
            return sign_ear_cwt(result, self.signing_key)
        return sign_ear_jwt(result, self.signing_key)


# --- request and response helpers ---------------------------------------------------------------


async def _body(request: Request) -> bytes:
    return await read_body(request, MAX_REQUEST_BYTES)


def _field_bytes(value: object, name: str, *, cbor: bool) -> bytes:
    if cbor:
        if not isinstance(value, bytes):
            raise MalformedInput(f"{name} must be a byte string")
        return value
    if not isinstance(value, str):
        raise MalformedInput(f"{name} must be base64url text")
    return b64url_decode(value, what=name)


@dataclass(frozen=True, slots=True)
class _VerifyRequest:
    evidence: bytes
    nonce: bytes | None
    runtime_data: bytes | None
    format: str
    certificates: tuple[bytes, ...]
    gpus: tuple[GpuReport, ...] | None = None


def _certificates(value: object, *, cbor: bool) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise MalformedInput("certificates must be a list")
    if len(value) > _MAX_CERTIFICATES:
        raise LimitExceeded(f"at most {_MAX_CERTIFICATES} certificates")
    return tuple(_field_bytes(c, "certificate", cbor=cbor) for c in value)


def _gpus(value: object, *, cbor: bool) -> tuple[GpuReport, ...]:
    if not isinstance(value, list):
        raise MalformedInput("gpus must be a list")
    if len(value) > _MAX_HTTP_GPUS:
        raise LimitExceeded(f"at most {_MAX_HTTP_GPUS} GPUs in one composite")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or not all(isinstance(k, str) for k in item):
            raise MalformedInput(f"gpus[{index}] is a map with text keys")
        unknown = set(item) - {"evidence", "certificates"}
        if unknown or "evidence" not in item:
            raise MalformedInput(f"gpus[{index}] has evidence and certificates, nothing else")
        out.append(
            GpuReport(
                _field_bytes(item["evidence"], f"gpus[{index}].evidence", cbor=cbor),
                _certificates(item.get("certificates", []), cbor=cbor),
            )
        )
    return tuple(out)


def _parse_verify(body: bytes, media_type: str) -> _VerifyRequest:
    cbor = media_type == CBOR
    value = decode_request_map(body, cbor=cbor, limits=_BODY_LIMITS)
    unknown = set(value) - {"evidence", "nonce", "runtime_data", "format", "certificates", "gpus"}
    if unknown:
        raise MalformedInput(f"unknown request members: {', '.join(sorted(unknown))}")
    if "evidence" not in value or ("nonce" in value) == ("runtime_data" in value):
        raise MalformedInput("the request needs evidence and exactly one of nonce, runtime_data")
    fmt = value.get("format", "auto")
    if not isinstance(fmt, str):
        raise MalformedInput("format must be text")
    if fmt != "auto" and fmt not in EVIDENCE_FORMATS:
        raise MalformedInput(
            f"unknown evidence format {fmt[:32]!r} (known: auto, {', '.join(EVIDENCE_FORMATS)})"
        )
    return _VerifyRequest(
        evidence=_field_bytes(value["evidence"], "evidence", cbor=cbor),
        nonce=_field_bytes(value["nonce"], "nonce", cbor=cbor) if "nonce" in value else None,
        runtime_data=(
            _field_bytes(value["runtime_data"], "runtime_data", cbor=cbor)
            if "runtime_data" in value
            else None
        ),
        format=fmt,
        certificates=_certificates(value.get("certificates", []), cbor=cbor),
        gpus=_gpus(value["gpus"], cbor=cbor) if "gpus" in value else None,
    )


def attestation_routes(service: AttestationService, info: ServiceInfo | None = None) -> list[Route]:
    """The routes, each answering errors with problem details; with ``info``, the verifier's
    metrics (appraisals by status, outstanding challenges) go to its registry."""
    appraisals: Counter | None = None
    if info is not None:
        appraisals = Counter(
            "ironroot_appraisals",
            "EARs issued by POST /attestation/verify, by status",
            ("status",),
            registry=info.registry,
        )
        Gauge(
            "ironroot_challenges_outstanding",
            "Nonces issued and not yet redeemed or expired",
            registry=info.registry,
        ).set_function(lambda: len(service.nonces))

    async def verify(request: Request) -> Response:
        # JSON or CBOR (untyped: JSON); any other type is a 415, not a guess
        media_type = require_media_type(
            request, "application/json", CBOR, untyped="application/json"
        )
        parsed = _parse_verify(await _body(request), media_type)
        media = CWT_MEDIA_TYPE if CWT_MEDIA_TYPE in request.headers.get("accept", "") else None
        result = await run_in_threadpool(
            service.verify,
            parsed.evidence,
            nonce=parsed.nonce,
            runtime_data=parsed.runtime_data,
            format=parsed.format,
            certificates=parsed.certificates,
            gpus=parsed.gpus,
        )
        token = service.sign(result, media or JWT_MEDIA_TYPE)
        if appraisals is not None:
            appraisals.labels(result.status.name.lower()).inc()
        return Response(token, 200, media_type=media or JWT_MEDIA_TYPE)

    async def formats(request: Request) -> Response:
        rows = [row.describe() for row in EVIDENCE_FORMATS.values()]
        return Response(json.dumps({"formats": rows}), media_type="application/json")

    async def keys(request: Request) -> Response:
        if COSE_KEY_SET in request.headers.get("accept", ""):
            return Response(encode_key_set(list(service.public_keys)), media_type=COSE_KEY_SET)
        jwks = {"keys": [k.to_jwk(include_kid=True) for k in service.public_keys]}
        return Response(json.dumps(jwks), media_type=JWK_SET)

    def _guard(handler: Handler) -> Handler:
        return guarded(handler, _log, what="the verifier")

    challenge = challenge_handler(service.challenge)
    return [
        Route("/attestation/challenge", _guard(challenge), methods=["POST"]),
        Route("/attestation/verify", _guard(verify), methods=["POST"]),
        Route("/attestation/keys", _guard(keys), methods=["GET"]),
        Route("/attestation/formats", _guard(formats), methods=["GET"]),
    ]


def verifier_info(service: AttestationService) -> ServiceInfo:
    """The verifier as its operator sees it: readiness (its EAR key signs; endorsements
    loaded) and links."""

    def signing_key() -> None:
        service.public_keys  # noqa: B018  # raises ConfigError when the key is unusable

    def endorsements() -> None:
        if not service.endorsements.vendor_roots and not service.endorsements.reference_values:
            raise ConfigError(
                "no vendor roots and no reference values are loaded", code="no-endorsements"
            )

    return ServiceInfo(
        name="attestation",
        description="Ironroot attestation verifier: evidence in, signed EAR out",
        checks={"signing-key": signing_key, "endorsements": endorsements},
        links={
            "challenge": "/attestation/challenge",
            "verify": "/attestation/verify",
            "keys": "/attestation/keys",
            "formats": "/attestation/formats",
        },
        docs="docs/attestation.md",
        details=lambda: {
            "reference_values": len(service.endorsements.reference_values),
            "rejected_endorsements": len(service.endorsements.rejected),
        },
    )


def create_attestation_app(service: AttestationService) -> Starlette:
    """An ASGI app serving the attestation routes, with ``/``, ``/health``, ``/ready``,
    ``/metrics`` and the access log."""
    info = verifier_info(service)
    return problem_app(attestation_routes(service, info), info)
