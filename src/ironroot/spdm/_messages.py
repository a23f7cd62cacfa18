"""SPDM 1.2 / 1.3 messages as frozen dataclasses with strict ``encode`` / ``decode``.

Every message starts with the four-byte header SPDMVersion, RequestResponseCode, Param1,
Param2; integers are little-endian. Field layouts (DSP0274 1.2.x / 1.3.x, cross-checked with
DMTF libspdm's ``spdm.h``):

- GET_VERSION ``10 84 00 00``; VERSION ``10 04 00 00 | Reserved(1) Count(1) Entry(2)*``,
  entry = major(4 bits) minor(4) update(4) alpha(4) as a 16-bit integer.
- GET_CAPABILITIES / CAPABILITIES (1.2+): ``Reserved(1) CTExponent(1) Reserved(2) Flags(4)
  DataTransferSize(4) MaxSPDMmsgSize(4)`` — 20 bytes.
- NEGOTIATE_ALGORITHMS (Param1 = number of AlgStructure tables): ``Length(2)
  MeasurementSpecification(1) OtherParamsSupport(1) BaseAsymAlgo(4) BaseHashAlgo(4)
  Reserved(12) ExtAsymCount(1) ExtHashCount(1) Reserved(1) MELspecification(1) ExtAsym(4A)
  ExtHash(4E) ReqAlgStruct*`` — 32 bytes fixed, at most 128 in all.
- ALGORITHMS: ``Length(2) MeasurementSpecificationSel(1) OtherParamsSelection(1)
  MeasurementHashAlgo(4) BaseAsymSel(4) BaseHashSel(4) Reserved(11) MELspecificationSel(1)
  ExtAsymSelCount(1) ExtHashSelCount(1) Reserved(2) ExtAsymSel ExtHashSel RespAlgStruct*`` —
  36 bytes fixed. AlgStructure = ``AlgType(1) AlgCount(1) AlgSupported(2) AlgExternal(4n)``.
- GET_DIGESTS; DIGESTS ``Digest(H)`` per provisioned slot (Param2 = slot mask; 1.3: Param1 =
  supported slot mask).
- GET_CERTIFICATE ``Offset(2) Length(2)`` (Param1 = slot id); CERTIFICATE ``PortionLength(2)
  RemainderLength(2) CertChain[PortionLength]``.
- GET_MEASUREMENTS (Param1 = attributes, Param2 = operation) ``[Nonce(32) SlotIDParam(1)]``
  when a signature is requested, then ``RequesterContext(8)`` in 1.3.
- MEASUREMENTS (Param1 = total count for operation 0, Param2 = slot id | content changed)
  ``NumberOfBlocks(1) MeasurementRecordLength(3) MeasurementRecord Nonce(32)
  OpaqueDataLength(2) OpaqueData [RequesterContext(8) in 1.3] Signature``.
- GET_MEASUREMENTS and MEASUREMENTS also decode at SPDM 1.0 and 1.1 when asked to
  (``versions=``), for recorded exchanges (:mod:`._report`): there the only attribute is
  SignatureRequested (RawBitStreamRequested is 1.2), 1.0 has no SlotIDParam and its
  MEASUREMENTS Param2 is reserved, 1.1 carries the slot id in Param2 bits 3..0 with bits
  7..4 reserved (ContentChanged is 1.2).
- CHALLENGE (Param1 = slot id, 0xFF for a provisioned public key; Param2 = measurement
  summary hash type 0 / 1 / 0xFF) ``Nonce(32) [RequesterContext(8) in 1.3]``.
- CHALLENGE_AUTH (Param1 = slot id | BasicMutAuthReq bit 7, Param2 = slot mask)
  ``CertChainHash(H) Nonce(32) MeasurementSummaryHash(H, absent for type 0)
  OpaqueDataLength(2) OpaqueData [RequesterContext(8) in 1.3] Signature``.
- ERROR (Param1 = ErrorCode, Param2 = ErrorData) ``ExtendedErrorData`` (0..32 bytes).

Decoders are deliberately stricter than DSP0274's "ignore reserved on receipt": a reserved
byte or parameter that is not zero, a length that disagrees, or a trailing byte is a
:class:`MalformedSpdm`. Ironroot only accepts bytes it can account for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final, TypeVar

from ironroot._memo import Memo
from ironroot.errors import MalformedSpdm
from ironroot.spdm._codec import Reader, u16, u24, u32
from ironroot.spdm._constants import (
    MAX_OPAQUE_DATA_SIZE,
    MEAS_CAP_MASK,
    MEASUREMENT_VERSIONS,
    MIN_DATA_TRANSFER_SIZE,
    MULTI_KEY_CONN,
    NEGOTIABLE,
    NONCE_SIZE,
    OPAQUE_FORMAT_MASK,
    REQUESTER_CONTEXT_SIZE,
    ErrorCode,
    MeasurementHashAlgo,
    MeasurementSummaryHashType,
    RequestResponseCode,
    SpdmVersion,
    version_from_byte,
)
from ironroot.spdm._measurements import (
    AnyMeasurementBlock,
    MeasurementBlock,
    UnknownMeasurementBlock,
    decode_measurement_record,
    encode_measurement_record,
)

__all__ = [
    "AlgStructure",
    "Algorithms",
    "Capabilities",
    "Certificate",
    "Challenge",
    "ChallengeAuth",
    "Digests",
    "ErrorResponse",
    "ExtendedAlgorithm",
    "GetCapabilities",
    "GetCertificate",
    "GetDigests",
    "GetMeasurements",
    "GetVersion",
    "Measurements",
    "NegotiateAlgorithms",
    "Version",
    "VersionNumber",
]

_V10: Final = frozenset({SpdmVersion.V1_0})
_ANY: Final = frozenset({SpdmVersion.V1_0, SpdmVersion.V1_2, SpdmVersion.V1_3})
_CODE = RequestResponseCode

# GET_MEASUREMENTS attributes (Param1)
ATTR_GENERATE_SIGNATURE: Final = 0x01
ATTR_RAW_BIT_STREAM_REQUESTED: Final = 0x02
ATTR_NEW_MEASUREMENT_REQUESTED: Final = 0x04  # 1.3
OPERATION_TOTAL_NUMBER: Final = 0x00
OPERATION_ALL: Final = 0xFF
SLOT_ID_PUBLIC_KEY: Final = 0x0F  # provisioned public key instead of a certificate slot
_MAX_SLOT: Final = 7
_NEGOTIATE_MAX_LENGTH: Final = 0x80
_MAX_EXT_ALGS: Final = 0x14
_NEGOTIATE_FIXED: Final = 32
_ALGORITHMS_FIXED: Final = 36
_MAX_EXTENDED_ERROR_DATA: Final = 32
_ERROR_CODES: Final = frozenset(int(code) for code in ErrorCode)


def _uint(value: object, bits: int, name: str) -> int:
    if type(value) is int and 0 <= value < (1 << bits):
        return value  # the common case, a plain int in range
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise MalformedSpdm(f"{name} must be an unsigned {bits}-bit integer")
    return value


def _version(value: object, allowed: frozenset[SpdmVersion], name: str) -> None:
    if not isinstance(value, SpdmVersion) or value not in allowed:
        raise MalformedSpdm(f"{name}: version must be one of {sorted(v.label for v in allowed)}")


def _header(version: SpdmVersion, code: int, param1: int = 0, param2: int = 0) -> bytes:
    return bytes([version, code, param1, param2])


def _open(
    data: bytes, code: RequestResponseCode, allowed: frozenset[SpdmVersion]
) -> tuple[SpdmVersion, int, int, Reader]:
    what = _NAMES[code]
    r = Reader(data, what)
    version_byte = r.u8("SPDMVersion")
    actual = r.u8("RequestResponseCode")
    if actual != code:
        raise MalformedSpdm(f"{what}: RequestResponseCode {actual:#04x}, expected {code:#04x}")
    version = version_from_byte(version_byte, allowed, what)
    return version, r.u8("Param1"), r.u8("Param2"), r


_NAMES: Final = {code: code.name for code in RequestResponseCode}


def _no_params(p1: int, p2: int, what: str) -> None:
    if p1 or p2:
        raise MalformedSpdm(f"{what}: reserved Param1/Param2 are not zero")


# The messages every session sends in the same bytes (the VCA, GET_DIGESTS, GET_CERTIFICATE:
# no nonce, no signature, nothing of one device), decoded once per exact bytes and message
# type: a decode is a function of the bytes alone and its result is frozen (ints, enums and
# tuples of frozen parts). A requester, its responder and a verifier of the recorded session
# read the same VCA for every device of every node. Only successes are kept; bounded.
_M = TypeVar("_M")
_DECODED: Memo[tuple[type, bytes], object] = Memo(256)


def _remembered(decode: Callable[[type[_M], bytes], _M]) -> Callable[[type[_M], bytes], _M]:
    @functools.wraps(decode)
    def remembered(cls: type[_M], data: bytes) -> _M:
        if type(data) is not bytes:
            return decode(cls, data)
        key = (cls, data)
        found = _DECODED.get(key)
        if found is None:
            found = decode(cls, data)
            _DECODED.put(key, found)
        return found  # type: ignore[return-value]

    return remembered


@functools.lru_cache(maxsize=256, typed=True)
def encoded(message: type, *args: object, **fields: object) -> bytes:
    """``message(*args, **fields).encode()``, remembered by its (hashable, immutable)
    arguments: the requests and VCA responses every session builds alike (each built and
    checked once; a refusal raises every time, as it is not remembered)."""
    built = message(*args, **fields)
    return built.encode()  # type: ignore[no-any-return]


# --- GET_VERSION / VERSION ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetVersion:
    """GET_VERSION: always SPDMVersion 1.0, no fields."""

    CODE: ClassVar[RequestResponseCode] = _CODE.GET_VERSION

    def encode(self) -> bytes:
        return _header(SpdmVersion.V1_0, self.CODE)

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> GetVersion:
        _, p1, p2, r = _open(data, cls.CODE, _V10)
        _no_params(p1, p2, "GET_VERSION")
        r.end()
        return cls()


@dataclass(frozen=True, slots=True)
class VersionNumber:
    """A VersionNumberEntry: major.minor.update, alpha."""

    major: int
    minor: int
    update: int = 0
    alpha: int = 0

    def __post_init__(self) -> None:
        for name in ("major", "minor", "update", "alpha"):
            _uint(getattr(self, name), 4, f"VersionNumberEntry {name}")

    @property
    def value(self) -> int:
        return self.major << 12 | self.minor << 8 | self.update << 4 | self.alpha

    @property
    def spdm_version(self) -> int:
        """The SPDMVersion byte this entry names (major.minor)."""
        return self.major << 4 | self.minor

    @classmethod
    def of(cls, version: SpdmVersion) -> VersionNumber:
        return cls(version >> 4, version & 0xF)

    @classmethod
    def from_value(cls, value: int) -> VersionNumber:
        return cls(value >> 12, (value >> 8) & 0xF, (value >> 4) & 0xF, value & 0xF)


@dataclass(frozen=True, slots=True)
class Version:
    """VERSION: the versions the responder supports."""

    entries: tuple[VersionNumber, ...]
    CODE: ClassVar[RequestResponseCode] = _CODE.VERSION

    def __post_init__(self) -> None:
        if not 1 <= len(self.entries) <= 0xFF:
            raise MalformedSpdm("VERSION lists 1 to 255 entries")
        if not all(isinstance(e, VersionNumber) for e in self.entries):
            raise MalformedSpdm("VERSION entries must be VersionNumber")

    def encode(self) -> bytes:
        return (
            _header(SpdmVersion.V1_0, self.CODE)
            + bytes([0, len(self.entries)])
            + b"".join(u16(e.value) for e in self.entries)
        )

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> Version:
        _, p1, p2, r = _open(data, cls.CODE, _V10)
        _no_params(p1, p2, "VERSION")
        r.zeros(1, "Reserved")
        count = r.u8("VersionNumberEntryCount")
        if count == 0:
            raise MalformedSpdm("VERSION: no version entries")
        entries = tuple(VersionNumber.from_value(r.u16(f"entry {i}")) for i in range(count))
        r.end()
        return cls(entries)


# --- GET_CAPABILITIES / CAPABILITIES --------------------------------------------------------


def _check_capabilities(
    version: SpdmVersion, ct_exponent: int, flags: int, dts: int, max_msg: int, what: str
) -> None:
    _version(version, NEGOTIABLE, what)
    _uint(ct_exponent, 8, f"{what} CTExponent")
    _uint(flags, 32, f"{what} Flags")
    _uint(dts, 32, f"{what} DataTransferSize")
    _uint(max_msg, 32, f"{what} MaxSPDMmsgSize")
    if dts < MIN_DATA_TRANSFER_SIZE:
        raise MalformedSpdm(f"{what}: DataTransferSize {dts} below {MIN_DATA_TRANSFER_SIZE}")
    if max_msg < dts:
        raise MalformedSpdm(f"{what}: MaxSPDMmsgSize is smaller than DataTransferSize")


def _encode_capabilities(
    version: SpdmVersion, code: int, ct_exponent: int, flags: int, dts: int, max_msg: int
) -> bytes:
    return (
        _header(version, code)
        + bytes([0, ct_exponent, 0, 0])
        + u32(flags)
        + u32(dts)
        + u32(max_msg)
    )


def _decode_capabilities(
    data: bytes, code: RequestResponseCode
) -> tuple[SpdmVersion, int, int, int, int]:
    version, p1, p2, r = _open(data, code, NEGOTIABLE)
    # 1.3 Param1 bit 0 asks for / announces the supported-algorithms block: never used here.
    _no_params(p1, p2, code.name)
    r.zeros(1, "Reserved")
    ct_exponent = r.u8("CTExponent")
    r.zeros(2, "Reserved")
    flags = r.u32("Flags")
    dts = r.u32("DataTransferSize")
    max_msg = r.u32("MaxSPDMmsgSize")
    r.end()
    return version, ct_exponent, flags, dts, max_msg


@dataclass(frozen=True, slots=True)
class GetCapabilities:
    """GET_CAPABILITIES (1.2 / 1.3 layout): the requester's capabilities and buffer sizes."""

    version: SpdmVersion
    ct_exponent: int = 0
    flags: int = 0
    data_transfer_size: int = 4096
    max_spdm_msg_size: int = 4096
    CODE: ClassVar[RequestResponseCode] = _CODE.GET_CAPABILITIES

    def __post_init__(self) -> None:
        _check_capabilities(
            self.version,
            self.ct_exponent,
            self.flags,
            self.data_transfer_size,
            self.max_spdm_msg_size,
            "GET_CAPABILITIES",
        )

    def encode(self) -> bytes:
        return _encode_capabilities(
            self.version,
            self.CODE,
            self.ct_exponent,
            self.flags,
            self.data_transfer_size,
            self.max_spdm_msg_size,
        )

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> GetCapabilities:
        return cls(*_decode_capabilities(data, cls.CODE))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """CAPABILITIES (1.2 / 1.3 layout, without the 1.3 supported-algorithms block)."""

    version: SpdmVersion
    ct_exponent: int = 0
    flags: int = 0
    data_transfer_size: int = 4096
    max_spdm_msg_size: int = 4096
    CODE: ClassVar[RequestResponseCode] = _CODE.CAPABILITIES

    def __post_init__(self) -> None:
        _check_capabilities(
            self.version,
            self.ct_exponent,
            self.flags,
            self.data_transfer_size,
            self.max_spdm_msg_size,
            "CAPABILITIES",
        )
        if self.flags & MEAS_CAP_MASK == MEAS_CAP_MASK:
            raise MalformedSpdm("CAPABILITIES: MEAS_CAP value 3 is reserved")

    def encode(self) -> bytes:
        return _encode_capabilities(
            self.version,
            self.CODE,
            self.ct_exponent,
            self.flags,
            self.data_transfer_size,
            self.max_spdm_msg_size,
        )

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> Capabilities:
        return cls(*_decode_capabilities(data, cls.CODE))


