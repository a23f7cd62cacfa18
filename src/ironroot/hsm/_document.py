"""The HSM's key store document: the records it holds and their sealed CBOR form.

The document (sealed with AES-256-GCM under the device's sealing secret by ``_storage``) is a
deterministic CBOR map::

    {"version": 2, "hsm": bstr, "generation": uint, "identities": [identity], "keys": [key],
     "attestation": key, "chain": [bstr DER],
     "audit": {"size": uint, "head": bstr, "key": bstr (32), "from": uint,
               ? "base": {"size": uint, "head": bstr}, ? "segment": uint},
     "verifiers": [verifier], "recipients": [recipient], ? "quorum": uint,
     ? "prior_quorum": uint}
    identity = {"name", "role", "salt", "hash", "n", "r", "p", "failures", "locked",
                ? "locked_until": uint, ? "lockouts": uint}
    key      = {"handle", "type", "attributes", "local", "created", "material"}
    verifier = {"name": tstr, "key": bstr}     ; an EAR verifier's SubjectPublicKeyInfo DER
    recipient = {"name": tstr, "key": bstr}    ; an approved wrap recipient's SPKI DER

``generation`` is the root-of-trust counter value this write took (``_anchor``); ``audit.key``
is the audit MAC key (it never leaves the boundary) and ``audit.from`` the first record of the
log that this HSM wrote (records before it belong to a zeroized predecessor); ``audit.base``
is where the live log starts, the seq of its first record and the hash of the last archived
record before it (absent in a store written before audit rotation: the live log starts at
record 0); ``audit.segment`` is the HSM's ``audit_segment_records`` (``HsmConfig``: how many
records the live log holds before it is archived), absent in a store written before it was
sealed. A version 1 store
(before verifiers, generations and keyed audit records) is refused with a clear error; a
version 2 store written before wrap recipients existed has no ``recipients`` and holds none.
``quorum`` is how many crypto officers a dual-control operation needs (``Hsm.set_officer_quorum``),
from 2 to ``MAX_QUORUM``; absent, it is 1 (one officer acts alone), as in every store written
before dual control, so that their bytes are unchanged. ``prior_quorum`` is the officer
quorum a zeroized predecessor was under (its ``zeroize`` or ``tamper`` record says so), from 2
to ``MAX_QUORUM`` (absent: none, or one without dual control); with it, the predecessor's
records (those before ``audit.from``) are never pruned (``Hsm.prune_audit``).
An identity written before timed lockouts has neither ``locked_until`` nor ``lockouts`` (one
without the other is refused: no version wrote that), and its ``locked`` is both locks of that
version: an officer's, and the permanent one that ``max_failed_logins`` wrong credentials set
(leaving ``failures`` at that count). :attr:`StoreDocument.untimed` names such identities, so
that the HSM can make a failure-set lock a timed lockout (``_identities``); ``locked`` is
otherwise the officer's lock, which no time ends.

Secrets the records hold (credential hashes, key material) live in ``bytearray`` so that
zeroization can overwrite them in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.errors import MalformedInput
from ironroot.hsm._material import KeyObject, load_material, public_der, signing_public
from ironroot.hsm._model import (
    MAX_AUDIT_SEGMENT,
    MAX_QUORUM,
    KeyAttributes,
    KeyInfo,
    KeyType,
    Role,
)

__all__ = [
    "STORE_VERSION",
    "IdentityRecord",
    "KeyRecord",
    "StoreDocument",
    "as_bytes",
    "decode_store",
    "encode_store",
    "zero",
]

STORE_VERSION: Final = 2
_STORE_LIMITS: Final = Limits(max_bytes=64 * 1024 * 1024, max_depth=8, max_items=1_000_000)


def zero(buffer: bytearray) -> None:
    """Overwrite ``buffer`` in place."""
    buffer[:] = bytes(len(buffer))


def as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedInput("the key store holds a non-bytes value where bytes belong")
    return value


class IdentityRecord:
    """A named identity: its role, credential hash (scrypt parameters) and lockout state:
    ``failures`` in a row, ``locked`` (by an officer, until an officer unlocks it),
    ``locked_until`` (POSIX seconds a lockout from failed logins lasts until; 0 for none) and
    ``lockouts`` (how many such lockouts followed one another without a successful login)."""

    __slots__ = (
        "failures",
        "hash",
        "locked",
        "locked_until",
        "lockouts",
        "n",
        "name",
        "p",
        "r",
        "role",
        "salt",
    )

    def __init__(
        self, name: str, role: Role, salt: bytes, hash_: bytearray, n: int, r: int, p: int
    ) -> None:
        self.name, self.role, self.salt, self.hash = name, role, salt, hash_
        self.n, self.r, self.p = n, r, p
        self.failures = 0
        self.locked = False
        self.locked_until = 0
        self.lockouts = 0


class KeyRecord:
    """A key inside the boundary: handle, type, attributes, material and its library object."""

    __slots__ = (
        "attributes",
        "created",
        "handle",
        "key_type",
        "local",
        "obj",
        "public_der",
        "public_key",
        "stored",
    )

    def __init__(
        self,
        handle: str,
        key_type: KeyType,
        attributes: KeyAttributes,
        *,
        local: bool,
        created: int,
        stored: bytearray,
        obj: KeyObject,
    ) -> None:
        self.handle, self.key_type, self.attributes = handle, key_type, attributes
        self.local, self.created, self.stored, self.obj = local, created, stored, obj
        self.public_der = public_der(obj)
        self.public_key = signing_public(obj)

    def info(self) -> KeyInfo:
        return KeyInfo(
            handle=self.handle,
            key_type=self.key_type,
            attributes=self.attributes,
            generated_inside=self.local,
            created=self.created,
            public_der=self.public_der,
            public_key=self.public_key,
        )

    def wipe(self) -> None:
        zero(self.stored)
        self.obj = None


@dataclass(frozen=True, slots=True)
class StoreDocument:
    """Everything the sealed store holds."""

    hsm_id: bytes
    identities: tuple[IdentityRecord, ...]
    keys: tuple[KeyRecord, ...]
    attestation: KeyRecord
    chain: tuple[bytes, ...]
    audit_size: int
    audit_head: bytes
    audit_key: bytearray
    audit_from: int
    generation: int
    verifiers: tuple[tuple[str, bytes], ...] = ()
    """``(name, SubjectPublicKeyInfo DER)`` of each installed EAR verifier key."""
    recipients: tuple[tuple[str, bytes], ...] = ()
    """``(name, SubjectPublicKeyInfo DER)`` of each outside key an officer approved as a
    recipient of wrapped exportable keys."""
    audit_base: int = 0
    """The seq of the live log's first record: the records before it are in archived
    segments (``_audit_buffer``: rotation); 0 before the first rotation."""
    audit_base_head: bytes = bytes(32)
    """The hash of record ``audit_base - 1`` (the last archived), which the live log's first
    record names as its ``prev``; the zero hash when ``audit_base`` is 0."""
    audit_segment: int | None = None
    """``HsmConfig.audit_segment_records`` as the HSM sealed it; ``None`` in a store written
    before it was sealed."""
    officer_quorum: int = 1
    """The crypto officers a dual-control operation needs (1: each acts alone)."""
    prior_quorum: int = 1
    """The officer quorum of the zeroized predecessor whose records this HSM's log continues
    (1: none, or it had no dual control)."""
    untimed: frozenset[str] = frozenset()
    """The identities written before timed lockouts (no ``locked_until``/``lockouts``): not
    stored, read from the entries' members."""


