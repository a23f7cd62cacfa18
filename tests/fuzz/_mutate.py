"""Structure-aware mutations for the fuzz harnesses: bytes, CBOR (with maps of named members:
an audit bundle's), DER (also inside PEM and inside other formats), JSON (also inside CBOR byte
strings) and the lines of text protocols.

Byte-level mutations put half their positions in the last quarter of the input, so what sits at
the end of a structure (the certification data of a TDX quote, a signature, a trailer) is
reached as often as its header. The structure-aware ones decode what they can, change one node
and encode again — with lengths kept consistent, so the change gets past the framing and into
the parser behind it — and they look for DER (a certificate in an ``x5chain``, in an SPDM
chain, in a PEM block at the end of a quote) wherever it sits.

Hand-written because no maintained Python library mutates CBOR, DER and JSON structurally;
``hypothesis`` and ``atheris`` supply the randomness and the search around these functions.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
from collections.abc import Callable
from typing import Any

import cbor2

__all__ = [
    "mutate",
    "mutate_bytes",
    "mutate_cbor",
    "mutate_der",
    "mutate_json",
    "mutate_lines",
    "mutate_pem",
]

_INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFF, 0x17, 0x18, 0x19, 0x1A, 0x1B,
                      0x1F, 0x9F, 0xBF, 0xF6, 0xF7, 0x30, 0x82, 0xA0)  # fmt: skip
_INTERESTING_INTS = (0, 1, -1, 23, 24, 255, 256, 65535, 65536, 2**31 - 1, 2**32, 2**63 - 1,
                     2**64 - 1, -(2**63), -(2**64), 2**70)  # fmt: skip
_MAX_SIZE = 1 << 20


def _position(rng: random.Random, size: int) -> int:
    """A position in ``[0, size)``: half the time in the last quarter."""
    if size <= 1:
        return 0
    if rng.random() < 0.5:
        return rng.randrange(size - max(1, size // 4), size)
    return rng.randrange(size)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One byte-level change anywhere in ``data`` (biased to the end)."""
    out = bytearray(data)
    op = rng.randrange(9)
    at = _position(rng, len(out))
    if not out or op == 0:  # insert random bytes
        out[at:at] = rng.randbytes(rng.choice((1, 1, 2, 4, 8, 32)))
    elif op == 1:  # flip a bit
        out[at] ^= 1 << rng.randrange(8)
    elif op == 2:  # an interesting byte
        out[at] = rng.choice(_INTERESTING_BYTES)
    elif op == 3:  # delete a range
        del out[at : at + rng.choice((1, 2, 4, 16, 256))]
    elif op == 4:  # duplicate a range in place
        chunk = out[at : at + rng.choice((1, 4, 16, 64))]
        out[at:at] = chunk
    elif op == 5:  # truncate
        del out[at:]
    elif op == 6:  # extend
        out += rng.randbytes(rng.choice((1, 8, 64, 1024)))
    elif op == 7:  # a boundary integer, 2/4/8 bytes, either byte order
        width = rng.choice((2, 4, 8))
        value = rng.choice(_INTERESTING_INTS) % (1 << (8 * width))
        out[at : at + width] = value.to_bytes(width, rng.choice(("big", "little")))
    else:  # copy one range over another
        src = rng.randrange(len(out))
        chunk = out[src : src + rng.choice((1, 4, 16, 64))]
        out[at : at + len(chunk)] = chunk
    return bytes(out[:_MAX_SIZE])


# --- CBOR -------------------------------------------------------------------------------------