# --- NEGOTIATE_ALGORITHMS / ALGORITHMS ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtendedAlgorithm:
    """An extended (standards-body or vendor) algorithm: RegistryID, AlgorithmID."""

    registry_id: int
    algorithm_id: int

    def __post_init__(self) -> None:
        _uint(self.registry_id, 8, "ExtendedAlgorithm RegistryID")
        _uint(self.algorithm_id, 16, "ExtendedAlgorithm AlgorithmID")

    def encode(self) -> bytes:
        return bytes([self.registry_id, 0]) + u16(self.algorithm_id)

    @classmethod
    def read(cls, r: Reader, field: str) -> ExtendedAlgorithm:
        registry_id = r.u8(f"{field} RegistryID")
        r.zeros(1, f"{field} Reserved")
        return cls(registry_id, r.u16(f"{field} AlgorithmID"))


# AlgType values of SPDM 1.2 / 1.3: DHE, AEADCipherSuite, ReqBaseAsymAlg, KeySchedule.
_ALG_TYPES: Final = frozenset({2, 3, 4, 5})
_FIXED_ALG_BYTES: Final = 2


@dataclass(frozen=True, slots=True)
class AlgStructure:
    """An AlgStructure table: AlgType, the 2-byte AlgSupported bits, and external algorithms."""

    alg_type: int
    supported: int
    external: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.alg_type not in _ALG_TYPES:
            raise MalformedSpdm(f"AlgStructure: AlgType {self.alg_type!r} is not 2..5")
        _uint(self.supported, 16, "AlgStructure AlgSupported")
        if len(self.external) > 0xF:
            raise MalformedSpdm("AlgStructure: at most 15 external algorithms")
        for ext in self.external:
            _uint(ext, 32, "AlgStructure AlgExternal")

    def encode(self) -> bytes:
        return (
            bytes([self.alg_type, _FIXED_ALG_BYTES << 4 | len(self.external)])
            + u16(self.supported)
            + b"".join(u32(e) for e in self.external)
        )

    @classmethod
    def read(cls, r: Reader, field: str) -> AlgStructure:
        alg_type = r.u8(f"{field} AlgType")
        alg_count = r.u8(f"{field} AlgCount")
        if alg_count >> 4 != _FIXED_ALG_BYTES:
            raise MalformedSpdm(f"{field}: fixed algorithm byte count must be 2")
        supported = r.u16(f"{field} AlgSupported")
        external = tuple(r.u32(f"{field} AlgExternal") for _ in range(alg_count & 0xF))
        return cls(alg_type, supported, external)