def _key_entry(key: KeyRecord) -> dict[str, object]:
    return {
        "handle": key.handle,
        "type": key.key_type.value,
        "attributes": key.attributes.to_map(),
        "local": key.local,
        "created": key.created,
        "material": bytes(key.stored),
    }


def _load_key(entry: object) -> KeyRecord:
    if not isinstance(entry, dict):
        raise MalformedInput("a stored key is a map")
    key_type = KeyType.parse(entry["type"])
    stored = bytearray(as_bytes(entry["material"]))
    return KeyRecord(
        entry["handle"],
        key_type,
        KeyAttributes.from_map(entry["attributes"]),
        local=bool(entry["local"]),
        created=int(entry["created"]),
        stored=stored,
        obj=load_material(key_type, stored),
    )


def _load_identity(entry: Mapping[str, Any]) -> IdentityRecord:
    ident = IdentityRecord(
        entry["name"],
        Role.parse(entry["role"]),
        as_bytes(entry["salt"]),
        bytearray(as_bytes(entry["hash"])),
        _uint(entry["n"]),
        _uint(entry["r"]),
        _uint(entry["p"]),
    )
    ident.failures = _uint(entry["failures"])
    ident.locked = bool(entry["locked"])
    ident.locked_until = _uint(entry.get("locked_until", 0))
    ident.lockouts = _uint(entry.get("lockouts", 0))
    return ident


def _untimed(entry: Mapping[str, Any]) -> bool:
    """Whether an identity entry was written before timed lockouts (module docs)."""
    timed = [name in entry for name in ("locked_until", "lockouts")]
    if timed[0] != timed[1]:
        raise MalformedInput(
            "a stored identity has one of locked_until and lockouts without the other"
        )
    return not timed[0]