def _nodes(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [path]
    if isinstance(value, cbor2.CBORTag):
        found += _nodes(value.value, (*path, "tag"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _nodes(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _nodes(item, (*path, ("value", key)))
    return found


def _get(value: object, path: tuple[object, ...]) -> object:
    for step in path:
        if step == "tag":
            assert isinstance(value, cbor2.CBORTag)
            value = value.value
        elif isinstance(step, tuple):
            assert isinstance(value, dict)
            value = value[step[1]]
        else:
            assert isinstance(value, list)
            assert isinstance(step, int)
            value = value[step]
    return value


def _set(root: object, path: tuple[object, ...], new: object) -> object:
    if not path:
        return new
    parent = _get(root, path[:-1])
    step = path[-1]
    if step == "tag":
        assert isinstance(parent, cbor2.CBORTag)
        parent.value = new
    elif isinstance(step, tuple):
        assert isinstance(parent, dict)
        parent[step[1]] = new
    else:
        assert isinstance(parent, list)
        assert isinstance(step, int)
        parent[step] = new
    return root


def _other_value(old: object, rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(14)
    if choice == 0:
        return rng.choice(_INTERESTING_INTS)
    if choice == 1:
        return None
    if choice == 2:
        return rng.choice((True, False))
    if choice == 3:
        return rng.choice((0.0, -0.0, float("inf"), float("nan"), 1e300))
    if choice == 4:
        return rng.randbytes(rng.choice((0, 1, 16, 32, 48, 64, 300)))
    if choice == 5:
        return rng.choice(("", "a", "\u0000", "é" * 10, "x" * 1000))
    if choice == 6:
        return []
    if choice == 7:
        return {}
    if choice == 8 and depth < 4:
        return [_other_value(old, rng, depth + 1) for _ in range(rng.randrange(1, 4))]
    if choice == 9 and depth < 4:
        return {rng.choice(_INTERESTING_INTS): _other_value(old, rng, depth + 1)}
    if choice == 10:
        return cbor2.CBORTag(rng.choice((0, 1, 2, 18, 24, 37, 98, 501, 506, 55799)), old)
    if choice == 11 and isinstance(old, bytes):
        return mutate_bytes(old, rng)
    if choice == 12 and isinstance(old, list) and old:
        return old[: rng.randrange(len(old))] + old[rng.randrange(len(old)) :]
    if choice == 13 and isinstance(old, int) and not isinstance(old, bool):
        return old + rng.choice((-1, 1, 1 << 32, -(1 << 32)))
    return rng.randbytes(8)


class _Raw:
    """Bytes written as they are where a CBOR item goes: encodings ``cbor2`` never makes
    (a duplicate map key, a length that lies, an indefinite length)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


def _write_raw(encoder: cbor2.CBOREncoder, value: object) -> None:
    if not isinstance(value, _Raw):
        raise TypeError(f"cannot encode {type(value).__name__}")
    encoder.write(value.data)


def _dumps(value: object) -> bytes:
    return cbor2.dumps(value, default=_write_raw)


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes(((major << 5) | value,))
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes(((major << 5) | extra,)) + value.to_bytes(width, "big")
    raise ValueError("a CBOR argument is at most 64 bits")


# Names of members in a container of named files (an audit bundle's members, a zip's
# entries): ways out of the directory, absolute paths, names two spellings of one file.
_HOSTILE_NAMES = ("../x", "../../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "./a",
                  "a/./b", "A", "a\\b", "a\x00b", "x" * 300, "é", "", ".", "..", "a/",
                  "firmware/bmc/../../../x", "con", "a" + "/a" * 8)  # fmt: skip


def _mutate_map(old: dict[Any, Any], rng: random.Random) -> object:
    """One change to a map as a container of named members: one dropped, renamed (to a name
    from outside the container, too), given twice, or a byte-string member whose length
    lies (a few bytes that claim gigabytes) or is indefinite."""
    key = rng.choice(list(old))
    roll = rng.randrange(7)
    if roll == 0:  # a member missing
        del old[key]
        return old
    if roll == 1:  # renamed: a hostile name, or another value
        item = old.pop(key)
        new_key = rng.choice(_HOSTILE_NAMES) if isinstance(key, str) else _other_value(key, rng)
        old[new_key if isinstance(new_key, int | str | bytes | bool | None) else str(key)] = item
        return old
    if roll == 2:  # the same name twice, with this value or another
        pairs = [_dumps(k) + _dumps(v) for k, v in old.items()]
        other = old[key] if rng.random() < 0.5 else _other_value(old[key], rng)
        pairs.insert(rng.randrange(len(pairs) + 1), _dumps(key) + _dumps(other))
        return _Raw(_head(5, len(pairs)) + b"".join(pairs))
    item = old[key]
    if isinstance(item, bytes) and roll in (3, 4):  # a length that lies: a "bomb"
        claimed = rng.choice((len(item) + 1, 2**31, 2**32 + 7, 2**40, 2**63 - 1, 2**64 - 1))
        old[key] = _Raw(_head(2, claimed) + item)
        return old
    if isinstance(item, bytes) and roll == 5:  # indefinite length, in chunks
        cut = rng.randrange(len(item) + 1)
        chunks = _head(2, cut) + item[:cut] + _head(2, len(item) - cut) + item[cut:]
        old[key] = _Raw(b"\x5f" + chunks + b"\xff")
        return old
    old[key] = _other_value(item, rng)
    return old


def _mutate_inner(data: bytes, rng: random.Random) -> bytes | None:
    """Mutate a byte string as the format it holds: CBOR, DER or JSON."""
    for mutator in rng.sample((mutate_cbor, mutate_der, mutate_json), 3):
        changed = mutator(data, rng)
        if changed is not None:
            return changed
    return None


def mutate_cbor(data: bytes, rng: random.Random) -> bytes | None:
    """Decode ``data`` as CBOR, change one node (values, types, map keys, members of maps
    of named members, byte strings that are CBOR, DER or JSON themselves), encode again;
    ``None`` when ``data`` is not CBOR."""
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp).decode()
    except Exception:  # anything cbor2 cannot read is simply not CBOR here
        return None
    if fp.tell() != len(data):
        return None  # one CBOR item and more (text whose first byte is a CBOR head)
    paths = _nodes(value)
    path = rng.choice(paths)
    old = _get(value, path)
    if isinstance(old, bytes) and rng.random() < 0.6:
        inner = _mutate_inner(old, rng)
        new: object = inner if inner is not None else mutate_bytes(old, rng)
    elif isinstance(old, dict) and old and rng.random() < 0.4:
        new = _mutate_map(old, rng)
    else:
        new = _other_value(old, rng)
    try:
        return _dumps(_set(value, path, new))
    except Exception:  # an unhashable key or the like: fall back to the bytes
        return None


# --- DER --------------------------------------------------------------------------------------


def _der_header(data: bytes, at: int) -> tuple[int, int, int] | None:
    """(header size, content length, tag byte) of the TLV at ``at``, if well formed."""
    if at + 2 > len(data):
        return None
    tag = data[at]
    if tag & 0x1F == 0x1F:
        return None  # multi-byte tags: not in the formats fuzzed here
    first = data[at + 1]
    if first < 0x80:
        return 2, first, tag
    count = first & 0x7F
    if count == 0 or count > 4 or at + 2 + count > len(data):
        return None
    length = int.from_bytes(data[at + 2 : at + 2 + count], "big")
    return 2 + count, length, tag


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlvs(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]] | None:
    """The TLVs exactly filling ``data[start:end]``: (start, header size, length, tag)."""
    out = []
    at = start
    while at < end:
        header = _der_header(data, at)
        if header is None:
            return None
        size, length, tag = header
        if at + size + length > end:
            return None
        out.append((at, size, length, tag))
        at += size + length
    return out


def _mutate_tlv(data: bytes, start: int, end: int, rng: random.Random, depth: int) -> bytes:
    """Mutate one TLV inside ``data[start:end]`` (a sequence of TLVs), re-encoding the lengths
    of the TLVs around it so the change is seen by the parser, not the framing."""
    tlvs = _tlvs(data, start, end)
    if not tlvs:
        return mutate_bytes(data[start:end], rng)
    at, size, length, tag = rng.choice(tlvs)
    content = data[at + size : at + size + length]
    constructed = bool(tag & 0x20) or tag == 0x04 or tag == 0x03
    roll = rng.random()
    if constructed and depth < 12 and roll < 0.6:
        inner_start = 1 if tag == 0x03 and content[:1] == b"\x00" else 0
        if _tlvs(content, inner_start, len(content)):
            content = content[:inner_start] + _mutate_tlv(
                content, inner_start, len(content), rng, depth + 1
            )
            new_tlv = bytes((tag,)) + _length(len(content)) + content
        else:
            new_tlv = bytes((tag,)) + _length(len(content)) + mutate_bytes(content, rng)
    elif roll < 0.7:
        new_tlv = bytes((rng.choice(_INTERESTING_BYTES),)) + data[at + 1 : at + size + length]
    elif roll < 0.8:  # a length that lies
        lie = rng.choice((length + 1, max(0, length - 1), 0, 0x7F, 0xFFFFFFFF))
        new_tlv = bytes((tag,)) + _length(lie) + content
    elif roll < 0.9:
        new_tlv = b"" if rng.random() < 0.5 else data[at : at + size + length] * 2
    else:
        changed = mutate_bytes(content, rng)
        new_tlv = bytes((tag,)) + _length(len(changed)) + changed
    mutated = data[start:at] + new_tlv + data[at + size + length : end]
    return mutated


def mutate_der(data: bytes, rng: random.Random) -> bytes | None:
    """Change one TLV of the DER in ``data`` (keeping outer lengths consistent); DER found
    inside a larger input (a certificate in a quote, in CBOR) is mutated where it sits.
    ``None`` when no DER is found."""
    if data[:1] == b"\x30" and _tlvs(data, 0, len(data)):
        return _mutate_tlv(data, 0, len(data), rng, 0)
    spans = []
    for match in re.finditer(rb"\x30\x82", data):
        header = _der_header(data, match.start())
        if header is not None and match.start() + header[0] + header[1] <= len(data):
            spans.append((match.start(), match.start() + header[0] + header[1]))
            if len(spans) >= 16:
                break
    if not spans:
        return None
    start, end = rng.choice(spans)
    return data[:start] + _mutate_tlv(data, start, end, rng, 0) + data[end:]


_PEM = re.compile(rb"(-----BEGIN [A-Z ]+-----\r?\n)([A-Za-z0-9+/=\r\n]+?)(-----END [A-Z ]+-----)")


def mutate_pem(data: bytes, rng: random.Random) -> bytes | None:
    """Mutate the DER inside one PEM block of ``data``, wherever it sits; ``None`` if none."""
    blocks = list(_PEM.finditer(data))
    if not blocks:
        return None
    block = rng.choice(blocks)
    try:
        der = base64.b64decode(block.group(2))
    except ValueError:
        return None
    changed = mutate_der(der, rng) or mutate_bytes(der, rng)
    body = base64.encodebytes(changed)
    return data[: block.start(2)] + body + data[block.end(2) :]


# --- JSON -------------------------------------------------------------------------------------


def _json_nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += _json_nodes(item, (*path, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _json_nodes(item, (*path, key))
    return found


def mutate_json(data: bytes, rng: random.Random) -> bytes | None:
    """Change one node of a JSON document (type, value, a dropped or duplicated key, a huge
    number, deep nesting); ``None`` when ``data`` is not JSON."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    path = rng.choice(_json_nodes(value))
    parent: Any = None
    node: Any = value
    for step in path:
        parent, node = node, node[step]
    roll = rng.randrange(8)
    if roll == 0 and isinstance(parent, dict):
        del parent[path[-1]]
        return json.dumps(value).encode()
    if roll == 1 and isinstance(parent, dict):  # a duplicate key, with another value
        text = json.dumps(value)
        key = json.dumps(path[-1])
        at = text.find(key + ":")
        if at >= 0:
            return (text[:at] + f"{key}: 1e999, " + text[at:]).encode()
    replacement: Any = rng.choice(
        (
            None,
            True,
            0,
            -1,
            2**64,
            10**400,
            1.5,
            "",
            "x" * 10_000,
            [],
            {},
            [[[[[[[]]]]]]],
            "0" * 64,
            "zz",
            str(node) + "\u0000",
            "\ud800",  # a lone surrogate: JSON can spell it, UTF-8 cannot hold it
            "\x1b[2J\x1b[1;1H",  # a terminal's escape sequences
        )
    )
    if roll == 2 and isinstance(node, str):
        replacement = node[: rng.randrange(len(node) + 1)] + rng.choice(("=", "%", "é", ".."))
    if not path:
        return json.dumps(replacement).encode()
    parent[path[-1]] = replacement
    return json.dumps(value).encode()


# --- text lines -------------------------------------------------------------------------------

_NUMBER = re.compile(rb"\d+")


def mutate_lines(data: bytes, rng: random.Random) -> bytes | None:
    """Change the lines of a text protocol (a witness request, a signed note): one line
    dropped, doubled, moved or emptied, or one number in a line changed (a size, a
    timestamp); ``None`` when ``data`` is not UTF-8 text of two lines or more."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = data.split(b"\n")
    if len(lines) < 2:
        return None
    at = rng.randrange(len(lines))
    roll = rng.randrange(5)
    if roll == 0:
        del lines[at]
    elif roll == 1:
        lines.insert(at, lines[at])
    elif roll == 2:
        lines.insert(rng.randrange(len(lines)), lines.pop(at))
    elif roll == 3:
        lines[at] = b""
    else:
        numbers = list(_NUMBER.finditer(lines[at]))
        if not numbers:
            return None
        found = rng.choice(numbers)
        old = int(found.group())
        value = rng.choice((0, 1, old - 1, old + 1, old * 2, 2**63 - 1, 2**64, 10**40))
        lines[at] = lines[at][: found.start()] + b"%d" % value + lines[at][found.end() :]
    return b"\n".join(lines)


# --- all of them ------------------------------------------------------------------------------

_STRUCTURED: tuple[Callable[[bytes, random.Random], bytes | None], ...] = (
    mutate_cbor,
    mutate_der,
    mutate_pem,
    mutate_json,
    mutate_lines,
)


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """One to three mutations of ``data``: structure-aware where the input has structure,
    byte-level otherwise (and a third of the time anyway)."""
    for _ in range(rounds if rounds is not None else rng.randrange(1, 4)):
        changed: bytes | None = None
        if rng.random() < 0.67:
            for mutator in rng.sample(_STRUCTURED, len(_STRUCTURED)):
                changed = mutator(data, rng)
                if changed is not None:
                    break
        data = changed if changed is not None else mutate_bytes(data, rng)
    return data
