"""Quotes: the RoT's answer to a nonce challenge, and their offline verification.

Format (all CBOR deterministically encoded, RFC 8949 §4.2.1)::

    quote = {
      "format": "ironroot-quote/1",
      "es384":     bstr .cbor COSE_Sign1,   ; signed by the ECC RT alias key
      "ml-dsa-87": bstr .cbor COSE_Sign1,   ; signed by the ML-DSA-87 RT alias key
    }

Both COSE_Sign1 messages (tag 18) carry the *same* attached payload, the claims below. Two
single-signer messages rather than one COSE_Sign with two signers: each is a plain COSE_Sign1
that any COSE library verifies with one certificate chain, and a verifier that trusts only one
algorithm can still check its half (``verify_quote`` requires both). Protected header:
``{1: alg, 3: "application/vnd.ironroot.rot-quote+cbor", 4: kid}`` (kid = RFC 9679 thumbprint
of the RT alias key); unprotected header: ``{33: x5chain}`` with the DER certificates leaf
first (RFC 9360): RT alias, FMC alias, LDevID, IDevID. The vendor root is not included: the
verifier holds it.

Claims::

    {
      "nonce": bstr,                       ; the verifier's challenge, 8–64 bytes
      "ueid": bstr,                        ; the device (tcg-dice-Ueid of the chain)
      "pcrs": [+ bstr .size 48],           ; PCR0..PCR2, SHA-384
      "pcr-log": [* [pcr: uint, name: tstr, data: bstr]],
      "fwids": {"fmc": bstr, "runtime": bstr, "header": bstr, "manifest": bstr},
      "svn": uint,
      "lifecycle": tstr,                   ; unprovisioned / manufacturing / production
      "debug-locked": bool,
    }

:func:`verify_quote` checks, in order: the container and both messages parse (within
:data:`MAX_QUOTE_BYTES`); each chain ends at an IDevID issued by one of the trusted vendor
roots, with names, signatures, CA flags and validity at ``now`` (``ChainNotTrusted``,
``BadSignature``, ``CertificateExpired``) and the DICE shape IDevID → LDevID → FMC alias → RT
alias; each signature under its RT alias key (``BadSignature``); the two payloads are
identical; the nonce (``StaleNonce``); the PCR log replays to the signed PCRs; the two chains
carry the same TcbInfos at each layer, so both halves come from one boot; the Ueid and FWIDs
match the certificates; the ``svn`` claim equals the SVN of the FMC alias ``FMC_INFO`` and of
the RT alias ``RT_INFO`` TcbInfo (the FMC alias holds exactly DEVICE_INFO then FMC_INFO, the
RT alias one RT_INFO), and ``lifecycle`` and ``debug-locked`` agree with the FMC
alias ``DEVICE_INFO`` flags (``notConfigured``: unprovisioned, ``notSecure``: manufacturing,
``debug``: unlocked), all three inside its flagsMask when it has one (``VerificationFailed``).
The RT alias key is held by the runtime, so the claims it could lie about are checked against
what the ROM and FMC certified below it; the log's one ``device-status`` event (PCR0) agrees
with those claims and with the DEVICE_INFO SVN, which is the fuse SVN, 0 when anti-rollback is
disabled (``VerificationFailed``); ``lifecycle`` is spelled exactly as issued (``MalformedInput``).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ironroot.cose import CONTENT_TYPE, KID, X5CHAIN, Limits, Sign1, decode_cbor, encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    ChainNotTrusted,
    LimitExceeded,
    MalformedCertificate,
    MalformedInput,
    StaleNonce,
    VerificationFailed,
)
from ironroot.rot._boot import (
    DEVICE_STATUS,
    PCR_COUNT,
    PCR_DPE,
    PCR_FMC,
    PCR_ROM,
    PCR_SIZE,
    PFM_EVENT,
    STATUS_ANTI_ROLLBACK_DISABLED,
    STATUS_DEBUG_LOCKED,
    STATUS_FIRMWARE_SVN,
    STATUS_FUSE_SVN,
    STATUS_LIFECYCLE,
    STATUS_OWNER_KEY,
    BootState,
    PcrEvent,
    device_status,
    replay,
)
from ironroot.rot._dice_values import OperationalFlag, OperationalFlags
from ironroot.rot._fuses import Lifecycle
from ironroot.rot._layers import SHA384_OID, DiceLayer
from ironroot.rot.dice import DiceCertificate, parse_certificate, verify_chain

__all__ = [
    "MAX_QUOTE_BYTES",
    "QUOTE_CONTENT_TYPE",
    "QUOTE_FORMAT",
    "QuoteClaims",
    "check_quote_log",
    "check_quote_nonce",
    "create_quote",
    "verify_quote",
]

QUOTE_FORMAT: Final = "ironroot-quote/1"
QUOTE_CONTENT_TYPE: Final = "application/vnd.ironroot.rot-quote+cbor"
MAX_QUOTE_BYTES: Final = 256 * 1024
MIN_NONCE: Final = 8
MAX_NONCE: Final = 64
_LIMITS: Final = Limits(max_bytes=MAX_QUOTE_BYTES, max_depth=8, max_items=512)
_KEYS: Final = {Algorithm.ES384: "es384", Algorithm.ML_DSA_87: "ml-dsa-87"}
_CHAIN_LENGTH: Final = 4  # RT alias, FMC alias, LDevID, IDevID
_MAX_CHAIN: Final = 8
_LIFECYCLES: Final = {state.label: state for state in Lifecycle}


@dataclass(frozen=True, slots=True)
class QuoteClaims:
    """A verified quote. Chains are root-most first: IDevID, LDevID, FMC alias, RT alias."""

    nonce: bytes
    ueid: bytes
    pcrs: tuple[bytes, ...]
    log: tuple[PcrEvent, ...]
    fmc_digest: bytes
    runtime_digest: bytes
    header_digest: bytes
    manifest_digest: bytes
    svn: int
    lifecycle: Lifecycle
    debug_locked: bool
    ecc_chain: tuple[DiceCertificate, ...]
    mldsa_chain: tuple[DiceCertificate, ...]

    @property
    def device_status(self) -> bytes | None:
        """The ROM's ``device-status`` event of the log (one in every verified quote)."""
        return device_status(self.log)

    @property
    def anti_rollback_disabled(self) -> bool | None:
        """Whether the ROM measured anti-rollback disabled (``None``: no device status)."""
        status = self.device_status
        if status is None or status[STATUS_ANTI_ROLLBACK_DISABLED] not in (0, 1):
            return None
        return bool(status[STATUS_ANTI_ROLLBACK_DISABLED])

    @property
    def fuse_svn(self) -> int | None:
        """The SVN fuse the ROM measured (0 when anti-rollback is disabled)."""
        status = self.device_status
        return None if status is None else status[STATUS_FUSE_SVN]

    @property
    def owner_key_fused(self) -> bool | None:
        """Whether the ROM measured an owner key hash fused."""
        status = self.device_status
        return None if status is None else bool(status[STATUS_OWNER_KEY])

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce.hex(),
            "ueid": self.ueid.hex(),
            "pcrs": {str(i): p.hex() for i, p in enumerate(self.pcrs)},
            "pcr_log": [{"pcr": e.pcr, "name": e.name, "data": e.data.hex()} for e in self.log],
            "fwids": {
                "fmc": self.fmc_digest.hex(),
                "runtime": self.runtime_digest.hex(),
                "header": self.header_digest.hex(),
                "manifest": self.manifest_digest.hex(),
            },
            "svn": self.svn,
            "lifecycle": self.lifecycle.label,
            "debug_locked": self.debug_locked,
            "owner_key_fused": self.owner_key_fused,
            "ecc_chain": [c.subject for c in self.ecc_chain],
            "mldsa_chain": [c.subject for c in self.mldsa_chain],
        }


