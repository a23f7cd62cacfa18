"""One attestation for a confidential VM and its GPUs: the composite rule and its appraisal.

**The nonce rule** (defined once, in :mod:`ironroot.ear._composite`, which the HSM's key
release shares; re-exported here). The relying party's challenge nonce ``N`` (from
``/attestation/challenge``, or for a key release the key service's nonce ‖ SHA-256 of the
wrapping key: ``docs/keyrelease.md``) is given to the CVM. For a VM with ``n`` GPUs, GPU
``i`` (0-based, in the order the composite lists them) is asked for the nonce

    gpu_nonce(N, i) = SHA-256("ironroot/gpu-nonce/v1" ‖ N ‖ u32be(i))

and the CVM's evidence answers, by its own format's binding rule (SEV-SNP and TDX: report data
zero-padded; RoT quote: exact), the composite nonce

    cvm_nonce(N, n) = SHA-256("ironroot/composite/v1" ‖ N ‖ u32be(n) ‖ gpu_nonce(N, 0) ‖ … ‖
                              gpu_nonce(N, n - 1))

so the CVM's signed report commits to the challenge and to how many GPUs it brings, and each
GPU's signed SPDM report commits to the challenge and its place. A GPU report made for another
VM's session (another challenge) or another place answers another nonce: ``StaleNonce``; a
composite that drops or adds a GPU answers another CVM nonce: the CVM's ``StaleNonce``. A
GPU whose report verified but answers another nonce keeps, in its submodule's evidence,
``format`` and the ``report_data`` (the nonce) it did sign, so a relying party can say which
session it came from (the HSM's key release refuses it with ``StaleNonce``).

**The appraisal** (:func:`appraise_composite`) is one EAR with one submodule per device:
``cvm`` (the CVM's evidence appraised as :func:`appraise_evidence` does) and ``gpu0``, ``gpu1``
… (each GPU's ``nvidia-gpu`` evidence: chain, signature, nonce, then the policy's rules for
the format, then the RIM appraisal). The RIM appraisal sets the GPU's ``executables`` claim:
every active measurement allowed by the logged driver and VBIOS RIMs → ``2`` (approved
runtime); no logged RIM for the report's versions (``rim-not-found``) → ``33`` (unrecognized
runtime); a measurement no RIM allows (``measurement-mismatch``) or conflicting RIMs → ``96``
(contraindicated runtime); a report that names no RIM → ``1`` (unexpected evidence). The
RIM's error line is one of the submodule's reasons. Evidence that does not verify gets the
vector of :data:`VERIFICATION_FAILURES` in its own submodule; the others are still appraised.

**The CVM is a VM.** The ``cvm`` evidence must come from a confidential VM (or the RoT quote
standing for one): evidence of a device format (:data:`~ironroot.ear.DEVICE_FORMATS`:
``nvidia-gpu``, ``spdm``) answering the composite nonce is refused in the ``cvm`` submodule
(``MalformedEvidence`` code ``not-a-cvm``, unexpected evidence), since a GPU asked for
``cvm_nonce(N, n)`` signs it as readily as any nonce, and a composite without a VM attests
no VM.

**One device, one place.** Each GPU of a composite is a distinct device: a GPU whose report is
signed by the same attestation key (the leaf certificate's key) as an earlier GPU of the
composite, or whose leaf was issued by the same device certificate (one whose subject names
the device by serialNumber, as NVIDIA's GSP BROM certificates do: the leaf key follows the
firmware, so one GPU that ran two firmwares holds two), is refused in its own submodule
(``EndorsementMismatch`` code ``duplicate-gpu``).
Otherwise one GPU asked twice, once for ``gpu_nonce(N, 0)`` and once for ``gpu_nonce(N, 1)``,
would be counted as two.

**Cache.** :class:`GpuRimCache` remembers each GPU's appraisal apart from its nonce: the
trust vector, reasons and evidence claims that the policy and the RIM appraisal gave, keyed
by the endorsements and the policy (the same objects, held) and the verified report's
content (measurement blocks, opaque data, the slot and the blocks' value types — every raw
claim but the nonces and the signature —, signer and root) and the endorsements' validity
epoch (:meth:`Endorsements.validity_epoch`: a logged value or RIM that expires, or starts to
count, ends every entry made before). A GPU repeats them until its
firmware changes, and once its signature, chain and nonce are checked (every time) the
appraisal depends on nothing else — unless the policy reads what differs between reports (a
rule or reason naming ``report_data``, ``responder_nonce`` or ``signature``): such a policy
is appraised afresh every time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ironroot.attestation._appraise import (
    DEFAULT_VERIFIER_ID,
    _worse,
    appraise,
    appraise_evidence,
    appraise_failure,
    check_nonce,
    expiry,
)
from ironroot.attestation._endorsements import Endorsements
from ironroot.attestation._gpu_rims import appraise_gpu_rims
from ironroot.attestation._policy import DEFAULT_POLICY, AppraisalPolicy, PolicyRule
from ironroot.attestation.evidence import (
    EVIDENCE_FORMATS,
    NVIDIA_GPU_FORMAT,
    CheckLog,
    EvidenceCaches,
    GpuEvidence,
    TdxCollateral,
    decode_evidence,
    load_certificates,
    verify_nvidia_gpu,
)
from ironroot.attestation.evidence._formats import loaded_crls
from ironroot.ear import (
    AR4SI,
    COMPOSITE_NONCE_CONTEXT,
    DEVICE_FORMATS,
    GPU_NONCE_CONTEXT,
    MAX_GPUS,
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    composite_nonce,
    gpu_nonce,
    tier_of,
)
from ironroot.errors import (
    EndorsementMismatch,
    IronrootError,
    MalformedEvidence,
    MalformedInput,
    MeasurementMismatch,
    NotFound,
    StaleNonce,
)

__all__ = [
    "COMPOSITE_NONCE_CONTEXT",
    "GPU_NONCE_CONTEXT",
    "MAX_GPUS",
    "GpuReport",
    "GpuRimCache",
    "appraise_composite",
    "composite_nonce",
    "gpu_nonce",
]


@dataclass(frozen=True, slots=True)
class GpuReport:
    """One GPU's evidence in a composite: the ``nvidia-gpu`` report (binary or hex) and its
    certificate chain (PEM or DER, leaf first)."""

    report: bytes
    certificates: tuple[bytes, ...]


_RIM_FAILURES: Final[tuple[tuple[type[IronrootError], int], ...]] = (
    (NotFound, AR4SI.UNRECOGNIZED_RUNTIME),
    (MeasurementMismatch, AR4SI.CONTRAINDICATED_RUNTIME),
    # a report that does not name its RIMs compared nothing: never affirming
    (MalformedEvidence, AR4SI.CONTRAINDICATED_RUNTIME),
    (IronrootError, AR4SI.CONTRAINDICATED_RUNTIME),
)


_Verdict = tuple[int, str, dict[str, str]]
_Cached = tuple[Endorsements, AppraisalPolicy, Appraisal]
_WITH_ROOT: OrderedDict[tuple[int, bytes], tuple[Endorsements, Endorsements]] = OrderedDict()
_WITH_ROOT_LOCK: Final = threading.Lock()


def _with_root(endorsements: Endorsements, root: x509.Certificate) -> Endorsements:
    """``endorsements`` that also trust ``root``; the last few are remembered (building one
    parses every vendor root again)."""
    key = (id(endorsements), root.fingerprint(hashes.SHA256()))
    with _WITH_ROOT_LOCK:
        found = _WITH_ROOT.get(key)
        if found is not None and found[0] is endorsements:
            return found[1]
    der = root.public_bytes(serialization.Encoding.DER)
    extended = dataclasses.replace(endorsements, vendor_roots=(*endorsements.vendor_roots, der))
    with _WITH_ROOT_LOCK:
        _WITH_ROOT[key] = (endorsements, extended)
        while len(_WITH_ROOT) > 8:
            _WITH_ROOT.popitem(last=False)
    return extended


class GpuRimCache:
    """GPU appraisals apart from their nonce (module docs), least recently used first out;
    safe to share between threads."""

    __slots__ = ("_entries", "_lock", "max_entries")

    def __init__(self, max_entries: int = 1024) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, int, Any], _Cached] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, endorsements: Endorsements, policy: AppraisalPolicy, key: Any
    ) -> Appraisal | None:
        with self._lock:
            slot = (id(endorsements), id(policy), key)
            found = self._entries.get(slot)
            # held, so their ids are not reused while the entry lives
            if found is None or found[0] is not endorsements or found[1] is not policy:
                return None
            self._entries.move_to_end(slot)
            return found[2]

    def put(
        self, endorsements: Endorsements, policy: AppraisalPolicy, key: Any, appraisal: Appraisal
    ) -> None:
        with self._lock:
            self._entries[(id(endorsements), id(policy), key)] = (endorsements, policy, appraisal)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


_PER_REPORT: Final = ("report_data", "responder_nonce", "signature")
_CACHEABLE: dict[int, tuple[AppraisalPolicy, bool]] = {}


def _cacheable(policy: AppraisalPolicy) -> bool:
    """Whether ``policy``'s verdict on a verified GPU report cannot depend on what differs
    between two reports of the same firmware (module docs)."""
    found = _CACHEABLE.get(id(policy))
    if found is not None and found[0] is policy:
        return found[1]
    texts = [text for rule in policy.rules for text in (rule.expression, rule.reason)]
    verdict = not any(word in text for text in texts for word in _PER_REPORT)
    if len(_CACHEABLE) > 64:
        _CACHEABLE.clear()
    _CACHEABLE[id(policy)] = (policy, verdict)
    return verdict


def _fresh(evidence: Mapping[str, Any], report_data: bytes) -> dict[str, Any]:
    """A cached appraisal's evidence for one report: containers copied, its nonce set."""
    out: dict[str, Any] = {}
    for name, value in evidence.items():
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, list):
            value = list(value)
        out[name] = value
    out["report_data"] = report_data.hex()
    return out


