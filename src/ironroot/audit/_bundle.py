"""The audit bundle file: its members, the index of their digests, and the seal.

One file, deterministic CBOR (RFC 8949 §4.2.1), nothing before or after the one map::

    bundle = {
      "format":  "ironroot-audit-bundle/1",
      "index":   bstr .cbor index,      ; what was exported and the digest of every member
      "members": {+ name => bstr},      ; each member's bytes, by name
      "seal":    bstr,                  ; an ironroot-quote/1 by the node's root of trust
    }
    index = {
      "format":      "ironroot-audit-index/1",
      "node":        tstr,              ; the fleet's node id
      "class":       tstr,              ; its node class
      "platform":    tstr,              ; the platform id its PFM must name
      "exported_at": tstr,              ; RFC 3339, UTC: the instant the evidence is from
      "nonce":       bstr .size 32,     ; drawn at export; each SPDM challenge derives from it
      "members":     {+ name => {"sha384": bstr .size 48, "size": uint, "type": tstr}},
      "absent":      {* name => tstr},  ; what the node does not have, and why
    }

The seal is a quote of the node's RoT (``ironroot.rot.verify_quote``) whose nonce is
``SHA-384("ironroot-audit-bundle/1 seal" ‖ 0x00 ‖ index)``: the RoT's RT alias keys (ECDSA
P-384 and ML-DSA-87, chaining to the vendor CA) sign the index, the index holds the SHA-384 of
every member, so no byte of the file can change without a check failing — the framing
(``bundle-malformed``: the file must be exactly the deterministic encoding of this map), the
seal (``seal-invalid``), the index (``index-not-sealed``) or a member (``member-changed``,
``member-missing``, ``member-unexpected``). A CBOR map rather than a zip: one deterministic
encoding leaves no byte unaccounted for (a zip's timestamps, extra fields, comments and its
two copies of every name are bytes no digest covers unless a canonical form is imposed on top),
and every member is read by name from one strict parser; any CBOR tool lists the members.

Everything here is pure: bytes in, values out or :class:`~ironroot.errors.AuditBundleRejected`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.errors import AuditBundleRejected, IronrootError, LimitExceeded

__all__ = [
    "BUNDLE_FORMAT",
    "INDEX_FORMAT",
    "MAX_BUNDLE_BYTES",
    "MAX_REASON",
    "AuditBundle",
    "AuditIndex",
    "MemberEntry",
    "check_limits",
    "seal_nonce",
]

BUNDLE_FORMAT: Final = "ironroot-audit-bundle/1"
INDEX_FORMAT: Final = "ironroot-audit-index/1"
MAX_BUNDLE_BYTES: Final = 1024 * 1024 * 1024
"""A bundle holds each component's active firmware (up to 32 MiB each): 1 GiB is ample."""
MAX_MEMBERS: Final = 1024
MAX_REASON: Final = 1024
"""The longest reason an ``absent`` entry gives (characters)."""
NONCE_SIZE: Final = 32
_SEAL_DOMAIN: Final = b"ironroot-audit-bundle/1 seal\x00"
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}(/[a-z0-9][a-z0-9._-]{0,63}){0,3}")
_TYPE: Final = re.compile(r"[a-z]+/[a-z0-9.+-]{1,64}")
_OUTER: Final = Limits(max_bytes=MAX_BUNDLE_BYTES, max_depth=3, max_items=MAX_MEMBERS)
_INDEX: Final = Limits(max_bytes=1024 * 1024, max_depth=4, max_items=MAX_MEMBERS)


def _rejected(code: str, detail: str) -> AuditBundleRejected:
    return AuditBundleRejected(detail, code=code)


_OUTER_ITEMS: Final = 2 * MAX_MEMBERS + 16
"""The data items of a bundle: its map, four keys, three values and the members map, and a
name and bytes per member."""
_INDEX_ITEMS: Final = 10 * MAX_MEMBERS + 32
"""The data items of an index: eight per member (name, map, three keys, three values), two
per absent name, and the rest of its map."""


def items_within(data: bytes, budget: int) -> bool:
    """Whether the first CBOR item of ``data`` holds at most ``budget`` data items, reading
    only the heads, before a decoder builds anything: the decoder builds every item before
    its limits are checked, so a file of one-byte empty arrays would take some 64 times its
    size in memory. Anything else wrong (truncation, indefinite lengths) is the decoder's to
    name."""
    if not isinstance(data, bytes):
        return True
    position, pending, end = 0, 1, len(data)
    while pending:
        if pending > budget:
            return False
        if position >= end:
            return True
        budget, pending = budget - 1, pending - 1
        head = data[position]
        major, info = head >> 5, head & 0x1F
        position += 1
        if info < 24:
            value = info
        elif info < 28:
            width = 1 << (info - 24)
            value = int.from_bytes(data[position : position + width], "big")
            position += width
        else:
            return True
        if major in (2, 3):
            position += value
        elif major in (4, 5):
            pending += value * (major - 3)
        elif major == 6:
            pending += 1
    return True