def check_quote_nonce(nonce: object) -> bytes:
    """``nonce`` if it is a quote's nonce, 8–64 bytes; else ``MalformedInput``. What
    :func:`create_quote` and :func:`verify_quote` check first (and any shorter path that
    accepts a quote, the appraisal's chain cache)."""
    if not isinstance(nonce, bytes) or not MIN_NONCE <= len(nonce) <= MAX_NONCE:
        raise MalformedInput(f"a nonce is {MIN_NONCE}–{MAX_NONCE} bytes")
    return nonce


def create_quote(
    *,
    nonce: bytes,
    rt_alias: DiceLayer,
    ueid: bytes,
    state: BootState,
    idevid_certificates: Mapping[Algorithm, bytes],
    lifecycle: Lifecycle,
    debug_locked: bool,
) -> bytes:
    """Sign the claims of ``state`` with both RT alias keys; return the quote bytes."""
    claims = {
        "nonce": check_quote_nonce(nonce),
        "ueid": ueid,
        "pcrs": list(state.pcrs),
        "pcr-log": [[e.pcr, e.name, e.data] for e in state.log],
        "fwids": {
            "fmc": state.fmc_digest,
            "runtime": state.runtime_digest,
            "header": state.header_digest,
            "manifest": state.manifest_digest,
        },
        "svn": state.svn,
        "lifecycle": lifecycle.label,
        "debug-locked": debug_locked,
    }
    payload = encode_cbor(claims)
    chains = {Algorithm.ES384: state.ecc_chain, Algorithm.ML_DSA_87: state.mldsa_chain}
    out: dict[str, object] = {"format": QUOTE_FORMAT}
    for alg, name in _KEYS.items():
        key: PrivateKey = rt_alias.key(alg)
        x5chain = [*reversed(chains[alg]), idevid_certificates[alg]]
        message = sign1(
            key, payload, {CONTENT_TYPE: QUOTE_CONTENT_TYPE, KID: key.kid}, {X5CHAIN: x5chain}
        )
        out[name] = message.encode()
    return encode_cbor(out)


