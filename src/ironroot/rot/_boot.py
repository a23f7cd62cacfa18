"""Measured boot: verify a firmware bundle against the fuses, extend the PCRs, derive the DICE
layers and issue the alias certificates. Pure: fuses, bundle bytes and ``now`` in; the new
fuses, the boot state and the layers out, or the firmware layer's typed error.

PCRs (SHA-384, 48 bytes, zero at cold boot; ``PCR = SHA-384(PCR ‖ data)``, data as logged):

=====  =========================  ==========================================================
PCR    extended by                events, in order
=====  =========================  ==========================================================
0      ROM (measures the FMC)     ``device-status``, ``vendor-ecc-key-hash``,
                                  ``vendor-pqc-key-hash``, ``owner-key-hash``, ``fmc-digest``
1      FMC (measures the runtime) ``runtime-digest``, ``header-digest``
2      runtime (DPE)              ``pfm-digest`` (at most one, first): the SHA-384 of the
                                  platform's active PFM, measured by ``measure_pfm`` before
                                  anything else after boot; then ``dpe:<label>``: each child
                                  measured by ``derive_child``
=====  =========================  ==========================================================

PCR0 and PCR1 are final when boot ends: CDI_FMC is derived from PCR0 and CDI_RT from PCR1
(Caliptra's ROM does the same with its PCR0). ``device-status`` is the 9 bytes Caliptra's ROM
extends first: lifecycle (0 unprovisioned, 1 manufacturing, 2 production), debug locked,
anti-rollback disabled, vendor ECC key index, firmware SVN, fuse SVN (0 when anti-rollback is
disabled), vendor PQC key index, PQC key type, owner key hash fused — one byte each.
``owner-key-hash`` is 48 zero bytes when the bundle has no owner keys. ``header-digest`` is
SHA-384 of the manifest's signed header (revision, key indices, SVN, TOC digest, dates): it
names the release without its signatures, which ECDSA and ML-DSA randomize, so that the same
release re-signed still yields the same keys. The digest of the whole manifest (what the
vendor publishes on the transparency log) is kept in the boot state and quoted as a claim.

The FMC alias's ``DEVICE_INFO`` FWID is ``SHA-384(device-status ‖ vendor key descriptor
hash ‖ owner key hash)``; its flags say ``notConfigured`` (unprovisioned), ``notSecure``
(manufacturing) and ``debug`` (debug unlocked).

The SVN fuse is advanced to the manifest SVN *before* the device status is measured (unless
anti-rollback is disabled, when the fuse is left alone), so that booting the same firmware again
measures the same status and yields the same alias keys. A caller that may still roll the
firmware back (a platform's A/B update, until the new image has proved healthy) passes
``advance_svn=False``: the fuse is left as it is (the SVN check still applies) and the caller
advances it once the firmware is committed. Burning it at the first boot of an update would
make the rollback to the previous image an SVN rollback the RoT refuses for ever.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ironroot.crypto import Algorithm
from ironroot.errors import (
    Conflict,
    KeyDescriptorMismatch,
    LimitExceeded,
    MalformedInput,
    StorageError,
    VerificationFailed,
)
from ironroot.firmware import BundlePolicy, verify_bundle
from ironroot.rot._fuses import Fuses, Lifecycle
from ironroot.rot._layers import (
    DiceLayer,
    derive_fmc_alias,
    derive_idevid,
    derive_ldevid,
    derive_rt_alias,
    device_flags,
    device_ueid,
    fmc_alias_tcb_infos,
    issue_certificate,
    rt_alias_tcb_info,
)

__all__ = [
    "PCR_COUNT",
    "PCR_DPE",
    "PCR_FMC",
    "PCR_ROM",
    "PFM_EVENT",
    "BootResult",
    "BootState",
    "DiceLayers",
    "PcrEvent",
    "check_booted_pfm",
    "cold_boot",
    "derive_layers",
    "extend",
    "measured_pfm",
    "replay",
]

PCR_COUNT: Final = 3
PCR_ROM: Final = 0
PCR_FMC: Final = 1
PCR_DPE: Final = 2
PCR_SIZE: Final = 48
MAX_LOG_EVENTS: Final = 256
MAX_EVENT_DATA: Final = 256
DEVICE_STATUS: Final = "device-status"
PFM_EVENT: Final = "pfm-digest"
"""The PCR 2 event of the platform's active PFM (SHA-384 of the signed PFM): the first PCR 2
event of a boot, or absent (a bare RoT, or a node booted before PFMs were measured)."""
DEVICE_STATUS_SIZE: Final = 9
# byte offsets in the device-status event (module docs)
STATUS_LIFECYCLE: Final = 0
STATUS_DEBUG_LOCKED: Final = 1
STATUS_ANTI_ROLLBACK_DISABLED: Final = 2
STATUS_FIRMWARE_SVN: Final = 4
STATUS_FUSE_SVN: Final = 5
STATUS_OWNER_KEY: Final = 8
_FORMAT: Final = "ironroot-boot-state/1"
_IDEVID_DIGEST: Final = 32  # SHA-256
_ZERO: Final = bytes(PCR_SIZE)


@dataclass(frozen=True, slots=True)
class PcrEvent:
    """One PCR log entry: which PCR, what was measured, and the exact bytes extended."""

    pcr: int
    name: str
    data: bytes

    def __post_init__(self) -> None:
        if isinstance(self.pcr, bool) or not isinstance(self.pcr, int):
            raise MalformedInput("PCR index must be an integer")
        if not 0 <= self.pcr < PCR_COUNT:
            raise MalformedInput(f"PCR index {self.pcr} is outside 0–{PCR_COUNT - 1}")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 64:
            raise MalformedInput("PCR event name must be 1–64 characters")
        if not isinstance(self.data, bytes) or len(self.data) > MAX_EVENT_DATA:
            raise MalformedInput(f"PCR event data must be bytes, at most {MAX_EVENT_DATA}")


def device_status(log: Iterable[PcrEvent]) -> bytes | None:
    """The ROM's ``device-status`` event (module docs) in ``log``: ``None`` unless the log
    holds exactly one, in PCR0, of :data:`DEVICE_STATUS_SIZE` bytes."""
    events = [e for e in log if e.name == DEVICE_STATUS]
    if len(events) != 1 or events[0].pcr != PCR_ROM or len(events[0].data) != DEVICE_STATUS_SIZE:
        return None
    return events[0].data


def extend(pcr: bytes, data: bytes) -> bytes:
    """``SHA-384(pcr ‖ data)``."""
    return hashlib.sha384(pcr + data).digest()


def measured_pfm(log: Iterable[PcrEvent]) -> bytes | None:
    """The SHA-384 of the PFM the boot measured: the data of the :data:`PFM_EVENT`, which is
    only ever the first PCR 2 event of a boot; ``None`` when the first PCR 2 event is another
    (or there is none). Verifiers hold a presented PFM to it."""
    first = next((e for e in log if e.pcr == PCR_DPE), None)
    if first is None or first.name != PFM_EVENT or len(first.data) != PCR_SIZE:
        return None
    return first.data


BOOT_AGAIN: Final = "boot the node again so that its RoT measures the PFM it enforces"
"""What :func:`check_booted_pfm` tells the operator of a node booted before PFMs were
measured, unless the caller names the command."""


def check_booted_pfm(
    sha384: bytes,
    measured: bytes | None,
    *,
    what: str = "the PFM",
    advice: str = BOOT_AGAIN,
) -> bytes:
    """Hold a PFM a node presents (its SHA-384: the journal's, an export's) to the one its
    RoT measured at its last boot (``measured``: :func:`measured_pfm` of the boot's log); the
    measured digest when they are the same. The one comparison every verifier makes (audit
    verify's ``pfm`` step, fleet reconcile's ``measured:pfm``, the dashboard's PFM link).

    ``VerificationFailed`` ``pfm-not-measured`` when the boot measured none (a boot before
    PFMs were measured: ``advice`` says what to do), ``pfm-not-booted`` when it measured
    another (``what`` names the presented PFM in the message)."""
    if measured is None:
        raise VerificationFailed(
            f"the RoT's last boot measured no PFM (it predates PFM measurement): {advice}",
            code="pfm-not-measured",
        )
    if not hmac.compare_digest(sha384, measured):
        raise VerificationFailed(
            f"{what} ({sha384.hex()[:16]}…) is not the PFM the RoT measured at boot "
            f"({measured.hex()[:16]}…)",
            code="pfm-not-booted",
        )
    return measured


def replay(events: Iterable[PcrEvent], count: int = PCR_COUNT) -> tuple[bytes, ...]:
    """The PCR values a log produces from zeroed PCRs."""
    pcrs = [_ZERO] * count
    for event in events:
        if not 0 <= event.pcr < count:
            raise MalformedInput(f"PCR log names PCR {event.pcr}; there are {count}")
        pcrs[event.pcr] = extend(pcrs[event.pcr], event.data)
    return tuple(pcrs)


@dataclass(frozen=True, slots=True)
class BootState:
    """What a successful boot leaves behind (persisted in the device directory).

    ``ecc_chain``/``mldsa_chain`` hold the DER certificates LDevID, FMC alias, RT alias (the
    IDevID certificate comes from provisioning). ``idevid_checked`` holds the SHA-256 of each
    IDevID certificate (ES384, then ML-DSA-87) that the boot found to certify the IDevID key
    it derived, so that a quote checks the certificate files against these MAC'd digests
    instead of deriving the IDevID keys again (:meth:`ironroot.rot.Device.quote`); empty when
    the boot did not find them (a boot state written before it was recorded is read so too).
    ``manifest_validity`` is ``None``, or why the booted manifest was outside its validity
    dates when a boot with ``expired_manifest="report"`` ran it anyway.
    """

    booted_at: dt.datetime
    pcrs: tuple[bytes, ...]
    log: tuple[PcrEvent, ...]
    svn: int
    fmc_digest: bytes
    runtime_digest: bytes
    manifest_digest: bytes
    header_digest: bytes
    ecc_chain: tuple[bytes, ...]
    mldsa_chain: tuple[bytes, ...]
    idevid_checked: tuple[bytes, ...] = ()
    manifest_validity: str | None = None

    def __post_init__(self) -> None:
        if self.manifest_validity is not None and (
            not isinstance(self.manifest_validity, str)
            or not 0 < len(self.manifest_validity) <= MAX_EVENT_DATA
        ):
            raise StorageError(f"the manifest validity finding is 1 to {MAX_EVENT_DATA} characters")
        if len(self.log) > MAX_LOG_EVENTS:
            raise StorageError(f"the PCR log is over {MAX_LOG_EVENTS} events")
        if len(self.idevid_checked) not in (0, 2) or any(
            len(d) != _IDEVID_DIGEST for d in self.idevid_checked
        ):
            raise StorageError("a boot state records the SHA-256 of two IDevID certificates")
        if self.pcrs != replay(self.log):
            raise StorageError("the PCR values do not replay from the PCR log")
        if len(self.ecc_chain) != 3 or len(self.mldsa_chain) != 3:
            raise StorageError("a boot state holds LDevID, FMC alias and RT alias certificates")

    def extended(self, event: PcrEvent) -> BootState:
        """The state after one more event (only the DPE PCR moves after boot); a log
        already holding :data:`MAX_LOG_EVENTS` events raises ``LimitExceeded``."""
        if event.pcr != PCR_DPE:
            raise Conflict(f"PCR{event.pcr} is locked after boot")
        if len(self.log) >= MAX_LOG_EVENTS:  # a limit of the device, not a failing store
            raise LimitExceeded(
                f"the PCR log holds {MAX_LOG_EVENTS} events: boot again to measure more"
            )
        log = (*self.log, event)
        pcrs = list(self.pcrs)
        pcrs[event.pcr] = extend(pcrs[event.pcr], event.data)
        return BootState(
            booted_at=self.booted_at,
            pcrs=tuple(pcrs),
            log=log,
            svn=self.svn,
            fmc_digest=self.fmc_digest,
            runtime_digest=self.runtime_digest,
            manifest_digest=self.manifest_digest,
            header_digest=self.header_digest,
            ecc_chain=self.ecc_chain,
            mldsa_chain=self.mldsa_chain,
            idevid_checked=self.idevid_checked,
            manifest_validity=self.manifest_validity,
        )

    def to_record(self) -> dict[str, Any]:
        """The persisted form, as JSON values (the device MACs it: see ``_nvstate``)."""
        record: dict[str, Any] = {
            "format": _FORMAT,
            "booted_at": self.booted_at.isoformat(),
            "pcrs": [p.hex() for p in self.pcrs],
            "log": [{"pcr": e.pcr, "name": e.name, "data": e.data.hex()} for e in self.log],
            "svn": self.svn,
            "fmc_digest": self.fmc_digest.hex(),
            "runtime_digest": self.runtime_digest.hex(),
            "manifest_digest": self.manifest_digest.hex(),
            "header_digest": self.header_digest.hex(),
            "ecc_chain": [c.hex() for c in self.ecc_chain],
            "mldsa_chain": [c.hex() for c in self.mldsa_chain],
        }
        if self.idevid_checked:  # absent from a boot state that records none (as before it)
            record["idevid_checked"] = [d.hex() for d in self.idevid_checked]
        if self.manifest_validity is not None:  # absent while the manifest is within its dates
            record["manifest_validity"] = self.manifest_validity
        return record

    @classmethod
    def from_record(cls, doc: object) -> BootState:
        """Parse :meth:`to_record` output strictly; anything else raises ``StorageError``."""
        try:
            if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
                raise StorageError(f"the boot state is not {_FORMAT}")
            booted_at = dt.datetime.fromisoformat(_get(doc, "booted_at", str))
            if booted_at.tzinfo is None:
                raise StorageError("the boot time has no time zone")
            return cls(
                booted_at=booted_at,
                pcrs=tuple(bytes.fromhex(p) for p in _list(doc, "pcrs", str)),
                log=tuple(
                    PcrEvent(_get(e, "pcr", int), _get(e, "name", str), bytes.fromhex(e["data"]))
                    for e in _list(doc, "log", dict)
                ),
                svn=_get(doc, "svn", int),
                fmc_digest=bytes.fromhex(_get(doc, "fmc_digest", str)),
                runtime_digest=bytes.fromhex(_get(doc, "runtime_digest", str)),
                manifest_digest=bytes.fromhex(_get(doc, "manifest_digest", str)),
                header_digest=bytes.fromhex(_get(doc, "header_digest", str)),
                ecc_chain=tuple(bytes.fromhex(c) for c in _list(doc, "ecc_chain", str)),
                mldsa_chain=tuple(bytes.fromhex(c) for c in _list(doc, "mldsa_chain", str)),
                idevid_checked=tuple(
                    bytes.fromhex(d)
                    for d in (_list(doc, "idevid_checked", str) if "idevid_checked" in doc else ())
                ),
                manifest_validity=(
                    _get(doc, "manifest_validity", str) if "manifest_validity" in doc else None
                ),
            )
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, MalformedInput) as exc:
            raise StorageError("the boot state file does not parse") from exc

    def public_json(self) -> dict[str, Any]:
        return {
            "booted_at": self.booted_at.isoformat(),
            "svn": self.svn,
            "fwids": {
                "fmc": self.fmc_digest.hex(),
                "runtime": self.runtime_digest.hex(),
                "manifest": self.manifest_digest.hex(),
                "header": self.header_digest.hex(),
            },
            "pcrs": {str(i): p.hex() for i, p in enumerate(self.pcrs)},
            "log": [{"pcr": e.pcr, "name": e.name, "data": e.data.hex()} for e in self.log],
            "manifest_validity": self.manifest_validity,
        }


def _get(doc: dict[str, Any], key: str, kind: type) -> Any:
    value = doc[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"{key} has the wrong type")
    return value


def _list(doc: dict[str, Any], key: str, kind: type) -> list[Any]:
    value = doc[key]
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise TypeError(f"{key} has the wrong type")
    return value


@dataclass(frozen=True, slots=True)
class DiceLayers:
    """The four layers of one boot."""

    idevid: DiceLayer
    ldevid: DiceLayer
    fmc_alias: DiceLayer
    rt_alias: DiceLayer

    @property
    def ueid(self) -> bytes:
        return device_ueid(self.idevid.ecc.public_key)


@dataclass(frozen=True, slots=True)
class BootResult:
    fuses: Fuses
    state: BootState
    layers: DiceLayers


def derive_layers(fuses: Fuses, pcrs: Sequence[bytes]) -> DiceLayers:
    """All four layers from the fuses and the boot's PCR0 and PCR1."""
    if not fuses.uds_programmed:
        raise Conflict("the device is not provisioned: no UDS is fused")
    idevid = derive_idevid(fuses.uds_seed)
    ldevid = derive_ldevid(idevid, fuses.field_entropy)
    fmc = derive_fmc_alias(ldevid, pcrs[PCR_ROM])
    return DiceLayers(idevid, ldevid, fmc, derive_rt_alias(fmc, pcrs[PCR_FMC]))


def _device_status(
    fuses: Fuses, *, ecc_index: int, pqc_index: int, pqc_type: int, svn: int
) -> bytes:
    return bytes(
        (
            int(fuses.lifecycle),
            int(fuses.debug_locked),
            int(fuses.anti_rollback_disabled),
            ecc_index,
            svn,
            0 if fuses.anti_rollback_disabled else fuses.svn,
            pqc_index,
            pqc_type,
            int(bool(fuses.owner_key_hash)),
        )
    )


def cold_boot(
    fuses: Fuses,
    bundle: bytes,
    *,
    now: dt.datetime,
    advance_svn: bool = True,
    expired_manifest: str = "refuse",
) -> BootResult:
    """Verify ``bundle`` against ``fuses``, measure, derive and certify; nothing is written.

    ``advance_svn=False`` leaves the SVN fuse where it is (module docs).
    ``expired_manifest="report"`` boots a manifest outside its validity dates (the boot of an
    image already installed, which a date must not brick) and records why in
    :attr:`BootState.manifest_validity`; the default ``"refuse"`` raises ``ManifestExpired``
    (this function also serves a bundle the caller has just been handed). Nothing else
    changes: signatures, revocation, digests and the SVN are checked as always.

    Raises what :func:`ironroot.firmware.verify_bundle` raises for a bundle that must not run
    (``KeyDescriptorMismatch``, ``KeyRevoked``, ``SvnRollback``, ``DigestMismatch``,
    ``ManifestExpired``, ``BadSignature``, ``MalformedFirmware`` ...), and ``Conflict`` for an
    unprovisioned device.
    """
    if not fuses.uds_programmed:
        raise Conflict("the device is not provisioned: no UDS is fused")
    if not fuses.vendor_key_hash:
        raise KeyDescriptorMismatch("no vendor key descriptor hash is fused")
    verified = verify_bundle(
        bundle,
        BundlePolicy(
            now=now,
            vendor_key_descriptor_hash=fuses.vendor_key_hash,
            ecc_revocation=fuses.ecc_revocation,
            pqc_revocation=fuses.pqc_revocation,
            min_svn=fuses.svn,
            anti_rollback_disabled=fuses.anti_rollback_disabled,
            owner_key_hash=fuses.owner_key_hash or None,
            expired_manifest=expired_manifest,
        ),
    )
    if advance_svn and not fuses.anti_rollback_disabled:
        fuses = fuses.advance_svn(verified.svn)
    status = _device_status(
        fuses,
        ecc_index=verified.vendor_ecc_key_index,
        pqc_index=verified.vendor_pqc_key_index,
        pqc_type=int(verified.pqc_key_type),
        svn=verified.svn,
    )
    owner_hash = verified.owner_key_hash or _ZERO
    events = (
        PcrEvent(PCR_ROM, DEVICE_STATUS, status),
        PcrEvent(PCR_ROM, "vendor-ecc-key-hash", verified.vendor_ecc_key_hash),
        PcrEvent(PCR_ROM, "vendor-pqc-key-hash", verified.vendor_pqc_key_hash),
        PcrEvent(PCR_ROM, "owner-key-hash", owner_hash),
        PcrEvent(PCR_ROM, "fmc-digest", verified.fmc.digest),
        PcrEvent(PCR_FMC, "runtime-digest", verified.runtime.digest),
        PcrEvent(PCR_FMC, "header-digest", verified.header_digest),
    )
    pcrs = replay(events)
    layers = derive_layers(fuses, pcrs)
    device_info_hash = hashlib.sha384(
        status + verified.vendor_key_descriptor_hash + (fuses.owner_key_hash or _ZERO)
    ).digest()
    flags = device_flags(
        not_configured=fuses.lifecycle is Lifecycle.UNPROVISIONED,
        not_secure=fuses.lifecycle is Lifecycle.MANUFACTURING,
        debug=not fuses.debug_locked,
    )
    tcbs = fmc_alias_tcb_infos(
        device_info_hash=device_info_hash,
        fuse_svn=0 if fuses.anti_rollback_disabled else fuses.svn,
        flags=flags,
        fmc_digest=verified.fmc.digest,
        fmc_svn=verified.svn,
    )
    rt_tcb = rt_alias_tcb_info(runtime_digest=verified.runtime.digest, svn=verified.svn)
    chains: dict[Algorithm, tuple[bytes, ...]] = {}
    for alg in (Algorithm.ES384, Algorithm.ML_DSA_87):
        ldevid = issue_certificate(
            profile=layers.ldevid.profile,
            subject=layers.ldevid.key(alg).public_key,
            issuer_key=layers.idevid.key(alg),
            issuer_name=layers.idevid.name(alg),
            ueid=layers.ueid,
        )
        fmc = issue_certificate(
            profile=layers.fmc_alias.profile,
            subject=layers.fmc_alias.key(alg).public_key,
            issuer_key=layers.ldevid.key(alg),
            issuer_name=layers.ldevid.name(alg),
            tcb_infos=tcbs,
            multi=True,
            ueid=layers.ueid,
        )
        rt = issue_certificate(
            profile=layers.rt_alias.profile,
            subject=layers.rt_alias.key(alg).public_key,
            issuer_key=layers.fmc_alias.key(alg),
            issuer_name=layers.fmc_alias.name(alg),
            tcb_infos=(rt_tcb,),
            ueid=layers.ueid,
        )
        chains[alg] = (ldevid, fmc, rt)
    state = BootState(
        booted_at=now,
        pcrs=pcrs,
        log=events,
        svn=verified.svn,
        fmc_digest=verified.fmc.digest,
        runtime_digest=verified.runtime.digest,
        manifest_digest=verified.manifest_digest,
        header_digest=verified.header_digest,
        ecc_chain=chains[Algorithm.ES384],
        mldsa_chain=chains[Algorithm.ML_DSA_87],
        manifest_validity=verified.validity_problem,
    )
    return BootResult(fuses, state, layers)