def _within_items(data: bytes, budget: int, what: str) -> None:
    if not items_within(data, budget):
        raise _rejected("bundle-malformed", f"{what} holds more than {budget} CBOR items")


def check_limits(index: bytes, members: Mapping[str, bytes]) -> None:
    """``LimitExceeded`` when a bundle of ``index`` and ``members`` is one :meth:`AuditBundle.parse`
    and :meth:`AuditIndex.decode` would refuse for its size: more than ``MAX_MEMBERS``
    members, an index over its bytes or CBOR items, more than ``MAX_BUNDLE_BYTES`` of
    members (an exporter checks before it has the node's RoT seal what no one could read)."""
    if len(members) > MAX_MEMBERS:
        raise LimitExceeded(
            f"the bundle would hold {len(members)} members: audit verify reads at most "
            f"{MAX_MEMBERS}"
        )
    if len(index) > _INDEX.max_bytes or not items_within(index, _INDEX_ITEMS):
        raise LimitExceeded(
            f"the bundle's index would be {len(index)} bytes: audit verify reads at most "
            f"{_INDEX.max_bytes} bytes and {_INDEX_ITEMS} CBOR items (too many absent members?)"
        )
    size = sum(len(data) for data in members.values()) + len(index)
    if size > MAX_BUNDLE_BYTES:
        raise LimitExceeded(
            f"the bundle's members would be {size} bytes: audit verify reads at most "
            f"{MAX_BUNDLE_BYTES}"
        )
    try:
        AuditIndex.decode(index)
    except AuditBundleRejected as exc:  # within the sizes, a limit of one of its maps
        raise LimitExceeded(f"audit verify could not read the index back: {exc.detail}") from exc


def seal_nonce(index: bytes) -> bytes:
    """The nonce the node's RoT signs to seal ``index`` (module docs)."""
    return hashlib.sha384(_SEAL_DOMAIN + index).digest()


def check_name(name: object) -> str:
    """A member name: 1-4 ``/``-separated parts of ``a-z 0-9 . _ -``, each starting with a
    letter or digit (no ``..``, no absolute path: safe to unpack anywhere)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _rejected("bundle-malformed", f"{str(name)[:80]!r} is not a member name")
    return name


@dataclass(frozen=True, slots=True)
class MemberEntry:
    """A member's line in the index: SHA-384, size and media type of its bytes."""

    sha384: bytes
    size: int
    type: str

    @classmethod
    def of(cls, data: bytes, media_type: str) -> MemberEntry:
        return cls(hashlib.sha384(data).digest(), len(data), media_type)

    def to_cbor(self) -> dict[str, object]:
        return {"sha384": self.sha384, "size": self.size, "type": self.type}