# --- verification ---------------------------------------------------------------------------


def _anchors(trust_anchors: Sequence[bytes]) -> tuple[DiceCertificate, ...]:
    anchors = tuple(parse_certificate(a) for a in trust_anchors)
    if not anchors:
        raise ChainNotTrusted("no trusted vendor CA: an empty trust store trusts nothing")
    return anchors


def _chain(
    message: Sign1, alg: Algorithm, anchors: Sequence[DiceCertificate], now: dt.datetime
) -> tuple[DiceCertificate, ...]:
    items = message.unprotected.get(X5CHAIN)
    if isinstance(items, bytes):
        items = [items]
    if not isinstance(items, list | tuple) or not items:
        raise MalformedInput("the quote message has no x5chain (33)")
    if len(items) > _MAX_CHAIN:
        raise LimitExceeded(f"x5chain holds more than {_MAX_CHAIN} certificates")
    if not all(isinstance(i, bytes) for i in items):
        raise MalformedInput("x5chain items must be byte strings")
    certs = [parse_certificate(der) for der in items]
    top = certs[-1]
    # The IDevID's authority key identifier, when both name one, picks among roots of one
    # name (RFC 5280 4.2.1.1): a re-keyed root is passed over, not refused.
    candidates = [
        a
        for a in anchors
        if a.subject_der == top.issuer_der
        and a.public_key is not None
        and a.public_key.algorithm is alg
        and (
            top.authority_key_id is None
            or a.subject_key_id is None
            or a.subject_key_id == top.authority_key_id
        )
    ]
    if not candidates:
        raise ChainNotTrusted(
            f"the {alg.label} chain does not reach an IDevID issued by a trusted vendor CA"
        )
    # Several trusted roots may share a name (a re-keyed vendor CA): the one whose key
    # verifies the chain is the one it reaches; with none, the last error stands.
    for position, anchor in enumerate(candidates):
        ordered = (anchor, *reversed(certs))
        try:
            verify_chain(ordered)
            break
        except BadSignature:
            if position == len(candidates) - 1:
                raise
    for cert in ordered:
        cert.check_validity(now)
    chain = ordered[1:]
    if len(chain) != _CHAIN_LENGTH or "identityInit" not in chain[0].dice.key_purposes:
        raise ChainNotTrusted(
            f"the {alg.label} chain is not IDevID → LDevID → FMC alias → RT alias"
        )
    if "identityLoc" not in chain[1].dice.key_purposes or not chain[2].dice.multi:
        raise ChainNotTrusted(f"the {alg.label} chain does not follow the DICE layer profile")
    leaf_key = chain[3].public_key
    if leaf_key is None or leaf_key.algorithm is not alg:
        raise ChainNotTrusted(f"the {alg.label} quote's RT alias key is not {alg.label}")
    return chain


