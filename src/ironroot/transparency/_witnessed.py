"""A receipt that witnesses back: the statement's tree is a prefix of a cosigned checkpoint.

A receipt is signed by the service alone: on its own it cannot show that the service shows
everyone the same log. A relying party that requires witnesses checks, with
:func:`verify_witnessed_statement`, that the tree the receipt proves the statement in (size
and root, from the receipt's inclusion proof) is consistent with a checkpoint that k of the
witnesses it trusts cosigned: the log signature and the quorum (``WitnessPolicy.check``, at
the caller's ``now``: a cosignature dated in the future does not count), then an RFC 9162
consistency proof from the receipt's tree to the checkpoint's. Pure: the caller fetches the
cosigned checkpoint and the proof (:meth:`TransparencyClient.witness` computes the proof
from the service's tiles).

Of a statement logged on several services, the receipts the caller's service keys verify
are the candidates (the others are passed over, as ``verify_transparent_statement`` without
``require_all`` does), in order: the first whose tree the checkpoint extends is the one.

Errors: the receipts' (``verify_transparent_statement``), the checkpoint's
(``BadSignature``, ``UnknownIssuer``), :class:`InsufficientCosignatures`, and
:class:`InconsistentCheckpoint` when the checkpoint is older than the receipt's tree or the
proof does not connect them.

**A witnessed statement** carries all three to a relying party that checks offline (a RoT
deciding on a firmware update, ``docs/platform.md``): one deterministic CBOR map (RFC 8949
§4.2.1), nothing before or after it::

    {"format": "ironroot-witnessed-statement/1",
     "statement": bstr,      ; the Transparent Statement, its receipts in it
     "checkpoint": bstr,     ; the cosigned checkpoint (a C2SP signed note)
     "proof": [* bstr]}      ; RFC 9162 consistency proof, receipt's tree -> checkpoint

:meth:`WitnessedStatement.encode` writes it (``ironroot statement witness`` fetches and checks
the parts); :func:`decode_witnessed_statement` reads it strictly (``MalformedInput``: another
format, a missing or extra member, a member of the wrong type, a non-deterministic encoding,
more than 64 proof hashes or one not 32 bytes) and :func:`verify_witnessed` verifies it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.cose import (
    Limits,
    Receipt,
    TransparentStatement,
    decode_cbor,
    encode_cbor,
    verify_receipt,
    verify_transparent_statement,
)
from ironroot.crypto import Verifier
from ironroot.errors import (
    InconsistentCheckpoint,
    InvalidProof,
    IronrootError,
    MalformedInput,
    MalformedReceipt,
)
from ironroot.log import Checkpoint, NoteVerifier
from ironroot.merkle import leaf_hash, root_from_inclusion_proof, verify_consistency
from ironroot.witness import CosignedCheckpoint, WitnessPolicy

__all__ = [
    "WITNESSED_STATEMENT_FORMAT",
    "WitnessedStatement",
    "decode_witnessed_statement",
    "receipt_tree",
    "verify_witnessed",
    "verify_witnessed_statement",
]

WITNESSED_STATEMENT_FORMAT: Final = "ironroot-witnessed-statement/1"
_MEMBERS: Final = frozenset(("format", "statement", "checkpoint", "proof"))
_MAX_PROOF: Final = 64
"""A consistency proof between two trees of at most 2**63 leaves is shorter than this."""
_MAX_BYTES: Final = 4 << 20


@dataclass(frozen=True, slots=True)
class WitnessedStatement:
    """A transparent statement whose receipt's tree is in a checkpoint the quorum cosigned."""

    statement: TransparentStatement
    tree_size: int
    root: bytes
    checkpoint: CosignedCheckpoint
    transparent_statement: bytes = b""
    """The Transparent Statement as verified (its bytes)."""
    proof: tuple[bytes, ...] = ()
    """The consistency proof from the receipt's tree to the checkpoint's."""

    def encode(self) -> bytes:
        """The witnessed statement a relying party checks offline (module docs)."""
        return encode_cbor(
            {
                "format": WITNESSED_STATEMENT_FORMAT,
                "statement": self.transparent_statement,
                "checkpoint": self.checkpoint.note,
                "proof": list(self.proof),
            }
        )


def decode_witnessed_statement(data: bytes) -> tuple[bytes, bytes, tuple[bytes, ...]]:
    """(Transparent Statement, cosigned checkpoint, consistency proof) of a witnessed
    statement, read strictly (module docs); nothing is verified."""
    doc = decode_cbor(data, Limits(max_bytes=_MAX_BYTES, max_depth=3, max_items=_MAX_PROOF + 4))
    if not isinstance(doc, dict) or doc.get("format") != WITNESSED_STATEMENT_FORMAT:
        raise MalformedInput(f"not a witnessed statement ({WITNESSED_STATEMENT_FORMAT})")
    if set(doc) != _MEMBERS:
        raise MalformedInput(
            "a witnessed statement has exactly the members "
            + ", ".join(sorted(_MEMBERS))
            + f"; this one has {', '.join(sorted(map(repr, doc)))}"
        )
    statement, checkpoint, proof = doc["statement"], doc["checkpoint"], doc["proof"]
    if not isinstance(statement, bytes) or not statement:
        raise MalformedInput("a witnessed statement's statement is a Transparent Statement")
    if not isinstance(checkpoint, bytes) or not checkpoint:
        raise MalformedInput("a witnessed statement's checkpoint is a signed note (bytes)")
    if not isinstance(proof, list) or len(proof) > _MAX_PROOF:
        raise MalformedInput(f"a witnessed statement's proof is a list of at most {_MAX_PROOF}")
    if not all(isinstance(h, bytes) and len(h) == 32 for h in proof):
        raise MalformedInput("a witnessed statement's proof hashes are 32 bytes each")
    if encode_cbor(doc) != bytes(data):
        raise MalformedInput("a witnessed statement is deterministic CBOR (RFC 8949 §4.2.1)")
    return statement, checkpoint, tuple(proof)


