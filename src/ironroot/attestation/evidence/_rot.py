"""This project's root-of-trust quotes as :class:`EvidenceClaims` (format ``"ironroot"``).

:func:`quote_claims` maps a verified :class:`ironroot.rot.QuoteClaims` onto the one claims
model every appraisal policy is written against:

``measurements``
    ``fmc``, ``runtime`` (the SHA-384 of the two firmware components, as the vendor's
    reference-value CoRIM names them), ``header``, ``manifest`` (the manifest digest that
    publication and SAFE reviews name) and ``pcr0`` … ``pcr2``.
``report_data``
    the nonce the quote answers. ``debug`` is ``not debug_locked``.
``svns``
    ``firmware``: the manifest SVN the device booted.
``identity``
    ``ueid`` (hex), ``lifecycle``, ``vendor_ca`` (the issuer of the IDevID) and ``root``: the
    SHA-256 of the DER vendor CA certificate the chain reached (what appraisal compares with
    its trusted roots), and ``anti_rollback``: ``enabled`` or ``disabled`` from the
    ``device-status`` event the ROM extended into PCR0 (its third byte), ``unknown`` when the
    signed PCR log has no well-formed one. The default policy's ``anti-rollback`` rule refuses
    to affirm a device that is not ``enabled``. ``owner_key``: ``fused`` or ``unfused`` from
    the same event (its last byte; ``unknown`` without one): ``unfused`` means the RoT took
    whatever owner keys the bundle carried, so its ``owner-key-hash`` event names keys no
    fuse vouches for.

:func:`verify_rot_quote` verifies a quote (``ironroot.rot.verify_quote``, the reference
verifier) and converts it. With a :class:`RotChainCache` it skips what a previous quote with
the same two certificate chains already proved: the certificate parsing and the eight
certificate signatures. What depends on the quote itself is still checked every time: both
quote signatures under the cached RT alias keys, validity at ``now`` of every certificate and
of the vendor roots the chains reached, the nonce, identical payloads, the PCR log replaying
to the signed PCRs, the log's shape (``ironroot.rot.check_quote_log``: the ROM's and the FMC's
events in PCRs 0 and 1, only ``dpe:<label>`` in PCR 2 after an optional first ``pfm-digest``),
FWIDs matching the log and the
certificates, the Ueid, the SVN, the debug state and the device-status event the certificates
certify. Any difference from the cached
facts, or any failure, falls back to the full ``verify_quote``, which raises the exact error:
the cache can only make a quote that the full verifier accepts cheaper, never accept one it
would refuse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from ironroot.attestation.evidence._claims import EvidenceClaims, JsonReady
from ironroot.cose import CONTENT_TYPE, X5CHAIN, Limits, Sign1, decode_cbor
from ironroot.crypto import Algorithm
from ironroot.errors import IronrootError, LimitExceeded, MalformedEvidence, MalformedInput
from ironroot.rot import (
    DiceCertificate,
    PcrEvent,
    QuoteClaims,
    check_quote_log,
    check_quote_nonce,
    parse_certificate,
    verify_signature,
)
from ironroot.rot._quote import verify_decoded_quote

__all__ = [
    "ROT_QUOTE_FORMAT",
    "RotChainCache",
    "parse_rot_quote",
    "quote_claims",
    "verify_rot_quote",
]

ROT_QUOTE_FORMAT: Final = "ironroot"
_QUOTE_FORMAT: Final = "ironroot-quote/1"
_QUOTE_CONTENT_TYPE: Final = "application/vnd.ironroot.rot-quote+cbor"
_MAX_QUOTE: Final = 256 * 1024
_LIMITS: Final = Limits(max_bytes=_MAX_QUOTE, max_depth=8, max_items=512)
_MESSAGES: Final = (("es384", Algorithm.ES384), ("ml-dsa-87", Algorithm.ML_DSA_87))
_CLAIM_NAMES: Final = frozenset(
    ("nonce", "ueid", "pcrs", "pcr-log", "fwids", "svn", "lifecycle", "debug-locked")
)
_PCR_SIZE: Final = 48
_PCR_COUNT: Final = 3
_PCR_ROM: Final = 0
_PCR_FMC: Final = 1
_DEVICE_STATUS: Final = "device-status"


@lru_cache(maxsize=64)
def _anchor(data: bytes) -> DiceCertificate:
    return parse_certificate(data)


def _issuing_root(
    idevid: DiceCertificate, algorithm: Algorithm, trust_anchors: Sequence[bytes]
) -> DiceCertificate | None:
    """The trusted root whose name, algorithm AND key issued ``idevid`` (several roots may
    share a name: a re-keyed vendor CA)."""
    for data in trust_anchors:
        anchor = _anchor(bytes(data))
        key = anchor.public_key
        if anchor.subject_der != idevid.issuer_der or key is None or key.algorithm is not algorithm:
            continue
        try:
            verify_signature(idevid, key)
        except IronrootError:
            continue
        return anchor
    return None


def _root_fingerprint(idevid: DiceCertificate, trust_anchors: Sequence[bytes]) -> str:
    anchor = _issuing_root(idevid, Algorithm.ES384, trust_anchors)
    return hashlib.sha256(anchor.der).hexdigest() if anchor is not None else ""


def _reached(
    verified: QuoteClaims, trust_anchors: Sequence[bytes]
) -> tuple[DiceCertificate, ...] | None:
    """The vendor roots that issued the two IDevIDs (``None``: not found, do not cache)."""
    reached = []
    for chain, algorithm in (
        (verified.ecc_chain, Algorithm.ES384),
        (verified.mldsa_chain, Algorithm.ML_DSA_87),
    ):
        anchor = _issuing_root(chain[0], algorithm, trust_anchors)
        if anchor is None:
            return None
        reached.append(anchor)
    return tuple(reached)


def _valid_until(claims: QuoteClaims, anchors: Sequence[DiceCertificate]) -> dt.datetime | None:
    """The first ``notAfter`` of the two verified chains and the vendor roots they reached
    (every one was checked valid at the verification time); RoT quotes take no CRLs."""
    ends = [
        cert.not_after
        for cert in (*claims.ecc_chain, *claims.mldsa_chain, *anchors)
        if cert.not_after is not None
    ]
    return min(ends, default=None)


def _anti_rollback(claims: QuoteClaims) -> str:
    """``enabled``/``disabled`` from the ROM's device-status event, else ``unknown``."""
    disabled = claims.anti_rollback_disabled
    return "unknown" if disabled is None else "disabled" if disabled else "enabled"