def _check_structs(structs: tuple[AlgStructure, ...], what: str) -> None:
    types = [s.alg_type for s in structs]
    if types != sorted(set(types)):
        raise MalformedSpdm(f"{what}: AlgStructure tables must have distinct, ascending AlgType")


@dataclass(frozen=True, slots=True)
class NegotiateAlgorithms:
    """NEGOTIATE_ALGORITHMS: what the requester supports."""

    version: SpdmVersion
    measurement_specification: int
    other_params_support: int
    base_asym_algo: int
    base_hash_algo: int
    mel_specification: int = 0
    ext_asym: tuple[ExtendedAlgorithm, ...] = ()
    ext_hash: tuple[ExtendedAlgorithm, ...] = ()
    alg_structs: tuple[AlgStructure, ...] = ()
    CODE: ClassVar[RequestResponseCode] = _CODE.NEGOTIATE_ALGORITHMS

    def __post_init__(self) -> None:
        what = "NEGOTIATE_ALGORITHMS"
        _version(self.version, NEGOTIABLE, what)
        _uint(self.measurement_specification, 8, f"{what} MeasurementSpecification")
        _check_other_params(self.version, self.other_params_support, what)
        _uint(self.base_asym_algo, 32, f"{what} BaseAsymAlgo")
        _uint(self.base_hash_algo, 32, f"{what} BaseHashAlgo")
        _check_mel(self.version, self.mel_specification, what)
        if len(self.ext_asym) + len(self.ext_hash) > _MAX_EXT_ALGS:
            raise MalformedSpdm(f"{what}: more than {_MAX_EXT_ALGS} extended algorithms")
        _check_structs(self.alg_structs, what)
        if len(self.encode()) > _NEGOTIATE_MAX_LENGTH:
            raise MalformedSpdm(f"{what}: longer than {_NEGOTIATE_MAX_LENGTH} bytes")

    def encode(self) -> bytes:
        tail = (
            b"".join(e.encode() for e in self.ext_asym)
            + b"".join(e.encode() for e in self.ext_hash)
            + b"".join(s.encode() for s in self.alg_structs)
        )
        return (
            _header(self.version, self.CODE, len(self.alg_structs))
            + u16(_NEGOTIATE_FIXED + len(tail))
            + bytes([self.measurement_specification, self.other_params_support])
            + u32(self.base_asym_algo)
            + u32(self.base_hash_algo)
            + bytes(12)
            + bytes([len(self.ext_asym), len(self.ext_hash), 0, self.mel_specification])
            + tail
        )

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> NegotiateAlgorithms:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        if p2:
            raise MalformedSpdm("NEGOTIATE_ALGORITHMS: reserved Param2 is not zero")
        length = r.u16("Length")
        if length != len(data) or length > _NEGOTIATE_MAX_LENGTH:
            raise MalformedSpdm(f"NEGOTIATE_ALGORITHMS: Length {length}, message {len(data)}")
        spec = r.u8("MeasurementSpecification")
        other = r.u8("OtherParamsSupport")
        asym = r.u32("BaseAsymAlgo")
        hash_algo = r.u32("BaseHashAlgo")
        r.zeros(12, "Reserved")
        n_asym = r.u8("ExtAsymCount")
        n_hash = r.u8("ExtHashCount")
        r.zeros(1, "Reserved")
        mel = r.u8("MELspecification")
        ext_asym = tuple(ExtendedAlgorithm.read(r, f"ExtAsym {i}") for i in range(n_asym))
        ext_hash = tuple(ExtendedAlgorithm.read(r, f"ExtHash {i}") for i in range(n_hash))
        structs = tuple(AlgStructure.read(r, f"ReqAlgStruct {i}") for i in range(p1))
        r.end()
        return cls(version, spec, other, asym, hash_algo, mel, ext_asym, ext_hash, structs)