def _hash(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise MalformedInput("an audit hash is 32 bytes")
    return value


def _audit_key(value: object) -> bytearray:
    key = as_bytes(value)
    if len(key) != 32:
        raise MalformedInput("the audit key is 32 bytes")
    return bytearray(key)


def _uint(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput("a key store counter is a non-negative integer")
    return value


def _segment(value: object) -> int:
    size = _uint(value)
    if not 2 <= size <= MAX_AUDIT_SEGMENT:
        raise MalformedInput(f"the audit segment size is from 2 to {MAX_AUDIT_SEGMENT} records")
    return size


def _quorum(value: object) -> int:
    quorum = _uint(value)
    if not 2 <= quorum <= MAX_QUORUM:  # 1 is written as no "quorum" at all
        raise MalformedInput(f"the officer quorum is from 2 to {MAX_QUORUM}")
    return quorum


def _load_verifier(entry: object) -> tuple[str, bytes]:
    if not isinstance(entry, dict) or set(entry) != {"name", "key"}:
        raise MalformedInput("a stored verifier is a map of name and key")
    name = entry["name"]
    if not isinstance(name, str) or not name:
        raise MalformedInput("a stored verifier's name is text")
    return name, as_bytes(entry["key"])


def encode_store(document: StoreDocument) -> bytes:
    """The document's deterministic CBOR (the plaintext that gets sealed)."""
    return encode_cbor(
        {
            "version": STORE_VERSION,
            "hsm": document.hsm_id,
            "generation": document.generation,
            "identities": [
                {
                    "name": i.name,
                    "role": i.role.value,
                    "salt": i.salt,
                    "hash": bytes(i.hash),
                    "n": i.n,
                    "r": i.r,
                    "p": i.p,
                    "failures": i.failures,
                    "locked": i.locked,
                    "locked_until": i.locked_until,
                    "lockouts": i.lockouts,
                }
                for i in document.identities
            ],
            "keys": [_key_entry(k) for k in document.keys],
            "attestation": _key_entry(document.attestation),
            "chain": list(document.chain),
            "audit": {
                "size": document.audit_size,
                "head": document.audit_head,
                "key": bytes(document.audit_key),
                "from": document.audit_from,
                "base": {"size": document.audit_base, "head": document.audit_base_head},
                **({} if document.audit_segment is None else {"segment": document.audit_segment}),
            },
            "verifiers": [{"name": n, "key": k} for n, k in document.verifiers],
            "recipients": [{"name": n, "key": k} for n, k in document.recipients],
            **({"quorum": document.officer_quorum} if document.officer_quorum > 1 else {}),
            **({"prior_quorum": document.prior_quorum} if document.prior_quorum > 1 else {}),
        }
    )


def decode_store(plaintext: bytes) -> StoreDocument:
    """Parse an unsealed key store (``MalformedInput`` for anything unexpected)."""
    doc = decode_cbor(plaintext, _STORE_LIMITS)
    if isinstance(doc, dict) and doc.get("version") == 1:
        raise MalformedInput(
            "this key store is version 1 (before EAR verifiers lived in the HSM): initialize a "
            "new HSM and move its keys by wrap and unwrap"
        )
    if not isinstance(doc, dict) or doc.get("version") != STORE_VERSION:
        raise MalformedInput("unknown key store version")
    try:
        audit = doc["audit"]
        base = audit["base"] if "base" in audit else {"size": 0, "head": bytes(32)}
        return StoreDocument(
            hsm_id=as_bytes(doc["hsm"]),
            identities=tuple(_load_identity(e) for e in doc["identities"]),
            keys=tuple(_load_key(e) for e in doc["keys"]),
            attestation=_load_key(doc["attestation"]),
            chain=tuple(as_bytes(c) for c in doc["chain"]),
            audit_size=int(audit["size"]),
            audit_head=as_bytes(audit["head"]),
            audit_key=_audit_key(audit["key"]),
            audit_from=_uint(audit["from"]),
            audit_base=_uint(base["size"]),
            audit_base_head=_hash(base["head"]),
            audit_segment=_segment(audit["segment"]) if "segment" in audit else None,
            generation=_uint(doc["generation"]),
            verifiers=tuple(_load_verifier(v) for v in doc["verifiers"]),
            recipients=tuple(_load_verifier(v) for v in doc.get("recipients", [])),
            officer_quorum=_quorum(doc["quorum"]) if "quorum" in doc else 1,
            prior_quorum=_quorum(doc["prior_quorum"]) if "prior_quorum" in doc else 1,
            untimed=frozenset(e["name"] for e in doc["identities"] if _untimed(e)),
        )
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # int(inf): OverflowError
        raise MalformedInput("the key store document is not well formed") from exc