def _message(container: Mapping[object, object], alg: Algorithm) -> Sign1:
    data = container.get(_KEYS[alg])
    if not isinstance(data, bytes):
        raise MalformedInput(f"the quote has no {_KEYS[alg]} message")
    message = Sign1.decode(data, _LIMITS)
    if message.algorithm is not alg:
        raise AlgorithmNotAccepted(f"the {_KEYS[alg]} message is signed {message.algorithm.label}")
    if message.protected.get(CONTENT_TYPE) != QUOTE_CONTENT_TYPE:
        raise MalformedInput(f"the {_KEYS[alg]} message is not a quote (content type)")
    if message.payload is None:
        raise MalformedInput("the quote payload is detached")
    return message


def _bytes(value: object, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise MalformedInput(f"quote claim {what} must be {size or 'a'} byte string")
    return value


def _claims(payload: bytes) -> dict[str, Any]:
    claims = decode_cbor(payload, _LIMITS)
    if not isinstance(claims, dict):
        raise MalformedInput("the quote claims are not a map")
    expected = {"nonce", "ueid", "pcrs", "pcr-log", "fwids", "svn", "lifecycle", "debug-locked"}
    if set(claims) != expected:
        raise MalformedInput("the quote claims have missing or unknown members")
    return claims


def _events(value: object) -> tuple[PcrEvent, ...]:
    if not isinstance(value, list):
        raise MalformedInput("quote claim pcr-log must be an array")
    events = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or isinstance(item[0], bool)
            or not isinstance(item[0], int)
            or not isinstance(item[1], str)
            or not isinstance(item[2], bytes)
        ):
            raise MalformedInput("a PCR log entry is [pcr, name, data]")
        events.append(PcrEvent(item[0], item[1], item[2]))
    return tuple(events)


def _fwid(cert: DiceCertificate, index: int) -> bytes | None:
    tcbs = cert.dice.tcb_infos
    if len(tcbs) <= index or not tcbs[index].fwids:
        return None
    fwid = tcbs[index].fwids[0]
    return fwid.digest if fwid.hash_alg_oid == SHA384_OID else None


def _certified_lifecycle(flags: OperationalFlags) -> Lifecycle:
    if OperationalFlag.notConfigured in flags:
        return Lifecycle.UNPROVISIONED
    if OperationalFlag.notSecure in flags:
        return Lifecycle.MANUFACTURING
    return Lifecycle.PRODUCTION


_FMC_TCB_TYPES: Final = (b"DEVICE_INFO", b"FMC_INFO")
_RT_TCB_TYPE: Final = b"RT_INFO"
_CERTIFIED_FLAGS: Final = (
    OperationalFlag.notConfigured,
    OperationalFlag.notSecure,
    OperationalFlag.debug,
)
"""The DEVICE_INFO flags the lifecycle and debug claims are read from: a flagsMask, when the
certificate has one, must name them all (TCG DICE: a flag outside the mask is unspecified)."""


def _check_tcb_layout(chain: Sequence[DiceCertificate]) -> None:
    """The FMC alias TcbInfos are DEVICE_INFO then FMC_INFO and the RT alias's one RT_INFO
    (``VerificationFailed``): they are read by position, so one left out, swapped or added (a
    second DEVICE_INFO) would be another reading of the certificate than the one checked."""
    fmc_types = tuple(t.type for t in chain[2].dice.tcb_infos)
    rt_types = tuple(t.type for t in chain[3].dice.tcb_infos)
    if fmc_types != _FMC_TCB_TYPES or rt_types != (_RT_TCB_TYPE,):
        raise VerificationFailed(
            "the FMC alias TcbInfos are not DEVICE_INFO then FMC_INFO, or the RT alias's "
            "not one RT_INFO"
        )