def _check_other_params(version: SpdmVersion, value: int, what: str) -> None:
    _uint(value, 8, f"{what} OtherParams")
    allowed = OPAQUE_FORMAT_MASK | (MULTI_KEY_CONN if version >= SpdmVersion.V1_3 else 0)
    if value & ~allowed:
        raise MalformedSpdm(f"{what}: reserved OtherParams bits are set")


def _check_mel(version: SpdmVersion, value: int, what: str) -> None:
    _uint(value, 8, f"{what} MELspecification")
    if value and version < SpdmVersion.V1_3:
        raise MalformedSpdm(f"{what}: MELspecification is reserved before SPDM 1.3")


def _at_most_one_bit(value: int, field: str) -> None:
    if value & (value - 1):
        raise MalformedSpdm(f"ALGORITHMS: {field} selects more than one algorithm")


@dataclass(frozen=True, slots=True)
class Algorithms:
    """ALGORITHMS: the responder's selections (each at most one bit)."""

    version: SpdmVersion
    measurement_specification_sel: int
    other_params_selection: int
    measurement_hash_algo: int
    base_asym_sel: int
    base_hash_sel: int
    mel_specification_sel: int = 0
    ext_asym_sel: tuple[ExtendedAlgorithm, ...] = ()
    ext_hash_sel: tuple[ExtendedAlgorithm, ...] = ()
    alg_structs: tuple[AlgStructure, ...] = ()
    CODE: ClassVar[RequestResponseCode] = _CODE.ALGORITHMS

    def __post_init__(self) -> None:
        what = "ALGORITHMS"
        _version(self.version, NEGOTIABLE, what)
        _uint(self.measurement_specification_sel, 8, f"{what} MeasurementSpecificationSel")
        _check_other_params(self.version, self.other_params_selection, what)
        _uint(self.measurement_hash_algo, 32, f"{what} MeasurementHashAlgo")
        _uint(self.base_asym_sel, 32, f"{what} BaseAsymSel")
        _uint(self.base_hash_sel, 32, f"{what} BaseHashSel")
        _check_mel(self.version, self.mel_specification_sel, what)
        for value, field in (
            (self.measurement_specification_sel, "MeasurementSpecificationSel"),
            (self.other_params_selection & OPAQUE_FORMAT_MASK, "OpaqueDataFmt"),
            (self.measurement_hash_algo, "MeasurementHashAlgo"),
            (self.base_asym_sel, "BaseAsymSel"),
            (self.base_hash_sel, "BaseHashSel"),
            (self.mel_specification_sel, "MELspecificationSel"),
        ):
            _at_most_one_bit(value, field)
        if len(self.ext_asym_sel) > 1 or len(self.ext_hash_sel) > 1:
            raise MalformedSpdm(f"{what}: at most one extended algorithm of each kind")
        _check_structs(self.alg_structs, what)
        for s in self.alg_structs:
            _at_most_one_bit(s.supported, f"AlgStructure {s.alg_type}")
            if len(s.external) > 1:
                raise MalformedSpdm(f"{what}: AlgStructure selects more than one external")

    def encode(self) -> bytes:
        tail = (
            b"".join(e.encode() for e in self.ext_asym_sel)
            + b"".join(e.encode() for e in self.ext_hash_sel)
            + b"".join(s.encode() for s in self.alg_structs)
        )
        return (
            _header(self.version, self.CODE, len(self.alg_structs))
            + u16(_ALGORITHMS_FIXED + len(tail))
            + bytes([self.measurement_specification_sel, self.other_params_selection])
            + u32(self.measurement_hash_algo)
            + u32(self.base_asym_sel)
            + u32(self.base_hash_sel)
            + bytes(11)
            + bytes([self.mel_specification_sel, len(self.ext_asym_sel), len(self.ext_hash_sel)])
            + bytes(2)
            + tail
        )

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> Algorithms:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        if p2:
            raise MalformedSpdm("ALGORITHMS: reserved Param2 is not zero")
        length = r.u16("Length")
        if length != len(data):
            raise MalformedSpdm(f"ALGORITHMS: Length {length}, message {len(data)}")
        spec = r.u8("MeasurementSpecificationSel")
        other = r.u8("OtherParamsSelection")
        meas_hash = r.u32("MeasurementHashAlgo")
        asym = r.u32("BaseAsymSel")
        hash_algo = r.u32("BaseHashSel")
        r.zeros(11, "Reserved")
        mel = r.u8("MELspecificationSel")
        n_asym = r.u8("ExtAsymSelCount")
        n_hash = r.u8("ExtHashSelCount")
        r.zeros(2, "Reserved")
        ext_asym = tuple(ExtendedAlgorithm.read(r, f"ExtAsymSel {i}") for i in range(n_asym))
        ext_hash = tuple(ExtendedAlgorithm.read(r, f"ExtHashSel {i}") for i in range(n_hash))
        structs = tuple(AlgStructure.read(r, f"RespAlgStruct {i}") for i in range(p1))
        r.end()
        return cls(
            version, spec, other, meas_hash, asym, hash_algo, mel, ext_asym, ext_hash, structs
        )


