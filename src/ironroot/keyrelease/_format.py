"""The released-key response: a key wrapped to a TEE's wrapping key, and how it is written.

CBOR (``application/vnd.ironroot.released-key+cbor``, deterministic encoding, RFC 8949
§4.2.1), a map with text keys::

    released-key = {
      "v": 2,                       ; format version
      "kid": tstr,                  ; the key's name at the key service
      "key_type": tstr,             ; the released key's type: "AES-256", "EC-P384", … (HSM names)
      "alg": tstr,                  ; "ML-KEM-768+A256KWP" / "ML-KEM-1024+A256KWP" /
                                    ; "RSA-OAEP-256+A256KWP"
      "recipient": bstr .size 32,   ; SHA-256 of the wrapping key's canonical SPKI DER
      "nonce": bstr .size 32,       ; the key service's challenge this release answered
      "wrapped": bstr,              ; the key, wrapped (the HSM's wrap formats, below)
      "statement": bstr,            ; the HSM's release statement (COSE_Sign1) over this release
    }

``statement`` is what the HSM signed with its attestation key when it released the key
(``ironroot.hsm._release_statement``): its id, the key's handle and type, the wrapping key's
digest, the nonce, the EAR's digest and ``wrapped``'s digest, with the attestation
certificate and the HSM's device chain. The TEE verifies it against the HSM's device certificate
before it unwraps (:meth:`~ironroot.keyrelease.tee.TeeKeyPair.unwrap`): anyone can wrap a key
to a public key, only the HSM signs that it released one. Version 1 (without ``statement``)
is refused.

The JSON form (``application/vnd.ironroot.released-key+json``) has the same members with the
byte strings as unpadded base64url, each member once. ``wrapped`` is, for
``ML-KEM-*+A256KWP``, the HSM's ML-KEM format
``"IRKW" ‖ 0x01 ‖ kem ‖ key-type code ‖ 0x00 ‖ KEM ciphertext ‖ AES-KWP(KEK, key)``
and, for ``RSA-OAEP-256+A256KWP`` (PKCS#11 CKM_RSA_AES_KEY_WRAP, Azure Key Vault's
RSA-AES-KEY-WRAP-256), ``RSA-OAEP-SHA-256(K) ‖ AES-KWP(K, key)``; the key inside is the raw
value of a secret key or the PKCS#8 DER of a private key. ``docs/keyrelease.md`` has the
layout byte by byte.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ironroot._json import unique_members
from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.crypto import b64url_decode, b64url_encode
from ironroot.errors import MalformedInput
from ironroot.hsm import NONCE_SIZE, KeyType

__all__ = [
    "APPROVER_HEADER",
    "RELEASED_KEY_CBOR",
    "RELEASED_KEY_JSON",
    "WRAP_ALGORITHMS",
    "ReleasedKey",
    "wrap_algorithm",
]

b64url = b64url_encode  # unpadded base64url (RFC 7515 §2)

APPROVER_HEADER: Final = "Ironroot-Approver"
"""The admin API's header carrying one approving crypto officer's ``base64(identity:
credential)``, as HTTP Basic carries the first (the HSM's dual control)."""


def unb64url(text: object, what: str) -> bytes:
    """Unpadded base64url only, canonical; ``MalformedInput`` otherwise."""
    if not isinstance(text, str):
        raise MalformedInput(f"{what} must be base64url text")
    data = b64url_decode(text, what=what)
    if b64url(data) != text:
        raise MalformedInput(f"{what} is not canonical unpadded base64url")
    return data


RELEASED_KEY_CBOR: Final = "application/vnd.ironroot.released-key+cbor"
RELEASED_KEY_JSON: Final = "application/vnd.ironroot.released-key+json"
VERSION: Final = 2
WRAP_ALGORITHMS: Final = {
    "ML-KEM-768": "ML-KEM-768+A256KWP",
    "ML-KEM-1024": "ML-KEM-1024+A256KWP",
    "RSA-3072": "RSA-OAEP-256+A256KWP",
    "RSA-4096": "RSA-OAEP-256+A256KWP",
}
_MEMBERS: Final = frozenset(
    ("v", "kid", "key_type", "alg", "recipient", "nonce", "wrapped", "statement")
)
_MAX_BYTES: Final = 32 * 1024  # the wrapped key
_MAX_STATEMENT: Final = 64 * 1024  # the release statement, its certificate chain included
_MAX_TOTAL: Final = _MAX_BYTES + _MAX_STATEMENT + 1024
_LIMITS: Final = Limits(max_bytes=_MAX_TOTAL, max_depth=2, max_items=16)


def wrap_algorithm(kind: str) -> str:
    """The ``alg`` for a wrapping key kind (``WrappingKey.kind``)."""
    try:
        return WRAP_ALGORITHMS[kind]
    except KeyError:
        raise MalformedInput(f"no wrap algorithm for a {kind} key") from None


@dataclass(frozen=True, slots=True)
class ReleasedKey:
    """One released key (see the module documentation)."""

    kid: str
    key_type: KeyType
    alg: str
    recipient: bytes
    nonce: bytes
    wrapped: bytes = field(repr=False)
    statement: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not self.kid or len(self.kid) > 256:
            raise MalformedInput("kid must be a key name of 1..256 characters")
        if not isinstance(self.key_type, KeyType):
            raise MalformedInput("key_type must be a KeyType")
        if self.alg not in set(WRAP_ALGORITHMS.values()):
            raise MalformedInput(f"unknown wrap algorithm {self.alg!r}")
        if not isinstance(self.recipient, bytes) or len(self.recipient) != 32:
            raise MalformedInput("recipient must be the 32-byte SHA-256 of the wrapping key")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != NONCE_SIZE:
            raise MalformedInput(f"nonce must be {NONCE_SIZE} bytes")
        if not isinstance(self.wrapped, bytes) or not 16 <= len(self.wrapped) <= _MAX_BYTES:
            raise MalformedInput("wrapped must be a wrapped key")
        if not isinstance(self.statement, bytes) or not 0 < len(self.statement) <= _MAX_STATEMENT:
            raise MalformedInput("statement must be the HSM's release statement")

    def _fields(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "kid": self.kid,
            "key_type": self.key_type.value,
            "alg": self.alg,
            "recipient": self.recipient,
            "nonce": self.nonce,
            "wrapped": self.wrapped,
            "statement": self.statement,
        }

    def to_cbor(self) -> bytes:
        return encode_cbor(self._fields())

    def to_json(self) -> str:
        return json.dumps(
            {k: b64url(v) if isinstance(v, bytes) else v for k, v in self._fields().items()},
            sort_keys=True,
        )

    @classmethod
    def _from_map(cls, value: object, *, cbor: bool) -> ReleasedKey:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise MalformedInput("a released key is a map with text keys")
        if set(value) != _MEMBERS:
            raise MalformedInput(f"a released key has exactly {', '.join(sorted(_MEMBERS))}")
        if type(value["v"]) is not int or value["v"] != VERSION:  # not 2.0, not True
            raise MalformedInput(f"released key format version {value['v']!r} is not {VERSION}")

        def data(name: str) -> bytes:
            item = value[name]
            if cbor:
                if not isinstance(item, bytes):
                    raise MalformedInput(f"{name} must be a byte string")
                return item
            return unb64url(item, name)

        kid, key_type, alg = value["kid"], value["key_type"], value["alg"]
        if not isinstance(kid, str) or not isinstance(alg, str) or not isinstance(key_type, str):
            raise MalformedInput("kid, key_type and alg must be text")
        try:
            parsed_type = KeyType(key_type)
        except ValueError:
            raise MalformedInput(f"unknown key type {key_type!r}") from None
        return cls(
            kid=kid,
            key_type=parsed_type,
            alg=alg,
            recipient=data("recipient"),
            nonce=data("nonce"),
            wrapped=data("wrapped"),
            statement=data("statement"),
        )

    @classmethod
    def from_cbor(cls, data: bytes) -> ReleasedKey:
        return cls._from_map(decode_cbor(data, _LIMITS), cbor=True)

    @classmethod
    def from_json(cls, data: bytes | str) -> ReleasedKey:
        if len(data) > 2 * _MAX_TOTAL:
            raise MalformedInput(f"a released key is at most {2 * _MAX_TOTAL} bytes of JSON")
        try:  # one member name once: which of two a reader took would be its parser's choice
            value = json.loads(data, object_pairs_hook=unique_members)
        except (ValueError, RecursionError) as exc:
            raise MalformedInput(f"the released key is not JSON: {exc}") from exc
        return cls._from_map(value, cbor=False)

    @classmethod
    def parse(cls, data: bytes | str) -> ReleasedKey:
        """From either form (JSON starts with ``{``)."""
        if isinstance(data, str) or data.lstrip()[:1] == b"{":
            return cls.from_json(data)
        return cls.from_cbor(data)