def _text(value: object, what: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _rejected("bundle-malformed", f"the index's {what} is not text")
    return value


@dataclass(frozen=True, slots=True)
class AuditIndex:
    """The sealed table of contents (module docs)."""

    node: str
    node_class: str
    platform: str
    exported_at: dt.datetime
    nonce: bytes
    members: Mapping[str, MemberEntry]
    absent: Mapping[str, str]

    def __post_init__(self) -> None:
        if self.exported_at.tzinfo is None:
            raise _rejected("bundle-malformed", "the export time has no timezone")
        if len(self.nonce) != NONCE_SIZE:
            raise _rejected("bundle-malformed", f"the export nonce is {NONCE_SIZE} bytes")
        for name in (*self.members, *self.absent):
            check_name(name)
        object.__setattr__(self, "members", MappingProxyType(dict(self.members)))
        object.__setattr__(self, "absent", MappingProxyType(dict(self.absent)))

    def encode(self) -> bytes:
        when = self.exported_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        return encode_cbor(
            {
                "format": INDEX_FORMAT,
                "node": self.node,
                "class": self.node_class,
                "platform": self.platform,
                "exported_at": when,
                "nonce": self.nonce,
                "members": {n: e.to_cbor() for n, e in self.members.items()},
                "absent": dict(self.absent),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> AuditIndex:
        """Parse sealed index bytes strictly (``bundle-malformed`` for anything else)."""
        _within_items(data, _INDEX_ITEMS, "the index")
        try:
            doc = decode_cbor(data, _INDEX)
        except IronrootError as exc:
            raise _rejected("bundle-malformed", f"the index is not CBOR: {exc.detail}") from exc
        keys = {"format", "node", "class", "platform", "exported_at", "nonce", "members", "absent"}
        if not isinstance(doc, dict) or set(doc) != keys or doc["format"] != INDEX_FORMAT:
            raise _rejected("bundle-malformed", f"the index is not an {INDEX_FORMAT} map")
        try:
            when = dt.datetime.fromisoformat(_text(doc["exported_at"], "export time"))
            if when.tzinfo is not None:  # an offset may carry it past year 1 or 9999
                when = when.astimezone(dt.UTC)
        except (ValueError, OverflowError) as exc:
            raise _rejected("bundle-malformed", "the export time is not RFC 3339") from exc
        members, absent = doc["members"], doc["absent"]
        if not isinstance(members, dict) or not members or not isinstance(absent, dict):
            raise _rejected("bundle-malformed", "the index lists no members")
        entries: dict[str, MemberEntry] = {}
        for name, entry in members.items():
            name = check_name(name)  # a name the errors below may quote
            if (
                not isinstance(entry, dict)
                or set(entry) != {"sha384", "size", "type"}
                or not isinstance(entry["sha384"], bytes)
                or len(entry["sha384"]) != 48
                or isinstance(entry["size"], bool)
                or not isinstance(entry["size"], int)
                or entry["size"] < 0
                or not isinstance(entry["type"], str)
                or not _TYPE.fullmatch(entry["type"])
            ):
                raise _rejected("bundle-malformed", f"the index entry of {name!r} is malformed")
            entries[name] = MemberEntry(entry["sha384"], entry["size"], entry["type"])
        nonce = doc["nonce"]
        if not isinstance(nonce, bytes) or when.tzinfo is None:
            raise _rejected("bundle-malformed", "the index's nonce or time is malformed")
        index = cls(
            node=_text(doc["node"], "node"),
            node_class=_text(doc["class"], "class"),
            platform=_text(doc["platform"], "platform"),
            exported_at=when,
            nonce=nonce,
            members=entries,
            absent={check_name(k): _text(v, "reason", MAX_REASON) for k, v in absent.items()},
        )
        if index.encode() != data:
            raise _rejected("bundle-malformed", "the index is not in its deterministic encoding")
        return index


@dataclass(frozen=True, slots=True)
class AuditBundle:
    """The bundle file's three parts: the index bytes, the members and the seal."""

    index: bytes
    members: Mapping[str, bytes]
    seal: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", MappingProxyType(dict(self.members)))

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "format": BUNDLE_FORMAT,
                "index": self.index,
                "members": dict(self.members),
                "seal": self.seal,
            }
        )

    @classmethod
    def parse(cls, data: bytes) -> AuditBundle:
        """The file's parts, when it is exactly the deterministic encoding of a bundle map
        (module docs); ``AuditBundleRejected`` ``bundle-malformed`` otherwise. Nothing in it
        is trusted yet: the seal, then the index, then the members are checked after."""
        if not isinstance(data, bytes):
            raise _rejected("bundle-malformed", "an audit bundle is bytes")
        _within_items(data, _OUTER_ITEMS, "the file")
        try:
            doc = decode_cbor(data, _OUTER)
        except IronrootError as exc:
            raise _rejected("bundle-malformed", f"not an audit bundle: {exc.detail}") from exc
        if (
            not isinstance(doc, dict)
            or set(doc) != {"format", "index", "members", "seal"}
            or doc["format"] != BUNDLE_FORMAT
            or not isinstance(doc["index"], bytes)
            or not isinstance(doc["seal"], bytes)
            or not isinstance(doc["members"], dict)
        ):
            raise _rejected("bundle-malformed", f"not an {BUNDLE_FORMAT} map")
        members: dict[str, bytes] = {}
        for name, value in doc["members"].items():
            if not isinstance(value, bytes):
                raise _rejected("bundle-malformed", f"member {str(name)[:80]!r} is not bytes")
            members[check_name(name)] = value
        bundle = cls(doc["index"], members, doc["seal"])
        if bundle.encode() != data:
            raise _rejected(
                "bundle-malformed", "the file is not the deterministic encoding of its contents"
            )
        return bundle

    def check_members(self, index: AuditIndex) -> None:
        """Every member the index names is here with its digest and size, and no other:
        ``member-missing``, ``member-unexpected`` or ``member-changed`` naming the member."""
        for name in sorted(index.members):
            if name not in self.members:
                raise _rejected("member-missing", f"member {name} is missing from the bundle")
        for name in sorted(self.members):
            if name not in index.members:
                raise _rejected("member-unexpected", f"member {name} is not in the sealed index")
        for name, entry in sorted(index.members.items()):
            data = self.members[name]
            digest = hashlib.sha384(data).digest()
            if len(data) != entry.size or not hmac.compare_digest(digest, entry.sha384):
                raise _rejected(
                    "member-changed",
                    f"member {name} is not the one sealed: SHA-384 {digest.hex()[:16]}…, "
                    f"sealed {entry.sha384.hex()[:16]}…",
                )
