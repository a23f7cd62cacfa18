"""Small typed readers for decoded CBOR values, each raising ``MalformedCorim`` on a mismatch.

``cbor2`` hands back lists or tuples, dicts or frozen dicts depending on where an item sat, so
every reader accepts both, and :func:`freeze` turns any decoded value into one canonical
immutable form (tuples, read-only mappings, ``CBORTag``) so that parsed values compare equal
however they were produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, TypeGuard

import cbor2

from ironroot.cose import Limits, decode_cbor
from ironroot.crypto import check_cbor_labels
from ironroot.errors import LimitExceeded, MalformedCorim, MalformedInput

__all__ = [
    "CORIM_LIMITS",
    "as_bytes",
    "as_int",
    "as_list",
    "as_map",
    "as_text",
    "as_uint",
    "decode",
    "freeze",
    "is_int",
    "tagged",
]

CORIM_LIMITS: Final = Limits(max_bytes=1024 * 1024, max_depth=32, max_items=4096)


def decode(data: bytes, what: str, limits: Limits = CORIM_LIMITS) -> object:
    """Strictly decode one CBOR item (no trailing bytes, no indefinite lengths, limits)."""
    try:
        return decode_cbor(data, limits)
    except LimitExceeded:
        raise
    except MalformedInput as exc:
        raise MalformedCorim(f"{what}: {exc.detail}") from exc


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def as_map(value: object, what: str) -> Mapping[object, object]:
    """A map whose keys are integers or text, as every CoRIM, CoMID and COSE map is keyed.

    Any other key is refused, not only for conformance: a decoded map is a Python dict, where
    ``false == 0``, ``true == 1``, ``1.0 == 1`` and cbor2's simple value 1 equals 1, so a map
    keyed by one of them would be read as if keyed by the integer, though every other
    implementation sees another key."""
    if not isinstance(value, Mapping):
        raise MalformedCorim(f"{what} must be a map")
    check_cbor_labels(value, f"{what} key", MalformedCorim)
    return value


def as_list(value: object, what: str, *, non_empty: bool = True) -> tuple[object, ...]:
    if not isinstance(value, list | tuple):
        raise MalformedCorim(f"{what} must be an array")
    if non_empty and not value:
        raise MalformedCorim(f"{what} must not be empty")
    return tuple(value)


def as_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise MalformedCorim(f"{what} must be a text string")
    return value


def as_bytes(value: object, what: str, sizes: tuple[int, ...] = ()) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedCorim(f"{what} must be a byte string")
    if sizes and len(value) not in sizes:
        raise MalformedCorim(f"{what} must be {' or '.join(map(str, sizes))} bytes")
    return value


def as_int(value: object, what: str) -> int:
    if not is_int(value):
        raise MalformedCorim(f"{what} must be an integer")
    return value


def as_uint(value: object, what: str) -> int:
    if not is_int(value) or value < 0:
        raise MalformedCorim(f"{what} must be an unsigned integer")
    return value


def tagged(value: object, tag: int, what: str) -> object:
    """The content of ``#6.tag(...)``; ``MalformedCorim`` for anything else."""
    if not isinstance(value, cbor2.CBORTag) or value.tag != tag:
        raise MalformedCorim(f"{what} must carry CBOR tag {tag}")
    return value.value


def freeze(value: object) -> object:
    """A canonical immutable copy of a decoded (or caller-built) CBOR value."""
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, Mapping):
        return MappingProxyType({_freeze_key(k): freeze(v) for k, v in value.items()})
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, freeze(value.value))
    return value


def _freeze_key(key: object) -> object:
    # Map keys must stay hashable: cbor2 already gives frozen maps there; arrays become tuples.
    if isinstance(key, list | tuple):
        return tuple(_freeze_key(k) for k in key)
    return key
