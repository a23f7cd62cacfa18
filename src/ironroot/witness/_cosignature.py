"""C2SP tlog-cosignature: timestamped witness cosignatures over checkpoints, and quorums.

A cosignature is a note signature line on a checkpoint (c2sp.org/tlog-cosignature) whose
signature is a ``timestamped_signature``: a u64 big-endian POSIX ``timestamp`` followed by
the signature. Two types:

* ``0x04`` Ed25519 ``cosignature/v1``: key id ``SHA-256(name || 0x0A || 0x04 || key)[:4]``;
  the signed message is two lines and the whole checkpoint body (extension lines too)::

      cosignature/v1
      time <timestamp, ASCII decimal, no leading zeros>
      <origin>
      <size>
      <root>

* ``0x06`` ML-DSA-44 ``subtree/v1``: key id over type ``0x06`` and the 1312-byte key; the
  signed message is the binary ``cosigned_message`` ("subtree/v1\\n\\0" || u8 len || name ||
  u64 timestamp || u8 len || origin || u64 start = 0 || u64 end = size || root), which does
  not cover extension lines (a cosigner says nothing about them).

A witness never omits the timestamp (tlog-witness: it MUST NOT be zero). Verifiers ignore
lines from keys they do not know; a line that names a known key and fails rejects the note
(signed-note: "clients SHOULD reject the whole note"). :class:`WitnessPolicy` requires a
quorum of distinct trusted witnesses; an empty set of witnesses, or a quorum of zero, trusts
nothing (:class:`ConfigError`).

Hand-written because no maintained Python library implements C2SP cosignatures; all signing
and verifying goes through :mod:`ironroot.crypto`.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.crypto import Algorithm, PublicKey, Signer, Verifier
from ironroot.errors import (
    BadSignature,
    ConfigError,
    InsufficientCosignatures,
    LimitExceeded,
    MalformedInput,
    UnsupportedAlgorithm,
)
from ironroot.log import (
    Checkpoint,
    Note,
    NoteSignature,
    NoteVerifier,
    open_checkpoint,
    parse_vkey,
)

__all__ = [
    "COSIGNATURE_TYPE_ED25519",
    "COSIGNATURE_TYPE_MLDSA44",
    "Cosignature",
    "CosignatureVerifier",
    "CosignedCheckpoint",
    "Cosigner",
    "WitnessPolicy",
    "cosignature_v1_message",
    "subtree_v1_message",
    "verify_cosignatures",
]

COSIGNATURE_TYPE_ED25519: Final = 0x04
"""Signature type of timestamped Ed25519 checkpoint cosignatures (``cosignature/v1``)."""
COSIGNATURE_TYPE_MLDSA44: Final = 0x06
"""Signature type of timestamped ML-DSA-44 (sub)tree cosignatures (``subtree/v1``)."""

MAX_TIMESTAMP: Final = (1 << 63) - 1
FUTURE_SKEW: Final = 600
"""Seconds a cosignature's timestamp may be ahead of the verifier's clock and still count."""

_SUBTREE_LABEL: Final = b"subtree/v1\n\x00"
_SIG_SIZES: Final = {COSIGNATURE_TYPE_ED25519: 64, COSIGNATURE_TYPE_MLDSA44: 2420}


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise MalformedInput("a cosigner name must be a non-empty string")
    if any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise MalformedInput("a cosigner name must not contain spaces, '+' or control characters")
    return name


def _check_timestamp(timestamp: object) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise MalformedInput("a cosignature timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedInput("a cosignature timestamp must be between 0 and 2^63 - 1")
    return timestamp


def cosignature_v1_message(body: bytes, timestamp: int) -> bytes:
    """What an Ed25519 ``cosignature/v1`` signs: header, time line and the checkpoint body."""
    Checkpoint.parse(body)  # a cosignature is over a checkpoint, nothing else
    return b"cosignature/v1\ntime %d\n" % _check_timestamp(timestamp) + body


def subtree_v1_message(name: str, timestamp: int, checkpoint: Checkpoint) -> bytes:
    """What an ML-DSA-44 cosignature signs for a whole checkpoint (start 0, end = size)."""
    cosigner = _check_name(name).encode("utf-8")
    origin = checkpoint.origin.encode("utf-8")
    if len(cosigner) > 255 or len(origin) > 255:
        raise LimitExceeded("subtree/v1 needs a cosigner name and origin of 255 bytes or less")
    return b"".join(
        (
            _SUBTREE_LABEL,
            bytes([len(cosigner)]),
            cosigner,
            struct.pack(">Q", _check_timestamp(timestamp)),
            bytes([len(origin)]),
            origin,
            struct.pack(">QQ", 0, checkpoint.size),
            checkpoint.root,
        )
    )


def _cosignature_type(algorithm: Algorithm) -> int:
    if algorithm in (Algorithm.EDDSA, Algorithm.ED25519):
        return COSIGNATURE_TYPE_ED25519
    if algorithm is Algorithm.ML_DSA_44:
        return COSIGNATURE_TYPE_MLDSA44
    raise UnsupportedAlgorithm(f"{algorithm.label} keys cannot make C2SP cosignatures")


def _key_id(name: str, signature_type: int, public: bytes) -> bytes:
    material = name.encode("utf-8") + b"\n" + bytes([signature_type]) + public
    return hashlib.sha256(material).digest()[:4]


def _message(name: str, signature_type: int, body: bytes, timestamp: int) -> bytes:
    if signature_type == COSIGNATURE_TYPE_ED25519:
        return cosignature_v1_message(body, timestamp)
    return subtree_v1_message(name, timestamp, Checkpoint.parse(body))


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One verified cosignature: the cosigner's ``name`` and ``key_id``, and its timestamp."""

    name: str
    key_id: bytes
    timestamp: int


