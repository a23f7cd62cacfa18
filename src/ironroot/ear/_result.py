"""EAT Attestation Results (draft-ietf-rats-ear) with the AR4SI trustworthiness vector.

An :class:`AttestationResult` is the EAR claims-set::

    {eat_profile: "tag:github.com,2023:veraison/ear", iat, exp, ear.verifier-id: {developer,
     build}, ? eat_nonce, ? ear.raw-evidence, submods: {label: EAR-appraisal}}

    EAR-appraisal = {ear.status: tier, ear.trustworthiness-vector: {category: -128..127},
                     ? ear.appraisal-policy-id, ? ear.ironroot.reasons: [text],
                     ? ear.ironroot.evidence: {annotated evidence claims}}

It is serialised as a JWT (JSON claim names, compact JWS) or a CWT (CBOR labels, COSE_Sign1);
the labels of both are in :data:`JSON_NAMES` / :data:`CBOR_LABELS` below (``iat`` 6, ``exp``
4, ``eat_nonce`` 10, ``eat_profile`` 265, ``submods`` 266, ``ear.status`` 1000,
``ear.trustworthiness-vector`` 1001, ``ear.raw-evidence`` 1002, ``ear.appraisal-policy-id``
1003, ``ear.verifier-id`` 1004; vector categories 0–7; tiers none 0, affirming 2, warning 32,
contraindicated 96). Ironroot's own appraisal extensions use private names
(``ear.ironroot.reasons`` / -70100, ``ear.ironroot.evidence`` / -70101), the way Veraison
names its ``ear.veraison.*`` extensions. On input the later draft's names
(``ear_status``, ``ear_trustworthiness_vector``, ``ear_appraisal_policy_ids``,
``ear_verifier_id``, ``ear_raw_evidence``) and its profile are accepted too; unknown claims are
ignored, as the draft requires.

The AR4SI code points (draft-ietf-rats-ar4si §2.3) are in :class:`AR4SI` and
:data:`TRUST_CLAIM_TAGS`: -1..1 are the "none" tier, 2..31 affirming, 32..95 warning, 96..127
contraindicated (negative values mirror them). ``ear.status`` of an appraisal is never more
trusting than the worst tier of its vector.

JWTs are built by hand (three base64url segments; the JSON is ours) and parsed with
``joserfc``'s strict compact-JWS reader; every signature is made and checked with
:mod:`ironroot.crypto` (JWS ECDSA signatures are the same fixed ``r ‖ s`` as COSE's).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry, extract_compact

from ironroot.cose import KID, Limits, Sign1, decode_cbor, encode_cbor, sign1
from ironroot.crypto import Algorithm, PublicKey, Signer, Verifier, b64url_decode, b64url_encode
from ironroot.errors import (
    AlgorithmNotAccepted,
    LimitExceeded,
    MalformedInput,
    ResultExpired,
    UnknownIssuer,
)

__all__ = [
    "AR4SI",
    "CWT_MEDIA_TYPE",
    "EAR_PROFILE",
    "JWT_MEDIA_TYPE",
    "TRUST_CATEGORIES",
    "TRUST_CLAIM_TAGS",
    "Appraisal",
    "AttestationResult",
    "TrustTier",
    "VerifierId",
    "decode_ear",
    "key_map",
    "sign_ear_cwt",
    "sign_ear_jwt",
    "tier_of",
    "verify_ear",
]

EAR_PROFILE: Final = "tag:github.com,2023:veraison/ear"
_NEWER_PROFILES: Final = frozenset(("tag:ietf.org,2026:rats/ear#04",))
JWT_MEDIA_TYPE: Final = "application/eat+jwt"
CWT_MEDIA_TYPE: Final = "application/eat+cwt"
MAX_TOKEN_BYTES: Final = 256 * 1024
CLOCK_SKEW: Final = 60
_JWT_ALGORITHMS: Final = frozenset((Algorithm.ES256, Algorithm.ES384, Algorithm.ES512))
_LIMITS: Final = Limits(max_bytes=MAX_TOKEN_BYTES, max_depth=12, max_items=4096)

TRUST_CATEGORIES: Final = (
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
)


class AR4SI:
    """AR4SI trustworthiness claim code points, per category (draft-ietf-rats-ar4si §2.3.4)."""

    # any category
    VERIFIER_MALFUNCTION: Final = -1
    NO_CLAIM: Final = 0
    UNEXPECTED_EVIDENCE: Final = 1
    CRYPTO_VALIDATION_FAILED: Final = 99
    # instance-identity
    TRUSTWORTHY_INSTANCE: Final = 2
    UNTRUSTWORTHY_INSTANCE: Final = 96
    UNRECOGNIZED_INSTANCE: Final = 97
    # configuration
    APPROVED_CONFIG: Final = 2
    NO_CONFIG_VULNS: Final = 3
    UNSAFE_CONFIG: Final = 32
    UNSUPPORTABLE_CONFIG: Final = 96
    # executables
    APPROVED_RUNTIME: Final = 2
    APPROVED_BOOT: Final = 3
    UNSAFE_RUNTIME: Final = 32
    UNRECOGNIZED_RUNTIME: Final = 33
    CONTRAINDICATED_RUNTIME: Final = 96
    # file-system
    APPROVED_FILES: Final = 2
    UNRECOGNIZED_FILES: Final = 32
    CONTRAINDICATED_FILES: Final = 96
    # hardware
    GENUINE_HARDWARE: Final = 2
    UNSAFE_HARDWARE: Final = 32
    CONTRAINDICATED_HARDWARE: Final = 96
    UNRECOGNIZED_HARDWARE: Final = 97
    # runtime-opaque
    ENCRYPTED_MEMORY: Final = 2
    ISOLATED_MEMORY: Final = 32
    VISIBLE_MEMORY: Final = 96
    # storage-opaque
    HW_KEYS_ENCRYPTED_SECRETS: Final = 2
    SW_KEYS_ENCRYPTED_SECRETS: Final = 32
    UNENCRYPTED_SECRETS: Final = 96
    # sourced-data
    TRUSTED_SOURCES: Final = 2
    UNTRUSTED_SOURCES: Final = 32
    CONTRAINDICATED_SOURCES: Final = 96


_GENERAL: Final = {-1: "verifier_malfunction", 0: "no_claim", 1: "unexpected_evidence"}
_CRYPTO: Final = {99: "crypto_failed"}
TRUST_CLAIM_TAGS: Final[Mapping[str, Mapping[int, str]]] = MappingProxyType(
    {
        category: MappingProxyType({**_GENERAL, **codes, **_CRYPTO})
        for category, codes in {
            "instance-identity": {
                2: "recognized_instance",
                96: "untrustworthy_instance",
                97: "unrecognized_instance",
            },
            "configuration": {
                2: "approved_config",
                3: "safe_config",
                32: "unsafe_config",
                96: "unsupportable_config",
            },
            "executables": {
                2: "approved_rt",
                3: "approved_boot",
                32: "unsafe_rt",
                33: "unrecognized_rt",
                96: "contraindicated_rt",
            },
            "file-system": {2: "approved_fs", 32: "unrecognized_fs", 96: "contraindicated_fs"},
            "hardware": {
                2: "genuine_hw",
                32: "unsafe_hw",
                96: "contraindicated_hw",
                97: "unrecognized_hw",
            },
            "runtime-opaque": {2: "encrypted_rt", 32: "isolated_rt", 96: "visible_rt"},
            "storage-opaque": {
                2: "hw_encrypted_secrets",
                32: "sw_encrypted_secrets",
                96: "unencrypted_secrets",
            },
            "sourced-data": {
                2: "trusted_sources",
                32: "untrusted_sources",
                96: "contraindicated_sources",
            },
        }.items()
    }
)
"""category → code → the tag Veraison and the drafts use for it (for display)."""


class TrustTier(enum.Enum):
    """The four AR4SI trust tiers; the value is the JSON name."""

    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"

    @property
    def code(self) -> int:
        """The CBOR code point (0, 2, 32, 96)."""
        return _TIER_CODES[self]

    @property
    def severity(self) -> int:
        """0 none, 1 affirming, 2 warning, 3 contraindicated: the worst tier is the highest."""
        return _TIER_ORDER.index(self)

    @classmethod
    def from_code(cls, code: object) -> TrustTier:
        for tier, value in _TIER_CODES.items():
            if code == value and not isinstance(code, bool):
                return tier
        raise MalformedInput(f"ear.status {code!r} is not a trust tier code (0, 2, 32, 96)")

    @classmethod
    def from_name(cls, name: object) -> TrustTier:
        try:
            return cls(name)
        except ValueError:
            raise MalformedInput(f"ear.status {name!r} is not a trust tier") from None


_TIER_CODES: Final = {
    TrustTier.NONE: 0,
    TrustTier.AFFIRMING: 2,
    TrustTier.WARNING: 32,
    TrustTier.CONTRAINDICATED: 96,
}
_TIER_ORDER: Final = (
    TrustTier.NONE,
    TrustTier.AFFIRMING,
    TrustTier.WARNING,
    TrustTier.CONTRAINDICATED,
)


def _claim_value(value: object, category: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -128 <= value <= 127:
        raise MalformedInput(f"trustworthiness claim {category} must be an integer -128..127")
    return value


def tier_of(value: int) -> TrustTier:
    """The tier of one trustworthiness claim value: none -1..1, affirming 2..31 and
    -32..-2, warning 32..95 and -96..-33, contraindicated 96..127 and -128..-97."""
    if -1 <= value <= 1:
        return TrustTier.NONE
    if 2 <= value <= 31 or -32 <= value <= -2:
        return TrustTier.AFFIRMING
    if 32 <= value <= 95 or -96 <= value <= -33:
        return TrustTier.WARNING
    return TrustTier.CONTRAINDICATED


def _worst(tiers: Iterable[TrustTier]) -> TrustTier:
    return max(tiers, key=lambda t: t.severity, default=TrustTier.NONE)


@dataclass(frozen=True, slots=True)
class VerifierId:
    """``ear.verifier-id``: who built the verifier software, and which build it is."""

    developer: str
    build: str


@dataclass(frozen=True, slots=True)
class Appraisal:
    """One EAR-appraisal (one submodule): status, trust vector, policy id and why.

    ``reasons`` has one line per failed check; ``evidence`` the appraised evidence claims
    (JSON-ready: bytes as hex), for relying parties such as key release.
    """

    status: TrustTier
    trust_vector: Mapping[str, int]
    policy_id: str | None = None
    reasons: tuple[str, ...] = ()
    evidence: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        vector = dict(self.trust_vector)
        for category, value in vector.items():
            if category not in TRUST_CATEGORIES:
                raise MalformedInput(f"unknown trust vector category {category!r}")
            _claim_value(value, category)
        if not vector:
            raise MalformedInput("a trustworthiness vector has at least one claim")
        worst = _worst(tier_of(v) for v in vector.values())
        if self.status is not TrustTier.NONE and self.status.severity < worst.severity:
            raise MalformedInput(
                f"ear.status {self.status.value} claims more trust than its trust vector "
                f"({worst.value})"
            )
        object.__setattr__(self, "trust_vector", MappingProxyType(vector))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.evidence is not None:
            object.__setattr__(self, "evidence", MappingProxyType(dict(self.evidence)))

    @classmethod
    def from_vector(
        cls,
        vector: Mapping[str, int],
        *,
        policy_id: str | None = None,
        reasons: Iterable[str] = (),
        evidence: Mapping[str, Any] | None = None,
    ) -> Appraisal:
        """An appraisal whose status is the worst tier of ``vector``."""
        status = _worst(tier_of(v) for v in vector.values())
        return cls(status, vector, policy_id, tuple(reasons), evidence)

    def tags(self) -> dict[str, str]:
        """category → the claim's tag (``approved_rt``...), or its number when unlisted."""
        return {c: TRUST_CLAIM_TAGS[c].get(v, str(v)) for c, v in sorted(self.trust_vector.items())}


