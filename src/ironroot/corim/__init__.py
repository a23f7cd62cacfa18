"""CoRIM and CoMID (draft-ietf-rats-corim): reference values and endorsements, signed or not.

``Corim.parse`` / ``Corim.encode`` handle the unsigned ``501`` map, ``Comid`` the ``506``
tags inside it, ``SignedCorim`` and ``sign_corim`` the COSE_Sign1 form with content type
``application/rim+cbor`` and the corim-meta header (8). Everything is pure and every parse
failure is a ``MalformedCorim`` (``LimitExceeded`` for size limits).
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.corim._comid import (
        COMID_TAG,
        HASH_ALG_SHA256,
        HASH_ALG_SHA384,
        HASH_ALG_SHA512,
        ClassMap,
        Comid,
        Digest,
        Entity,
        Environment,
        Flags,
        IntRange,
        LinkedTag,
        Measurement,
        MeasurementValues,
        RawValue,
        Svn,
        Tagged,
        TagIdentity,
        Triple,
        Triples,
        Version,
        is_full_digest,
    )
    from ironroot.corim._corim import (
        CORIM_CONTENT_TYPE,
        CORIM_META,
        CORIM_TAG,
        Corim,
        CorimMeta,
        Locator,
        OpaqueTag,
        SignedCorim,
        Validity,
        sign_corim,
    )

__all__ = [
    "COMID_TAG",
    "CORIM_CONTENT_TYPE",
    "CORIM_META",
    "CORIM_TAG",
    "HASH_ALG_SHA256",
    "HASH_ALG_SHA384",
    "HASH_ALG_SHA512",
    "ClassMap",
    "Comid",
    "Corim",
    "CorimMeta",
    "Digest",
    "Entity",
    "Environment",
    "Flags",
    "IntRange",
    "LinkedTag",
    "Locator",
    "Measurement",
    "MeasurementValues",
    "OpaqueTag",
    "RawValue",
    "SignedCorim",
    "Svn",
    "TagIdentity",
    "Tagged",
    "Triple",
    "Triples",
    "Validity",
    "Version",
    "is_full_digest",
    "sign_corim",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
