"""SPDM code points (DMTF DSP0274 1.2 / 1.3): versions, request/response codes, error codes,
capability flags, algorithm bits and DMTF measurement value types, plus the hash functions
they name.

Every number here is a fact from DSP0274 (cross-checked against the DMTF libspdm header
``industry_standard/spdm.h``); names follow the specification's field names.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Final

from ironroot.crypto import Algorithm
from ironroot.errors import MalformedSpdm, UnsupportedAlgorithm

__all__ = [
    "MEASUREMENT_SPECIFICATION_DMTF",
    "NONCE_SIZE",
    "REQUESTER_CONTEXT_SIZE",
    "BaseAsymAlgo",
    "BaseHashAlgo",
    "CapabilityFlag",
    "ErrorCode",
    "MeasurementHashAlgo",
    "MeasurementSummaryHashType",
    "MeasurementValueType",
    "OpaqueDataFormat",
    "RequestResponseCode",
    "SpdmVersion",
]

NONCE_SIZE: Final = 32
REQUESTER_CONTEXT_SIZE: Final = 8  # SPDM 1.3 RequesterContext
MEASUREMENT_SPECIFICATION_DMTF: Final = 0x01
MAX_OPAQUE_DATA_SIZE: Final = 1024  # DSP0274: OpaqueDataLength shall not exceed 1024
MIN_DATA_TRANSFER_SIZE: Final = 42  # DSP0274 1.2: MinDataTransferSize
MAX_CERT_CHAIN_SIZE: Final = 0xFFFF  # 1.2 / 1.3: Length of the chain is two bytes
# A + B + L1/L2 held for one connection. DSP0274 sets no maximum; a whole chain fetched in the
# smallest portions (MinDataTransferSize) is about 112 KiB of B, so 1 MiB leaves room for every
# honest run while a peer repeating GET_CERTIFICATE or unsigned GET_MEASUREMENTS cannot grow it.
MAX_TRANSCRIPT_SIZE: Final = 1 << 20


class SpdmVersion(enum.IntEnum):
    """SPDMVersion byte: major version in the high nibble, minor in the low nibble."""

    V1_0 = 0x10
    V1_1 = 0x11
    V1_2 = 0x12
    V1_3 = 0x13

    @property
    def label(self) -> str:
        return f"{self.value >> 4}.{self.value & 0xF}"


# Versions this package negotiates; GET_VERSION / VERSION always travel as 1.0.
NEGOTIABLE: Final = frozenset({SpdmVersion.V1_2, SpdmVersion.V1_3})
# Versions whose GET_MEASUREMENTS / MEASUREMENTS this package decodes: 1.0 and 1.1 only as
# recorded exchanges (MeasurementReport), never in a live session.
MEASUREMENT_VERSIONS: Final = frozenset(SpdmVersion)


class RequestResponseCode(enum.IntEnum):
    """RequestResponseCode byte of the messages this package speaks."""

    DIGESTS = 0x01
    CERTIFICATE = 0x02
    CHALLENGE_AUTH = 0x03
    VERSION = 0x04
    MEASUREMENTS = 0x60
    CAPABILITIES = 0x61
    ALGORITHMS = 0x63
    ERROR = 0x7F
    GET_DIGESTS = 0x81
    GET_CERTIFICATE = 0x82
    CHALLENGE = 0x83
    GET_VERSION = 0x84
    GET_MEASUREMENTS = 0xE0
    GET_CAPABILITIES = 0xE1
    NEGOTIATE_ALGORITHMS = 0xE3


class ErrorCode(enum.IntEnum):
    """ErrorCode (Param1) of an ERROR response, SPDM 1.0 to 1.3."""

    INVALID_REQUEST = 0x01
    BUSY = 0x03
    UNEXPECTED_REQUEST = 0x04
    UNSPECIFIED = 0x05
    DECRYPT_ERROR = 0x06
    UNSUPPORTED_REQUEST = 0x07
    REQUEST_IN_FLIGHT = 0x08
    INVALID_RESPONSE_CODE = 0x09
    SESSION_LIMIT_EXCEEDED = 0x0A
    SESSION_REQUIRED = 0x0B
    RESET_REQUIRED = 0x0C
    RESPONSE_TOO_LARGE = 0x0D
    REQUEST_TOO_LARGE = 0x0E
    LARGE_RESPONSE = 0x0F
    MESSAGE_LOST = 0x10
    INVALID_POLICY = 0x11
    VERSION_MISMATCH = 0x41
    RESPONSE_NOT_READY = 0x42
    REQUEST_RESYNCH = 0x43
    OPERATION_FAILED = 0x44
    NO_PENDING_REQUESTS = 0x45
    VENDOR_DEFINED = 0xFF


class CapabilityFlag(enum.IntFlag):
    """Flags of GET_CAPABILITIES / CAPABILITIES (the responder's meaning where they differ)."""

    CACHE_CAP = 0x0000_0001
    CERT_CAP = 0x0000_0002
    CHAL_CAP = 0x0000_0004
    MEAS_CAP_NO_SIG = 0x0000_0008
    MEAS_CAP_SIG = 0x0000_0010
    MEAS_FRESH_CAP = 0x0000_0020
    ENCRYPT_CAP = 0x0000_0040
    MAC_CAP = 0x0000_0080
    MUT_AUTH_CAP = 0x0000_0100
    KEY_EX_CAP = 0x0000_0200
    PSK_CAP_RESPONDER = 0x0000_0400
    PSK_CAP_RESPONDER_WITH_CONTEXT = 0x0000_0800
    ENCAP_CAP = 0x0000_1000
    HBEAT_CAP = 0x0000_2000
    KEY_UPD_CAP = 0x0000_4000
    HANDSHAKE_IN_THE_CLEAR_CAP = 0x0000_8000
    PUB_KEY_ID_CAP = 0x0001_0000
    CHUNK_CAP = 0x0002_0000
    ALIAS_CERT_CAP = 0x0004_0000
    SET_CERT_CAP = 0x0008_0000
    CSR_CAP = 0x0010_0000
    CERT_INSTALL_RESET_CAP = 0x0020_0000
    EP_INFO_CAP_NO_SIG = 0x0040_0000
    EP_INFO_CAP_SIG = 0x0080_0000
    MEL_CAP = 0x0100_0000
    EVENT_CAP = 0x0200_0000
    MULTI_KEY_CAP_ONLY = 0x0400_0000
    MULTI_KEY_CAP_NEG = 0x0800_0000
    GET_KEY_PAIR_INFO_CAP = 0x1000_0000
    SET_KEY_PAIR_INFO_CAP = 0x2000_0000


MEAS_CAP_MASK: Final = CapabilityFlag.MEAS_CAP_NO_SIG | CapabilityFlag.MEAS_CAP_SIG


class BaseAsymAlgo(enum.IntFlag):
    """BaseAsymAlgo / BaseAsymSel bits (NEGOTIATE_ALGORITHMS / ALGORITHMS)."""

    RSASSA_2048 = 0x0000_0001
    RSAPSS_2048 = 0x0000_0002
    RSASSA_3072 = 0x0000_0004
    RSAPSS_3072 = 0x0000_0008
    ECDSA_P256 = 0x0000_0010
    RSASSA_4096 = 0x0000_0020
    RSAPSS_4096 = 0x0000_0040
    ECDSA_P384 = 0x0000_0080
    ECDSA_P521 = 0x0000_0100
    SM2_P256 = 0x0000_0200
    EDDSA_ED25519 = 0x0000_0400
    EDDSA_ED448 = 0x0000_0800


class BaseHashAlgo(enum.IntFlag):
    """BaseHashAlgo / BaseHashSel bits."""

    SHA_256 = 0x01
    SHA_384 = 0x02
    SHA_512 = 0x04
    SHA3_256 = 0x08
    SHA3_384 = 0x10
    SHA3_512 = 0x20
    SM3_256 = 0x40


class MeasurementHashAlgo(enum.IntFlag):
    """MeasurementHashAlgo bits (ALGORITHMS); bit 0 means raw bit streams only."""

    RAW_BIT_STREAM_ONLY = 0x01
    SHA_256 = 0x02
    SHA_384 = 0x04
    SHA_512 = 0x08
    SHA3_256 = 0x10
    SHA3_384 = 0x20
    SHA3_512 = 0x40
    SM3_256 = 0x80


class OpaqueDataFormat(enum.IntFlag):
    """OtherParamsSupport / OtherParamsSelection bits 0..3: the opaque data format."""

    FORMAT_0 = 0x01  # vendor-defined
    FORMAT_1 = 0x02  # DMTF general opaque data format


OPAQUE_FORMAT_MASK: Final = 0x0F
MULTI_KEY_CONN: Final = 0x10  # SPDM 1.3 OtherParams bit 4


class MeasurementSummaryHashType(enum.IntEnum):
    """CHALLENGE Param2: which measurements the CHALLENGE_AUTH summary hash covers."""

    NONE = 0x00
    TCB = 0x01  # the measurements of the components in the device's TCB
    ALL = 0xFF


class MeasurementValueType(enum.IntEnum):
    """DMTFSpecMeasurementValueType bits 6..0 (bit 7 is the raw bit-stream flag)."""

    IMMUTABLE_ROM = 0
    MUTABLE_FIRMWARE = 1
    HARDWARE_CONFIG = 2
    FIRMWARE_CONFIG = 3
    MEASUREMENT_MANIFEST = 4
    DEVICE_MODE = 5  # 1.2
    VERSION = 6  # 1.2
    SECURE_VERSION_NUMBER = 7  # 1.2
    HASH_EXTEND_MEASUREMENT = 8  # 1.3
    INFORMATIONAL = 9  # 1.3
    STRUCTURED_MEASUREMENT_MANIFEST = 10  # 1.3


RAW_BIT_STREAM: Final = 0x80
VALUE_TYPE_MASK: Final = 0x7F
# Value types first defined in SPDM 1.3: a 1.2 message carrying one is malformed.
TYPES_SINCE_1_2: Final = frozenset(
    {
        MeasurementValueType.DEVICE_MODE,
        MeasurementValueType.VERSION,
        MeasurementValueType.SECURE_VERSION_NUMBER,
    }
)
TYPES_SINCE_1_3: Final = frozenset(
    {
        MeasurementValueType.HASH_EXTEND_MEASUREMENT,
        MeasurementValueType.INFORMATIONAL,
        MeasurementValueType.STRUCTURED_MEASUREMENT_MANIFEST,
    }
)

# --- hashes ---------------------------------------------------------------------------------

_BASE_HASHES: Final[dict[BaseHashAlgo, tuple[str, int]]] = {
    BaseHashAlgo.SHA_256: ("sha256", 32),
    BaseHashAlgo.SHA_384: ("sha384", 48),
    BaseHashAlgo.SHA_512: ("sha512", 64),
    BaseHashAlgo.SHA3_256: ("sha3_256", 32),
    BaseHashAlgo.SHA3_384: ("sha3_384", 48),
    BaseHashAlgo.SHA3_512: ("sha3_512", 64),
}
_MEASUREMENT_HASHES: Final[dict[MeasurementHashAlgo, tuple[str, int]]] = {
    MeasurementHashAlgo.SHA_256: ("sha256", 32),
    MeasurementHashAlgo.SHA_384: ("sha384", 48),
    MeasurementHashAlgo.SHA_512: ("sha512", 64),
    MeasurementHashAlgo.SHA3_256: ("sha3_256", 32),
    MeasurementHashAlgo.SHA3_384: ("sha3_384", 48),
    MeasurementHashAlgo.SHA3_512: ("sha3_512", 64),
}


def base_hash_size(algo: BaseHashAlgo) -> int:
    entry = _BASE_HASHES.get(algo)
    if entry is None:
        raise UnsupportedAlgorithm(f"unsupported SPDM base hash {int(algo):#x}")
    return entry[1]


def base_hash(algo: BaseHashAlgo, data: bytes) -> bytes:
    entry = _BASE_HASHES.get(algo)
    if entry is None:
        raise UnsupportedAlgorithm(f"unsupported SPDM base hash {int(algo):#x}")
    return hashlib.new(entry[0], data).digest()


def measurement_hash_size(algo: MeasurementHashAlgo) -> int | None:
    """Digest size of ``algo``; ``None`` for raw-bit-stream-only."""
    if algo == MeasurementHashAlgo.RAW_BIT_STREAM_ONLY:
        return None
    entry = _MEASUREMENT_HASHES.get(algo)
    if entry is None:
        raise UnsupportedAlgorithm(f"unsupported SPDM measurement hash {int(algo):#x}")
    return entry[1]


def measurement_hash(algo: MeasurementHashAlgo, data: bytes) -> bytes:
    entry = _MEASUREMENT_HASHES.get(algo)
    if entry is None:
        raise UnsupportedAlgorithm(f"no digest for SPDM measurement hash {int(algo):#x}")
    return hashlib.new(entry[0], data).digest()


# --- signing suites -------------------------------------------------------------------------
# ironroot.crypto binds each ECDSA curve to one hash (ES256 = P-256/SHA-256, ES384 =
# P-384/SHA-384, ES512 = P-521/SHA-512), and SPDM's ECDSA hashes the signed message with the
# negotiated BaseHashAlgo: so a suite is a (BaseAsymAlgo, BaseHashAlgo) pair of the same size.
# ECDSA signatures in SPDM are r || s, big-endian, fixed width: the COSE encoding.

SIGNING_SUITES: Final[dict[BaseAsymAlgo, tuple[Algorithm, BaseHashAlgo, int]]] = {
    BaseAsymAlgo.ECDSA_P256: (Algorithm.ES256, BaseHashAlgo.SHA_256, 64),
    BaseAsymAlgo.ECDSA_P384: (Algorithm.ES384, BaseHashAlgo.SHA_384, 96),
    BaseAsymAlgo.ECDSA_P521: (Algorithm.ES512, BaseHashAlgo.SHA_512, 132),
}
ASYM_FOR_ALGORITHM: Final[dict[Algorithm, BaseAsymAlgo]] = {
    alg: asym for asym, (alg, _, _) in SIGNING_SUITES.items()
}


def version_from_byte(value: int, allowed: frozenset[SpdmVersion], what: str) -> SpdmVersion:
    """The SPDMVersion of a message, if ``allowed`` holds it; else :class:`MalformedSpdm`."""
    version = _VERSIONS.get(value)
    if version is None:
        raise MalformedSpdm(f"{what}: unsupported SPDMVersion {value:#04x}")
    if version not in allowed:
        raise MalformedSpdm(f"{what}: SPDMVersion {version.label} not allowed here")
    return version


_VERSIONS: Final[dict[int, SpdmVersion]] = {int(v): v for v in SpdmVersion}


def single_bit(value: int) -> bool:
    """``True`` when exactly one bit of ``value`` is set."""
    return value != 0 and value & (value - 1) == 0
