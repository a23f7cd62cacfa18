"""CoMID (Concise Module Identifier, draft-ietf-rats-corim §5): parse and build.

A CoMID is a map ``{0: language, 1: tag-identity, 2: entities, 3: linked-tags, 4: triples}``.
Reference-value triples (``0``) and endorsed-value triples (``1``) are parsed into
environments (class, instance, group) and measurement maps (mkey, mval, authorized-by), and
measurement values into typed fields: version, SVN (exact ``552`` or minimum ``553``), digests
``[alg, value]``, flags, raw values (``560`` bytes or ``563`` masked), MAC and IP addresses,
serial number, UEID, UUID, name, crypto keys, integrity registers and integer ranges
(``564``, or a bare integer: that one value). The other triple kinds (identity, attest-key,
dependency, membership, CoSWID, conditional endorsements) are kept as checked arrays of
decoded CBOR, and every map with an extension socket keeps its unknown keys in
``extensions``. Parsing is strict about the types of every field it knows (every map it reads
is keyed by integers or text) and re-encoding is deterministic (RFC 8949 §4.2.1), so
``parse(encode(x)) == x``.

Hand-written on top of ``cbor2`` because no maintained Python CoRIM library exists (the
reference implementation, veraison/corim, is Go).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import cbor2

from ironroot.corim._codec import (
    as_bytes,
    as_int,
    as_list,
    as_map,
    as_text,
    as_uint,
    decode,
    freeze,
    is_int,
    tagged,
)
from ironroot.cose import encode_cbor
from ironroot.errors import MalformedCorim

__all__ = [
    "COMID_TAG",
    "HASH_ALG_SHA256",
    "HASH_ALG_SHA384",
    "HASH_ALG_SHA512",
    "ClassMap",
    "Comid",
    "Digest",
    "Entity",
    "Environment",
    "Flags",
    "IntRange",
    "LinkedTag",
    "Measurement",
    "MeasurementValues",
    "RawValue",
    "Svn",
    "TagIdentity",
    "Tagged",
    "Triple",
    "Triples",
    "Version",
    "is_full_digest",
]

COMID_TAG: Final = 506
TAG_URI: Final = 32
TAG_UUID: Final = 37
TAG_OID: Final = 111
TAG_UEID: Final = 550
TAG_SVN: Final = 552
TAG_MIN_SVN: Final = 553
TAG_BYTES: Final = 560
TAG_MASKED_RAW_VALUE: Final = 563
TAG_INT_RANGE: Final = 564
_CRYPTO_KEY_TAGS: Final = frozenset(range(554, 563))  # pkix key/cert/path, thumbprints, COSE_Key

# Named Information hash algorithm ids (IANA) and their digest sizes.
HASH_ALG_SHA256: Final = 1
HASH_ALG_SHA384: Final = 7
HASH_ALG_SHA512: Final = 8
_HASH_SIZES: Final = {
    1: 32, 2: 16, 3: 15, 4: 12, 5: 8, 6: 4, 7: 48, 8: 64, 9: 28, 10: 32, 11: 48, 12: 64,
}  # fmt: skip
# The same algorithms by their registered text names (matched without regard to case).
_HASH_NAME_SIZES: Final = {
    "sha-256": 32, "sha-256-128": 16, "sha-256-120": 15, "sha-256-96": 12, "sha-256-64": 8,
    "sha-256-32": 4, "sha-384": 48, "sha-512": 64, "sha3-224": 28, "sha3-256": 32,
    "sha3-384": 48, "sha3-512": 64,
}  # fmt: skip

# The truncated SHA-256 variants are all shorter than the shortest full digest (SHA3-224).
_FULL_DIGEST_MIN: Final = 28


def is_full_digest(alg: object, value: bytes) -> bool:
    """Whether ``[alg, value]`` is a full-length SHA-2 or SHA-3 digest: ``alg`` a registered
    algorithm (id, or text name in any case) that is not a truncation, and ``value`` of its
    size. What may be compared with a measurement: a truncated digest is a few bytes a second
    preimage is found for, and an unknown algorithm says nothing of what its bytes are."""
    if is_int(alg):
        size = _HASH_SIZES.get(alg)
    else:
        size = _HASH_NAME_SIZES.get(alg.lower()) if isinstance(alg, str) else None
    return size is not None and size >= _FULL_DIGEST_MIN and len(value) == size


_EMPTY: Final[Mapping[object, object]] = MappingProxyType({})


def _frozen_map(value: Mapping[object, object]) -> Mapping[object, object]:
    frozen = freeze(value)
    assert isinstance(frozen, Mapping)
    return frozen


def _extensions(obj: Mapping[object, object], known: frozenset[int]) -> Mapping[object, object]:
    return _frozen_map({k: v for k, v in obj.items() if k not in known})


def _check_keys(obj: Mapping[object, object], known: frozenset[int], what: str) -> None:
    unknown = [k for k in obj if k not in known]
    if unknown:
        raise MalformedCorim(f"{what} has unknown keys {unknown!r}")


def _uri(value: object, what: str) -> str:
    """``uri = #6.32(tstr)``; a bare text string is accepted too."""
    if isinstance(value, cbor2.CBORTag):
        value = tagged(value, TAG_URI, what)
    return as_text(value, what)