@dataclass(frozen=True, slots=True)
class AttestationResult:
    """An EAR claims-set (see the module documentation)."""

    iat: int
    verifier_id: VerifierId
    submods: Mapping[str, Appraisal]
    exp: int | None = None
    nonce: bytes | None = None
    raw_evidence: bytes | None = None
    profile: str = EAR_PROFILE

    def __post_init__(self) -> None:
        if not self.submods:
            raise MalformedInput("an EAR has at least one submodule appraisal")
        if self.nonce is not None and not 8 <= len(self.nonce) <= 64:
            raise MalformedInput("eat_nonce is 8..64 bytes")
        object.__setattr__(self, "submods", MappingProxyType(dict(self.submods)))

    @property
    def status(self) -> TrustTier:
        """The worst status over every submodule."""
        return _worst(a.status for a in self.submods.values())

    # --- JSON (JWT) ----------------------------------------------------------------------

    def to_json_claims(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eat_profile": self.profile,
            "iat": self.iat,
            "ear.verifier-id": {
                "developer": self.verifier_id.developer,
                "build": self.verifier_id.build,
            },
            "submods": {name: _appraisal_json(a) for name, a in self.submods.items()},
        }
        if self.exp is not None:
            out["exp"] = self.exp
        if self.nonce is not None:
            out["eat_nonce"] = b64url_encode(self.nonce)
        if self.raw_evidence is not None:
            out["ear.raw-evidence"] = b64url_encode(self.raw_evidence)
        return out

    @classmethod
    def from_json_claims(cls, claims: Mapping[str, Any]) -> AttestationResult:
        if not isinstance(claims, Mapping):
            raise MalformedInput("an EAR's claims are a JSON object")
        profile = _profile(claims.get("eat_profile"))
        vid = _first(claims, "ear.verifier-id", "ear_verifier_id")
        submods = claims.get("submods")
        if not isinstance(submods, Mapping) or not all(isinstance(k, str) for k in submods):
            raise MalformedInput("submods must map text labels to appraisals")
        nonce = claims.get("eat_nonce")
        raw = _first(claims, "ear.raw-evidence", "ear_raw_evidence")
        return cls(
            iat=_time(claims.get("iat"), "iat"),
            exp=None if claims.get("exp") is None else _time(claims.get("exp"), "exp"),
            verifier_id=_verifier_id(vid, "developer", "build"),
            submods={name: _appraisal_from_json(a) for name, a in submods.items()},
            nonce=None if nonce is None else _b64(nonce, "eat_nonce"),
            raw_evidence=None if raw is None else _b64(raw, "ear.raw-evidence"),
            profile=profile,
        )

    # --- CBOR (CWT) ----------------------------------------------------------------------

    def to_cbor_claims(self) -> dict[int, Any]:
        out: dict[int, Any] = {
            _C_PROFILE: self.profile,
            _C_IAT: self.iat,
            _C_VERIFIER_ID: {0: self.verifier_id.developer, 1: self.verifier_id.build},
            _C_SUBMODS: {name: _appraisal_cbor(a) for name, a in self.submods.items()},
        }
        if self.exp is not None:
            out[_C_EXP] = self.exp
        if self.nonce is not None:
            out[_C_NONCE] = self.nonce
        if self.raw_evidence is not None:
            out[_C_RAW_EVIDENCE] = self.raw_evidence
        return out

    @classmethod
    def from_cbor_claims(cls, claims: Mapping[object, Any]) -> AttestationResult:
        if not isinstance(claims, Mapping):
            raise MalformedInput("an EAR's claims are a CBOR map")
        profile = _profile(claims.get(_C_PROFILE))
        submods = claims.get(_C_SUBMODS)
        if not isinstance(submods, Mapping) or not all(isinstance(k, str) for k in submods):
            raise MalformedInput("submods (266) must map text labels to appraisals")
        nonce = claims.get(_C_NONCE)
        raw = claims.get(_C_RAW_EVIDENCE)
        if nonce is not None and not isinstance(nonce, bytes):
            raise MalformedInput("eat_nonce (10) must be a byte string")
        if raw is not None and not isinstance(raw, bytes):
            raise MalformedInput("ear.raw-evidence (1002) must be a byte string")
        exp = claims.get(_C_EXP)
        return cls(
            iat=_time(claims.get(_C_IAT), "iat"),
            exp=None if exp is None else _time(exp, "exp"),
            verifier_id=_verifier_id(claims.get(_C_VERIFIER_ID), 0, 1),
            submods={name: _appraisal_from_cbor(a) for name, a in submods.items()},
            nonce=nonce,
            raw_evidence=raw,
            profile=profile,
        )