def _owner_key(claims: QuoteClaims) -> str:
    """``fused``/``unfused`` (the bundle's owner keys, if any, bound to nothing) from the
    ROM's device-status event, else ``unknown``."""
    fused = claims.owner_key_fused
    return "unknown" if fused is None else "fused" if fused else "unfused"


def quote_claims(
    claims: QuoteClaims, *, root: str = "", valid_until: dt.datetime | None = None
) -> EvidenceClaims:
    """The :class:`EvidenceClaims` of a verified quote (``root``: the vendor CA fingerprint;
    ``valid_until``: when its certificates stop holding)."""
    idevid = claims.ecc_chain[0]
    measurements = {
        "fmc": claims.fmc_digest,
        "runtime": claims.runtime_digest,
        "header": claims.header_digest,
        "manifest": claims.manifest_digest,
    }
    measurements.update({f"pcr{i}": pcr for i, pcr in enumerate(claims.pcrs)})
    return EvidenceClaims(
        format=ROT_QUOTE_FORMAT,
        measurements=measurements,
        report_data=claims.nonce,
        debug=not claims.debug_locked,
        svns={"firmware": claims.svn},
        identity={
            "ueid": claims.ueid.hex(),
            "lifecycle": claims.lifecycle.label,
            "vendor_ca": idevid.issuer or "",
            "root": root,
            "anti_rollback": _anti_rollback(claims),
            "owner_key": _owner_key(claims),
        },
        signer=claims.ecc_chain[-1].subject,
        raw=JsonReady(claims.to_json()),  # QuoteClaims.to_json is JSON-ready by contract
        valid_until=valid_until,
    )


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a fully verified quote proved about its two chains."""

    quote: QuoteClaims
    root: str
    chains: tuple[object, ...]
    anchors: tuple[DiceCertificate, ...]  # the vendor roots the two chains reached


class RotChainCache:
    """Remembers the verified certificate chains of quotes (bounded; starts over when full).

    Looked up by the ECC leaf certificate and the trust anchors given, then the exact DER
    chains both quote messages carry are compared with the verified ones, so a different
    chain, root or anchor set is a miss and is verified in full. (Hashing only the small leaf
    keeps the lookup cheap; the comparison is a byte compare, not a hash of ~40 KB.)
    """

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: dict[tuple[object, ...], _Verified] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def _get(self, key: tuple[object, ...]) -> _Verified | None:
        return self._entries.get(key)

    def _put(self, key: tuple[object, ...], value: _Verified) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = value


class _Miss(Exception):
    """The cached path cannot decide: verify in full."""


# The last quote each thread decoded (_messages), by identity: the bytes object itself held,
# so it is that quote until replaced. An appraisal reads the quote's signed nonce, then
# looks its chains up in the cache, from one decoding.
_LAST = threading.local()


def _last(quote: bytes) -> tuple[tuple[Sign1, ...], tuple[object, ...]] | None:
    """What :func:`_messages` decoded from that very bytes object, if it was this thread's
    last quote."""
    last = getattr(_LAST, "decoded", None)
    if last is None or last[0] is not quote:
        return None
    found: tuple[tuple[Sign1, ...], tuple[object, ...]] = last[1]
    return found


def _messages(quote: bytes) -> tuple[tuple[Sign1, ...], tuple[object, ...]]:
    """The quote's two messages and their x5chains, decoded (``_Miss`` when the quote is not
    one the cached path can take)."""
    found = _last(quote)
    if found is None:
        found = _decode_messages(quote)
        if type(quote) is bytes:  # immutable: a bytearray may change under the same identity
            _LAST.decoded = (quote, found)
    return found


def _decoded(quote: bytes) -> tuple[Sign1, Sign1] | None:
    """The two messages of ``quote`` if this thread decoded that very bytes object last
    (:func:`_messages`, which refuses what :func:`ironroot.rot.verify_quote` refuses in the
    container and its messages), else ``None``: never decoded here."""
    found = _last(quote)
    if found is None:
        return None
    ecc, mldsa = found[0]
    return ecc, mldsa


def _decode_messages(quote: bytes) -> tuple[tuple[Sign1, ...], tuple[object, ...]]:
    if len(quote) > _MAX_QUOTE:
        raise _Miss
    try:
        container = decode_cbor(quote, _LIMITS)
    except IronrootError as exc:
        raise _Miss from exc
    if not isinstance(container, dict) or container.get("format") != _QUOTE_FORMAT:
        raise _Miss
    if set(container) != {"format", *(name for name, _ in _MESSAGES)}:
        raise _Miss
    messages: list[Sign1] = []
    chains: list[object] = []
    for name, alg in _MESSAGES:
        data = container[name]
        if not isinstance(data, bytes):
            raise _Miss
        try:
            message = Sign1.decode(data, _LIMITS)
            algorithm = message.algorithm
        except IronrootError as exc:
            raise _Miss from exc
        if (
            algorithm is not alg
            or message.protected.get(CONTENT_TYPE) != _QUOTE_CONTENT_TYPE
            or message.payload is None
        ):
            raise _Miss
        x5chain = message.unprotected.get(X5CHAIN)
        if not isinstance(x5chain, list | tuple) or not all(isinstance(c, bytes) for c in x5chain):
            raise _Miss
        messages.append(message)
        chains.append(tuple(x5chain))
    return tuple(messages), tuple(chains)


def _replay(log: list[Any]) -> list[bytes]:
    pcrs = [bytes(_PCR_SIZE)] * _PCR_COUNT
    for pcr, _, data in log:
        pcrs[pcr] = hashlib.sha384(pcrs[pcr] + data).digest()
    return pcrs


def _check_claims(payload: bytes, nonce: bytes, known: QuoteClaims) -> dict[str, Any]:
    """The cached path's checks of the signed claims (``_Miss`` on any doubt)."""
    try:
        claims = decode_cbor(payload, _LIMITS)
    except IronrootError as exc:
        raise _Miss from exc
    if not isinstance(claims, dict) or set(claims) != _CLAIM_NAMES:
        raise _Miss
    signed_nonce, log, pcrs, fwids = (
        claims["nonce"],
        claims["pcr-log"],
        claims["pcrs"],
        claims["fwids"],
    )
    if not isinstance(signed_nonce, bytes) or not hmac.compare_digest(signed_nonce, nonce):
        raise _Miss
    if not isinstance(log, list) or not all(
        isinstance(e, list)
        and len(e) == 3
        and type(e[0]) is int
        and 0 <= e[0] < _PCR_COUNT
        and isinstance(e[1], str)
        and isinstance(e[2], bytes)
        for e in log
    ):
        raise _Miss
    if not isinstance(pcrs, list) or pcrs != _replay(log):
        raise _Miss
    names = ("fmc", "runtime", "header", "manifest")
    if not isinstance(fwids, dict) or set(fwids) != set(names):
        raise _Miss
    if not all(isinstance(fwids[n], bytes) and len(fwids[n]) == 48 for n in names):
        raise _Miss
    logged = {(e[0], e[1]): e[2] for e in log}
    fwid_events = (
        (_PCR_ROM, "fmc-digest"),
        (_PCR_FMC, "runtime-digest"),
        (_PCR_FMC, "header-digest"),
    )
    if sum(1 for e in log if (e[0], e[1]) in fwid_events) > len(fwid_events):
        raise _Miss  # an FWID event recorded twice: the full check says which
    if (
        logged.get((_PCR_ROM, "fmc-digest")) != fwids["fmc"]
        or logged.get((_PCR_FMC, "runtime-digest")) != fwids["runtime"]
        or logged.get((_PCR_FMC, "header-digest")) != fwids["header"]
        or fwids["fmc"] != known.fmc_digest
        or fwids["runtime"] != known.runtime_digest
        or claims["ueid"] != known.ueid
    ):
        raise _Miss
    svn, lifecycle, debug_locked = claims["svn"], claims["lifecycle"], claims["debug-locked"]
    if type(svn) is not int or type(debug_locked) is not bool:
        raise _Miss
    if svn != known.svn or debug_locked is not known.debug_locked:
        raise _Miss  # the same certificates certify one SVN and one debug state
    status = [e[2] for e in log if e[1] == _DEVICE_STATUS]
    known_status = [e.data for e in known.log if e.name == _DEVICE_STATUS]
    if status != known_status or [e for e in log if e[1] == _DEVICE_STATUS and e[0] != _PCR_ROM]:
        raise _Miss  # and one device status: anything else is verified in full
    if lifecycle != known.lifecycle.label:
        raise _Miss
    return claims