def _encode_uri(value: str) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_URI, value)


# --- tagged choices and small values ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tagged:
    """A tagged choice value: UUID (37), OID (111), UEID (550), bytes (560), crypto keys, …"""

    tag: int
    value: object

    def __post_init__(self) -> None:
        # Arrays and maps are kept in one immutable form so built and parsed values compare.
        object.__setattr__(self, "value", freeze(self.value))

    @classmethod
    def parse(cls, value: object, allowed: frozenset[int], what: str) -> Tagged:
        if not isinstance(value, cbor2.CBORTag) or value.tag not in allowed:
            raise MalformedCorim(f"{what} must be one of the tags {sorted(allowed)}")
        tag, content = value.tag, value.value
        if tag == TAG_UUID:
            as_bytes(content, f"{what} UUID", (16,))
        elif tag == TAG_UEID:
            as_bytes(content, f"{what} UEID", tuple(range(7, 34)))
        elif tag in (TAG_OID, TAG_BYTES, 562):
            as_bytes(content, what)
        elif tag in (554, 555, 556):
            as_text(content, what)
        elif tag in (557, 559, 561):
            Digest.parse(content, what)
        elif tag == 558:
            as_map(content, f"{what} COSE_Key")
        return cls(tag, freeze(content))

    def to_cbor(self) -> cbor2.CBORTag:
        return cbor2.CBORTag(self.tag, self.value)


_CLASS_ID_TAGS: Final = frozenset({TAG_OID, TAG_UUID, TAG_BYTES})
_INSTANCE_TAGS: Final = frozenset({TAG_UEID, TAG_UUID, TAG_BYTES, 554, 555, 558, 557, 559, 562})
_GROUP_TAGS: Final = frozenset({TAG_UUID, TAG_BYTES})
_MKEY_TAGS: Final = frozenset({TAG_OID, TAG_UUID})


@dataclass(frozen=True, slots=True)
class Digest:
    """``[hash-alg-id, hash-value]``; a known algorithm, by IANA Named Information id or text
    name, must have its digest size."""

    alg: int | str
    value: bytes

    @classmethod
    def parse(cls, value: object, what: str = "digest") -> Digest:
        items = as_list(value, what)
        if len(items) != 2:
            raise MalformedCorim(f"{what} must be [alg, value]")
        alg, digest = items
        if not (is_int(alg) or isinstance(alg, str)):
            raise MalformedCorim(f"{what} algorithm must be an integer or text")
        raw = as_bytes(digest, f"{what} value")
        size = _HASH_SIZES.get(alg) if is_int(alg) else _HASH_NAME_SIZES.get(str(alg).lower())
        if size is not None and len(raw) != size:
            raise MalformedCorim(f"{what} is {len(raw)} bytes, algorithm {alg!r} needs {size}")
        return cls(alg, raw)

    def to_cbor(self) -> list[object]:
        return [self.alg, self.value]


def _digests(value: object, what: str) -> tuple[Digest, ...]:
    return tuple(Digest.parse(d, what) for d in as_list(value, what))