def _check_certified(
    chain: Sequence[DiceCertificate], *, svn: int, lifecycle: Lifecycle, debug_locked: bool
) -> None:
    """The SVN, lifecycle and debug claims against what the layers below the runtime
    certified: the FMC alias ``DEVICE_INFO`` flags and ``FMC_INFO`` SVN (issued by the ROM's
    LDevID key) and the RT alias ``RT_INFO`` SVN (issued by the FMC). The runtime signs the
    claims with a key it holds, so a claim that the certificates do not back is refused."""
    fmc_tcbs, rt_tcbs = chain[2].dice.tcb_infos, chain[3].dice.tcb_infos
    device_flags, mask = fmc_tcbs[0].flags, fmc_tcbs[0].flags_mask
    if mask is not None and not all(flag in mask for flag in _CERTIFIED_FLAGS):
        # A flag outside the flagsMask is unspecified: a clear bit there is not "locked".
        raise VerificationFailed(
            "the FMC alias DEVICE_INFO flagsMask leaves the lifecycle or debug flags "
            "unspecified: the certificate does not say what the claims say"
        )
    if fmc_tcbs[1].svn != svn or rt_tcbs[0].svn != svn:
        raise VerificationFailed("the SVN claim differs from the alias certificates' TcbInfo")
    if (
        device_flags is None
        or _certified_lifecycle(device_flags) is not lifecycle
        or (OperationalFlag.debug in device_flags) is debug_locked
    ):
        raise VerificationFailed(
            "the lifecycle or debug claim differs from the FMC alias DEVICE_INFO flags"
        )


def _check_device_status(
    log: Sequence[PcrEvent],
    *,
    fuse_svn: int | None,
    svn: int,
    lifecycle: Lifecycle,
    debug_locked: bool,
) -> None:
    """The ROM's ``device-status`` event (what appraisal reads anti-rollback from) against the
    certified claims: exactly one 9-byte event in PCR0 whose lifecycle, debug, firmware SVN and
    fuse SVN bytes are the certified ones, and whose anti-rollback byte is 0 (enabled) or 1
    (disabled) and agrees with the fuse SVN: disabled measures fuse SVN 0; enabled measures a
    fuse SVN no higher than the firmware's (the ROM boots nothing below its fuse) and, under
    firmware SVN above 0, above 0: the boot advances the fuse to the firmware's SVN, or, when
    its caller defers that while an update is on trial (``Device.boot(advance_svn=False)``,
    as a platform's A/B update does), the fuse holds the SVN of the firmware last committed.
    (The byte itself is bound only through the DEVICE_INFO FWID, which needs the vendor key
    descriptor hash to recompute: a device with anti-rollback disabled running firmware SVN 0,
    or whose committed firmware had SVN 0, can still claim it enabled.)"""
    status = device_status(log)
    if status is None:
        raise VerificationFailed("the PCR log needs exactly one 9-byte device-status in PCR0")
    disabled, fuse = status[STATUS_ANTI_ROLLBACK_DISABLED], status[STATUS_FUSE_SVN]
    if (
        status[STATUS_LIFECYCLE] != int(lifecycle)
        or status[STATUS_DEBUG_LOCKED] != int(debug_locked)
        or status[STATUS_FIRMWARE_SVN] != svn
        or fuse != fuse_svn
        or disabled not in (0, 1)
        or (disabled == 1 and fuse != 0)
        or (disabled == 0 and fuse > status[STATUS_FIRMWARE_SVN])
        or (disabled == 0 and fuse == 0 and status[STATUS_FIRMWARE_SVN] > 0)
    ):
        raise VerificationFailed("the device-status event differs from the certified device state")


_FWID_EVENTS: Final = (
    (PCR_ROM, "fmc-digest"),
    (PCR_FMC, "runtime-digest"),
    (PCR_FMC, "header-digest"),
)
"""The PCR log events the quote's FWIDs are compared with: each recorded at most once."""

_BOOT_EVENTS: Final = (
    (PCR_ROM, DEVICE_STATUS),
    (PCR_ROM, "vendor-ecc-key-hash"),
    (PCR_ROM, "vendor-pqc-key-hash"),
    (PCR_ROM, "owner-key-hash"),
    (PCR_ROM, "fmc-digest"),
    (PCR_FMC, "runtime-digest"),
    (PCR_FMC, "header-digest"),
)
"""What the ROM records in PCR 0 and the FMC in PCR 1, in this order, and nothing else."""
_DPE_PREFIX: Final = "dpe:"