def _rim_claim(evidence: GpuEvidence, endorsements: Endorsements, now: datetime) -> _Verdict:
    try:
        result = appraise_gpu_rims(evidence, endorsements.rims, now=now)
        result.check()
    except IronrootError as exc:
        code = next(c for cls, c in _RIM_FAILURES if isinstance(exc, cls))
        return code, f"rim: {exc.code}: {exc.detail}", {}
    ids = {"driver": str(result.driver.rim_id), "vbios": str(result.vbios.rim_id)}
    return AR4SI.APPROVED_RUNTIME, "", ids


_SAFE_REVIEW: Final = next(r for r in DEFAULT_POLICY.rules if r.name == "safe-review")


def _with_rims(
    appraisal: Appraisal, policy: AppraisalPolicy, rim_code: int
) -> tuple[dict[str, int], list[str]]:
    """A GPU's trust vector and reasons once its RIM appraisal (``rim_code``) is counted:
    ``executables`` is the worse of the RIM's code and the policy's failed executables
    rules, never better than a rule that failed; after a failed gate (no category is
    affirmed) only a RIM code that is not affirming is added. The default policy's
    ``safe-review`` rule is not counted (nor listed) when the policy names no firmware hash
    for GPUs: their firmware is never looked up for SAFE reviews, the RIMs are their
    reference."""
    exempt = policy.firmware_hash.get(NVIDIA_GPU_FORMAT) is None
    reasons: list[str] = []
    failed: list[PolicyRule] = []
    by_name = {rule.name: rule for rule in policy.rules}
    for line in appraisal.reasons:
        rule = by_name.get(line.split(": ", 1)[0])
        if rule is not None and exempt and rule == _SAFE_REVIEW:
            continue
        reasons.append(line)
        if rule is not None:
            failed.append(rule)
    vector = dict(appraisal.trust_vector)
    code = rim_code
    for rule in failed:
        if rule.category == "executables":
            code = _worse(code, rule.code)
    if any(rule.gate for rule in failed) and tier_of(code) is TrustTier.AFFIRMING:
        vector.pop("executables", None)
    else:
        vector["executables"] = code
    return vector, reasons


