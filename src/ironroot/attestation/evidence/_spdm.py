"""SPDM evidence (a recorded, signed measurement session of a device) as :class:`EvidenceClaims`.

Measurements are named ``spdm.<index>`` (the digest, or the raw value when the device sent a
raw bit stream; a block of a value type the negotiated SPDM version does not define keeps its
value too, and its raw entry says type ``UNKNOWN`` with its ``type_number``); ``svns`` carries
each raw SecureVersionNumber block; ``report_data`` is the verifier's nonce the session
answered.

``debug`` is false only when the evidence proves debug off: it carries at least one DeviceMode
block, every DeviceMode block is a raw bit stream, and none says debug mode is active or has
been since the last reset (DSP0274 DeviceModeState bits 0-3: non-invasive and invasive debug
active, has been active). Otherwise it is true, "not proven off": a device that reports no
DeviceMode block, a DeviceMode block sent as a digest (which hides the state), and a session
that measured other indices only say nothing about debug, and a policy's ``!debug`` must not
pass on nothing. ``raw["device_mode"]`` lists the raw DeviceMode blocks read (index and the
four fields) and ``raw["device_mode_check"]`` whether they decided ``debug`` and why;
the format table records that as the check ``device-mode``: passed (with the detail) when
raw DeviceMode blocks decided it, else not run, with why (:func:`device_mode_check`).

With a :class:`ironroot.spdm.SpdmChainCache` (the format's cache in ``EvidenceCaches``) a
device chain that verified before to the same root is not verified again: only what its
exact bytes decide is skipped; validity at ``now``, the measurements' signature and the
nonce are checked every time (:func:`ironroot.spdm.verify_certificate_chain`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.attestation.evidence._claims import EvidenceClaims, JsonReady
from ironroot.crypto import load_certificates
from ironroot.errors import ChainNotTrusted, IronrootError
from ironroot.spdm import (
    AnyMeasurementBlock,
    GetMeasurements,
    MeasurementBlock,
    MeasurementValueType,
    SpdmChainCache,
    SpdmEvidence,
    VerifiedSpdm,
    verify_spdm_evidence,
)

__all__ = [
    "SPDM_FORMAT",
    "device_mode_check",
    "parse_spdm_record",
    "spdm_claims",
    "verify_spdm",
]

SPDM_FORMAT: Final = "spdm"
_DEBUG_STATE_BITS: Final = 0x0F
_NO_RAW_MODE: Final = "no raw DeviceMode measurement block"
_NOT_PROVEN: Final = "debug mode is not proven off (claims say debug)"


def _debug(blocks: Sequence[AnyMeasurementBlock]) -> tuple[bool, bool, str, list[dict[str, int]]]:
    """(debug, whether raw DeviceMode blocks decided it, why, the raw DeviceMode blocks read):
    debug is false only when at least one DeviceMode block is there, all are raw, and no
    one's state has a debug bit (module docs)."""
    modes: list[dict[str, int]] = []
    digests: list[str] = []
    active: list[str] = []
    for block in blocks:
        if not isinstance(block, MeasurementBlock):
            continue  # an unknown value type is never read as a device mode
        if block.value_type is not MeasurementValueType.DEVICE_MODE:
            continue
        if not block.raw:
            digests.append(str(block.index))
            continue
        mode = block.device_mode()
        modes.append(
            {  # DeviceMode's fields, in order (as dataclasses.asdict, without its deep copy)
                "index": block.index,
                "operational_mode_capabilities": mode.operational_mode_capabilities,
                "operational_mode_state": mode.operational_mode_state,
                "device_mode_capabilities": mode.device_mode_capabilities,
                "device_mode_state": mode.device_mode_state,
            }
        )
        if mode.device_mode_state & _DEBUG_STATE_BITS:
            active.append(f"{block.index} (DeviceModeState {mode.device_mode_state:#x})")
    if active:
        return True, True, f"DeviceMode block {', '.join(active)}: debug is or was active", modes
    if digests:
        return (
            True,
            False,
            f"DeviceMode block {', '.join(digests)} is a digest: {_NOT_PROVEN}",
            modes,
        )
    if not modes:
        return True, False, f"{_NO_RAW_MODE}: {_NOT_PROVEN}", modes
    listed = ", ".join(str(m["index"]) for m in modes)
    return False, True, f"raw DeviceMode block {listed}: DeviceModeState bits 0-3 clear", modes