def check_quote_log(log: Sequence[PcrEvent]) -> None:
    """PCR 0 and 1 hold exactly the ROM's and the FMC's events, in their order, and PCR 2 only
    DPE measurements (``VerificationFailed``): readers take a component's image from its
    ``dpe:<label>`` event, the platform's PFM from the first (``pfm-digest``), and the boot's
    facts from theirs, so a name in the wrong PCR, or an
    extra event beside the ROM's, would be read as something the RoT did not measure there.

    :func:`verify_quote` runs it; so does any shorter path that accepts a quote's log (the
    appraisal's chain cache), so that both hold a log to one rule."""
    boot = tuple((e.pcr, e.name) for e in log if e.pcr != PCR_DPE)
    if boot != _BOOT_EVENTS:
        raise VerificationFailed(
            "the PCR log's events in PCRs 0 and 1 are not the ROM's and the FMC's, in order: "
            + ", ".join(f"{name} (PCR {pcr})" for pcr, name in boot)
        )
    for position, event in enumerate(e for e in log if e.pcr == PCR_DPE):
        if event.name == PFM_EVENT:
            # The platform's PFM, measured by the RoT before anything runs: first, once.
            if position != 0 or len(event.data) != PCR_SIZE:
                raise VerificationFailed(
                    f"PCR 2's {PFM_EVENT} event is its first, of {PCR_SIZE} bytes, once per boot"
                )
        elif not event.name.startswith(_DPE_PREFIX) or event.name == _DPE_PREFIX:
            raise VerificationFailed(
                f"PCR 2 holds only DPE measurements (dpe:<label>), not {event.name!r}"
            )


def _check_same_boot(ecc: Sequence[DiceCertificate], mldsa: Sequence[DiceCertificate]) -> None:
    """The two chains certify one boot of one device: each layer's TcbInfos (the FMC alias
    ``DEVICE_INFO`` FWID, which stands for the whole PCR0, among them) are the same in both
    (``VerificationFailed``). The claims are compared with each chain only on the fields
    they name, so without this a half signed by another boot's RT alias key (another
    ``device-status``, another vendor key) passed beside this boot's."""
    for ecc_cert, mldsa_cert in zip(ecc, mldsa, strict=True):
        if ecc_cert.dice.tcb_infos != mldsa_cert.dice.tcb_infos:
            raise VerificationFailed(
                "the ECDSA and ML-DSA chains certify different measurements: "
                "the two halves of the quote are not from one boot"
            )


def verify_quote(
    quote: bytes,
    *,
    nonce: bytes,
    trust_anchors: Sequence[bytes],
    now: dt.datetime,
) -> QuoteClaims:
    """Verify a quote against the nonce sent and the trusted vendor roots (PEM or DER)."""
    return verify_decoded_quote(quote, None, nonce=nonce, trust_anchors=trust_anchors, now=now)