@dataclass(frozen=True, slots=True)
class Version:
    """``version-map``: a version string and an optional CoSWID version scheme
    (``$version-scheme``: a registered integer, or any integer or text, RFC 9393 §4.1)."""

    version: str
    scheme: int | str | None = None

    @classmethod
    def parse(cls, value: object) -> Version:
        obj = as_map(value, "version-map")
        _check_keys(obj, frozenset({0, 1}), "version-map")
        scheme: int | str | None = None
        if 1 in obj:
            raw = obj[1]
            if not (isinstance(raw, str) or is_int(raw)):
                raise MalformedCorim("version-scheme must be an integer or text")
            scheme = raw
        return cls(as_text(obj.get(0), "version"), scheme)

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = {0: self.version}
        if self.scheme is not None:
            out[1] = self.scheme
        return out


@dataclass(frozen=True, slots=True)
class Svn:
    """A security version number: exact (``552`` or a bare uint) or a minimum (``553``)."""

    value: int
    minimum: bool = False

    @classmethod
    def parse(cls, value: object) -> Svn:
        if isinstance(value, cbor2.CBORTag) and value.tag in (TAG_SVN, TAG_MIN_SVN):
            return cls(as_uint(value.value, "svn"), value.tag == TAG_MIN_SVN)
        return cls(as_uint(value, "svn"))

    def to_cbor(self) -> cbor2.CBORTag:
        return cbor2.CBORTag(TAG_MIN_SVN if self.minimum else TAG_SVN, self.value)


_FLAG_NAMES: Final = (
    "is_configured",
    "is_secure",
    "is_recovery",
    "is_debug",
    "is_replay_protected",
    "is_integrity_protected",
    "is_runtime_meas",
    "is_immutable",
    "is_tcb",
    "is_confidentiality_protected",
    "is_runtime_updatable",
)


@dataclass(frozen=True, slots=True)
class Flags:
    """``flags-map``: operational state booleans (keys 0–10) and extension flags."""

    is_configured: bool | None = None
    is_secure: bool | None = None
    is_recovery: bool | None = None
    is_debug: bool | None = None
    is_replay_protected: bool | None = None
    is_integrity_protected: bool | None = None
    is_runtime_meas: bool | None = None
    is_immutable: bool | None = None
    is_tcb: bool | None = None
    is_confidentiality_protected: bool | None = None
    is_runtime_updatable: bool | None = None
    extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def parse(cls, value: object) -> Flags:
        obj = as_map(value, "flags-map")
        if not obj:
            raise MalformedCorim("flags-map must not be empty")
        known: dict[str, bool] = {}
        for key, name in enumerate(_FLAG_NAMES):
            if key in obj:
                flag = obj[key]
                if not isinstance(flag, bool):
                    raise MalformedCorim(f"flag {name} must be a boolean")
                known[name] = flag
        extensions = _extensions(obj, frozenset(range(len(_FLAG_NAMES))))
        return cls(**known, extensions=extensions)

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = dict(self.extensions)
        for key, name in enumerate(_FLAG_NAMES):
            flag = getattr(self, name)
            if flag is not None:
                out[key] = flag
        return out


@dataclass(frozen=True, slots=True)
class RawValue:
    """A raw value: ``560(bytes)``, or ``563([value, mask])`` when ``mask`` is set."""

    value: bytes
    mask: bytes | None = None

    @classmethod
    def parse(cls, value: object) -> RawValue:
        if isinstance(value, cbor2.CBORTag) and value.tag == TAG_MASKED_RAW_VALUE:
            items = as_list(value.value, "masked raw value")
            if len(items) != 2:
                raise MalformedCorim("masked raw value must be [value, mask]")
            raw = as_bytes(items[0], "raw value")
            mask = as_bytes(items[1], "raw value mask", (len(raw),))
            return cls(raw, mask)
        return cls(as_bytes(tagged(value, TAG_BYTES, "raw value"), "raw value"))

    def to_cbor(self) -> cbor2.CBORTag:
        if self.mask is None:
            return cbor2.CBORTag(TAG_BYTES, self.value)
        return cbor2.CBORTag(TAG_MASKED_RAW_VALUE, [self.value, self.mask])