def receipt_tree(
    transparent_statement: bytes, service_keys: Mapping[bytes, Verifier] | None = None
) -> tuple[int, bytes]:
    """(tree size, root) of the statement's receipt's inclusion proof: with ``service_keys``,
    of the first receipt one of them signed (verified: else the first receipt's error), without,
    of the first receipt (not yet verified)."""
    return _receipt_trees(transparent_statement, service_keys)[0]


def _receipt_trees(
    transparent_statement: bytes,
    service_keys: Mapping[bytes, Verifier] | None,
    *,
    issuer: str | None = None,
    now: float | None = None,
) -> list[tuple[int, bytes]]:
    """The (tree size, root) of every receipt ``service_keys`` verify, in order (of the first
    receipt, unverified, without keys); the first receipt's error when there is none."""
    parsed = TransparentStatement.parse(transparent_statement)
    entry = parsed.statement.log_entry()
    trees: list[tuple[int, bytes]] = []
    failures: list[IronrootError] = []
    for data in parsed.receipts if service_keys is not None else parsed.receipts[:1]:
        try:
            receipt = Receipt.parse(data)
            if service_keys is not None:
                verify_receipt(receipt, entry, service_keys, issuer=issuer, now=now)
            if not receipt.inclusion_proofs:
                raise MalformedReceipt("the receipt carries no inclusion proof")
            proof = receipt.inclusion_proofs[0]
            root = root_from_inclusion_proof(
                proof.leaf_index, proof.tree_size, leaf_hash(entry), proof.path
            )
        except IronrootError as exc:
            failures.append(exc)
        else:
            trees.append((proof.tree_size, root))
    if not trees:
        raise failures[0]
    return trees


def verify_witnessed_statement(
    transparent_statement: bytes,
    cosigned_checkpoint: bytes,
    consistency_proof: Sequence[bytes],
    *,
    service_keys: Mapping[bytes, Verifier],
    log_verifiers: Sequence[NoteVerifier],
    policy: WitnessPolicy,
    now: int,
    origin: str | None = None,
    service_issuer: str | None = None,
) -> WitnessedStatement:
    """Verify the statement's receipts, the checkpoint's quorum at ``now`` (POSIX seconds),
    and that a receipt's tree is a prefix of the checkpoint's (see the module docs). Of a
    statement logged on several services, the receipts ``service_keys`` verify are tried in
    order (others are passed over, as :func:`verify_transparent_statement` does without
    ``require_all``); the first one's refusal is raised when none connects. The receipts are
    held to ``now`` too (none issued after it: ``VerificationFailed``
    ``receipt-from-the-future``) and, with ``service_issuer``, must name that service
    (``UnknownIssuer`` ``untrusted-service``): :func:`~ironroot.cose.verify_receipt`."""
    statement = verify_transparent_statement(
        transparent_statement,
        service_keys,
        require_all=False,
        issuer=service_issuer,
        now=now,
    )
    trees = _receipt_trees(transparent_statement, service_keys, issuer=service_issuer, now=now)
    cosigned = policy.check(cosigned_checkpoint, log_verifiers, origin=origin, now=now)
    failures: list[InconsistentCheckpoint] = []
    for size, root in trees:
        try:
            _connect(size, root, cosigned.checkpoint, consistency_proof)
        except InconsistentCheckpoint as exc:
            failures.append(exc)
        else:
            return WitnessedStatement(
                statement,
                size,
                root,
                cosigned,
                bytes(transparent_statement),
                tuple(consistency_proof),
            )
    raise failures[0]


def _connect(size: int, root: bytes, checkpoint: Checkpoint, proof: Sequence[bytes]) -> None:
    """The tree (``size``, ``root``) is a prefix of ``checkpoint``'s, by ``proof``."""
    if checkpoint.size < size:
        raise InconsistentCheckpoint(
            f"the cosigned checkpoint (size {checkpoint.size}) is older than the receipt's "
            f"tree (size {size})"
        )
    try:
        if checkpoint.size == size:
            if proof:
                raise InvalidProof("equal sizes need an empty consistency proof")
            if not hmac.compare_digest(root, checkpoint.root):
                raise InvalidProof("the receipt's root is not the cosigned root at that size")
        else:
            verify_consistency(size, checkpoint.size, proof, root, checkpoint.root)
    except InvalidProof as exc:
        raise InconsistentCheckpoint(
            f"the receipt's tree (size {size}) is not shown to be in the cosigned checkpoint "
            f"(size {checkpoint.size}): {exc.detail}"
        ) from exc


def verify_witnessed(
    witnessed_statement: bytes,
    *,
    service_keys: Mapping[bytes, Verifier],
    log_verifiers: Sequence[NoteVerifier],
    policy: WitnessPolicy,
    now: int,
    origin: str | None = None,
) -> WitnessedStatement:
    """:func:`verify_witnessed_statement` of a witnessed statement's parts (module docs)."""
    statement, checkpoint, proof = decode_witnessed_statement(witnessed_statement)
    return verify_witnessed_statement(
        statement,
        checkpoint,
        proof,
        service_keys=service_keys,
        log_verifiers=log_verifiers,
        policy=policy,
        now=now,
        origin=origin,
    )