def device_mode_check(claims: EvidenceClaims) -> tuple[bool, str]:
    """Whether raw DeviceMode blocks decided the SPDM ``claims``' ``debug`` (else it is true
    as not proven off), and the detail: what the format table records as the check
    ``device-mode`` (passed, or not run)."""
    check = claims.raw.get("device_mode_check")
    if not isinstance(check, Mapping):
        return False, f"{_NO_RAW_MODE}: {_NOT_PROVEN}"
    return check.get("read") is True, str(check.get("detail", ""))


def spdm_claims(verified: VerifiedSpdm, *, root: str) -> EvidenceClaims:
    """The claims of verified SPDM evidence (``root``: SHA-256 of the trusted root, hex)."""
    measurements: dict[str, bytes] = {}
    svns: dict[str, int] = {}
    debug, read, why, modes = _debug(verified.blocks)
    blocks = []
    for block in verified.blocks:
        name = f"spdm.{block.index}"
        measurements[name] = block.value
        if (
            isinstance(block, MeasurementBlock)  # an unknown value type is never read as an SVN
            and block.raw
            and block.value_type is MeasurementValueType.SECURE_VERSION_NUMBER
        ):
            svns[name] = block.secure_version_number()
        blocks.append(
            {
                "index": block.index,
                "type": block.type_name,
                "type_number": block.type_number,
                "raw": block.raw,
                "value": block.value.hex(),
            }
        )
    subject = verified.leaf.subject.rfc4514_string()
    return EvidenceClaims(
        format=SPDM_FORMAT,
        measurements=measurements,
        report_data=verified.nonce,
        debug=debug,
        svns=svns,
        identity={"subject": subject, "root": root},
        signer=subject,
        raw=JsonReady(
            {
                "version": f"{verified.connection.version >> 4}.{verified.connection.version & 15}",
                "base_asym_algo": verified.connection.base_asym_algo.name,
                "base_hash_algo": verified.connection.base_hash_algo.name,
                "blocks": blocks,
                "device_mode": modes,
                "device_mode_check": {"read": read, "detail": why},
            }
        ),
        valid_until=verified.valid_until,  # SPDM evidence takes no CRLs
    )


def verify_spdm(
    data: bytes | SpdmEvidence,
    *,
    nonce: bytes,
    roots: Sequence[bytes],
    now: datetime,
    cache: SpdmChainCache | None = None,
) -> EvidenceClaims:
    """Verify SPDM evidence (its bytes, or its record as :func:`decoded_record` read it)
    against any of ``roots`` (DER or PEM certificates)."""
    ders: list[bytes] = []
    for root in roots:
        certs = load_certificates(root, what="trusted SPDM root")
        ders.extend(c.public_bytes(Encoding.DER) for c in certs)
    if not ders:
        raise ChainNotTrusted("no trusted root certificate for SPDM evidence")
    last: ChainNotTrusted | None = None
    for der in ders:
        try:
            verified = verify_spdm_evidence(
                data, nonce=nonce, root_certificate=der, now=now, cache=cache
            )
        except ChainNotTrusted as exc:
            last = exc
            continue
        return spdm_claims(verified, root=hashlib.sha256(der).hexdigest())
    assert last is not None
    raise last


def decoded_record(data: bytes) -> SpdmEvidence | bytes:
    """The record of SPDM evidence, decoded WITHOUT verification, or ``data`` itself when it
    does not decode (:func:`verify_spdm` then refuses it, with the decoder's error): decoded
    once, for :func:`signed_nonce` and then :func:`verify_spdm`."""
    try:
        return SpdmEvidence.decode(data)
    except IronrootError:
        return data


def signed_nonce(data: bytes | SpdmEvidence) -> bytes | None:
    """The nonce of the recorded GET_MEASUREMENTS, read WITHOUT verification (``None`` if it
    cannot be read): what the session is verified against, before the caller compares it."""
    try:
        record = data if isinstance(data, SpdmEvidence) else SpdmEvidence.decode(data)
        return GetMeasurements.decode(record.request).nonce
    except IronrootError:
        return None


def parse_spdm_record(data: bytes) -> dict[str, Any]:
    """The recorded messages of SPDM evidence as hex, NOT verified."""
    record = SpdmEvidence.decode(data)
    return {
        "vca": [m.hex() for m in record.vca],
        "certificate_chain_bytes": len(record.certificate_chain),
        "request": record.request.hex(),
        "response": record.response.hex(),
    }