def _cached(
    quote: bytes,
    nonce: bytes,
    trust_anchors: Sequence[bytes],
    now: dt.datetime,
    cache: RotChainCache,
) -> EvidenceClaims:
    messages, chains = _messages(quote)
    ecc_chain = chains[0]
    if not isinstance(ecc_chain, tuple) or not ecc_chain:
        raise _Miss
    if not all(isinstance(a, bytes | bytearray | memoryview) for a in trust_anchors):
        raise _Miss  # the full check names what is wrong with them
    anchors = tuple(a if type(a) is bytes else bytes(a) for a in trust_anchors)
    key = (ecc_chain[0], anchors)
    entry = cache._get(key)
    if entry is None or entry.chains != chains:
        raise _Miss((key, chains))
    known = entry.quote
    try:
        for anchor in entry.anchors:
            anchor.check_validity(now)
    except IronrootError as exc:
        raise _Miss from exc
    for message, chain in zip(messages, (known.ecc_chain, known.mldsa_chain), strict=True):
        leaf = chain[-1].public_key
        if leaf is None:
            raise _Miss
        try:
            for cert in chain:
                cert.check_validity(now)
            message.verify(leaf)
        except IronrootError as exc:
            raise _Miss from exc
    if messages[0].payload != messages[1].payload:
        raise _Miss
    payload = messages[0].payload
    assert payload is not None  # _messages refuses detached payloads
    claims = _check_claims(payload, nonce, known)
    log = tuple(PcrEvent(e[0], e[1], e[2]) for e in claims["pcr-log"])
    try:
        check_quote_log(log)  # the full check's rule for the log's shape, not a copy of it
    except IronrootError as exc:
        raise _Miss from exc  # the full check refuses it, with its own error
    fresh = QuoteClaims(
        nonce=claims["nonce"],
        ueid=known.ueid,
        pcrs=tuple(claims["pcrs"]),
        log=log,
        fmc_digest=claims["fwids"]["fmc"],
        runtime_digest=claims["fwids"]["runtime"],
        header_digest=claims["fwids"]["header"],
        manifest_digest=claims["fwids"]["manifest"],
        svn=claims["svn"],
        lifecycle=known.lifecycle,
        debug_locked=claims["debug-locked"],
        ecc_chain=known.ecc_chain,
        mldsa_chain=known.mldsa_chain,
    )
    return quote_claims(fresh, root=entry.root, valid_until=_valid_until(known, entry.anchors))