# --- GET_DIGESTS / DIGESTS ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetDigests:
    """GET_DIGESTS: no fields."""

    version: SpdmVersion
    CODE: ClassVar[RequestResponseCode] = _CODE.GET_DIGESTS

    def __post_init__(self) -> None:
        _version(self.version, NEGOTIABLE, "GET_DIGESTS")

    def encode(self) -> bytes:
        return _header(self.version, self.CODE)

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> GetDigests:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        _no_params(p1, p2, "GET_DIGESTS")
        r.end()
        return cls(version)


@dataclass(frozen=True, slots=True)
class Digests:
    """DIGESTS: one certificate-chain digest per provisioned slot, in slot order.

    ``supported_slot_mask`` is Param1 in SPDM 1.3 and zero (reserved) in 1.2. The 1.3
    multi-key fields (KeyPairID, CertificateInfo, KeyUsageMask) are present only when
    MULTI_KEY_CONN was negotiated, which this package never offers.
    """

    version: SpdmVersion
    provisioned_slot_mask: int
    digests: tuple[bytes, ...]
    supported_slot_mask: int = 0
    CODE: ClassVar[RequestResponseCode] = _CODE.DIGESTS

    def __post_init__(self) -> None:
        _version(self.version, NEGOTIABLE, "DIGESTS")
        _uint(self.provisioned_slot_mask, 8, "DIGESTS slot mask")
        _uint(self.supported_slot_mask, 8, "DIGESTS supported slot mask")
        if self.provisioned_slot_mask.bit_count() != len(self.digests):
            raise MalformedSpdm("DIGESTS: slot mask and digest count disagree")
        if len({len(d) for d in self.digests}) > 1 or not all(
            isinstance(d, bytes) for d in self.digests
        ):
            raise MalformedSpdm("DIGESTS: digests must be bytes of one size")
        if self.version < SpdmVersion.V1_3:
            if self.supported_slot_mask:
                raise MalformedSpdm("DIGESTS: Param1 is reserved before SPDM 1.3")
        elif self.provisioned_slot_mask & ~self.supported_slot_mask:
            raise MalformedSpdm("DIGESTS: a provisioned slot is not a supported slot")

    def digest_for(self, slot_id: int) -> bytes | None:
        """The digest of ``slot_id``, or ``None`` when that slot is not provisioned."""
        if not 0 <= slot_id <= _MAX_SLOT or not self.provisioned_slot_mask >> slot_id & 1:
            return None
        below = self.provisioned_slot_mask & ((1 << slot_id) - 1)
        return self.digests[below.bit_count()]

    def encode(self) -> bytes:
        return _header(
            self.version, self.CODE, self.supported_slot_mask, self.provisioned_slot_mask
        ) + b"".join(self.digests)

    @classmethod
    def decode(cls, data: bytes, *, hash_size: int) -> Digests:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        digests = tuple(r.take(hash_size, f"Digest {i}") for i in range(p2.bit_count()))
        r.end()
        return cls(version, p2, digests, p1)


# --- GET_CERTIFICATE / CERTIFICATE ----------------------------------------------------------


def _check_slot(slot_id: int, what: str) -> None:
    _uint(slot_id, 4, f"{what} SlotID")
    if slot_id > _MAX_SLOT:
        raise MalformedSpdm(f"{what}: slot {slot_id} outside 0..7")


@dataclass(frozen=True, slots=True)
class GetCertificate:
    """GET_CERTIFICATE: a portion (Offset, Length) of the chain in ``slot_id``.

    ``slot_size_requested`` (1.3 Param2 bit 0) asks only for the chain's size.
    """

    version: SpdmVersion
    slot_id: int
    offset: int
    length: int
    slot_size_requested: bool = False
    CODE: ClassVar[RequestResponseCode] = _CODE.GET_CERTIFICATE

    def __post_init__(self) -> None:
        _version(self.version, NEGOTIABLE, "GET_CERTIFICATE")
        _check_slot(self.slot_id, "GET_CERTIFICATE")
        _uint(self.offset, 16, "GET_CERTIFICATE Offset")
        _uint(self.length, 16, "GET_CERTIFICATE Length")
        if self.slot_size_requested and self.version < SpdmVersion.V1_3:
            raise MalformedSpdm("GET_CERTIFICATE: SlotSizeRequested needs SPDM 1.3")

    def encode(self) -> bytes:
        return (
            _header(self.version, self.CODE, self.slot_id, int(self.slot_size_requested))
            + u16(self.offset)
            + u16(self.length)
        )

    @classmethod
    @_remembered
    def decode(cls, data: bytes) -> GetCertificate:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        if p1 & 0xF0:
            raise MalformedSpdm("GET_CERTIFICATE: reserved Param1 bits are set")
        if p2 & ~1 or (p2 and version < SpdmVersion.V1_3):
            raise MalformedSpdm("GET_CERTIFICATE: reserved Param2 bits are set")
        offset = r.u16("Offset")
        length = r.u16("Length")
        r.end()
        return cls(version, p1, offset, length, bool(p2))