# --- claim names and labels -------------------------------------------------------------------

_C_IAT: Final = 6
_C_EXP: Final = 4
_C_NONCE: Final = 10
_C_PROFILE: Final = 265
_C_SUBMODS: Final = 266
_C_STATUS: Final = 1000
_C_VECTOR: Final = 1001
_C_RAW_EVIDENCE: Final = 1002
_C_POLICY_ID: Final = 1003
_C_VERIFIER_ID: Final = 1004
_C_REASONS: Final = -70100
_C_EVIDENCE: Final = -70101
_J_REASONS: Final = "ear.ironroot.reasons"
_J_EVIDENCE: Final = "ear.ironroot.evidence"


def _profile(value: object) -> str:
    if not isinstance(value, str):
        raise MalformedInput(f"eat_profile must be text, not {type(value).__name__}")
    if value != EAR_PROFILE and value not in _NEWER_PROFILES:
        raise MalformedInput(f"eat_profile {value[:80]!r} is not the EAR profile")
    return value


def _first(claims: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in claims:
            return claims[name]
    return None


def _time(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput(f"{what} must be a non-negative integer (seconds since the epoch)")
    return value


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedInput(f"{what} must be base64url text")
    return b64url_decode(value, what=what)


def _verifier_id(value: object, developer: object, build: object) -> VerifierId:
    if not isinstance(value, Mapping):
        raise MalformedInput("ear.verifier-id must be a map with developer and build")
    dev, bld = value.get(developer), value.get(build)
    if not isinstance(dev, str) or not isinstance(bld, str):
        raise MalformedInput("ear.verifier-id developer and build must be text")
    return VerifierId(dev, bld)


def _reasons(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(r, str) for r in value):
        raise MalformedInput("ear.ironroot.reasons must be a list of text")
    return tuple(value)


def _policy_id(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return str(value[0])  # the later draft's list of policy ids: the first is the main one
    if not isinstance(value, str):
        raise MalformedInput("ear.appraisal-policy-id must be text")
    return value


def _evidence(value: object) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MalformedInput("ear.ironroot.evidence must be a map with text keys")
    return value


def _appraisal_json(a: Appraisal) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ear.status": a.status.value,
        "ear.trustworthiness-vector": dict(a.trust_vector),
    }
    if a.policy_id is not None:
        out["ear.appraisal-policy-id"] = a.policy_id
    if a.reasons:
        out[_J_REASONS] = list(a.reasons)
    if a.evidence is not None:
        out[_J_EVIDENCE] = dict(a.evidence)
    return out


def _appraisal_from_json(value: object) -> Appraisal:
    if not isinstance(value, Mapping):
        raise MalformedInput("an EAR appraisal must be a JSON object")
    vector = _first(value, "ear.trustworthiness-vector", "ear_trustworthiness_vector") or {}
    if not isinstance(vector, Mapping):
        raise MalformedInput("ear.trustworthiness-vector must be an object")
    return Appraisal(
        status=TrustTier.from_name(_first(value, "ear.status", "ear_status")),
        trust_vector={str(k): _claim_value(v, str(k)) for k, v in vector.items()},
        policy_id=_policy_id(_first(value, "ear.appraisal-policy-id", "ear_appraisal_policy_ids")),
        reasons=_reasons(value.get(_J_REASONS)),
        evidence=_evidence(value.get(_J_EVIDENCE)),
    )


def _appraisal_cbor(a: Appraisal) -> dict[int, Any]:
    out: dict[int, Any] = {
        _C_STATUS: a.status.code,
        _C_VECTOR: {TRUST_CATEGORIES.index(c): v for c, v in a.trust_vector.items()},
    }
    if a.policy_id is not None:
        out[_C_POLICY_ID] = a.policy_id
    if a.reasons:
        out[_C_REASONS] = list(a.reasons)
    if a.evidence is not None:
        out[_C_EVIDENCE] = dict(a.evidence)
    return out


def _appraisal_from_cbor(value: object) -> Appraisal:
    if not isinstance(value, Mapping):
        raise MalformedInput("an EAR appraisal must be a CBOR map")
    vector = value.get(_C_VECTOR, {})
    if not isinstance(vector, Mapping):
        raise MalformedInput("ear.trustworthiness-vector (1001) must be a map")
    named: dict[str, int] = {}
    for key, claim in vector.items():
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 8:
            raise MalformedInput(f"trust vector key {key!r} is not a category (0..7)")
        category = TRUST_CATEGORIES[key]
        named[category] = _claim_value(claim, category)
    return Appraisal(
        status=TrustTier.from_code(value.get(_C_STATUS)),
        trust_vector=named,
        policy_id=_policy_id(value.get(_C_POLICY_ID)),
        reasons=_reasons(value.get(_C_REASONS)),
        evidence=_evidence(value.get(_C_EVIDENCE)),
    )


# --- signing ----------------------------------------------------------------------------------


def sign_ear_jwt(result: AttestationResult, signer: Signer) -> bytes:
    """The EAR as a compact JWS (``typ`` JWT, ``kid`` the base64url RFC 9679 thumbprint)."""
    if signer.algorithm not in _JWT_ALGORITHMS:
        raise AlgorithmNotAccepted(f"EAR JWTs are signed ES256/384/512, not {signer.algorithm}")
    header = {"alg": signer.algorithm.label, "typ": "JWT", "kid": b64url_encode(signer.kid)}
    segments = [
        b64url_encode(json.dumps(part, separators=(",", ":"), sort_keys=True).encode())
        for part in (header, result.to_json_claims())
    ]
    signing_input = ".".join(segments).encode("ascii")
    return signing_input + b"." + b64url_encode(signer.sign(signing_input)).encode("ascii")


def sign_ear_cwt(result: AttestationResult, signer: Signer) -> bytes:
    """The EAR as a CWT: COSE_Sign1 (tag 18) with ``alg`` and ``kid`` protected."""
    return sign1(signer, encode_cbor(result.to_cbor_claims()), {KID: signer.kid}).encode()


def key_map(keys: Mapping[bytes, Verifier] | Iterable[PublicKey]) -> dict[bytes, Verifier]:
    """``{kid: verifier}`` from a mapping or from public keys (keyed by their thumbprints)."""
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key.kid: key for key in keys}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedInput(f"JSON member {key!r} appears twice")
        out[key] = value
    return out


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"{what} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedInput(f"{what} must be a JSON object")
    return value


def _registry() -> JWSRegistry:
    registry = JWSRegistry(
        algorithms=sorted(a.label for a in _JWT_ALGORITHMS), strict_check_header=True
    )
    registry.max_payload_length = MAX_TOKEN_BYTES
    return registry


def _decode_jwt(token: bytes, keys: Mapping[bytes, Verifier]) -> AttestationResult:
    registry = _registry()
    try:
        obj = extract_compact(token, registry=registry)
        header = obj.headers()
        registry.check_header(header)
        signature = b64url_decode(obj.segments["signature"].decode("ascii"), what="signature")
        signing_input = obj.segments["header"] + b"." + obj.segments["payload"]
        payload = obj.payload
    except JoseError as exc:
        raise MalformedInput(f"not a compact JWS: {exc.description or exc.error}") from exc
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise MalformedInput(f"not a compact JWS: {exc}") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if "crit" in header:
        raise MalformedInput("JWS header crit names extensions this verifier does not process")
    if not isinstance(kid, str):
        raise UnknownIssuer("the EAR's JWS header names no kid")
    verifier = keys.get(b64url_decode(kid, what="kid"))
    if verifier is None:
        raise UnknownIssuer(f"no verifier key has kid {kid}")
    if not isinstance(alg, str) or Algorithm.from_label(alg) is not verifier.algorithm:
        raise AlgorithmNotAccepted(f"JWS alg {alg!r} is not the key's algorithm")
    verifier.verify(signature, signing_input)
    return AttestationResult.from_json_claims(_json(payload, "the JWT claims"))


def _decode_cwt(token: bytes, keys: Mapping[bytes, Verifier]) -> AttestationResult:
    message = Sign1.decode(token, _LIMITS)
    kid = message.protected.get(KID)
    if not isinstance(kid, bytes):
        raise UnknownIssuer("the EAR's COSE header names no kid")
    verifier = keys.get(kid)
    if verifier is None:
        raise UnknownIssuer(f"no verifier key has kid {kid.hex()}")
    message.verify(verifier)
    if message.payload is None:
        raise MalformedInput("the CWT payload is detached")
    claims = decode_cbor(message.payload, _LIMITS)
    if not isinstance(claims, Mapping):
        raise MalformedInput("the CWT claims are not a map")
    return AttestationResult.from_cbor_claims(claims)


def decode_ear(
    token: bytes | str, keys: Mapping[bytes, Verifier] | Iterable[PublicKey]
) -> AttestationResult:
    """Check the signature of a JWT or CWT EAR and parse it; no time checks (see
    :func:`verify_ear`)."""
    data = token.encode("ascii", "replace") if isinstance(token, str) else bytes(token)
    if len(data) > MAX_TOKEN_BYTES:
        raise LimitExceeded(f"an EAR is at most {MAX_TOKEN_BYTES} bytes")
    verifiers = key_map(keys)
    if not verifiers:
        raise UnknownIssuer("no verifier keys are configured: an empty key set trusts nothing")
    if data[:1] == b"\xd2":
        return _decode_cwt(data, verifiers)
    return _decode_jwt(data.strip(), verifiers)


def verify_ear(
    token: bytes | str,
    keys: Mapping[bytes, Verifier] | Iterable[PublicKey],
    *,
    now: datetime,
) -> AttestationResult:
    """Verify an EAR (JWT or CWT, told apart by the first byte) and return its claims.

    Raises ``UnknownIssuer`` when no key has its ``kid``, ``BadSignature`` /
    ``AlgorithmNotAccepted`` when the signature does not verify with it, ``ResultExpired``
    after ``exp`` (or when issued in the future, beyond a minute of clock skew), and
    ``MalformedInput`` for anything that does not parse as an EAR.
    """
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    result = decode_ear(token, keys)
    t = int(now.timestamp())
    if result.exp is not None and t >= result.exp:
        raise ResultExpired(f"the EAR expired at {result.exp} (now {t})")
    if result.iat > t + CLOCK_SKEW:
        raise ResultExpired(f"the EAR is issued in the future ({result.iat}, now {t})")
    return result