def verify_rot_quote(
    quote: bytes,
    *,
    nonce: bytes,
    trust_anchors: Sequence[bytes],
    now: dt.datetime,
    cache: RotChainCache | None = None,
) -> EvidenceClaims:
    """Verify a RoT quote against ``nonce`` and the vendor CA certificates; return its claims.

    Raises what :func:`ironroot.rot.verify_quote` raises (``ChainNotTrusted``,
    ``CertificateExpired``, ``BadSignature``, ``StaleNonce``, ``VerificationFailed``,
    ``MalformedInput``).
    """
    check_quote_nonce(nonce)  # first, as the full check does: the cache takes no other nonce
    if not isinstance(quote, bytes):
        raise MalformedInput("a quote is bytes")
    if len(quote) > _MAX_QUOTE:
        raise LimitExceeded(f"a quote is at most {_MAX_QUOTE} bytes")
    remember: tuple[Any, ...] | None = None
    if cache is not None:
        try:
            return _cached(quote, nonce, trust_anchors, now, cache)
        except _Miss as miss:
            remember = miss.args[0] if miss.args and isinstance(miss.args[0], tuple) else None
    verified = verify_decoded_quote(
        quote, _decoded(quote), nonce=nonce, trust_anchors=trust_anchors, now=now
    )
    reached = _reached(verified, trust_anchors)
    root = (
        hashlib.sha256(reached[0].der).hexdigest()
        if reached is not None
        else _root_fingerprint(verified.ecc_chain[0], trust_anchors)
    )
    if cache is not None and remember is not None and reached is not None:
        key, chains = remember
        cache._put(key, _Verified(verified, root, chains, reached))
    until = _valid_until(verified, () if reached is None else reached)
    return quote_claims(verified, root=root, valid_until=until)