@dataclass(frozen=True, slots=True)
class Certificate:
    """CERTIFICATE: one portion of the chain and how many bytes remain after it."""

    version: SpdmVersion
    slot_id: int
    portion: bytes
    remainder_length: int
    CODE: ClassVar[RequestResponseCode] = _CODE.CERTIFICATE

    def __post_init__(self) -> None:
        _version(self.version, NEGOTIABLE, "CERTIFICATE")
        _check_slot(self.slot_id, "CERTIFICATE")
        if not isinstance(self.portion, bytes) or len(self.portion) > 0xFFFF:
            raise MalformedSpdm("CERTIFICATE: portion must be bytes of at most 65535")
        _uint(self.remainder_length, 16, "CERTIFICATE RemainderLength")

    def encode(self) -> bytes:
        return (
            _header(self.version, self.CODE, self.slot_id)
            + u16(len(self.portion))
            + u16(self.remainder_length)
            + self.portion
        )

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        if p1 & 0xF0:
            raise MalformedSpdm("CERTIFICATE: reserved Param1 bits are set")
        # 1.3 Param2 carries CertificateInfo only under MULTI_KEY_CONN (never negotiated here).
        if p2:
            raise MalformedSpdm("CERTIFICATE: reserved Param2 is not zero")
        portion_length = r.u16("PortionLength")
        remainder = r.u16("RemainderLength")
        portion = r.take(portion_length, "CertChain")
        r.end()
        return cls(version, p1, portion, remainder)


# --- GET_MEASUREMENTS / MEASUREMENTS --------------------------------------------------------


def _has_context(version: SpdmVersion) -> bool:
    return version >= SpdmVersion.V1_3


def _check_context(version: SpdmVersion, context: bytes | None, what: str) -> None:
    if _has_context(version):
        if not isinstance(context, bytes) or len(context) != REQUESTER_CONTEXT_SIZE:
            raise MalformedSpdm(f"{what}: SPDM 1.3 needs an 8-byte RequesterContext")
    elif context is not None:
        raise MalformedSpdm(f"{what}: RequesterContext exists only from SPDM 1.3")


@dataclass(frozen=True, slots=True)
class GetMeasurements:
    """GET_MEASUREMENTS: ``operation`` 0 = count, 1..254 = one index, 255 = all.

    ``nonce`` and ``slot_id`` are on the wire only when a signature is requested.
    """

    version: SpdmVersion
    operation: int
    signature_requested: bool
    nonce: bytes | None = None
    slot_id: int = 0
    raw_bit_stream_requested: bool = False
    new_measurement_requested: bool = False
    requester_context: bytes | None = None
    CODE: ClassVar[RequestResponseCode] = _CODE.GET_MEASUREMENTS

    def __post_init__(self) -> None:
        what = "GET_MEASUREMENTS"
        _version(self.version, MEASUREMENT_VERSIONS, what)
        _uint(self.operation, 8, f"{what} operation")
        if self.signature_requested:
            if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_SIZE:
                raise MalformedSpdm(f"{what}: a signed request carries a 32-byte nonce")
            _uint(self.slot_id, 4, f"{what} SlotID")
            if self.slot_id > _MAX_SLOT and self.slot_id != SLOT_ID_PUBLIC_KEY:
                raise MalformedSpdm(f"{what}: SlotID {self.slot_id} is neither 0..7 nor 0xF")
            if self.slot_id != 0 and self.version == SpdmVersion.V1_0:
                raise MalformedSpdm(f"{what}: SPDM 1.0 has no SlotIDParam")
        elif self.nonce is not None or self.slot_id != 0:
            raise MalformedSpdm(f"{what}: nonce and SlotID exist only in signed requests")
        if self.raw_bit_stream_requested and self.version < SpdmVersion.V1_2:
            raise MalformedSpdm(f"{what}: RawBitStreamRequested needs SPDM 1.2")
        if self.new_measurement_requested and self.version < SpdmVersion.V1_3:
            raise MalformedSpdm(f"{what}: NewMeasurementRequested needs SPDM 1.3")
        _check_context(self.version, self.requester_context, what)

    @property
    def attributes(self) -> int:
        return (
            (ATTR_GENERATE_SIGNATURE if self.signature_requested else 0)
            | (ATTR_RAW_BIT_STREAM_REQUESTED if self.raw_bit_stream_requested else 0)
            | (ATTR_NEW_MEASUREMENT_REQUESTED if self.new_measurement_requested else 0)
        )

    def encode(self) -> bytes:
        out = _header(self.version, self.CODE, self.attributes, self.operation)
        if self.signature_requested:
            assert self.nonce is not None
            out += self.nonce
            if self.version >= SpdmVersion.V1_1:
                out += bytes([self.slot_id])
        if self.requester_context is not None:
            out += self.requester_context
        return out

    @classmethod
    def decode(
        cls, data: bytes, *, versions: frozenset[SpdmVersion] = NEGOTIABLE
    ) -> GetMeasurements:
        """Parse; ``versions`` (default 1.2 and 1.3) may add 1.0/1.1 for recorded reports."""
        version, attributes, operation, r = _open(data, cls.CODE, versions & MEASUREMENT_VERSIONS)
        known = ATTR_GENERATE_SIGNATURE
        if version >= SpdmVersion.V1_2:
            known |= ATTR_RAW_BIT_STREAM_REQUESTED
        if version >= SpdmVersion.V1_3:
            known |= ATTR_NEW_MEASUREMENT_REQUESTED
        if attributes & ~known:
            raise MalformedSpdm("GET_MEASUREMENTS: reserved attribute bits are set")
        signed = bool(attributes & ATTR_GENERATE_SIGNATURE)
        nonce: bytes | None = None
        slot_id = 0
        if signed:
            nonce = r.take(NONCE_SIZE, "Nonce")
            slot_param = r.u8("SlotIDParam") if version >= SpdmVersion.V1_1 else 0
            if slot_param & 0xF0:
                raise MalformedSpdm("GET_MEASUREMENTS: reserved SlotIDParam bits are set")
            slot_id = slot_param
        context = (
            r.take(REQUESTER_CONTEXT_SIZE, "RequesterContext") if _has_context(version) else None
        )
        r.end()
        return cls(
            version,
            operation,
            signed,
            nonce,
            slot_id,
            bool(attributes & ATTR_RAW_BIT_STREAM_REQUESTED),
            bool(attributes & ATTR_NEW_MEASUREMENT_REQUESTED),
            context,
        )


# MEASUREMENTS Param2: 1.0 reserves all of it, 1.1 has the slot id (bits 3..0), 1.2 adds
# ContentChanged (bits 5..4).
_MEASUREMENTS_PARAM2_RESERVED: Final = {
    SpdmVersion.V1_0: 0xFF,
    SpdmVersion.V1_1: 0xF0,
    SpdmVersion.V1_2: 0xC0,
    SpdmVersion.V1_3: 0xC0,
}


