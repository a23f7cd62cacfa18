"""Verify a firmware bundle: the one decision the RoT boot and the BMC update path both take.

:func:`verify_bundle` is pure (the bundle's bytes and a :class:`BundlePolicy` of fused values
in, a :class:`VerifiedManifest` out or a typed error raised) and runs these checks in order,
stopping at the first failure:

1. ``key-descriptor``: SHA-384 of the two key descriptors is the fused vendor key hash (or one
   of the allowed hashes) — ``KeyDescriptorMismatch``;
2. ``ecc-key`` / ``pqc-key``: the preamble's active key indices equal the header's (signed)
   indices and the active keys hash to the descriptor entries there — ``KeyNotInDescriptor``;
3. ``ecc-revocation`` / ``pqc-revocation``: the active keys' revocation bits are clear —
   ``KeyRevoked``;
4. ``vendor-ecc-signature`` / ``vendor-pqc-signature``: BOTH vendor signatures over the header
   verify — ``MissingSignature`` when one is absent, ``BadSignature`` when it does not verify,
   ``AlgorithmNotAccepted`` for an LMS parameter set the limits do not admit;
5. ``owner-key`` / ``owner-ecc-signature`` / ``owner-pqc-signature``: when an owner key hash is
   fused the owner keys must match it (``OwnerKeyMismatch``); when owner keys are present both
   owner signatures are required and must verify. Without a fused owner key hash the bundle's
   owner keys are bound to nothing (:attr:`VerifiedManifest.owner_key_bound` is ``False``);
6. ``toc-digest``: SHA-384 of the TOC is the header's TOC digest — ``DigestMismatch``;
7. ``component:<id>``: SHA-384 of every component is its TOC digest — ``DigestMismatch``
   (bounds and contiguity are parse checks: ``MalformedFirmware``);
8. ``svn``: SVN ≥ ``min_svn`` unless anti-rollback is disabled — ``SvnRollback``;
9. ``validity``: ``now`` is within the vendor (and, when set, owner) validity dates —
   ``ManifestExpired``. With ``BundlePolicy(expired_manifest="report")`` (the boot of an image
   already installed: docs/firmware.md "Validity dates: install versus boot") a manifest
   outside its dates passes this check and the finding is kept in
   :attr:`VerifiedManifest.validity_problem` for the caller to record and report; signatures,
   revocation, digests and the SVN are decided exactly as before.

:func:`check_bundle` runs every check that can run and reports each result, for
``ironroot firmware verify --json``; it never raises for a bad bundle.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Final

from ironroot.crypto import Verifier
from ironroot.errors import (
    AlgorithmNotAccepted,
    ConfigError,
    DigestMismatch,
    IronrootError,
    KeyDescriptorMismatch,
    KeyNotInDescriptor,
    KeyRevoked,
    ManifestExpired,
    MissingSignature,
    NotFound,
    OwnerKeyMismatch,
    SvnRollback,
)
from ironroot.firmware._keys import ecc_verifier, key_hash, lms_parameter_set_name, pqc_verifier
from ironroot.firmware._manifest import (
    DEFAULT_LIMITS,
    FMC_ID,
    HASH_SIZE,
    HEADER_OFFSET,
    MAX_ECC_KEYS,
    MAX_PQC_KEYS,
    MAX_SVN,
    RUNTIME_ID,
    TOC_OFFSET,
    FirmwareBundle,
    FirmwareLimits,
    KeyDescriptor,
    Manifest,
    PqcKeyType,
)

__all__ = [
    "BundlePolicy",
    "CheckResult",
    "Measurement",
    "VerificationReport",
    "VerifiedComponent",
    "VerifiedManifest",
    "check_bundle",
    "verify_bundle",
]

_NO_OWNER: Final = b"\0" * HASH_SIZE
EXPIRED_MANIFEST_MODES: Final = ("refuse", "report")
"""The values of :attr:`BundlePolicy.expired_manifest`."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One value the RoT extends into a PCR, with its name for the PCR event log."""

    name: str
    value: bytes