def _spki_digest(cert: x509.Certificate) -> bytes:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _device_keys(gpu: GpuReport) -> tuple[bytes, ...]:
    """What names the device of a GPU whose chain verified (SHA-256 of public keys): its
    attestation key (the leaf's), and the key of the device certificate that issued the leaf
    when the chain gives one (its subject names the device by serialNumber, as NVIDIA's GSP
    BROM certificates do: the leaf key follows the firmware, the device key does not)."""
    certs = [
        cert
        for data in gpu.certificates
        for cert in load_certificates(data, what="GPU certificate chain")
    ]
    keys = [_spki_digest(certs[0])]
    if len(certs) > 1 and certs[1].subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER):
        keys.append(_spki_digest(certs[1]))
    return tuple(keys)


def _check_distinct(index: int, gpu: GpuReport, seen: dict[bytes, int]) -> None:
    """Refuse GPU ``index`` when an earlier GPU of the composite has its attestation key or
    its device certificate's key."""
    keys = _device_keys(gpu)
    earlier = [seen[key] for key in keys if key in seen]
    if earlier:
        raise EndorsementMismatch(
            f"gpu{index}'s report is signed by the same GPU as gpu{earlier[0]}'s: "
            "one device is counted once",
            code="duplicate-gpu",
        )
    for key in keys:
        seen[key] = index