@dataclass(frozen=True, slots=True)
class Measurements:
    """MEASUREMENTS: the measurement record, the responder's nonce, opaque data, signature.

    ``total_measurements`` is Param1 (the answer to operation 0); ``slot_id`` and
    ``content_changed`` share Param2 (bits 3..0 and 5..4).
    """

    version: SpdmVersion
    blocks: tuple[AnyMeasurementBlock, ...]
    nonce: bytes
    opaque_data: bytes = b""
    requester_context: bytes | None = None
    signature: bytes = b""
    total_measurements: int = 0
    slot_id: int = 0
    content_changed: int = 0
    CODE: ClassVar[RequestResponseCode] = _CODE.MEASUREMENTS

    def __post_init__(self) -> None:
        what = "MEASUREMENTS"
        _version(self.version, MEASUREMENT_VERSIONS, what)
        if len(self.blocks) > 0xFF or not all(
            isinstance(b, (MeasurementBlock, UnknownMeasurementBlock)) for b in self.blocks
        ):
            raise MalformedSpdm(f"{what}: at most 255 measurement blocks")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_SIZE:
            raise MalformedSpdm(f"{what}: nonce must be 32 bytes")
        if not isinstance(self.opaque_data, bytes) or len(self.opaque_data) > MAX_OPAQUE_DATA_SIZE:
            raise MalformedSpdm(f"{what}: opaque data longer than {MAX_OPAQUE_DATA_SIZE} bytes")
        _check_context(self.version, self.requester_context, what)
        if not isinstance(self.signature, bytes):
            raise MalformedSpdm(f"{what}: signature must be bytes")
        _uint(self.total_measurements, 8, f"{what} TotalNumberOfMeasurement")
        _uint(self.slot_id, 4, f"{what} SlotID")
        _uint(self.content_changed, 2, f"{what} ContentChanged")
        if self.content_changed == 3:
            raise MalformedSpdm(f"{what}: ContentChanged value 3 is reserved")
        if self.content_changed and self.version < SpdmVersion.V1_2:
            raise MalformedSpdm(f"{what}: ContentChanged needs SPDM 1.2")
        if self.slot_id and self.version == SpdmVersion.V1_0:
            raise MalformedSpdm(f"{what}: SPDM 1.0 carries no SlotID")
        # Each block is Index, Specification, MeasurementSize, value type and size: 7 bytes.
        if sum(len(block.value) + 7 for block in self.blocks) > 0xFFFFFF:
            raise MalformedSpdm(f"{what}: measurement record longer than 2**24 - 1")

    def encode_unsigned(self) -> bytes:
        """The message without its signature: what enters the L1/L2 transcript."""
        record = encode_measurement_record(self.blocks)
        out = (
            _header(
                self.version,
                self.CODE,
                self.total_measurements,
                self.slot_id | self.content_changed << 4,
            )
            + bytes([len(self.blocks)])
            + u24(len(record))
            + record
            + self.nonce
            + u16(len(self.opaque_data))
            + self.opaque_data
        )
        if self.requester_context is not None:
            out += self.requester_context
        return out

    def encode(self) -> bytes:
        return self.encode_unsigned() + self.signature

    @classmethod
    def decode(
        cls,
        data: bytes,
        *,
        signature_size: int,
        measurement_hash_algo: MeasurementHashAlgo | None = None,
        versions: frozenset[SpdmVersion] = NEGOTIABLE,
    ) -> Measurements:
        """Parse; ``signature_size`` is 0 for an unsigned response; ``versions`` (default 1.2
        and 1.3) may add 1.0/1.1 for recorded reports."""
        version, p1, p2, r = _open(data, cls.CODE, versions & MEASUREMENT_VERSIONS)
        if p2 & _MEASUREMENTS_PARAM2_RESERVED[version]:
            raise MalformedSpdm("MEASUREMENTS: reserved Param2 bits are set")
        count = r.u8("NumberOfBlocks")
        record = r.take(r.u24("MeasurementRecordLength"), "MeasurementRecord")
        blocks = decode_measurement_record(
            record, count, version=version, measurement_hash_algo=measurement_hash_algo
        )
        nonce = r.take(NONCE_SIZE, "Nonce")
        opaque_length = r.u16("OpaqueDataLength")
        if opaque_length > MAX_OPAQUE_DATA_SIZE:
            raise MalformedSpdm(f"MEASUREMENTS: OpaqueDataLength {opaque_length} over 1024")
        opaque = r.take(opaque_length, "OpaqueData")
        context = (
            r.take(REQUESTER_CONTEXT_SIZE, "RequesterContext") if _has_context(version) else None
        )
        signature = r.take(signature_size, "Signature")
        r.end()
        return cls(
            version, blocks, nonce, opaque, context, signature, p1, p2 & 0xF, (p2 >> 4) & 0x3
        )


# --- CHALLENGE / CHALLENGE_AUTH -------------------------------------------------------------

_SUMMARY_TYPES: Final = frozenset(int(t) for t in MeasurementSummaryHashType)
BASIC_MUT_AUTH_REQ: Final = 0x80


def _check_challenge_slot(slot_id: int, what: str) -> None:
    _uint(slot_id, 8, f"{what} SlotID")
    if slot_id > _MAX_SLOT and slot_id != 0xFF:
        raise MalformedSpdm(f"{what}: SlotID {slot_id} is neither 0..7 nor 0xFF")


@dataclass(frozen=True, slots=True)
class Challenge:
    """CHALLENGE: authenticate the responder's key in ``slot_id`` over M1/M2, with the
    requester's ``nonce`` and, when asked, a summary hash of its measurements."""

    version: SpdmVersion
    slot_id: int
    measurement_summary_hash_type: MeasurementSummaryHashType
    nonce: bytes
    requester_context: bytes | None = None
    CODE: ClassVar[RequestResponseCode] = _CODE.CHALLENGE

    def __post_init__(self) -> None:
        what = "CHALLENGE"
        _version(self.version, NEGOTIABLE, what)
        _check_challenge_slot(self.slot_id, what)
        if not isinstance(self.measurement_summary_hash_type, MeasurementSummaryHashType):
            raise MalformedSpdm(f"{what}: measurement summary hash type must be 0, 1 or 0xFF")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_SIZE:
            raise MalformedSpdm(f"{what}: the nonce is 32 bytes")
        _check_context(self.version, self.requester_context, what)

    def encode(self) -> bytes:
        out = (
            _header(self.version, self.CODE, self.slot_id, self.measurement_summary_hash_type)
            + self.nonce
        )
        if self.requester_context is not None:
            out += self.requester_context
        return out

    @classmethod
    def decode(cls, data: bytes) -> Challenge:
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        if p2 not in _SUMMARY_TYPES:
            raise MalformedSpdm(f"CHALLENGE: measurement summary hash type {p2:#04x} is reserved")
        nonce = r.take(NONCE_SIZE, "Nonce")
        context = (
            r.take(REQUESTER_CONTEXT_SIZE, "RequesterContext") if _has_context(version) else None
        )
        r.end()
        return cls(version, p1, MeasurementSummaryHashType(p2), nonce, context)


