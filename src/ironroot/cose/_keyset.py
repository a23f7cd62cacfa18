"""COSE Key Sets (RFC 9052 §7): the service keys published at ``/.well-known/scitt-keys``.

Each key carries ``kid`` (2) and ``alg`` (3). On input every ``kid`` must equal the key's
RFC 9679 thumbprint, the id receipts name their signing key by, so a key set cannot bind a
receipt's ``kid`` to some other key.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, decode_cbor, encode_cbor
from ironroot.crypto import PublicKey
from ironroot.errors import MalformedInput

__all__ = ["decode_key_set", "encode_key_set"]

_KID = 2


def encode_key_set(keys: Sequence[PublicKey]) -> bytes:
    """A CBOR array of COSE_Key maps, each with ``kid`` and ``alg``."""
    return encode_cbor([key.to_cose_key(include_alg=True, include_kid=True) for key in keys])


def decode_key_set(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[bytes, PublicKey]:
    """Parse a COSE Key Set into ``{kid: key}``.

    Raises ``MalformedInput`` (``UnsupportedAlgorithm`` for unknown key types) if the set or a
    key is malformed, a ``kid`` is missing or is not the key's thumbprint, or repeats.
    """
    decoded = decode_cbor(data, limits)
    if not isinstance(decoded, list | tuple):
        raise MalformedInput("a COSE Key Set is an array of COSE_Key maps")
    out: dict[bytes, PublicKey] = {}
    for item in decoded:
        if not isinstance(item, Mapping):
            raise MalformedInput("a COSE Key Set is an array of COSE_Key maps")
        kid = item.get(_KID)
        if not isinstance(kid, bytes):
            raise MalformedInput("every key of the set needs a byte-string kid (2)")
        key = PublicKey.from_cose_key(item)
        if not hmac.compare_digest(kid, key.kid):
            raise MalformedInput("a key's kid is not its RFC 9679 thumbprint")
        if kid in out:
            raise MalformedInput("a kid appears twice in the key set")
        out[kid] = key
    return out
