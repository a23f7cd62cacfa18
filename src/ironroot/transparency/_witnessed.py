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

Errors: the receipts' (``verify_transparent_statement``), the checkpoint's
(``BadSignature``, ``UnknownIssuer``), :class:`InsufficientCosignatures`, and
:class:`InconsistentCheckpoint` when the checkpoint is older than the receipt's tree or the
proof does not connect them.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ironroot.cose import Receipt, TransparentStatement, verify_transparent_statement
from ironroot.crypto import Verifier
from ironroot.errors import InconsistentCheckpoint, InvalidProof, MalformedReceipt
from ironroot.log import NoteVerifier
from ironroot.merkle import leaf_hash, root_from_inclusion_proof, verify_consistency
from ironroot.witness import CosignedCheckpoint, WitnessPolicy

__all__ = ["WitnessedStatement", "receipt_tree", "verify_witnessed_statement"]


@dataclass(frozen=True, slots=True)
class WitnessedStatement:
    """A transparent statement whose receipt's tree is in a checkpoint the quorum cosigned."""

    statement: TransparentStatement
    tree_size: int
    root: bytes
    checkpoint: CosignedCheckpoint


def receipt_tree(transparent_statement: bytes) -> tuple[int, bytes]:
    """(tree size, root) of the first receipt's inclusion proof (not yet verified)."""
    parsed = TransparentStatement.parse(transparent_statement)
    receipt = Receipt.parse(parsed.receipts[0])
    if not receipt.inclusion_proofs:
        raise MalformedReceipt("the receipt carries no inclusion proof")
    proof = receipt.inclusion_proofs[0]
    leaf = leaf_hash(parsed.statement.log_entry())
    return proof.tree_size, root_from_inclusion_proof(
        proof.leaf_index, proof.tree_size, leaf, proof.path
    )


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
) -> WitnessedStatement:
    """Verify the statement's receipts, the checkpoint's quorum at ``now`` (POSIX seconds),
    and that the receipt's tree is a prefix of the checkpoint's (see the module docs)."""
    statement = verify_transparent_statement(transparent_statement, service_keys)
    size, root = receipt_tree(transparent_statement)
    cosigned = policy.check(cosigned_checkpoint, log_verifiers, origin=origin, now=now)
    checkpoint = cosigned.checkpoint
    if checkpoint.size < size:
        raise InconsistentCheckpoint(
            f"the cosigned checkpoint (size {checkpoint.size}) is older than the receipt's "
            f"tree (size {size})"
        )
    try:
        if checkpoint.size == size:
            if consistency_proof:
                raise InvalidProof("equal sizes need an empty consistency proof")
            if not hmac.compare_digest(root, checkpoint.root):
                raise InvalidProof("the receipt's root is not the cosigned root at that size")
        else:
            verify_consistency(size, checkpoint.size, consistency_proof, root, checkpoint.root)
    except InvalidProof as exc:
        raise InconsistentCheckpoint(
            f"the receipt's tree (size {size}) is not shown to be in the cosigned checkpoint "
            f"(size {checkpoint.size}): {exc.detail}"
        ) from exc
    return WitnessedStatement(statement, size, root, cosigned)