@dataclass(frozen=True, slots=True)
class ChallengeAuth:
    """CHALLENGE_AUTH: the hash of the slot's certificate chain, the responder's nonce, the
    measurement summary hash (empty when none was asked), opaque data and the signature.

    ``slot_id`` (Param1 bits 3..0) is the slot that signed, ``slot_mask`` (Param2) the
    provisioned slots; ``basic_mut_auth_requested`` is Param1 bit 7 (deprecated since 1.2).
    """

    version: SpdmVersion
    slot_id: int
    slot_mask: int
    cert_chain_hash: bytes
    nonce: bytes
    measurement_summary_hash: bytes = b""
    opaque_data: bytes = b""
    requester_context: bytes | None = None
    signature: bytes = b""
    basic_mut_auth_requested: bool = False
    CODE: ClassVar[RequestResponseCode] = _CODE.CHALLENGE_AUTH

    def __post_init__(self) -> None:
        what = "CHALLENGE_AUTH"
        _version(self.version, NEGOTIABLE, what)
        _uint(self.slot_id, 4, f"{what} SlotID")
        if self.slot_id > _MAX_SLOT and self.slot_id != 0xF:
            raise MalformedSpdm(f"{what}: SlotID {self.slot_id} is neither 0..7 nor 0xF")
        _uint(self.slot_mask, 8, f"{what} SlotMask")
        for name in ("cert_chain_hash", "measurement_summary_hash", "opaque_data", "signature"):
            if not isinstance(getattr(self, name), bytes):
                raise MalformedSpdm(f"{what}: {name} must be bytes")
        if not self.cert_chain_hash:
            raise MalformedSpdm(f"{what}: CertChainHash is empty")
        if self.measurement_summary_hash and len(self.measurement_summary_hash) != len(
            self.cert_chain_hash
        ):
            raise MalformedSpdm(f"{what}: the summary hash and CertChainHash differ in size")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_SIZE:
            raise MalformedSpdm(f"{what}: the nonce is 32 bytes")
        if len(self.opaque_data) > MAX_OPAQUE_DATA_SIZE:
            raise MalformedSpdm(f"{what}: opaque data longer than {MAX_OPAQUE_DATA_SIZE} bytes")
        _check_context(self.version, self.requester_context, what)
        if not isinstance(self.basic_mut_auth_requested, bool):
            raise MalformedSpdm(f"{what}: BasicMutAuthReq must be a bool")

    def encode_unsigned(self) -> bytes:
        """The message without its signature: what enters M1/M2 (as C's second half)."""
        attributes = self.slot_id | (BASIC_MUT_AUTH_REQ if self.basic_mut_auth_requested else 0)
        out = (
            _header(self.version, self.CODE, attributes, self.slot_mask)
            + self.cert_chain_hash
            + self.nonce
            + self.measurement_summary_hash
            + u16(len(self.opaque_data))
            + self.opaque_data
        )
        if self.requester_context is not None:
            out += self.requester_context
        return out

    def encode(self) -> bytes:
        return self.encode_unsigned() + self.signature

    @classmethod
    def decode(
        cls, data: bytes, *, hash_size: int, signature_size: int, summary_requested: bool
    ) -> ChallengeAuth:
        """Parse; ``summary_requested`` is whether the CHALLENGE asked for a summary hash."""
        version, p1, p2, r = _open(data, cls.CODE, NEGOTIABLE)
        if p1 & 0x70:
            raise MalformedSpdm("CHALLENGE_AUTH: reserved Param1 bits are set")
        cert_chain_hash = r.take(hash_size, "CertChainHash")
        nonce = r.take(NONCE_SIZE, "Nonce")
        summary = r.take(hash_size, "MeasurementSummaryHash") if summary_requested else b""
        opaque_length = r.u16("OpaqueDataLength")
        if opaque_length > MAX_OPAQUE_DATA_SIZE:
            raise MalformedSpdm(f"CHALLENGE_AUTH: OpaqueDataLength {opaque_length} over 1024")
        opaque = r.take(opaque_length, "OpaqueData")
        context = (
            r.take(REQUESTER_CONTEXT_SIZE, "RequesterContext") if _has_context(version) else None
        )
        signature = r.take(signature_size, "Signature")
        r.end()
        return cls(
            version,
            p1 & 0x0F,
            p2,
            cert_chain_hash,
            nonce,
            summary,
            opaque,
            context,
            signature,
            bool(p1 & BASIC_MUT_AUTH_REQ),
        )


# --- ERROR ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """ERROR: ErrorCode, ErrorData and up to 32 bytes of ExtendedErrorData."""

    version: SpdmVersion
    error_code: int
    error_data: int = 0
    extended_data: bytes = b""
    CODE: ClassVar[RequestResponseCode] = _CODE.ERROR

    def __post_init__(self) -> None:
        _version(self.version, _ANY, "ERROR")
        _uint(self.error_code, 8, "ERROR ErrorCode")
        _uint(self.error_data, 8, "ERROR ErrorData")
        if not isinstance(self.extended_data, bytes) or len(self.extended_data) > 32:
            raise MalformedSpdm("ERROR: ExtendedErrorData is at most 32 bytes")
        if self.error_code not in _ERROR_CODES:
            raise MalformedSpdm(f"ERROR: ErrorCode {self.error_code:#04x} is reserved")

    @property
    def name(self) -> str:
        try:
            return ErrorCode(self.error_code).name
        except ValueError:
            return f"0x{self.error_code:02X}"

    def encode(self) -> bytes:
        return _header(self.version, self.CODE, self.error_code, self.error_data) + (
            self.extended_data
        )

    @classmethod
    def decode(cls, data: bytes) -> ErrorResponse:
        version, p1, p2, r = _open(data, cls.CODE, _ANY)
        extended = r.take(min(r.remaining, _MAX_EXTENDED_ERROR_DATA), "ExtendedErrorData")
        r.end()
        return cls(version, p1, p2, extended)
