"""What COSE_Sign1 and COSE_Sign messages share (RFC 9052 §3, §4): the header rules, the
protected header map, the tagged four-item array, the payload a signature covers, a signer's
protected header and the algorithm a key may verify.

Header rules: labels are integers or text; no label appears in both buckets; ``alg`` (1) and
``crit`` (2) are protected; ``crit`` is a non-empty array naming labels present in the
protected header. Every parse failure is raised as the caller's error class (``error``), so a
statement parser reports ``MalformedStatement`` and a receipt parser ``MalformedReceipt``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import cbor2

from ironroot.cose._cbor import Limits, decode_cbor, encode_bstr, encode_cbor
from ironroot.cose._headers import ALG, CRIT
from ironroot.crypto import Algorithm, Signer, check_cbor_labels
from ironroot.errors import LimitExceeded, MalformedInput, UnsupportedAlgorithm

__all__ = [
    "EMPTY_MAP",
    "Headers",
    "check_crit",
    "check_headers",
    "check_understood",
    "compatible",
    "decode_tagged",
    "encode_message",
    "payload_to_sign",
    "protected_map",
    "retyped",
    "signer_header",
]

EMPTY_MAP: Final[Mapping[object, object]] = MappingProxyType({})
_EDDSA_PAIR: Final = frozenset((Algorithm.EDDSA, Algorithm.ED25519))


@dataclass(frozen=True, slots=True)
class Headers:
    """The header buckets of a COSE structure: the protected header's bytes exactly as
    received (they are signed), the map they encode, and the unprotected map."""

    protected_bytes: bytes
    protected: Mapping[object, object]
    unprotected: Mapping[object, object]


def retyped(error: type[MalformedInput], exc: MalformedInput) -> MalformedInput:
    """Re-type a generic parse error as the caller's layer error; size limits stay as they are."""
    if isinstance(exc, (LimitExceeded, error)):
        return exc
    return error(exc.detail)


def decode_tagged(
    data: bytes,
    limits: Limits,
    *,
    tag: int,
    name: str,
    require_tag: bool,
    error: type[MalformedInput],
) -> list[object] | tuple[object, ...]:
    """The four items of a COSE message ``name``: CBOR, with tag ``tag`` (or untagged, unless
    ``require_tag``), around an array of four."""
    try:
        obj = decode_cbor(data, limits)
    except MalformedInput as exc:
        raise retyped(error, exc) from exc
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != tag:
            raise error(f"CBOR tag {obj.tag} is not {name} ({tag})")
        obj = obj.value
    elif require_tag:
        raise error(f"{name} must carry CBOR tag {tag}")
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise error(f"{name} must be an array of four items")
    return obj


def encode_message(
    head: bytes,
    protected_bytes: bytes,
    unprotected: Mapping[object, object],
    payload: bytes | None,
    last: bytes,
) -> bytes:
    """A COSE message: ``head`` (its tag and the array of four), the protected header's bytes
    unchanged, the unprotected map, the payload (nil when detached), and ``last`` (the fourth
    item, already encoded)."""
    return b"".join(
        (
            head,
            encode_bstr(protected_bytes),
            encode_cbor(unprotected),
            b"\xf6" if payload is None else encode_bstr(payload),
            last,
        )
    )


def protected_map(
    data: object, limits: Limits, error: type[MalformedInput], what: str = ""
) -> Mapping[object, object]:
    """The map a protected header's bytes encode (empty for ``h''`` and ``h'a0'``); ``what``
    names whose header it is in the errors (``"body"``, ``"signature 1"``)."""
    whose = f"{what} protected header" if what else "protected header"
    if not isinstance(data, bytes):
        raise error(f"{whose} must be a byte string")
    if data in (b"", b"\xa0"):
        return EMPTY_MAP
    try:
        decoded = decode_cbor(data, limits)
    except MalformedInput as exc:
        raise retyped(error, exc) from exc
    if type(decoded) is dict:  # the decoder's own new dict: nobody else holds it to copy
        return MappingProxyType(decoded)
    if not isinstance(decoded, Mapping):
        raise error(f"{whose} must encode a map")
    return MappingProxyType(dict(decoded))


def check_headers(
    protected: Mapping[object, object],
    unprotected: Mapping[object, object],
    error: type[MalformedInput],
) -> None:
    """The header rules of the module documentation, for one pair of buckets."""
    check_cbor_labels(protected, "protected header label", error)
    check_cbor_labels(unprotected, "unprotected header label", error)
    for label in unprotected:
        if label in protected:
            raise error(f"header {label!r} appears in both the protected and unprotected header")
    if ALG in unprotected:
        raise error("alg (1) must be in the protected header")
    if CRIT in unprotected:
        raise error("crit (2) must be in the protected header")
    if CRIT in protected:  # present, whatever its value: null is not an absent crit
        check_crit(protected, error)


def check_crit(protected: Mapping[object, object], error: type[MalformedInput]) -> list[object]:
    """The labels of the protected ``crit`` (2): RFC 9052 §3.1 makes it a non-empty array of
    integer or text labels, each present in the protected header. ``[]`` when absent; any
    other value (null, a map, a number, an empty array) raises ``error``."""
    if CRIT not in protected:
        return []
    crit = protected[CRIT]
    if not isinstance(crit, list | tuple) or not crit:
        raise error("crit (2) must be a non-empty array of header labels")
    check_cbor_labels(crit, "crit (2) label", error)
    for label in crit:
        if label not in protected:
            raise error(f"crit names {label!r}, which is not in the protected header")
    return list(crit)


def check_understood(
    protected: Mapping[object, object], understood: Collection[object], error: type[MalformedInput]
) -> None:
    """Refuse a protected ``crit`` (2) naming a label outside ``understood`` (RFC 9052 §3.1: a
    recipient rejects a message whose critical headers it does not process); ``alg`` (1) and
    ``crit`` itself are always understood."""
    for label in check_crit(protected, error):
        if label not in (ALG, CRIT) and label not in understood:
            raise error(f"critical header {label!r} is not understood")


def payload_to_sign(attached: bytes | None, detached: bytes | None) -> bytes:
    """The payload a signature covers: the message's own, or a detached one given iff the
    message carries none."""
    if attached is None:
        if detached is None:
            raise MalformedInput("the payload is detached: pass it to verify")
        return detached
    if detached is not None:
        raise MalformedInput("the payload is attached: a detached payload is not allowed")
    return attached


def signer_header(signer: Signer, protected: Mapping[object, object]) -> dict[object, object]:
    """A signer's protected header: ``alg`` (1) from ``signer.algorithm``, then ``protected``
    (whose own ``alg``, if any, must agree: ``UnsupportedAlgorithm``)."""
    header: dict[object, object] = {ALG: signer.algorithm.cose_id}
    for label, value in protected.items():
        if label == ALG and value != signer.algorithm.cose_id:
            raise UnsupportedAlgorithm(f"protected alg {value!r} is not the signer's algorithm")
        header[label] = value
    return header


def compatible(message: Algorithm, key: Algorithm) -> bool:
    """Whether a key for ``key`` may verify a message signed with ``message``: the same
    algorithm, or EdDSA (-8) and Ed25519 (-19), which are one algorithm over an Ed25519 key
    (RFC 9864)."""
    return message == key or (message in _EDDSA_PAIR and key in _EDDSA_PAIR)
