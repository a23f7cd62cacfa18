"""COSE header parameter labels, CWT claim keys and COSE hash algorithm ids used by Ironroot.

Values from the IANA COSE Header Parameters registry (RFC 9052, RFC 9360, RFC 9597,
RFC 9995, RFC 9942, RFC 9943), the CWT Claims registry (RFC 8392) and the COSE Algorithms
registry (RFC 9054 hash algorithms).
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = [
    "ALG",
    "CONTENT_TYPE",
    "CRIT",
    "CWT_AUD",
    "CWT_CLAIMS",
    "CWT_CTI",
    "CWT_EXP",
    "CWT_IAT",
    "CWT_ISS",
    "CWT_NBF",
    "CWT_SUB",
    "HASH_SHA256",
    "HASH_SHA384",
    "HASH_SHA512",
    "KID",
    "PAYLOAD_HASH_ALG",
    "PAYLOAD_LOCATION",
    "PREIMAGE_CONTENT_TYPE",
    "RECEIPTS",
    "VDP",
    "VDS",
    "VDS_RFC9162_SHA256",
    "X5CHAIN",
    "X5T",
]

# COSE header parameters
ALG: Final = 1
CRIT: Final = 2
CONTENT_TYPE: Final = 3
KID: Final = 4
CWT_CLAIMS: Final = 15  # RFC 9597
X5CHAIN: Final = 33  # RFC 9360
X5T: Final = 34  # RFC 9360
PAYLOAD_HASH_ALG: Final = 258  # RFC 9995 hash envelope
PREIMAGE_CONTENT_TYPE: Final = 259
PAYLOAD_LOCATION: Final = 260
RECEIPTS: Final = 394  # RFC 9942
VDS: Final = 395
VDP: Final = 396

# verifiable data structures (RFC 9942) and their proof labels inside vdp
VDS_RFC9162_SHA256: Final = 1
VDP_INCLUSION: Final = -1
VDP_CONSISTENCY: Final = -2

# CWT claims (RFC 8392)
CWT_ISS: Final = 1
CWT_SUB: Final = 2
CWT_AUD: Final = 3
CWT_EXP: Final = 4
CWT_NBF: Final = 5
CWT_IAT: Final = 6
CWT_CTI: Final = 7

# COSE hash algorithms (RFC 9054)
HASH_SHA256: Final = -16
HASH_SHA384: Final = -43
HASH_SHA512: Final = -44

HASH_NAMES: Final[dict[int, str]] = {
    HASH_SHA256: "sha256",
    HASH_SHA384: "sha384",
    HASH_SHA512: "sha512",
}
HASH_SIZES: Final[dict[int, int]] = {
    alg: hashlib.new(name).digest_size for alg, name in HASH_NAMES.items()
}
