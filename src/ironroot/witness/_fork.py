"""Fork proofs: two signed checkpoints of one origin that no append-only log can both sign.

A :class:`ForkProof` holds two signed checkpoint notes of one origin, ``first`` no larger than
``second``, and a consistency proof in *explicit* form: the RFC 9162 consistency proof from
``first.size`` to ``second.size`` whose first hash is always the seed subtree (where the RFC
leaves out the hash of a power-of-two first tree, the explicit form puts it in). Anyone can
check it offline with the log's public key (:meth:`ForkProof.verify`):

* both notes verify under the log's keys and name the same origin;
* equal sizes: the roots differ (the proof is empty);
* ``first.size < second.size``: running RFC 9162 §2.1.4.2 over the explicit proof gives two
  roots ``fr`` and ``sr``; ``sr`` must be ``second``'s root, and then (the hash being
  collision resistant) the proof's hashes are nodes of ``second``'s tree and ``fr`` is the
  root of that tree's first ``first.size`` leaves. The proof shows a fork when ``fr`` is not
  ``first``'s root: ``second``'s log does not extend ``first``'s.

A proof that leads to ``second``'s root and to ``first``'s root shows consistency, not a fork,
and one that does not lead to ``second``'s root shows nothing: both are refused
(:class:`InvalidProof`). An empty first tree is consistent with every tree.

The file form is JSON (``type`` ``ironroot-fork-proof/v1``, the origin, the two notes as
text, the proof hashes in base64, who found it and when), documented in ``docs/witness.md``.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ironroot.errors import InvalidProof, LimitExceeded, MalformedInput
from ironroot.log import Checkpoint, NoteVerifier, open_checkpoint
from ironroot.merkle import NodeFn, consistency_proof, node_hash

__all__ = [
    "FORK_PROOF_TYPE",
    "ForkProof",
    "explicit_consistency_proof",
    "fork_roots",
]

FORK_PROOF_TYPE: Final = "ironroot-fork-proof/v1"
_MAX_FILE: Final = 4 * 1024 * 1024
_HASH: Final = 32


def explicit_consistency_proof(size1: int, size2: int, node: NodeFn) -> list[bytes]:
    """The consistency proof from ``size1`` to ``size2`` with its seed subtree always given.

    The RFC 9162 proof, preceded (when ``size1`` is a power of two below ``size2``) by the
    hash of the first ``size1`` leaves, which the RFC leaves to the verifier's own root.
    """
    proof = consistency_proof(size1, size2, node)
    if 0 < size1 < size2 and size1 & (size1 - 1) == 0:
        proof.insert(0, node(size1.bit_length() - 1, 0))
    return proof


def fork_roots(size1: int, size2: int, proof: Sequence[bytes]) -> tuple[bytes, bytes]:
    """Run RFC 9162 §2.1.4.2 over an explicit proof: the roots it gives at ``size1`` and
    ``size2``. Raises :class:`InvalidProof` when the proof does not have the shape the sizes
    need."""
    for value, what in ((size1, "the first size"), (size2, "the second size")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidProof(f"{what} must be a non-negative integer")
    if not 0 < size1 < size2:
        raise InvalidProof("an explicit consistency proof needs 0 < first size < second size")
    if isinstance(proof, bytes | bytearray | str) or not all(
        isinstance(h, bytes) and len(h) == _HASH for h in proof
    ):
        raise InvalidProof(f"a proof is a sequence of {_HASH}-byte hashes")
    shift = (size1 & -size1).bit_length() - 1
    inner = ((size1 - 1) ^ (size2 - 1)).bit_length()
    border = ((size1 - 1) >> inner).bit_count()
    if len(proof) != inner - shift + border + 1:
        raise InvalidProof(
            f"an explicit proof from {size1} to {size2} has {inner - shift + border + 1} "
            f"hashes, not {len(proof)}"
        )
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise InvalidProof("the proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the proof is shorter than the tree is high")
    return fr, sr


def _text(note: bytes) -> str:
    try:
        return note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput("a checkpoint note is not UTF-8") from exc


@dataclass(frozen=True, slots=True)
class ForkProof:
    """Two signed checkpoints of ``origin`` and the explicit proof that they fork."""

    origin: str
    first: bytes
    second: bytes
    proof: tuple[bytes, ...] = ()
    detected_by: str = ""
    detected_at: int = 0

    def verify(self, verifiers: Sequence[NoteVerifier]) -> tuple[Checkpoint, Checkpoint]:
        """Check the fork offline (see the module docs); returns the two checkpoints.

        The notes' own errors propagate (``BadSignature``, ``UnknownIssuer``,
        ``MalformedInput``); a proof that shows no fork raises :class:`InvalidProof`.
        """
        if not verifiers:
            raise MalformedInput("checking a fork proof needs the log's public key")
        first = open_checkpoint(self.first, verifiers, origin=self.origin)
        second = open_checkpoint(self.second, verifiers, origin=self.origin)
        if first.size > second.size:
            raise InvalidProof("the first checkpoint is larger than the second")
        if first.size == second.size:
            if self.proof:
                raise InvalidProof("checkpoints of equal size need no proof")
            if hmac.compare_digest(first.root, second.root):
                raise InvalidProof("the two checkpoints are the same tree: no fork")
            return first, second
        if first.size == 0:
            raise InvalidProof("an empty tree is consistent with every tree: no fork")
        fr, sr = fork_roots(first.size, second.size, self.proof)
        if not hmac.compare_digest(sr, second.root):
            raise InvalidProof("the proof does not lead to the second checkpoint's root")
        if hmac.compare_digest(fr, first.root):
            raise InvalidProof("the proof shows the two checkpoints consistent: no fork")
        return first, second

    def to_json(self) -> dict[str, Any]:
        return {
            "type": FORK_PROOF_TYPE,
            "origin": self.origin,
            "first": _text(self.first),
            "second": _text(self.second),
            "proof": [base64.b64encode(h).decode("ascii") for h in self.proof],
            "detected_by": self.detected_by,
            "detected_at": self.detected_at,
        }

    def encode(self) -> bytes:
        """The JSON file an auditor checks with ``ironroot monitor verify-fork``."""
        return (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def parse(cls, data: bytes) -> ForkProof:
        if not isinstance(data, bytes):
            raise MalformedInput("a fork proof must be bytes")
        if len(data) > _MAX_FILE:
            raise LimitExceeded("the fork proof is too large")
        try:
            value = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise MalformedInput("a fork proof is a JSON object") from exc
        if not isinstance(value, dict) or value.get("type") != FORK_PROOF_TYPE:
            raise MalformedInput(f"not a fork proof (type {FORK_PROOF_TYPE})")
        origin, first, second = value.get("origin"), value.get("first"), value.get("second")
        proof = value.get("proof", [])
        by, at = value.get("detected_by", ""), value.get("detected_at", 0)
        if not all(isinstance(v, str) for v in (origin, first, second, by)):
            raise MalformedInput("a fork proof's origin, notes and finder are strings")
        if isinstance(at, bool) or not isinstance(at, int):
            raise MalformedInput("a fork proof's detected_at is an integer")
        if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
            raise MalformedInput("a fork proof's proof is a list of base64 hashes")
        hashes = []
        for item in proof:
            try:
                raw = base64.b64decode(item.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as exc:
                raise MalformedInput("a fork proof hash is not base64") from exc
            if len(raw) != _HASH:
                raise MalformedInput(f"a fork proof hash is {_HASH} bytes")
            hashes.append(raw)
        try:  # JSON escapes can spell lone surrogates, which no note holds
            notes = str(first).encode("utf-8"), str(second).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedInput("a fork proof's notes are not UTF-8 text") from exc
        return cls(
            origin=str(origin),
            first=notes[0],
            second=notes[1],
            proof=tuple(hashes),
            detected_by=str(by),
            detected_at=at,
        )
