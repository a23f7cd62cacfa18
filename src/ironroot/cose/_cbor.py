"""Strict CBOR decoding and deterministic CBOR encoding for everything COSE in Ironroot.

Decoding uses ``cbor2`` with its safety switches on (no indefinite lengths, no duplicate map
keys, a nesting limit) and adds what it lacks: a check that the whole input was consumed
(``cbor2.loads`` ignores trailing bytes), a size limit, and an item-count limit per container.
Every tag that ``cbor2`` would interpret on its own (dates, bignums, sets, value sharing, string
references, regular expressions, ...) is kept as a plain :class:`cbor2.CBORTag` instead: value
sharing (tags 28/29) would let a few bytes expand into a huge object graph, and none of our
formats use those tags, so a parser of outside bytes must not give them meaning.

Encoding is hand-written on top of the CBOR major-type heads because ``cbor2``'s
``canonical=True`` orders map keys length-first (the RFC 7049 "canonical" rule), while RFC 8949
§4.2.1 (core deterministic encoding, which our formats fix) orders them by the bytewise
lexicographic order of their encodings; the two disagree, e.g. for the keys ``-1`` and ``24``.
Floats and simple values are delegated to ``cbor2`` (it already picks the shortest float form).
"""

from __future__ import annotations

import io
import itertools
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import cbor2

from ironroot.errors import ConfigError, LimitExceeded, MalformedInput, PayloadTooLarge

__all__ = ["DEFAULT_LIMITS", "Limits", "decode_cbor", "encode_cbor"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits for parsing outside bytes; one object holds them all.

    ``max_bytes`` bounds any single decoded CBOR item (a Signed Statement is a C2SP tile entry,
    so at most 65,535 bytes); ``max_depth`` the nesting of arrays, maps and tags;
    ``max_items`` the entries of any one array or map; ``max_x5chain`` the certificates of an
    x5chain; ``max_receipts`` the receipts of a Transparent Statement; ``max_proofs`` the proofs
    of one receipt; ``max_path`` the hashes of one Merkle proof path.
    """

    max_bytes: int = 65535
    max_depth: int = 16
    max_items: int = 1024
    max_x5chain: int = 8
    max_receipts: int = 8
    max_proofs: int = 8
    max_path: int = 64

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"limit {name} must be a positive integer")


DEFAULT_LIMITS: Final = Limits()

# Tags that cbor2 decodes into Python objects by default; all are kept raw (see module doc).
_BUILTIN_TAGS: Final = (
    0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004,
    43000, 55799,
)  # fmt: skip


def _raw_tag(tag: int) -> cbor2.SemanticDecoderCallback:
    def keep(value: object, immutable: bool) -> cbor2.CBORTag:
        return cbor2.CBORTag(tag, value)

    return keep


_RAW_TAGS: Final[dict[int, cbor2.SemanticDecoderCallback]] = {t: _raw_tag(t) for t in _BUILTIN_TAGS}


def decode_cbor(data: bytes, limits: Limits = DEFAULT_LIMITS) -> object:
    """Decode exactly one CBOR data item that fills ``data``.

    Raises ``PayloadTooLarge`` over ``limits.max_bytes``, ``LimitExceeded`` for nesting deeper
    than ``limits.max_depth`` or a container with more than ``limits.max_items`` entries, and
    ``MalformedInput`` for anything else that is not one well-formed CBOR item: truncation,
    trailing bytes, indefinite lengths, duplicate map keys (NaN keys included), invalid UTF-8.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedInput("CBOR input must be bytes")
    size = len(data)
    if size > limits.max_bytes:
        raise PayloadTooLarge(f"CBOR item of {size} bytes exceeds the limit of {limits.max_bytes}")
    if size == 0:
        raise MalformedInput("empty CBOR input")
    fp = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        fp,
        semantic_decoders=_RAW_TAGS,
        max_depth=limits.max_depth,
        allow_indefinite=False,
        allow_duplicate_keys=False,
    )
    try:
        obj = decoder.decode()
    except cbor2.CBORDecodeError as exc:
        if "nesting depth" in str(exc):
            raise LimitExceeded(f"CBOR nesting deeper than {limits.max_depth}") from exc
        raise MalformedInput(f"invalid CBOR: {exc}") from exc
    except (ValueError, TypeError, OverflowError, EOFError, RecursionError) as exc:
        raise MalformedInput(f"invalid CBOR: {exc}") from exc
    if fp.tell() != size:
        raise MalformedInput(f"{size - fp.tell()} trailing bytes after the CBOR item")
    _check_items(obj, limits.max_items)
    return obj


def _check_items(obj: object, max_items: int) -> None:
    # Depth is already bounded by the decoder, so this recursion is too. The decoder builds
    # only these concrete container types; exact type checks keep this walk cheap.
    children: Iterable[object]
    if type(obj) is list or type(obj) is tuple:
        count, children, what = len(obj), obj, "array"
    elif type(obj) is dict or type(obj) is cbor2.frozendict:
        count, what = len(obj), "map"
        children = itertools.chain.from_iterable(obj.items())
        if 1 < count <= max_items and not _EXACT_KEYS.issuperset(map(type, obj)):
            _check_distinct_keys(obj)
    elif type(obj) is cbor2.CBORTag:
        count, children, what = 0, (obj.value,), "tag"
    else:
        return
    if count > max_items:
        raise LimitExceeded(f"CBOR {what} of {count} entries exceeds the limit of {max_items}")
    for child in children:
        if type(child) in _CONTAINERS:
            _check_items(child, max_items)