def signed_nonce(quote: bytes) -> bytes | None:
    """The nonce the quote's claims carry, read WITHOUT verification (``None`` if it cannot be
    read): what the quote is verified against, before the caller compares it with its own."""
    try:
        message = _messages(quote)[0][0]
        claims = decode_cbor(message.payload or b"", _LIMITS)
    except (_Miss, IronrootError):
        return None
    nonce = claims.get("nonce") if isinstance(claims, dict) else None
    return nonce if isinstance(nonce, bytes) else None


def parse_rot_quote(quote: bytes) -> dict[str, Any]:
    """The structure of a quote, NOT verified: each message's algorithm, the sizes of its
    certificate chain and its claims (as decoded)."""
    if len(quote) > _MAX_QUOTE:
        raise LimitExceeded(f"a quote is at most {_MAX_QUOTE} bytes")
    container = decode_cbor(quote, _LIMITS)
    if not isinstance(container, dict) or container.get("format") != _QUOTE_FORMAT:
        raise MalformedEvidence(f"not an {_QUOTE_FORMAT} quote")
    out: dict[str, Any] = {"format": _QUOTE_FORMAT}
    for name, _ in _MESSAGES:
        data = container.get(name)
        if not isinstance(data, bytes):
            raise MalformedEvidence(f"the quote has no {name} message")
        message = Sign1.decode(data, _LIMITS)
        chain = message.unprotected.get(X5CHAIN)
        claims = decode_cbor(message.payload, _LIMITS) if message.payload is not None else None
        out[name] = {
            "alg": message.algorithm.label,
            "x5chain_sizes": (
                [len(c) for c in chain if isinstance(c, bytes)] if isinstance(chain, list) else []
            ),
            "claims": claims,
        }
    return out
