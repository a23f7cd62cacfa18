"""COSE for Ironroot: strict CBOR, COSE_Sign1, COSE_Sign, SCITT Signed and Transparent Statements,
hash envelopes, did:x509 and x5chain checks, RFC 9942 receipts, key sets and problem details.

Everything here is pure: bytes and values in, values out or a typed
:mod:`ironroot.errors` exception.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, decode_cbor, encode_cbor
    from ironroot.cose._headers import (
        ALG,
        CONTENT_TYPE,
        CRIT,
        CWT_CLAIMS,
        HASH_SHA256,
        HASH_SHA384,
        HASH_SHA512,
        KID,
        PAYLOAD_HASH_ALG,
        PAYLOAD_LOCATION,
        PREIMAGE_CONTENT_TYPE,
        RECEIPTS,
        VDP,
        VDS,
        VDS_RFC9162_SHA256,
        X5CHAIN,
        X5T,
    )
    from ironroot.cose._keyset import decode_key_set, encode_key_set
    from ironroot.cose._problem import Problem
    from ironroot.cose._receipt import (
        ConsistencyProof,
        InclusionProof,
        Receipt,
        build_receipt,
        receipt_protected_header,
        receipt_to_be_signed,
        verify_receipt,
    )
    from ironroot.cose._sign import COSE_SIGN_TAG, CoseSign, CoseSignature, cose_sign
    from ironroot.cose._sign1 import COSE_SIGN1_TAG, Sign1, sign1
    from ironroot.cose._statement import CwtClaims, HashEnvelope, SignedStatement, create_statement
    from ironroot.cose._transparent import (
        TransparentStatement,
        make_transparent,
        on_trusted_log,
        verify_transparent_statement,
    )
    from ironroot.cose._x509 import verify_did_x509, verify_x5chain

__all__ = [
    "ALG",
    "CONTENT_TYPE",
    "COSE_SIGN1_TAG",
    "COSE_SIGN_TAG",
    "CRIT",
    "CWT_CLAIMS",
    "DEFAULT_LIMITS",
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
    "ConsistencyProof",
    "CoseSign",
    "CoseSignature",
    "CwtClaims",
    "HashEnvelope",
    "InclusionProof",
    "Limits",
    "Problem",
    "Receipt",
    "Sign1",
    "SignedStatement",
    "TransparentStatement",
    "build_receipt",
    "cose_sign",
    "create_statement",
    "decode_cbor",
    "decode_key_set",
    "encode_cbor",
    "encode_key_set",
    "make_transparent",
    "on_trusted_log",
    "receipt_protected_header",
    "receipt_to_be_signed",
    "sign1",
    "verify_did_x509",
    "verify_receipt",
    "verify_transparent_statement",
    "verify_x5chain",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
