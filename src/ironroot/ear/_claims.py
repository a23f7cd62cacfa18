"""The EAR claims-set in JSON (a JWT's payload) and in CBOR (a CWT's payload), both ways.

The claim names and labels: ``iat`` 6, ``exp`` 4, ``nbf`` 5 (kept when read; the
appraiser sets none), ``eat_nonce`` 10, ``eat_profile`` 265,
``submods`` 266, ``ear.status`` 1000, ``ear.trustworthiness-vector`` 1001, ``ear.raw-evidence``
1002, ``ear.appraisal-policy-id`` 1003, ``ear.verifier-id`` 1004; vector categories 0–7; tiers
none 0, affirming 2, warning 32, contraindicated 96. Ironroot's own appraisal extensions use
private names (``ear.ironroot.reasons`` / -70100, ``ear.ironroot.evidence`` / -70101), the way
Veraison names its ``ear.veraison.*`` extensions. On input the later draft's names
(``ear_status``, ``ear_trustworthiness_vector``, ``ear_appraisal_policy_ids``,
``ear_verifier_id``, ``ear_raw_evidence``) and its profile are accepted too; unknown claims are
ignored, as the draft requires.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ironroot.crypto import b64url_decode, b64url_encode, check_cbor_labels
from ironroot.ear._model import (
    EAR_PROFILE,
    TRUST_CATEGORIES,
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    claim_value,
)
from ironroot.errors import MalformedInput

__all__ = ["cbor_claims", "json_claims", "result_from_cbor", "result_from_json"]

_NEWER_PROFILES: Final = frozenset(("tag:ietf.org,2026:rats/ear#04",))

_C_IAT: Final = 6
_C_EXP: Final = 4
_C_NBF: Final = 5
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


def json_claims(result: AttestationResult) -> dict[str, Any]:
    """The JSON claims-set of ``result``."""
    out: dict[str, Any] = {
        "eat_profile": result.profile,
        "iat": result.iat,
        "ear.verifier-id": {
            "developer": result.verifier_id.developer,
            "build": result.verifier_id.build,
        },
        "submods": {name: _appraisal_json(a) for name, a in result.submods.items()},
    }
    if result.exp is not None:
        out["exp"] = result.exp
    if result.nbf is not None:
        out["nbf"] = result.nbf
    if result.nonce is not None:
        out["eat_nonce"] = b64url_encode(result.nonce)
    if result.raw_evidence is not None:
        out["ear.raw-evidence"] = b64url_encode(result.raw_evidence)
    return out


def result_from_json(claims: Mapping[str, Any]) -> AttestationResult:
    """Parse a JSON claims-set (the later draft's names too; unknown claims ignored)."""
    if not isinstance(claims, Mapping):
        raise MalformedInput("an EAR's claims are a JSON object")
    profile = _profile(claims.get("eat_profile"))
    vid = _first(claims, "ear.verifier-id", "ear_verifier_id")
    submods = claims.get("submods")
    if not isinstance(submods, Mapping) or not all(isinstance(k, str) for k in submods):
        raise MalformedInput("submods must map text labels to appraisals")
    nonce = claims.get("eat_nonce")
    raw = _first(claims, "ear.raw-evidence", "ear_raw_evidence")
    return AttestationResult(
        iat=_time(claims.get("iat"), "iat"),
        exp=None if claims.get("exp") is None else _time(claims.get("exp"), "exp"),
        nbf=None if claims.get("nbf") is None else _time(claims.get("nbf"), "nbf"),
        verifier_id=_verifier_id(vid, "developer", "build"),
        submods={name: _appraisal_from_json(a) for name, a in submods.items()},
        nonce=None if nonce is None else _b64(nonce, "eat_nonce"),
        raw_evidence=None if raw is None else _b64(raw, "ear.raw-evidence"),
        profile=profile,
    )


def cbor_claims(result: AttestationResult) -> dict[int, Any]:
    """The CBOR claims-set of ``result``."""
    out: dict[int, Any] = {
        _C_PROFILE: result.profile,
        _C_IAT: result.iat,
        _C_VERIFIER_ID: {0: result.verifier_id.developer, 1: result.verifier_id.build},
        _C_SUBMODS: {name: _appraisal_cbor(a) for name, a in result.submods.items()},
    }
    if result.exp is not None:
        out[_C_EXP] = result.exp
    if result.nbf is not None:
        out[_C_NBF] = result.nbf
    if result.nonce is not None:
        out[_C_NONCE] = result.nonce
    if result.raw_evidence is not None:
        out[_C_RAW_EVIDENCE] = result.raw_evidence
    return out


def result_from_cbor(claims: Mapping[object, Any]) -> AttestationResult:
    """Parse a CBOR claims-set (unknown labels ignored)."""
    _labelled(claims, "an EAR's claims")
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
    nbf = claims.get(_C_NBF)
    return AttestationResult(
        iat=_time(claims.get(_C_IAT), "iat"),
        exp=None if exp is None else _time(exp, "exp"),
        nbf=None if nbf is None else _time(nbf, "nbf"),
        verifier_id=_verifier_id(claims.get(_C_VERIFIER_ID), 0, 1),
        submods={name: _appraisal_from_cbor(a) for name, a in submods.items()},
        nonce=nonce,
        raw_evidence=raw,
        profile=profile,
    )


def _labelled(value: object, what: str) -> Mapping[object, Any]:
    """``value`` if it is a CBOR map keyed by integers or text, as every EAR map is. A decoded
    map is a Python dict, where ``6.0 == 6`` and ``True == 1``: a map keyed by them would be
    read here as if keyed by the integer label, though every other EAR reader sees another
    key (CoRIM and COSE labels are refused the same way)."""
    if not isinstance(value, Mapping):
        raise MalformedInput(f"{what} are a CBOR map")
    check_cbor_labels(value, f"{what}: the key")
    return value


def _profile(value: object) -> str:
    if not isinstance(value, str):
        raise MalformedInput(f"eat_profile must be text, not {type(value).__name__}")
    if value != EAR_PROFILE and value not in _NEWER_PROFILES:
        raise MalformedInput(f"eat_profile {value[:80]!r} is not the EAR profile")
    return value


def _first(claims: Mapping[str, Any], *names: str) -> Any:
    """The claim under whichever of its spellings is present; both present is ambiguous
    (readers of the two drafts would each see another value) and refused."""
    present = [name for name in names if name in claims]
    if len(present) > 1:
        raise MalformedInput(f"the EAR carries both {present[0]} and {present[1]}")
    return claims[present[0]] if present else None


# 9999-12-31T23:59:59Z: the last second a date can be shown for (Python's datetime, and the
# reports, pages and audit bundles that show an EAR's times); a JSON EAR's integers have no
# bound of their own (a CWT's stop at 2**64 - 1), and a time past this one means nothing.
_LAST_SECOND: Final = 253_402_300_799


def _time(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput(f"{what} must be a non-negative integer (seconds since the epoch)")
    if value > _LAST_SECOND:
        raise MalformedInput(f"{what} {str(value)[:24]} is past the year 9999")
    return value


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedInput(f"{what} must be base64url text")
    return b64url_decode(value, what=what)


def _verifier_id(value: object, developer: object, build: object) -> VerifierId:
    if not isinstance(value, Mapping):
        raise MalformedInput("ear.verifier-id must be a map with developer and build")
    _labelled(value, "ear.verifier-id's members")
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
        trust_vector={str(k): claim_value(v, str(k)) for k, v in vector.items()},
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
    _labelled(value, "an EAR appraisal's members")
    vector = value.get(_C_VECTOR, {})
    if not isinstance(vector, Mapping):
        raise MalformedInput("ear.trustworthiness-vector (1001) must be a map")
    named: dict[str, int] = {}
    for key, claim in vector.items():
        if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key < 8:
            raise MalformedInput(f"trust vector key {key!r} is not a category (0..7)")
        category = TRUST_CATEGORIES[key]
        named[category] = claim_value(claim, category)
    return Appraisal(
        status=TrustTier.from_code(value.get(_C_STATUS)),
        trust_vector=named,
        policy_id=_policy_id(value.get(_C_POLICY_ID)),
        reasons=_reasons(value.get(_C_REASONS)),
        evidence=_evidence(value.get(_C_EVIDENCE)),
    )