@dataclass(frozen=True, slots=True)
class VerifiedComponent:
    """A component whose digest matched its (signed) TOC entry."""

    component_id: int
    version: int
    revision: bytes
    load_address: int
    entry_point: int
    digest: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class VerifiedManifest:
    """The outcome of a successful verification: what the RoT measures and loads."""

    manifest: Manifest
    components: tuple[VerifiedComponent, ...]
    vendor_key_descriptor_hash: bytes
    vendor_ecc_key_hash: bytes
    vendor_pqc_key_hash: bytes
    owner_key_hash: bytes | None
    header_digest: bytes
    manifest_digest: bytes
    svn: int
    validity_problem: str | None = None
    """Why the manifest is outside its validity dates at ``now`` (the ``ManifestExpired``
    detail), when the policy reported it instead of refusing; ``None`` when within them."""
    owner_key_bound: bool = False
    """Whether the owner keys matched a fused owner key hash. ``False`` with
    :attr:`owner_key_hash` set: no owner key hash is fused and the bundle's owner keys, whose
    signatures verified, are bound to nothing (any owner key is accepted, as in Caliptra; the
    RoT measures the fact in its ``device-status`` event)."""

    @property
    def pqc_key_type(self) -> PqcKeyType:
        return self.manifest.pqc_key_type

    @property
    def vendor_ecc_key_index(self) -> int:
        return self.manifest.header.vendor_ecc_key_index

    @property
    def vendor_pqc_key_index(self) -> int:
        return self.manifest.header.vendor_pqc_key_index

    def component(self, component_id: int) -> VerifiedComponent:
        for component in self.components:
            if component.component_id == component_id:
                return component
        raise NotFound(f"the bundle has no component {component_id}")

    @property
    def fmc(self) -> VerifiedComponent:
        return self.components[0]

    @property
    def runtime(self) -> VerifiedComponent:
        return self.components[1]

    def measurements(self) -> tuple[Measurement, ...]:
        """What the RoT extends into its PCRs, in this order.

        ``vendor-ecc-key-hash``, ``vendor-pqc-key-hash`` and ``owner-key-hash`` (48 zero bytes
        without an owner) are SHA-384 hashes of the stored keys; ``fmc-digest`` and
        ``runtime-digest`` the components' SHA-384; ``svn`` the SVN as a u32 little-endian.
        """
        return (
            Measurement("vendor-ecc-key-hash", self.vendor_ecc_key_hash),
            Measurement("vendor-pqc-key-hash", self.vendor_pqc_key_hash),
            Measurement("owner-key-hash", self.owner_key_hash or _NO_OWNER),
            Measurement("fmc-digest", self.fmc.digest),
            Measurement("runtime-digest", self.runtime.digest),
            Measurement("svn", self.svn.to_bytes(4, "little")),
        )


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check: ``passed`` is ``None`` when it could not run."""

    name: str
    passed: bool | None
    detail: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """Every check of :func:`check_bundle` and, when all passed, the verified manifest."""

    checks: tuple[CheckResult, ...]
    verified: VerifiedManifest | None

    @property
    def ok(self) -> bool:
        return self.verified is not None

    @property
    def first_failure(self) -> CheckResult | None:
        return next((c for c in self.checks if c.passed is False), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [
                {"name": c.name, "passed": c.passed, "detail": c.detail, "code": c.code}
                for c in self.checks
            ],
        }


def _hash_arg(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ConfigError(f"{what} must be a 48-byte SHA-384 hash")
    return value


def _fused_hash(value: object, what: str, hint: str = "") -> bytes:
    """A fused key hash: all zeros is a fuse never programmed, not a hash (Caliptra reads an
    owner key hash of zeros as "no owner"), so it is refused rather than compared."""
    value = _hash_arg(value, f"the {what} hash")
    if not any(value):
        raise ConfigError(f"an all-zero {what} hash is no {what} hash (unfused){hint}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class BundlePolicy:
    """What a bundle is verified against: the fused values, the update policy and the time.

    Give exactly one of ``vendor_key_descriptor_hash`` (the fused hash) and
    ``allowed_vendor_key_hashes`` (a non-empty collection), the ECC (4-bit) and PQC (32-bit)
    revocation masks, the minimum SVN (a lower one passes only with
    ``anti_rollback_disabled``), the fused owner key hash if any, the parse limits and ``now``
    (timezone-aware). Checked on construction: ``ConfigError`` for a bad value.
    """

    now: dt.datetime
    vendor_key_descriptor_hash: bytes | None = None
    allowed_vendor_key_hashes: Collection[bytes] | None = None
    ecc_revocation: int = 0
    pqc_revocation: int = 0
    min_svn: int = 0
    anti_rollback_disabled: bool = False
    owner_key_hash: bytes | None = None
    limits: FirmwareLimits = DEFAULT_LIMITS
    expired_manifest: str = "refuse"
    """``"refuse"``: a manifest outside its validity dates raises ``ManifestExpired`` (an
    install, an update, a publication). ``"report"``: it passes, with the finding in
    :attr:`VerifiedManifest.validity_problem` (the boot of an installed image)."""
    descriptor_hashes: frozenset[bytes] = field(init=False, repr=False, compare=False)
    """The accepted vendor key descriptor hashes, however they were given."""

    def __post_init__(self) -> None:
        if (self.vendor_key_descriptor_hash is None) == (self.allowed_vendor_key_hashes is None):
            raise ConfigError(
                "give exactly one of vendor_key_descriptor_hash and allowed_vendor_key_hashes"
            )
        if self.vendor_key_descriptor_hash is not None:
            hashes = frozenset({_fused_hash(self.vendor_key_descriptor_hash, "vendor key")})
        else:
            allowed = self.allowed_vendor_key_hashes
            if isinstance(allowed, bytes | str) or not isinstance(allowed, Collection):
                raise ConfigError(
                    "allowed_vendor_key_hashes must be a collection of 48-byte SHA-384 hashes"
                )
            hashes = frozenset(
                _fused_hash(_hash_arg(h, "an allowed vendor key hash"), "vendor key")
                for h in allowed
            )
            if not hashes:
                raise ConfigError("an empty list of allowed vendor key hashes accepts nothing")
            object.__setattr__(self, "allowed_vendor_key_hashes", hashes)
        for value, bits, what in (
            (self.ecc_revocation, MAX_ECC_KEYS, "ECC revocation mask"),
            (self.pqc_revocation, MAX_PQC_KEYS, "PQC revocation mask"),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
                raise ConfigError(f"{what} must be a {bits}-bit mask")
        svn = self.min_svn
        if isinstance(svn, bool) or not isinstance(svn, int) or not 0 <= svn <= MAX_SVN:
            raise ConfigError(f"min_svn must be an integer 0–{MAX_SVN}")
        if not isinstance(self.now, dt.datetime) or self.now.tzinfo is None:
            raise ConfigError("now must be a timezone-aware datetime")
        if self.owner_key_hash is not None:
            _fused_hash(self.owner_key_hash, "owner key", ": leave it out")
        if self.expired_manifest not in EXPIRED_MANIFEST_MODES:
            raise ConfigError('expired_manifest is "refuse" or "report"')
        if not isinstance(self.anti_rollback_disabled, bool):  # "false" is true to bool()
            raise ConfigError("anti_rollback_disabled must be True or False")
        if not isinstance(self.limits, FirmwareLimits):
            raise ConfigError("limits must be a FirmwareLimits")
        object.__setattr__(self, "descriptor_hashes", hashes)


class _Run:
    """The checks over one parsed bundle; each method returns a detail string or raises."""

    def __init__(self, data: bytes, bundle: FirmwareBundle, policy: BundlePolicy) -> None:
        # ``data`` parsed to ``bundle`` and parsing checks the encoding is canonical, so
        # slices of ``data`` are the encoded fields: hash them rather than re-encode.
        self.data = memoryview(data)
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.policy = policy
        self.header_bytes = bytes(self.data[HEADER_OFFSET:TOC_OFFSET])
        self.header_digest = hashlib.sha384(self.header_bytes).digest()
        self.descriptor_hash = hashlib.sha384(self.manifest.preamble.descriptors_bytes()).digest()
        pre = self.manifest.preamble
        self.ecc_key_hash = key_hash(pre.vendor_ecc_key)
        self.pqc_key_hash = key_hash(pre.vendor_pqc_key)
        self.owner_key_hash = key_hash(pre.owner_keys_bytes()) if pre.has_owner else None
        self.validity_problem: str | None = None

    def checks(self) -> list[tuple[str, Callable[[], str]]]:
        out: list[tuple[str, Callable[[], str]]] = [
            ("key-descriptor", self.key_descriptor),
            ("ecc-key", self.ecc_key),
            ("pqc-key", self.pqc_key),
            ("ecc-revocation", self.ecc_revocation),
            ("pqc-revocation", self.pqc_revocation),
            ("vendor-ecc-signature", self.vendor_ecc_signature),
            ("vendor-pqc-signature", self.vendor_pqc_signature),
            ("owner-key", self.owner_key),
            ("owner-ecc-signature", self.owner_ecc_signature),
            ("owner-pqc-signature", self.owner_pqc_signature),
            ("toc-digest", self.toc_digest),
        ]
        for index, entry in enumerate(self.manifest.toc):
            out.append((f"component:{entry.component_id}", self._component_check(index)))
        out += [("svn", self.svn), ("validity", self.validity)]
        return out

    # --- keys -----------------------------------------------------------------------------

    def key_descriptor(self) -> str:
        if self.descriptor_hash not in self.policy.descriptor_hashes:
            raise KeyDescriptorMismatch(
                f"vendor key descriptors hash to {self.descriptor_hash.hex()}, not the fused value"
            )
        return f"vendor key descriptor hash {self.descriptor_hash.hex()}"

    @staticmethod
    def _key_in(
        descriptor: KeyDescriptor, pre_index: int, header_index: int, digest: bytes, name: str
    ) -> str:
        if pre_index != header_index:
            raise KeyNotInDescriptor(
                f"preamble {name} key index {pre_index} differs from the signed index"
                f" {header_index}"
            )
        if pre_index >= len(descriptor.key_hashes):
            raise KeyNotInDescriptor(
                f"{name} key index {pre_index} is beyond the descriptor's"
                f" {len(descriptor.key_hashes)} keys"
            )
        if descriptor.key_hashes[pre_index] != digest:
            raise KeyNotInDescriptor(f"the active {name} key is not descriptor key {pre_index}")
        return f"{name} key {pre_index} is in the descriptor"

    def ecc_key(self) -> str:
        pre, header = self.manifest.preamble, self.manifest.header
        return self._key_in(
            pre.ecc_descriptor,
            pre.vendor_ecc_key_index,
            header.vendor_ecc_key_index,
            self.ecc_key_hash,
            "ECC",
        )

    def pqc_key(self) -> str:
        pre, header = self.manifest.preamble, self.manifest.header
        return self._key_in(
            pre.pqc_descriptor,
            pre.vendor_pqc_key_index,
            header.vendor_pqc_key_index,
            self.pqc_key_hash,
            "PQC",
        )

    def ecc_revocation(self) -> str:
        index = self.manifest.header.vendor_ecc_key_index
        if index < MAX_ECC_KEYS and self.policy.ecc_revocation >> index & 1:
            raise KeyRevoked(f"vendor ECC key {index} is revoked")
        return f"ECC key {index} is not revoked"

    def pqc_revocation(self) -> str:
        index = self.manifest.header.vendor_pqc_key_index
        if index < MAX_PQC_KEYS and self.policy.pqc_revocation >> index & 1:
            raise KeyRevoked(f"vendor PQC key {index} is revoked")
        return f"PQC key {index} is not revoked"

    # --- signatures -----------------------------------------------------------------------

    def _pqc(self, key: bytes) -> Verifier:
        key_type = self.manifest.pqc_key_type
        if key_type is PqcKeyType.LMS:
            name = lms_parameter_set_name(key)
            if name not in self.policy.limits.lms_parameter_sets:
                raise AlgorithmNotAccepted(f"LMS parameter set {name} is not accepted")
        return pqc_verifier(key, key_type)

    def _verify_ecc(self, key: bytes, signature: bytes, who: str) -> str:
        if not signature:
            raise MissingSignature(f"the bundle has no {who} ECDSA P-384 signature")
        ecc_verifier(key).verify(signature, self.header_bytes)
        return f"{who} ECDSA P-384 signature verifies"

    def _verify_pqc(self, key: bytes, signature: bytes, who: str) -> str:
        key_type = self.manifest.pqc_key_type
        label = "ML-DSA-87" if key_type is PqcKeyType.MLDSA else "LMS"
        if not signature:
            raise MissingSignature(f"the bundle has no {who} {label} signature")
        verifier = self._pqc(key)
        if key_type is PqcKeyType.LMS:
            signature = b"\0\0\0\0" + signature  # HSS framing: Nspk = 0
        verifier.verify(signature, self.header_digest)
        return f"{who} {label} signature verifies"

    def vendor_ecc_signature(self) -> str:
        pre = self.manifest.preamble
        return self._verify_ecc(pre.vendor_ecc_key, pre.vendor_ecc_signature, "vendor")

    def vendor_pqc_signature(self) -> str:
        pre = self.manifest.preamble
        return self._verify_pqc(pre.vendor_pqc_key, pre.vendor_pqc_signature, "vendor")

    def owner_key(self) -> str:
        expected = self.policy.owner_key_hash
        if expected is None:
            if self.owner_key_hash is None:
                return "no owner key hash fused, no owner keys"
            return (
                f"no owner key hash fused: the bundle's owner keys ({self.owner_key_hash.hex()})"
                " are bound to nothing (any owner key is accepted)"
            )
        if self.owner_key_hash is None:
            raise OwnerKeyMismatch("an owner key hash is fused but the bundle has no owner keys")
        if self.owner_key_hash != expected:
            raise OwnerKeyMismatch("the bundle's owner keys do not match the fused owner key hash")
        return "owner keys match the fused owner key hash"

    def owner_ecc_signature(self) -> str:
        pre = self.manifest.preamble
        if not pre.has_owner:
            return "no owner keys"
        return self._verify_ecc(pre.owner_ecc_key, pre.owner_ecc_signature, "owner")

    def owner_pqc_signature(self) -> str:
        pre = self.manifest.preamble
        if not pre.has_owner:
            return "no owner keys"
        return self._verify_pqc(pre.owner_pqc_key, pre.owner_pqc_signature, "owner")

    # --- digests and policy ---------------------------------------------------------------

    def toc_digest(self) -> str:
        digest = hashlib.sha384(self.data[TOC_OFFSET : self.manifest.size]).digest()
        if digest != self.manifest.header.toc_digest:
            raise DigestMismatch("the TOC does not match the header's TOC digest")
        return f"TOC digest {digest.hex()}"

    def _component_check(self, index: int) -> Callable[[], str]:
        def check() -> str:
            entry = self.manifest.toc[index]
            digest = hashlib.sha384(self.data[entry.offset : entry.end]).digest()
            if digest != entry.digest:
                raise DigestMismatch(
                    f"component {entry.component_id} does not match its TOC digest"
                )
            return f"component {entry.component_id}: {entry.size} bytes, SHA-384 {digest.hex()}"

        return check

    def svn(self) -> str:
        svn, minimum = self.manifest.header.svn, self.policy.min_svn
        if svn < minimum:
            if self.policy.anti_rollback_disabled:
                return f"SVN {svn} below {minimum} accepted: anti-rollback is disabled"
            raise SvnRollback(f"SVN {svn} is below the minimum {minimum}")
        return f"SVN {svn} ≥ {minimum}"

    def validity(self) -> str:
        try:
            return self._validity()
        except ManifestExpired as exc:
            if self.policy.expired_manifest != "report":
                raise
            self.validity_problem = exc.detail
            return f"{exc.detail}: reported, not refused (expired_manifest = report)"

    def _validity(self) -> str:
        header, now = self.manifest.header, self.policy.now
        windows = [("vendor", header.not_before, header.not_after)]
        if header.owner_not_before is not None and header.owner_not_after is not None:
            windows.append(("owner", header.owner_not_before, header.owner_not_after))
        for who, not_before, not_after in windows:
            if now < not_before:
                raise ManifestExpired(
                    f"the manifest is not valid before {not_before.isoformat()} ({who})"
                )
            if now > not_after:
                raise ManifestExpired(f"the manifest expired at {not_after.isoformat()} ({who})")
        return f"valid {header.not_before.isoformat()} to {header.not_after.isoformat()}"

    def result(self) -> VerifiedManifest:
        manifest = self.manifest
        components = tuple(
            VerifiedComponent(
                component_id=entry.component_id,
                version=entry.version,
                revision=entry.revision,
                load_address=entry.load_address,
                entry_point=entry.entry_point,
                digest=entry.digest,
                data=data,
            )
            for entry, data in zip(manifest.toc, self.bundle.components, strict=True)
        )
        assert components[0].component_id == FMC_ID
        assert components[1].component_id == RUNTIME_ID
        return VerifiedManifest(
            manifest=manifest,
            components=components,
            vendor_key_descriptor_hash=self.descriptor_hash,
            vendor_ecc_key_hash=self.ecc_key_hash,
            vendor_pqc_key_hash=self.pqc_key_hash,
            owner_key_hash=self.owner_key_hash,
            header_digest=self.header_digest,
            manifest_digest=hashlib.sha384(self.data[: manifest.size]).digest(),
            svn=manifest.header.svn,
            validity_problem=self.validity_problem,
            owner_key_bound=self.owner_key_hash is not None
            and self.policy.owner_key_hash == self.owner_key_hash,
        )


def _check_policy(policy: object) -> None:
    if not isinstance(policy, BundlePolicy):  # the fused values: nothing else stands in
        raise ConfigError("the policy must be a BundlePolicy")


def verify_bundle(bundle: bytes, policy: BundlePolicy) -> VerifiedManifest:
    """Verify a signed bundle against ``policy`` (the fused values); return what to measure
    and load.

    Raises ``MalformedFirmware``/``LimitExceeded`` for a bundle that does not parse, a
    ``FirmwareRejected`` subclass, ``BadSignature``/``MissingSignature`` or
    ``AlgorithmNotAccepted`` for one that must not run.
    """
    _check_policy(policy)
    run = _Run(bundle, FirmwareBundle.parse(bundle, policy.limits), policy)
    for _name, check in run.checks():
        check()
    return run.result()


def check_bundle(bundle: bytes, policy: BundlePolicy) -> VerificationReport:
    """Run every check :func:`verify_bundle` runs and report each; never raises for the bundle.

    ``verified`` is set only when every check passed.
    """
    _check_policy(policy)
    try:
        parsed = FirmwareBundle.parse(bundle, policy.limits)
    except IronrootError as exc:
        return VerificationReport((CheckResult("parse", False, exc.detail, exc.code),), None)
    run = _Run(bundle, parsed, policy)
    results = [CheckResult("parse", True, f"{len(parsed.manifest.toc)} components")]
    for name, check in run.checks():
        try:
            results.append(CheckResult(name, True, check()))
        except IronrootError as exc:
            results.append(CheckResult(name, False, exc.detail, exc.code))
    ok = all(r.passed for r in results)
    return VerificationReport(tuple(results), run.result() if ok else None)