_CONTAINERS: Final = frozenset((list, tuple, dict, cbor2.frozendict, cbor2.CBORTag))
# Key types whose Python equality is CBOR equality, so the decoder's own duplicate check holds.
_EXACT_KEYS: Final = frozenset((int, str, bytes))


def _check_distinct_keys(obj: Mapping[object, object]) -> None:
    """The decoder finds duplicate keys by Python equality, and a NaN equals nothing: two NaN
    keys (or two arrays or maps holding one) are the same key twice yet both kept. Compared by
    their deterministic encodings instead, where every NaN of one value is one encoding."""
    encodings = [encode_cbor(key) for key in obj]
    if len(set(encodings)) != len(encodings):
        raise MalformedInput("invalid CBOR: duplicate map key")


# --- deterministic encoding ------------------------------------------------------------------


_SMALL_UINTS: Final = tuple(bytes((value,)) for value in range(24))


def _head(major: int, value: int) -> bytes:
    """The shortest head for a major type and argument (RFC 8949 §4.2.1, first rule)."""
    top = major << 5
    if value < 24:
        return bytes((top | value,))
    if value < 0x100:
        return bytes((top | 24, value))
    if value < 0x10000:
        return bytes((top | 25,)) + value.to_bytes(2, "big")
    if value < 0x100000000:
        return bytes((top | 26,)) + value.to_bytes(4, "big")
    return bytes((top | 27,)) + value.to_bytes(8, "big")


def encode_bstr(value: bytes) -> bytes:
    """A byte string in its shortest definite-length form."""
    return _head(2, len(value)) + value


def _encode(obj: object, out: list[bytes]) -> None:
    # The common exact types first (a bool is an int subclass, so ``type`` is not ``int``);
    # anything else takes the general checks below, in the same order as before.
    if type(obj) is bytes:
        out.append(_head(2, len(obj)))
        out.append(obj)
        return
    if type(obj) is int and 0 <= obj < 1 << 64:
        out.append(_SMALL_UINTS[obj] if obj < 24 else _head(0, obj))
        return
    if type(obj) is str:
        try:
            text = obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedInput("text is not valid Unicode") from exc
        out.append(_head(3, len(text)))
        out.append(text)
        return
    if type(obj) is list or type(obj) is tuple:
        out.append(_head(4, len(obj)))
        for item in obj:
            _encode(item, out)
        return
    if obj is None:
        out.append(b"\xf6")
    elif obj is True:
        out.append(b"\xf5")
    elif obj is False:
        out.append(b"\xf4")
    elif isinstance(obj, int):
        if obj >= 0:
            if obj < 1 << 64:
                out.append(_head(0, obj))
            else:
                out.append(_head(6, 2))
                out.append(encode_bstr(obj.to_bytes((obj.bit_length() + 7) // 8, "big")))
        else:
            neg = -1 - obj
            if neg < 1 << 64:
                out.append(_head(1, neg))
            else:
                out.append(_head(6, 3))
                out.append(encode_bstr(neg.to_bytes((neg.bit_length() + 7) // 8, "big")))
    elif isinstance(obj, bytes | bytearray | memoryview):
        raw = bytes(obj)
        out.append(_head(2, len(raw)))
        out.append(raw)
    elif isinstance(obj, str):
        try:
            text = obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedInput("text is not valid Unicode") from exc
        out.append(_head(3, len(text)))
        out.append(text)
    elif isinstance(obj, list | tuple):
        out.append(_head(4, len(obj)))
        for item in obj:
            _encode(item, out)
    elif isinstance(obj, Mapping):
        # Sorted by the keys' encodings alone (two keys of one encoding are refused); each
        # value is then encoded in place, after its key.
        entries = [
            (_SMALL_UINTS[k] if type(k) is int and 0 <= k < 24 else encode_cbor(k), v)
            for k, v in obj.items()
        ]
        entries.sort(key=_encoded_key)
        for (a, _), (b, _) in itertools.pairwise(entries):
            if a == b:
                raise MalformedInput("map keys encode to the same bytes")
        out.append(_head(5, len(entries)))
        for key, value in entries:
            out.append(key)
            _encode(value, out)
    elif isinstance(obj, cbor2.CBORTag):
        out.append(_head(6, obj.tag))
        _encode(obj.value, out)
    elif isinstance(obj, float | cbor2.CBORSimpleValue) or obj is cbor2.undefined:
        out.append(cbor2.dumps(obj, canonical=True))
    else:
        raise MalformedInput(f"cannot encode a {type(obj).__name__} as CBOR")


_encoded_key: Final = operator.itemgetter(0)


def encode_cbor(obj: object) -> bytes:
    """Deterministically encoded CBOR (RFC 8949 §4.2.1): shortest heads, definite lengths,
    map keys sorted by the bytewise order of their encodings."""
    out: list[bytes] = []
    _encode(obj, out)
    return b"".join(out)