def _appraise_gpu(
    index: int,
    gpu: GpuReport,
    endorsements: Endorsements,
    policy: AppraisalPolicy,
    *,
    challenge: bytes,
    now: datetime,
    caches: EvidenceCaches | None,
    gpu_root: x509.Certificate | None,
    rim_cache: GpuRimCache | None,
    seen: dict[bytes, int],
    crls: Sequence[bytes | x509.CertificateRevocationList],
    allow_stale_collateral: bool,
    until: list[datetime],
) -> Appraisal:
    """GPU ``index``'s submodule; when its chain and CRLs stop holding is added to
    ``until``."""
    expected = gpu_nonce(challenge, index)
    claims = None
    try:
        claims = verify_nvidia_gpu(
            decode_evidence(gpu.report),  # binary, or the hex text NVIDIA's tools print
            gpu.certificates,
            now=now,
            cache=caches.get(NVIDIA_GPU_FORMAT) if caches is not None else None,
            root=gpu_root,
            checks=CheckLog(),
            crls=loaded_crls(crls),  # read here: a bad one fails this GPU's appraisal
            allow_stale_collateral=allow_stale_collateral,
        )
        if claims.valid_until is not None:
            until.append(claims.valid_until)
        _check_distinct(index, gpu, seen)
        binding = EVIDENCE_FORMATS[NVIDIA_GPU_FORMAT].binding
        assert binding is not None  # the row binds the nonce exactly
        binding.check(claims.report_data, expected, None)
    except IronrootError as exc:
        failed = appraise_failure(
            exc, format=NVIDIA_GPU_FORMAT, policy=policy, nonce=expected, now=now
        )
        (appraisal,) = failed.submods.values()
        if isinstance(exc, StaleNonce) and claims is not None:  # signed, for another nonce
            return Appraisal.from_vector(
                appraisal.trust_vector,
                policy_id=appraisal.policy_id,
                reasons=appraisal.reasons,
                evidence={"format": NVIDIA_GPU_FORMAT, "report_data": claims.report_data.hex()},
            )
        return appraisal
    key = None
    if rim_cache is not None and _cacheable(policy):
        per_firmware = {k: v for k, v in claims.raw.items() if k not in _PER_REPORT}
        key = (
            json.dumps(per_firmware, sort_keys=True),  # slot, value types, opaque data …
            claims.signer,
            tuple(claims.identity.items()),
            tuple(claims.measurements.items()),
            endorsements.validity_epoch(now),  # no logged value expired or started since
        )
        cached = rim_cache.get(endorsements, policy, key)
        if cached is not None:
            return dataclasses.replace(
                cached, evidence=_fresh(cached.evidence or {}, claims.report_data)
            )
    code, reason, ids = _rim_claim(GpuEvidence.from_claims(claims), endorsements, now)
    if code == AR4SI.APPROVED_RUNTIME:
        # Every active block is NVIDIA's golden measurement: the GPU runs in the mode its RIMs
        # were measured in, and that is what proves its debug state off (NVIDIA's verifier
        # states dbgstat "disabled" only beside a successful comparison). The report alone
        # does not (``debug`` true, not proven off).
        claims = dataclasses.replace(claims, debug=False)
    base = appraise(claims, endorsements, policy, nonce=expected, now=now)
    (appraisal,) = base.submods.values()
    vector, reasons = _with_rims(appraisal, policy, code)
    evidence = dict(appraisal.evidence or {})
    evidence["rims"] = ids
    result = Appraisal.from_vector(
        vector,
        policy_id=appraisal.policy_id,
        reasons=[*reasons, *([reason] if reason else [])],
        evidence=evidence,
    )
    if key is not None and rim_cache is not None:
        rim_cache.put(endorsements, policy, key, result)
    return result


