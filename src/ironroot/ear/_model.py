"""The EAR model: AR4SI trust tiers and trustworthiness vectors, appraisals, results.

An :class:`AttestationResult` is the EAR claims-set (draft-ietf-rats-ear)::

    {eat_profile: "tag:github.com,2023:veraison/ear", iat, exp, ear.verifier-id: {developer,
     build}, ? eat_nonce, ? ear.raw-evidence, submods: {label: EAR-appraisal}}

    EAR-appraisal = {ear.status: tier, ear.trustworthiness-vector: {category: -128..127},
                     ? ear.appraisal-policy-id, ? ear.ironroot.reasons: [text],
                     ? ear.ironroot.evidence: {annotated evidence claims}}

The AR4SI code points (draft-ietf-rats-ar4si §2.3) are in :class:`AR4SI` and
:data:`TRUST_CLAIM_TAGS`: -1..1 are the "none" tier, 2..31 affirming, 32..95 warning, 96..127
contraindicated (negative values mirror them). ``ear.status`` of an appraisal is never more
trusting than the worst tier of its vector. Every value is checked on construction.

Its JSON and CBOR claims-sets are ``_claims``'s; signing and verifying it as a JWT or a CWT
is ``_token``'s.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, cast

from ironroot.errors import (
    MalformedInput,
)

__all__ = [
    "AR4SI",
    "EAR_PROFILE",
    "TRUST_CATEGORIES",
    "TRUST_CLAIM_TAGS",
    "Appraisal",
    "AttestationResult",
    "TrustTier",
    "VerifierId",
    "claim_value",
    "tier_of",
]

EAR_PROFILE: Final = "tag:github.com,2023:veraison/ear"

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
            if type(code) is int and code == value:  # not 2.0 nor True: other CBOR values
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


def claim_value(value: object, category: str) -> int:
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


_CBOR_INT: Final = 2**64  # CBOR's integers (major types 0 and 1): -2**64 .. 2**64 - 1


def _json_ready(evidence: Mapping[str, Any]) -> None:
    """``MalformedInput`` unless ``evidence`` holds JSON values only: maps with text keys,
    lists, text, integers, finite numbers, booleans and null. A CWT can carry more (byte
    strings, tags, ``undefined``, NaN, integer keys), which no JWT, policy claim or report
    can: such an EAR is refused, not carried on to fail where it is shown or signed again.
    And a JSON integer past 64 bits, which a CWT carries only as a bignum tag. Walked without
    recursion (the decoders bound the depth)."""
    pending: list[object] = [evidence]
    while pending:
        node = pending.pop()
        # The exact built-in types the claims are made of first, by type alone (no ABC
        # check for them); anything else goes through the checks below.
        kind = type(node)
        if kind is str or kind is bool or node is None:
            continue
        if kind is int:
            if not -_CBOR_INT <= cast(int, node) < _CBOR_INT:
                raise MalformedInput(
                    "ear.ironroot.evidence holds an integer past 64 bits, which no CWT carries"
                )
            continue
        if kind is dict:
            mapping = cast(dict[object, object], node)
            if not all(isinstance(key, str) for key in mapping):
                raise MalformedInput("ear.ironroot.evidence holds a map key that is not JSON text")
            pending.extend(mapping.values())
            continue
        if kind is list:
            pending.extend(cast(list[object], node))
            continue
        if isinstance(node, Mapping):
            if not all(isinstance(key, str) for key in node):
                raise MalformedInput("ear.ironroot.evidence holds a map key that is not JSON text")
            pending.extend(node.values())
        elif isinstance(node, list | tuple):
            pending.extend(node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise MalformedInput("ear.ironroot.evidence holds a number that is not JSON")
        elif isinstance(node, int) and not -_CBOR_INT <= node < _CBOR_INT:
            raise MalformedInput(
                "ear.ironroot.evidence holds an integer past 64 bits, which no CWT carries"
            )
        elif node is not None and not isinstance(node, str | int):  # bool is an int
            raise MalformedInput(
                f"ear.ironroot.evidence holds a {type(node).__name__}, not a JSON value"
            )


def _worst(tiers: Iterable[TrustTier]) -> TrustTier:
    return max(tiers, key=lambda t: t.severity, default=TrustTier.NONE)


@dataclass(frozen=True, slots=True)
class VerifierId:
    """``ear.verifier-id``: who built the verifier software, and which build it is (AR4SI:
    each identifies it, so neither is empty)."""

    developer: str
    build: str

    def __post_init__(self) -> None:
        for name in ("developer", "build"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise MalformedInput(f"ear.verifier-id {name} must be text")
            if not value:
                raise MalformedInput(f"ear.verifier-id {name} is empty: it names no verifier")


@dataclass(frozen=True, slots=True)
class Appraisal:
    """One EAR-appraisal (one submodule): status, trust vector, policy id and why.

    ``reasons`` has one line per failed check; ``evidence`` the appraised evidence claims
    (JSON values only, bytes as hex: checked), for relying parties such as key release.
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
            claim_value(value, category)
        if not vector:
            raise MalformedInput("a trustworthiness vector has at least one claim")
        worst = _worst(tier_of(v) for v in vector.values())
        # "none" claims no trust, which is more caution than "affirming" or "warning" (an
        # EAR with a none submodule releases nothing), but it may not hide a contraindication.
        # And over a vector with no trust claim at all (every claim -1..1) only "none" fits.
        if (
            self.status.severity < worst.severity
            and (self.status is not TrustTier.NONE or worst is TrustTier.CONTRAINDICATED)
        ) or (worst is TrustTier.NONE and self.status is not TrustTier.NONE):
            raise MalformedInput(
                f"ear.status {self.status.value} claims more trust than its trust vector "
                f"({worst.value})"
            )
        object.__setattr__(self, "trust_vector", MappingProxyType(vector))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.evidence is not None:
            _json_ready(self.evidence)
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
    nbf: int | None = None

    def __post_init__(self) -> None:
        if not self.submods:
            raise MalformedInput("an EAR has at least one submodule appraisal")
        if self.nonce is not None and not 8 <= len(self.nonce) <= 64:
            raise MalformedInput("eat_nonce is 8..64 bytes")
        object.__setattr__(self, "submods", MappingProxyType(dict(self.submods)))

    @property
    def status(self) -> TrustTier:
        """The worst status over every submodule, where a submodule appraised as ``none``
        (evidence that did not parse, a device nothing was said about) is worse than
        ``affirming`` and ``warning``: one unappraised device leaves the whole result ``none``
        (nothing releases on it) unless another is contraindicated."""
        statuses = [a.status for a in self.submods.values()]
        worst = _worst(statuses)
        if worst is not TrustTier.CONTRAINDICATED and TrustTier.NONE in statuses:
            return TrustTier.NONE
        return worst

    # --- the claims-sets (``_claims``) ------------------------------------------------------

    def to_json_claims(self) -> dict[str, Any]:
        """The JSON claims-set (a JWT's payload)."""
        from ironroot.ear._claims import json_claims  # the codecs build on this model

        return json_claims(self)

    @classmethod
    def from_json_claims(cls, claims: Mapping[str, Any]) -> AttestationResult:
        """Parse a JSON claims-set; ``MalformedInput`` for anything that is not an EAR."""
        from ironroot.ear._claims import result_from_json

        return result_from_json(claims)

    def to_cbor_claims(self) -> dict[int, Any]:
        """The CBOR claims-set (a CWT's payload)."""
        from ironroot.ear._claims import cbor_claims

        return cbor_claims(self)

    @classmethod
    def from_cbor_claims(cls, claims: Mapping[object, Any]) -> AttestationResult:
        """Parse a CBOR claims-set; ``MalformedInput`` for anything that is not an EAR."""
        from ironroot.ear._claims import result_from_cbor

        return result_from_cbor(claims)
