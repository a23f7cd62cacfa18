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

A witness never omits the timestamp (tlog-witness: it MUST NOT be zero): a line dated zero, as
a log's own ML-DSA-44 checkpoint signature is, counts for no quorum. Verifiers ignore
lines from keys they do not know; a line that names a known key and fails rejects the note
(signed-note: "clients SHOULD reject the whole note"), and a line identical to one checked
already (a note may carry 100 copies of one) is not verified again. :class:`WitnessPolicy`
requires a quorum of distinct trusted witnesses; an empty set of witnesses, or a quorum of
zero, trusts nothing (:class:`ConfigError`).

Hand-written because no maintained Python library implements C2SP cosignatures; all signing
and verifying goes through :mod:`ironroot.crypto`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from ironroot.crypto import Algorithm, PublicKey, Signer
from ironroot.errors import (
    ConfigError,
    InsufficientCosignatures,
    MalformedInput,
)
from ironroot.log import (
    Checkpoint,
    Note,
    NoteSignature,
    NoteVerifier,
    VerifierKey,
    open_checkpoint,
    subtree_v1_message,
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

_SIG_SIZES: Final = {COSIGNATURE_TYPE_ED25519: 64, COSIGNATURE_TYPE_MLDSA44: 2420}


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


class CosignatureVerifier(VerifierKey):
    """Verifies the cosignatures of one witness key (Ed25519 ``0x04`` or ML-DSA-44 ``0x06``)."""

    __slots__ = ()

    TYPES: ClassVar[Mapping[int, Algorithm]] = {
        COSIGNATURE_TYPE_ED25519: Algorithm.ED25519,
        COSIGNATURE_TYPE_MLDSA44: Algorithm.ML_DSA_44,
    }
    NAME: ClassVar[str] = "cosigner name"
    KIND: ClassVar[str] = "cosignature type"

    def matches(self, signature: NoteSignature) -> bool:
        """Whether a signature line names this key (same name and key id)."""
        return signature.name == self._name and signature.key_id == self._key_id

    def verify(self, body: bytes, signature: bytes) -> int:
        """Check a ``timestamped_signature`` over the checkpoint ``body``; returns its timestamp.

        Raises :class:`BadSignature` when it does not verify.
        """
        return self._verify_timestamped(
            signature,
            _SIG_SIZES[self._type],
            lambda timestamp: _message(self._name, self._type, body, timestamp),
            what=f"the cosignature by {self._name}",
            uncovered=f"the cosignature by {self._name} is not over a checkpoint",
        )


class Cosigner:
    """Cosigns checkpoints as (name, key): an Ed25519 or ML-DSA-44 :class:`Signer`.

    ``public_key`` is needed only when ``signer.verifier()`` is not an in-memory
    :class:`~ironroot.crypto.PublicKey` (an HSM handle, for instance).
    """

    __slots__ = ("_signer", "_verifier")

    def __init__(self, name: str, signer: Signer, *, public_key: PublicKey | None = None) -> None:
        self._verifier = CosignatureVerifier.of_signer(name, signer, public_key=public_key)
        self._signer = signer

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

    A line that names a known witness key and does not verify raises :class:`BadSignature`,
    whichever line of that key it is; a key whose lines repeat is found once (its first), and
    a line identical to an earlier one is not verified again (module docs).
    With ``now``, a cosignature dated more than :data:`FUTURE_SKEW` seconds after it does
    not count. Nor does one dated zero: a witness never omits its timestamp, and a log's own
    ML-DSA-44 checkpoint signature is such a line (its vkey parses as a cosigner's too).
    """
    found: dict[tuple[str, bytes], Cosignature] = {}
    for line in dict.fromkeys(note.signatures):  # a repeated line says nothing more
        for witness in witnesses:
            if not witness.matches(line):
                continue
            timestamp = witness.verify(note.body, line.signature)
            if timestamp and (now is None or timestamp <= now + FUTURE_SKEW):
                found.setdefault(
                    (witness.name, witness.key_id),
                    Cosignature(witness.name, witness.key_id, timestamp),
                )
            break
    return tuple(found.values())


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Trust a checkpoint once ``quorum`` of ``witnesses`` cosigned it (k of n).

    A witness is its name: the keys of one witness (Ed25519 and ML-DSA-44, which a witness
    cosigns with under its one name) count once towards the quorum, whichever of them
    cosigned, and the quorum is at most the number of names."""

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
        named = len({w.name for w in self.witnesses})
        if not 1 <= self.quorum <= named:
            raise ConfigError(
                f"the witness quorum must be between 1 and {named} (the witnesses named)"
            )

    @classmethod
    def from_vkeys(cls, vkeys: Sequence[str], quorum: int | None = None) -> WitnessPolicy:
        """From cosigner vkeys; ``quorum`` defaults to all the witnesses they name."""
        witnesses = tuple(CosignatureVerifier.from_vkey(v) for v in vkeys)
        named = len({w.name for w in witnesses})
        return cls(witnesses, named if quorum is None else quorum)

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
        valid = verify_cosignatures(parsed, self.witnesses)
        cosignatures = tuple(c for c in valid if now is None or c.timestamp <= now + FUTURE_SKEW)
        witnesses = sorted({c.name for c in cosignatures})
        if len(witnesses) < self.quorum:
            names = ", ".join(witnesses) or "none"
            ahead = sorted({c.name for c in valid} - set(witnesses))
            later = (
                f"; dated in the future, not counted: {', '.join(ahead)} (a clock off?)"
                if ahead
                else ""
            )
            raise InsufficientCosignatures(
                f"the checkpoint of {checkpoint.origin} at size {checkpoint.size} is cosigned by "
                f"{len(witnesses)} of the trusted witnesses ({names}); {self.quorum} required"
                + later
            )
        return CosignedCheckpoint(checkpoint, cosignatures, note)