def appraise_composite(
    cvm: bytes,
    gpus: Sequence[GpuReport],
    endorsements: Endorsements,
    policy: AppraisalPolicy = DEFAULT_POLICY,
    *,
    nonce: bytes,
    now: datetime,
    format: str = "auto",
    certificates: Sequence[bytes] = (),
    crls: Sequence[bytes | x509.CertificateRevocationList] = (),
    collateral: TdxCollateral | None = None,
    allow_stale_collateral: bool = False,
    collateral_problems: Sequence[str] = (),
    lifetime: int | None = None,
    caches: EvidenceCaches | None = None,
    verifier_id: VerifierId = DEFAULT_VERIFIER_ID,
    gpu_root: x509.Certificate | None = None,
    checks: CheckLog | None = None,
    rim_cache: GpuRimCache | None = None,
) -> AttestationResult:
    """Appraise a CVM's evidence ``cvm`` (of ``format``) and its ``gpus`` under the challenge
    ``nonce`` (module docs): one EAR, submodules ``cvm``, ``gpu0``… . ``gpu_root`` replaces
    the built-in NVIDIA Device Identity CA (tests and private CAs); ``checks`` records the
    CVM evidence's checks; ``rim_cache`` remembers GPU appraisals apart from their nonces
    (:class:`GpuRimCache`)."""
    check_nonce(nonce)  # the EAR carries the challenge: 8 to 64 bytes
    cvm_nonce = composite_nonce(nonce, len(gpus))  # checks the challenge and the count
    if now.tzinfo is None:
        raise MalformedInput("now must be timezone-aware")
    cvm_result = appraise_evidence(
        cvm,
        endorsements,
        policy,
        format=format,
        nonce=cvm_nonce,
        now=now,
        certificates=certificates,
        crls=crls,
        collateral=collateral,
        allow_stale_collateral=allow_stale_collateral,
        collateral_problems=collateral_problems,
        lifetime=lifetime,
        caches=caches,
        verifier_id=verifier_id,
        checks=checks,
    )
    ((cvm_format, cvm_appraisal),) = cvm_result.submods.items()
    if cvm_format in DEVICE_FORMATS:
        refused = MalformedEvidence(
            f"the composite's CVM evidence is {cvm_format} evidence, a device's, not a VM's",
            code="not-a-cvm",
        )
        failed = appraise_failure(
            refused, format=cvm_format, policy=policy, nonce=cvm_nonce, now=now
        )
        (cvm_appraisal,) = failed.submods.values()
    if gpu_root is not None:  # a given GPU root is trusted like a configured vendor root
        endorsements = _with_root(endorsements, gpu_root)
    submods: dict[str, Appraisal] = {"cvm": cvm_appraisal}
    seen: dict[bytes, int] = {}  # the GPUs' attestation keys: each device once
    until: list[datetime] = []  # when each GPU's chain and CRLs stop holding
    for index, gpu in enumerate(gpus):
        submods[f"gpu{index}"] = _appraise_gpu(
            index,
            gpu,
            endorsements,
            policy,
            challenge=nonce,
            now=now,
            caches=caches,
            gpu_root=gpu_root,
            rim_cache=rim_cache,
            seen=seen,
            crls=crls,
            allow_stale_collateral=allow_stale_collateral,
            until=until,
        )
    iat = int(now.timestamp())
    exp = expiry(iat, lifetime, min(until, default=None))
    if exp is not None and cvm_result.exp is not None:  # the CVM's, capped by its collateral
        exp = min(exp, cvm_result.exp)
    return AttestationResult(
        iat=iat,
        exp=exp,
        verifier_id=verifier_id,
        submods=submods,
        nonce=nonce,
    )