class CosignatureVerifier:
    """Verifies the cosignatures of one witness key (Ed25519 ``0x04`` or ML-DSA-44 ``0x06``)."""

    __slots__ = ("_key", "_key_id", "_name", "_public", "_type")

    def __init__(self, name: str, public_key: PublicKey) -> None:
        self._name = _check_name(name)
        self._type = _cosignature_type(public_key.algorithm)
        self._key = public_key
        self._public = public_key.raw_bytes()
        self._key_id = _key_id(self._name, self._type, self._public)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def signature_type(self) -> int:
        return self._type

    @property
    def public_key(self) -> PublicKey:
        return self._key

    @property
    def vkey(self) -> str:
        """The verifier key ``<name>+<hex key id>+<base64(type || public key)>``."""
        material = base64.b64encode(bytes([self._type]) + self._public).decode("ascii")
        return f"{self._name}+{self._key_id.hex()}+{material}"

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Parse a cosigner's verifier key (type ``0x04`` or ``0x06``); the id must match."""
        name, hex_id, public = parse_vkey(
            vkey,
            {
                COSIGNATURE_TYPE_ED25519: Algorithm.ED25519,
                COSIGNATURE_TYPE_MLDSA44: Algorithm.ML_DSA_44,
            },
            _check_name,
            "cosignature type",
        )
        verifier = cls(name, public)
        if verifier.key_id.hex() != hex_id:
            raise MalformedInput("the verifier key id does not match its name and key")
        return verifier

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line names this key (same name and key id)."""
        return signature.name == self._name and signature.key_id == self._key_id

    def verify(self, body: bytes, signature: bytes) -> int:
        """Check a ``timestamped_signature`` over the checkpoint ``body``; returns its timestamp.

        Raises :class:`BadSignature` when it does not verify.
        """
        if len(signature) != 8 + _SIG_SIZES[self._type]:
            raise BadSignature(f"the cosignature by {self._name} has the wrong length")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > MAX_TIMESTAMP:
            raise BadSignature(f"the cosignature by {self._name} has an invalid timestamp")
        try:
            message = _message(self._name, self._type, body, timestamp)
        except MalformedInput as exc:
            raise BadSignature(
                f"the cosignature by {self._name} is not over a checkpoint: {exc.detail}"
            ) from exc
        self._key.verify(signature[8:], message)
        return int(timestamp)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CosignatureVerifier) and other.vkey == self.vkey

    def __hash__(self) -> int:
        return hash((self._name, self._key_id))

    def __repr__(self) -> str:
        return (
            f"CosignatureVerifier({self._name!r}, key_id={self._key_id.hex()}, "
            f"type=0x{self._type:02x})"
        )


class Cosigner:
    """Cosigns checkpoints as (name, key): an Ed25519 or ML-DSA-44 :class:`Signer`.

    ``public_key`` is needed only when ``signer.verifier()`` is not an in-memory
    :class:`~ironroot.crypto.PublicKey` (an HSM handle, for instance).
    """

    __slots__ = ("_signer", "_verifier")

    def __init__(self, name: str, signer: Signer, *, public_key: PublicKey | None = None) -> None:
        if public_key is None:
            candidate: Verifier = signer.verifier()
            if not isinstance(candidate, PublicKey):
                raise UnsupportedAlgorithm("pass public_key for a signer without a PublicKey")
            public_key = candidate
        if _cosignature_type(signer.algorithm) != _cosignature_type(public_key.algorithm):
            raise UnsupportedAlgorithm("the public key does not match the signer's algorithm")
        if public_key.kid != signer.kid:
            raise MalformedInput("the public key is not the signer's key")
        self._signer = signer
        self._verifier = CosignatureVerifier(name, public_key)

    @property
    def name(self) -> str:
        return self._verifier.name

    def verifier(self) -> CosignatureVerifier:
        """The matching verifier (its ``vkey`` is what a witness publishes)."""
        return self._verifier

    def cosign(self, body: bytes, timestamp: int) -> NoteSignature:
        """The cosignature line over the checkpoint ``body`` at ``timestamp`` (never zero)."""
        if _check_timestamp(timestamp) == 0:
            raise MalformedInput("a witness cosignature must not omit its timestamp (zero)")
        message = _message(self.name, self._verifier.signature_type, body, timestamp)
        signature = struct.pack(">Q", timestamp) + self._signer.sign(message)
        return NoteSignature(self.name, self._verifier.key_id, signature)

    def __repr__(self) -> str:
        return f"Cosigner({self.name!r}, key_id={self._verifier.key_id.hex()})"


@dataclass(frozen=True, slots=True)
class CosignedCheckpoint:
    """A checkpoint whose log signature and witness quorum verified."""

    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]
    note: bytes


def verify_cosignatures(
    note: Note, witnesses: Sequence[CosignatureVerifier], *, now: int | None = None
) -> tuple[Cosignature, ...]:
    """Every valid cosignature on ``note`` by one of ``witnesses`` (unknown lines ignored).

    A line that names a known witness key and does not verify raises :class:`BadSignature`.
    With ``now``, a cosignature dated more than :data:`FUTURE_SKEW` seconds after it does
    not count.
    """
    found: list[Cosignature] = []
    for line in note.signatures:
        for witness in witnesses:
            if not witness.matches(line):
                continue
            timestamp = witness.verify(note.body, line.signature)
            if now is None or timestamp <= now + FUTURE_SKEW:
                found.append(Cosignature(witness.name, witness.key_id, timestamp))
            break
    return tuple(found)


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Trust a checkpoint once ``quorum`` of ``witnesses`` cosigned it (k of n)."""

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        if not isinstance(self.witnesses, tuple) or not all(
            isinstance(w, CosignatureVerifier) for w in self.witnesses
        ):
            raise ConfigError("witnesses must be a tuple of CosignatureVerifier")
        if not self.witnesses:
            raise ConfigError("a witness policy with no witnesses trusts nothing")
        if len({(w.name, w.key_id) for w in self.witnesses}) != len(self.witnesses):
            raise ConfigError("a witness policy names one witness key twice")
        if isinstance(self.quorum, bool) or not isinstance(self.quorum, int):
            raise ConfigError("the witness quorum must be an integer")
        if not 1 <= self.quorum <= len(self.witnesses):
            raise ConfigError(
                f"the witness quorum must be between 1 and {len(self.witnesses)} (the witnesses)"
            )

    @classmethod
    def from_vkeys(cls, vkeys: Sequence[str], quorum: int | None = None) -> WitnessPolicy:
        """From cosigner vkeys; ``quorum`` defaults to all of them."""
        witnesses = tuple(CosignatureVerifier.from_vkey(v) for v in vkeys)
        return cls(witnesses, len(witnesses) if quorum is None else quorum)

    def check(
        self,
        note: bytes,
        log_verifiers: Sequence[NoteVerifier],
        *,
        origin: str | None = None,
        now: int | None = None,
    ) -> CosignedCheckpoint:
        """Open the checkpoint with the log's keys, then require the quorum of cosignatures.

        The log signature's errors propagate (``BadSignature``, ``UnknownIssuer``,
        ``MalformedInput``); a failing cosignature by a known witness is
        :class:`BadSignature`; too few is :class:`InsufficientCosignatures`.
        """
        checkpoint = open_checkpoint(note, log_verifiers, origin=origin)
        parsed = Note.parse(note)
        cosignatures = verify_cosignatures(parsed, self.witnesses, now=now)
        if len(cosignatures) < self.quorum:
            names = ", ".join(c.name for c in cosignatures) or "none"
            raise InsufficientCosignatures(
                f"the checkpoint of {checkpoint.origin} at size {checkpoint.size} is cosigned by "
                f"{len(cosignatures)} of the trusted witnesses ({names}); {self.quorum} required"
            )
        return CosignedCheckpoint(checkpoint, cosignatures, note)