@dataclass(frozen=True, slots=True)
class IntRange:
    """``564([min, max])``; ``None`` is an open end. A bare integer (``int-range-type-choice
    = int / tagged-int-range``) is read as the range from it to itself."""

    min: int | None
    max: int | None

    @classmethod
    def parse(cls, value: object) -> IntRange:
        if is_int(value):
            return cls(value, value)
        if not isinstance(value, cbor2.CBORTag) or value.tag != TAG_INT_RANGE:
            raise MalformedCorim("int-range must be an integer or carry CBOR tag 564")
        items = as_list(value.value, "int-range")
        if len(items) != 2:
            raise MalformedCorim("int-range must be [min, max]")
        low, high = (None if v is None else as_int(v, "int-range bound") for v in items)
        if low is not None and high is not None and low > high:
            raise MalformedCorim("int-range min is greater than max")
        return cls(low, high)

    def to_cbor(self) -> cbor2.CBORTag:
        return cbor2.CBORTag(TAG_INT_RANGE, [self.min, self.max])


# --- measurements -------------------------------------------------------------------------


_MVAL_KEYS: Final = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15})


@dataclass(frozen=True, slots=True)
class MeasurementValues:
    """``measurement-values-map`` (non-empty)."""

    version: Version | None = None
    svn: Svn | None = None
    digests: tuple[Digest, ...] = ()
    flags: Flags | None = None
    raw_value: RawValue | None = None
    raw_value_mask: bytes | None = None  # the deprecated key 5
    mac_addr: bytes | None = None
    ip_addr: bytes | None = None
    serial_number: str | None = None
    ueid: bytes | None = None
    uuid: bytes | None = None
    name: str | None = None
    cryptokeys: tuple[Tagged, ...] = ()
    integrity_registers: Mapping[int | str, tuple[Digest, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    int_range: IntRange | None = None
    extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def parse(cls, value: object) -> MeasurementValues:
        obj = as_map(value, "measurement-values-map")
        if not obj:
            raise MalformedCorim("measurement-values-map must not be empty")
        if 5 in obj and 4 not in obj:
            raise MalformedCorim("raw-value-mask (5) needs raw-value (4)")
        registers: dict[int | str, tuple[Digest, ...]] = {}
        if 14 in obj:
            found = as_map(obj[14], "integrity-registers")
            if not found:
                raise MalformedCorim("integrity-registers must not be empty")
            for key, digests in found.items():
                if not (is_int(key) and key >= 0) and not isinstance(key, str):
                    raise MalformedCorim("integrity register ids are uint or text")
                registers[key] = _digests(digests, "integrity register")

        return cls(
            version=Version.parse(obj[0]) if 0 in obj else None,
            svn=Svn.parse(obj[1]) if 1 in obj else None,
            digests=_digests(obj[2], "digests") if 2 in obj else (),
            flags=Flags.parse(obj[3]) if 3 in obj else None,
            raw_value=RawValue.parse(obj[4]) if 4 in obj else None,
            raw_value_mask=as_bytes(obj[5], "raw-value-mask") if 5 in obj else None,
            mac_addr=as_bytes(obj[6], "mac-addr", (6, 8)) if 6 in obj else None,
            ip_addr=as_bytes(obj[7], "ip-addr", (4, 16)) if 7 in obj else None,
            serial_number=as_text(obj[8], "serial-number") if 8 in obj else None,
            ueid=as_bytes(obj[9], "ueid", tuple(range(7, 34))) if 9 in obj else None,
            uuid=as_bytes(obj[10], "uuid", (16,)) if 10 in obj else None,
            name=as_text(obj[11], "name") if 11 in obj else None,
            cryptokeys=tuple(
                Tagged.parse(k, _CRYPTO_KEY_TAGS, "cryptokey")
                for k in as_list(obj[13], "cryptokeys")
            )
            if 13 in obj
            else (),
            integrity_registers=MappingProxyType(registers),
            int_range=IntRange.parse(obj[15]) if 15 in obj else None,
            extensions=_extensions(obj, _MVAL_KEYS),
        )

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = dict(self.extensions)
        pairs: tuple[tuple[int, object], ...] = (
            (0, None if self.version is None else self.version.to_cbor()),
            (1, None if self.svn is None else self.svn.to_cbor()),
            (2, [d.to_cbor() for d in self.digests] or None),
            (3, None if self.flags is None else self.flags.to_cbor()),
            (4, None if self.raw_value is None else self.raw_value.to_cbor()),
            (5, self.raw_value_mask),
            (6, self.mac_addr),
            (7, self.ip_addr),
            (8, self.serial_number),
            (9, self.ueid),
            (10, self.uuid),
            (11, self.name),
            (13, [k.to_cbor() for k in self.cryptokeys] or None),
            (
                14,
                {k: [d.to_cbor() for d in v] for k, v in self.integrity_registers.items()} or None,
            ),
            (15, None if self.int_range is None else self.int_range.to_cbor()),
        )
        for key, value in pairs:
            if value is not None:
                out[key] = value
        if not out:
            raise MalformedCorim("measurement values must not be empty")
        return out


def _mkey(value: object) -> int | str | Tagged:
    if isinstance(value, str):
        return value
    if is_int(value) and value >= 0:
        return value
    return Tagged.parse(value, _MKEY_TAGS, "mkey")


@dataclass(frozen=True, slots=True)
class Measurement:
    """``measurement-map``: an optional key, the values, optional authorizing keys."""

    mval: MeasurementValues
    mkey: int | str | Tagged | None = None
    authorized_by: tuple[Tagged, ...] = ()

    @classmethod
    def parse(cls, value: object) -> Measurement:
        obj = as_map(value, "measurement-map")
        _check_keys(obj, frozenset({0, 1, 2}), "measurement-map")
        if 1 not in obj:
            raise MalformedCorim("measurement-map lacks mval (1)")
        authorized = (
            tuple(
                Tagged.parse(k, _CRYPTO_KEY_TAGS, "authorized-by")
                for k in as_list(obj[2], "authorized-by")
            )
            if 2 in obj
            else ()
        )
        return cls(
            MeasurementValues.parse(obj[1]),
            _mkey(obj[0]) if 0 in obj else None,
            authorized,
        )

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = {1: self.mval.to_cbor()}
        if self.mkey is not None:
            out[0] = self.mkey.to_cbor() if isinstance(self.mkey, Tagged) else self.mkey
        if self.authorized_by:
            out[2] = [k.to_cbor() for k in self.authorized_by]
        return out


# --- environments and triples ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassMap:
    """``class-map`` (non-empty): class id, vendor, model, layer, index."""

    class_id: Tagged | None = None
    vendor: str | None = None
    model: str | None = None
    layer: int | None = None
    index: int | None = None

    @classmethod
    def parse(cls, value: object) -> ClassMap:
        obj = as_map(value, "class-map")
        _check_keys(obj, frozenset({0, 1, 2, 3, 4}), "class-map")
        if not obj:
            raise MalformedCorim("class-map must not be empty")
        return cls(
            Tagged.parse(obj[0], _CLASS_ID_TAGS, "class-id") if 0 in obj else None,
            as_text(obj[1], "vendor") if 1 in obj else None,
            as_text(obj[2], "model") if 2 in obj else None,
            as_uint(obj[3], "layer") if 3 in obj else None,
            as_uint(obj[4], "index") if 4 in obj else None,
        )

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = {}
        for key, value in enumerate(
            (self.class_id, self.vendor, self.model, self.layer, self.index)
        ):
            if value is not None:
                out[key] = value.to_cbor() if isinstance(value, Tagged) else value
        if not out:
            raise MalformedCorim("class-map must not be empty")
        return out


@dataclass(frozen=True, slots=True)
class Environment:
    """``environment-map`` (non-empty): class, instance, group."""

    class_map: ClassMap | None = None
    instance: Tagged | None = None
    group: Tagged | None = None

    @classmethod
    def parse(cls, value: object) -> Environment:
        obj = as_map(value, "environment-map")
        _check_keys(obj, frozenset({0, 1, 2}), "environment-map")
        if not obj:
            raise MalformedCorim("environment-map must not be empty")
        return cls(
            ClassMap.parse(obj[0]) if 0 in obj else None,
            Tagged.parse(obj[1], _INSTANCE_TAGS, "instance") if 1 in obj else None,
            Tagged.parse(obj[2], _GROUP_TAGS, "group") if 2 in obj else None,
        )

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = {}
        if self.class_map is not None:
            out[0] = self.class_map.to_cbor()
        if self.instance is not None:
            out[1] = self.instance.to_cbor()
        if self.group is not None:
            out[2] = self.group.to_cbor()
        if not out:
            raise MalformedCorim("environment-map must not be empty")
        return out


@dataclass(frozen=True, slots=True)
class Triple:
    """A reference-value or endorsed-value triple: ``[environment-map, [+ measurement-map]]``."""

    environment: Environment
    measurements: tuple[Measurement, ...]

    @classmethod
    def parse(cls, value: object, what: str) -> Triple:
        items = as_list(value, what)
        if len(items) != 2:
            raise MalformedCorim(f"{what} must be [environment, measurements]")
        return cls(
            Environment.parse(items[0]),
            tuple(Measurement.parse(m) for m in as_list(items[1], f"{what} measurements")),
        )

    def to_cbor(self) -> list[object]:
        if not self.measurements:
            raise MalformedCorim("a triple needs at least one measurement")
        return [self.environment.to_cbor(), [m.to_cbor() for m in self.measurements]]


_OTHER_TRIPLES: Final = frozenset({2, 3, 4, 5, 6, 8, 10})


@dataclass(frozen=True, slots=True)
class Triples:
    """``triples-map`` (non-empty).

    ``reference`` (key 0) and ``endorsed`` (key 1) are parsed; ``other`` keeps the identity
    (2), attest-key (3), dependency (4), membership (5), CoSWID (6) and conditional
    endorsement (8, 10) triples as non-empty arrays of decoded CBOR; ``extensions`` the rest.
    """

    reference: tuple[Triple, ...] = ()
    endorsed: tuple[Triple, ...] = ()
    other: Mapping[int, tuple[object, ...]] = field(default_factory=lambda: MappingProxyType({}))
    extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def parse(cls, value: object) -> Triples:
        obj = as_map(value, "triples-map")
        if not obj:
            raise MalformedCorim("triples-map must not be empty")
        other: dict[int, tuple[object, ...]] = {}
        for key in sorted(k for k in _OTHER_TRIPLES if k in obj):
            records = as_list(obj[key], f"triples {key}")
            for record in records:
                as_list(record, f"triple record {key}")
            frozen = freeze(records)
            assert isinstance(frozen, tuple)
            other[key] = frozen
        return cls(
            tuple(Triple.parse(t, "reference triple") for t in as_list(obj[0], "reference-triples"))
            if 0 in obj
            else (),
            tuple(Triple.parse(t, "endorsed triple") for t in as_list(obj[1], "endorsed-triples"))
            if 1 in obj
            else (),
            MappingProxyType(dict(sorted(other.items()))),
            _extensions(obj, _OTHER_TRIPLES | {0, 1}),
        )

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = dict(self.extensions)
        if self.reference:
            out[0] = [t.to_cbor() for t in self.reference]
        if self.endorsed:
            out[1] = [t.to_cbor() for t in self.endorsed]
        for key, records in self.other.items():
            out[key] = list(records)
        if not out:
            raise MalformedCorim("triples-map must not be empty")
        return out


# --- the tag ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entity:
    """``entity-map``: a name, an optional registration URI, roles, extensions.

    CoMID roles: 0 tag-creator, 1 creator, 2 maintainer; CoRIM roles: 1 manifest-creator,
    2 manifest-signer.
    """

    name: str
    roles: tuple[int, ...]
    reg_id: str | None = None
    extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def parse(cls, value: object) -> Entity:
        obj = as_map(value, "entity-map")
        if 0 not in obj or 2 not in obj:
            raise MalformedCorim("entity-map needs entity-name (0) and role (2)")
        roles = tuple(as_uint(r, "role") for r in as_list(obj[2], "roles"))
        return cls(
            as_text(obj[0], "entity-name"),
            roles,
            _uri(obj[1], "reg-id") if 1 in obj else None,
            _extensions(obj, frozenset({0, 1, 2})),
        )

    def to_cbor(self) -> dict[object, object]:
        if not self.roles:
            raise MalformedCorim("an entity needs at least one role")
        out: dict[object, object] = dict(self.extensions)
        out[0] = self.name
        out[2] = list(self.roles)
        if self.reg_id is not None:
            out[1] = _encode_uri(self.reg_id)
        return out


def _tag_id(value: object, what: str) -> str | bytes:
    if isinstance(value, str):
        return value
    return as_bytes(value, f"{what} (text or 16-byte UUID)", (16,))


@dataclass(frozen=True, slots=True)
class TagIdentity:
    """``tag-identity-map``: a text or 16-byte UUID tag id and an optional version."""

    tag_id: str | bytes
    version: int | None = None

    @classmethod
    def parse(cls, value: object) -> TagIdentity:
        obj = as_map(value, "tag-identity-map")
        _check_keys(obj, frozenset({0, 1}), "tag-identity-map")
        if 0 not in obj:
            raise MalformedCorim("tag-identity-map lacks tag-id (0)")
        return cls(_tag_id(obj[0], "tag-id"), as_uint(obj[1], "tag-version") if 1 in obj else None)

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = {0: self.tag_id}
        if self.version is not None:
            out[1] = self.version
        return out


@dataclass(frozen=True, slots=True)
class LinkedTag:
    """``linked-tag-map``: another tag and the relation (0 supplements, 1 replaces)."""

    tag_id: str | bytes
    rel: int

    @classmethod
    def parse(cls, value: object) -> LinkedTag:
        obj = as_map(value, "linked-tag-map")
        _check_keys(obj, frozenset({0, 1}), "linked-tag-map")
        if 0 not in obj or 1 not in obj:
            raise MalformedCorim("linked-tag-map needs linked-tag-id (0) and tag-rel (1)")
        return cls(_tag_id(obj[0], "linked-tag-id"), as_int(obj[1], "tag-rel"))

    def to_cbor(self) -> dict[object, object]:
        return {0: self.tag_id, 1: self.rel}


@dataclass(frozen=True, slots=True)
class Comid:
    """A ``concise-mid-tag``."""

    tag_identity: TagIdentity
    triples: Triples
    entities: tuple[Entity, ...] = ()
    linked_tags: tuple[LinkedTag, ...] = ()
    language: str | None = None
    extensions: Mapping[object, object] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_value(cls, value: object) -> Comid:
        """From a decoded ``concise-mid-tag`` map."""
        obj = as_map(value, "concise-mid-tag")
        if 1 not in obj or 4 not in obj:
            raise MalformedCorim("concise-mid-tag needs tag-identity (1) and triples (4)")
        return cls(
            TagIdentity.parse(obj[1]),
            Triples.parse(obj[4]),
            tuple(Entity.parse(e) for e in as_list(obj[2], "entities")) if 2 in obj else (),
            tuple(LinkedTag.parse(t) for t in as_list(obj[3], "linked-tags")) if 3 in obj else (),
            as_text(obj[0], "language") if 0 in obj else None,
            _extensions(obj, frozenset({0, 1, 2, 3, 4})),
        )

    @classmethod
    def parse(cls, data: bytes) -> Comid:
        """Parse a CoMID: the bare map, or ``506(bstr .cbor concise-mid-tag)``."""
        value = decode(data, "CoMID")
        if isinstance(value, cbor2.CBORTag):
            inner = as_bytes(tagged(value, COMID_TAG, "CoMID"), "tagged CoMID")
            value = decode(inner, "CoMID")
        return cls.from_value(value)

    def to_cbor(self) -> dict[object, object]:
        out: dict[object, object] = dict(self.extensions)
        out[1] = self.tag_identity.to_cbor()
        out[4] = self.triples.to_cbor()
        if self.entities:
            out[2] = [e.to_cbor() for e in self.entities]
        if self.linked_tags:
            out[3] = [t.to_cbor() for t in self.linked_tags]
        if self.language is not None:
            out[0] = self.language
        return out

    def encode(self) -> bytes:
        """The deterministic CBOR of the bare ``concise-mid-tag`` map."""
        return encode_cbor(self.to_cbor())

    def to_tag(self) -> cbor2.CBORTag:
        """``506(bstr .cbor concise-mid-tag)``, as it sits in a CoRIM."""
        return cbor2.CBORTag(COMID_TAG, self.encode())