def verify_decoded_quote(
    quote: bytes,
    messages: tuple[Sign1, Sign1] | None,
    *,
    nonce: bytes,
    trust_anchors: Sequence[bytes],
    now: dt.datetime,
) -> QuoteClaims:
    """:func:`verify_quote`, given the quote's two messages (ES384, then ML-DSA-87) as the
    caller already decoded them from exactly these bytes under this module's rules (the
    container's format and members, each message's algorithm, content type and attached
    payload: ``ironroot.attestation.evidence``'s shared decoding); ``None``: decoded here.
    Every other check is made as for :func:`verify_quote`."""
    check_quote_nonce(nonce)
    if not isinstance(quote, bytes):
        raise MalformedInput("a quote is bytes")
    if len(quote) > MAX_QUOTE_BYTES:
        raise LimitExceeded(f"a quote is at most {MAX_QUOTE_BYTES} bytes")
    anchors = _anchors(trust_anchors)
    container: dict[object, object] = {}
    if messages is None:
        decoded = decode_cbor(quote, _LIMITS)
        if not isinstance(decoded, dict) or decoded.get("format") != QUOTE_FORMAT:
            raise MalformedInput(f"not an {QUOTE_FORMAT} quote")
        if set(decoded) != {"format", *_KEYS.values()}:
            raise MalformedInput("the quote has missing or unknown members")
        container = decoded
    chains: dict[Algorithm, tuple[DiceCertificate, ...]] = {}
    payloads = []
    for i, alg in enumerate(_KEYS):
        message = _message(container, alg) if messages is None else messages[i]
        try:
            chain = _chain(message, alg, anchors, now)
        except MalformedCertificate as exc:
            raise MalformedInput(f"the {_KEYS[alg]} chain: {exc.detail}") from exc
        leaf_key = chain[-1].public_key
        assert leaf_key is not None  # checked in _chain
        message.verify(leaf_key)
        chains[alg] = chain
        payloads.append(message.payload)
    if payloads[0] != payloads[1]:
        raise VerificationFailed("the two quote signatures cover different claims")
    assert payloads[0] is not None
    claims = _claims(payloads[0])
    signed_nonce = _bytes(claims["nonce"], "nonce")
    if not hmac.compare_digest(signed_nonce, nonce):
        raise StaleNonce("the quote answers another nonce")
    pcrs_value = claims["pcrs"]
    if not isinstance(pcrs_value, list) or len(pcrs_value) != PCR_COUNT:
        raise MalformedInput(f"quote claim pcrs must list {PCR_COUNT} PCRs")
    pcrs = tuple(_bytes(p, "pcrs", PCR_SIZE) for p in pcrs_value)
    log = _events(claims["pcr-log"])
    if replay(log) != pcrs:
        raise VerificationFailed("the PCR log does not replay to the signed PCR values")
    fwids = claims["fwids"]
    names = ("fmc", "runtime", "header", "manifest")
    if not isinstance(fwids, dict) or set(fwids) != set(names):
        raise MalformedInput("quote claim fwids must have fmc, runtime, header and manifest")
    fmc, runtime, header, manifest = (_bytes(fwids[k], k, 48) for k in names)
    logged = {(e.pcr, e.name): e.data for e in log}
    for key in _FWID_EVENTS:
        if sum(1 for e in log if (e.pcr, e.name) == key) > 1:
            # the verifier reads one value per event; a second would let a later stage name
            # the code an earlier one measured (a reader taking the first sees another value)
            raise VerificationFailed(f"the PCR log records {key[1]} in PCR {key[0]} twice")
    if (
        logged.get((PCR_ROM, "fmc-digest")) != fmc
        or logged.get((PCR_FMC, "runtime-digest")) != runtime
        or logged.get((PCR_FMC, "header-digest")) != header
    ):
        raise VerificationFailed("the FWIDs do not match the PCR log")
    ueid = _bytes(claims["ueid"], "ueid")
    _check_same_boot(chains[Algorithm.ES384], chains[Algorithm.ML_DSA_87])
    for chain in chains.values():
        _check_tcb_layout(chain)
        if any(cert.dice.ueid != ueid for cert in chain):
            raise VerificationFailed("the device Ueid differs from the certificates'")
        if _fwid(chain[2], 1) != fmc or _fwid(chain[3], 0) != runtime:
            raise VerificationFailed("the FWIDs differ from the alias certificates' TcbInfo")
    svn, lifecycle, debug_locked = claims["svn"], claims["lifecycle"], claims["debug-locked"]
    if isinstance(svn, bool) or not isinstance(svn, int) or not isinstance(debug_locked, bool):
        raise MalformedInput("quote claims svn and debug-locked have the wrong type")
    if not isinstance(lifecycle, str) or lifecycle not in _LIFECYCLES:
        raise MalformedInput("quote claim lifecycle is not a lifecycle state")
    for chain in chains.values():
        _check_certified(
            chain, svn=svn, lifecycle=_LIFECYCLES[lifecycle], debug_locked=debug_locked
        )
        _check_device_status(
            log,
            fuse_svn=chain[2].dice.tcb_infos[0].svn,
            svn=svn,
            lifecycle=_LIFECYCLES[lifecycle],
            debug_locked=debug_locked,
        )
    check_quote_log(log)
    return QuoteClaims(
        nonce=signed_nonce,
        ueid=ueid,
        pcrs=pcrs,
        log=log,
        fmc_digest=fmc,
        runtime_digest=runtime,
        header_digest=header,
        manifest_digest=manifest,
        svn=svn,
        lifecycle=_LIFECYCLES[lifecycle],
        debug_locked=debug_locked,
        ecc_chain=chains[Algorithm.ES384],
        mldsa_chain=chains[Algorithm.ML_DSA_87],
    )
