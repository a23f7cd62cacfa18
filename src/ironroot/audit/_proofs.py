"""Checkpoints with consistency and inclusion proofs for every receipt in a bundle.

A receipt signs the root of the tree its entry was integrated in (size *T*). At export, each
transparency service's current signed checkpoint (size *N* ≥ *T*, a C2SP note) is fetched
with its tiles (c2sp.org/tlog-tiles), and for every receipt the service signed the exporter
computes from the tiles an RFC 9162 consistency proof from *T* to *N* and an inclusion proof
of the entry at *N*. Offline, :func:`verify_log_proofs` checks the checkpoint's note signature
against the auditor's checkpoint keys, recomputes each receipt's root from its entry, and
verifies that root consistent with the checkpoint's (``InconsistentCheckpoint`` otherwise: the
log the receipt came from and the log the checkpoint describes have diverged — a split view),
and the entry included at *N*. Every receipt by a trusted service key must be covered.

Member ``transparency/<n>/proofs.cbor`` (deterministic CBOR), beside the checkpoint
``transparency/<n>/checkpoint``::

    proofs = {
      "format": "ironroot-audit-proofs/1",
      "origin": tstr,                    ; the checkpoint's origin
      "tree_size": uint,                 ; the checkpoint's size N
      "entries": [* {
        "member": tstr,                  ; the statement's member name
        "receipt": uint,                 ; which receipt of its header 394
        "leaf_index": uint,
        "receipt_tree_size": uint,       ; T
        "consistency": [* bstr],         ; T -> N
        "inclusion": [* bstr],           ; the entry at N
      }],
    }

:func:`fetch_log` is the I/O shell (any :class:`ironroot.log.LogFetcher`, the tree read with
:class:`ironroot.log.TileTree`); the proof format and :func:`verify_log_proofs` are pure.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.audit._bundle import items_within
from ironroot.audit._trust import TrustedLog
from ironroot.cose import (
    Limits,
    Receipt,
    TransparentStatement,
    decode_cbor,
    decode_key_set,
    encode_cbor,
    verify_receipt,
)
from ironroot.crypto import Verifier
from ironroot.errors import (
    InconsistentCheckpoint,
    InsufficientCosignatures,
    InvalidProof,
    LimitExceeded,
    MalformedInput,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.log import (
    Checkpoint,
    LogFetcher,
    Note,
    NoteVerifier,
    TileTree,
    fetch_checkpoint,
    fetch_document,
    fetch_log_identity,
    open_checkpoint,
)
from ironroot.merkle import (
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ironroot.witness import CosignatureVerifier, verify_cosignatures

__all__ = [
    "PROOFS_FORMAT",
    "CheckedLog",
    "EntryProof",
    "FetchedLog",
    "LogProofs",
    "fetch_log",
    "verify_log_proofs",
]

PROOFS_FORMAT: Final = "ironroot-audit-proofs/1"
_LIMITS: Final = Limits(max_bytes=16 * 1024 * 1024, max_depth=5, max_items=4096)
_MAX_ITEMS: Final = 160 * _LIMITS.max_items
"""Counted before decoding: per entry its map, six keys, four values and two arrays of at
most 64 hashes each (``max_path``)."""
_KEYS_PATH: Final = ".well-known/scitt-keys"


@dataclass(frozen=True, slots=True)
class EntryProof:
    """The proofs for one receipt of one statement member (module docs)."""

    member: str
    receipt: int
    leaf_index: int
    receipt_tree_size: int
    consistency: tuple[bytes, ...]
    inclusion: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LogProofs:
    """One log's proofs, all to its checkpoint of ``tree_size``."""

    origin: str
    tree_size: int
    entries: tuple[EntryProof, ...]

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "format": PROOFS_FORMAT,
                "origin": self.origin,
                "tree_size": self.tree_size,
                "entries": [
                    {
                        "member": e.member,
                        "receipt": e.receipt,
                        "leaf_index": e.leaf_index,
                        "receipt_tree_size": e.receipt_tree_size,
                        "consistency": list(e.consistency),
                        "inclusion": list(e.inclusion),
                    }
                    for e in self.entries
                ],
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> LogProofs:
        """Parse strictly (``MalformedInput``)."""
        if not items_within(data, _MAX_ITEMS):
            raise LimitExceeded(f"the proofs hold more than {_MAX_ITEMS} CBOR items")
        doc = decode_cbor(data, _LIMITS)
        if (
            not isinstance(doc, dict)
            or set(doc) != {"format", "origin", "tree_size", "entries"}
            or doc["format"] != PROOFS_FORMAT
            or not isinstance(doc["origin"], str)
            or not _uint(doc["tree_size"])
            or not isinstance(doc["entries"], list)
        ):
            raise MalformedInput(f"not an {PROOFS_FORMAT} map")
        keys = {"member", "receipt", "leaf_index", "receipt_tree_size", "consistency", "inclusion"}
        entries = []
        for item in doc["entries"]:
            if (
                not isinstance(item, dict)
                or set(item) != keys
                or not isinstance(item["member"], str)
                or not all(_uint(item[k]) for k in ("receipt", "leaf_index", "receipt_tree_size"))
                or not _hashes(item["consistency"])
                or not _hashes(item["inclusion"])
            ):
                raise MalformedInput("a proof entry is malformed")
            entries.append(
                EntryProof(
                    item["member"],
                    item["receipt"],
                    item["leaf_index"],
                    item["receipt_tree_size"],
                    tuple(item["consistency"]),
                    tuple(item["inclusion"]),
                )
            )
        return cls(doc["origin"], doc["tree_size"], tuple(entries))


def _uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hashes(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(h, bytes) and len(h) == 32 for h in value)


# --- export: proofs from a served log's tiles -----------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedLog:
    """What export fetched from one service: its signed checkpoint and the proofs of the
    receipts it signed, and the receipt key ids it publishes."""

    checkpoint: bytes
    proofs: LogProofs
    kids: frozenset[bytes]


def _receipts(statement: bytes) -> tuple[bytes, tuple[Receipt, ...]]:
    parsed = TransparentStatement.parse(statement)
    return parsed.statement.log_entry(), tuple(Receipt.parse(r) for r in parsed.receipts)


def _receipt_root(receipt: Receipt, entry: bytes) -> tuple[int, int, bytes]:
    proof = receipt.inclusion_proofs[0]
    root = root_from_inclusion_proof(
        proof.leaf_index, proof.tree_size, leaf_hash(entry), proof.path
    )
    return proof.leaf_index, proof.tree_size, root


def fetch_log(fetcher: LogFetcher, statements: Mapping[str, bytes]) -> FetchedLog:
    """The checkpoint of the log behind ``fetcher`` and, for every receipt among
    ``statements`` (member name → Transparent Statement) signed by one of its receipt keys,
    the proofs to it. The checkpoint is checked against the keys the service publishes and
    against its tiles, and each proof against it: a log that serves an inconsistent view is
    refused here (``InconsistentCheckpoint``), before anything is written; so is a checkpoint,
    a transparency configuration or a key set larger than any log resource or that is none
    (``VerificationFailed`` naming it: the log's failure, not the exporter's input)."""
    identity = fetch_log_identity(fetcher)
    kids = frozenset(fetch_document(fetcher, _KEYS_PATH, decode_key_set, accept="application/cbor"))
    note, checkpoint = fetch_checkpoint(fetcher, identity.verifiers, origin=identity.origin)
    tree = TileTree(fetcher, checkpoint.size)
    if checkpoint.size == 0 or not hmac.compare_digest(tree.root(), checkpoint.root):
        raise InconsistentCheckpoint(f"the tiles of {identity.origin} are not its checkpoint")
    entries = []
    for member, data in sorted(statements.items()):
        entry, receipts = _receipts(data)
        for number, receipt in enumerate(receipts):
            if receipt.kid not in kids:
                continue
            index, size, root = _receipt_root(receipt, entry)
            consistency = tree.consistency_proof(size)
            try:
                verify_consistency(size, checkpoint.size, consistency, root, checkpoint.root)
            except InvalidProof as exc:
                raise InconsistentCheckpoint(
                    f"{identity.origin}'s checkpoint at {checkpoint.size} is not consistent "
                    f"with the tree of {size} its receipt for {member} signs"
                ) from exc
            inclusion = tree.inclusion_proof(index)
            entries.append(
                EntryProof(member, number, index, size, tuple(consistency), tuple(inclusion))
            )
    return FetchedLog(note, LogProofs(checkpoint.origin, checkpoint.size, tuple(entries)), kids)


# --- verification (pure) ----------------------------------------------------------------------


def _cosigned(
    text: bytes,
    checkpoint: Checkpoint,
    witnesses: Sequence[CosignatureVerifier],
    quorum: int,
    now: int | None,
) -> list[str]:
    """The distinct trusted witnesses whose cosignature on the checkpoint verifies (and, with
    ``now``, is not dated after it), when at least ``quorum`` (none asked when ``quorum`` is
    0)."""
    if not quorum:
        return []
    found = verify_cosignatures(Note.parse(text), witnesses, now=now)
    names = sorted({c.name for c in found})
    if len(names) < quorum:
        raise InsufficientCosignatures(
            f"the checkpoint of {checkpoint.origin} at size {checkpoint.size} is cosigned by "
            f"{len(names)} distinct trusted witness(es) ({', '.join(names) or 'none'}); "
            f"{quorum} required"
        )
    return names


@dataclass(frozen=True, slots=True)
class CheckedLog:
    """A verified checkpoint, how many receipts its proofs covered, and the newest issue
    time (``iat``, POSIX seconds) among those receipts (``None``: none states one)."""

    checkpoint: Checkpoint
    covered: int
    newest_receipt: int | None = None


def _open_paired(text: bytes, logs: Sequence[TrustedLog]) -> tuple[Checkpoint, TrustedLog]:
    """The checkpoint note ``text`` opened as one of ``logs``: signed by one of its
    checkpoint keys and naming its origin (``UnknownIssuer`` ``untrusted-log`` otherwise)."""
    reasons = []
    for log in logs:
        try:
            return open_checkpoint(text, log.checkpoint_keys, origin=log.origin), log
        except UnknownIssuer as exc:
            reasons.append(f"{log.origin}: {exc.detail}")
    raise UnknownIssuer(
        "no trusted log signed a checkpoint of its own origin in the bundle ("
        + "; ".join(reasons)[:400]
        + ")",
        code="untrusted-log",
    )


def _once_per_log(checkpoint: Checkpoint, seen: dict[str, Checkpoint]) -> None:
    """One view per origin: each checkpoint is checked alone, so a second one of an origin
    would let a receipt of another view of the log be proven under the checkpoint of that view,
    the others under the log's. The same tree again (one log given twice at export, its keys
    split between the two) is one view; ``InconsistentCheckpoint`` for another root at the
    same size (the signed notes are a fork), ``InvalidProof`` ``checkpoint-twice`` for another
    size (nothing in the bundle shows them consistent)."""
    first = seen.setdefault(checkpoint.origin, checkpoint)
    if first is checkpoint or (
        first.size == checkpoint.size and hmac.compare_digest(first.root, checkpoint.root)
    ):
        return
    if first.size == checkpoint.size:
        raise InconsistentCheckpoint(
            f"the bundle holds two checkpoints of {checkpoint.origin} at size {checkpoint.size} "
            "with different roots: the log signed two views"
        )
    raise InvalidProof(
        f"the bundle holds two checkpoints of {checkpoint.origin} (at sizes {first.size} and "
        f"{checkpoint.size}): an export holds one view of each log, and no proof in it shows "
        "them consistent",
        code="checkpoint-twice",
    )


def verify_log_proofs(
    statements: Mapping[str, bytes],
    logs: Sequence[tuple[bytes, bytes]],
    *,
    service_keys: Mapping[bytes, Verifier],
    checkpoint_keys: Iterable[NoteVerifier],
    witnesses: Sequence[CosignatureVerifier] = (),
    witness_quorum: int = 0,
    now: int | None = None,
    note: Callable[[str], None] = lambda _line: None,
    paired: Sequence[TrustedLog] = (),
    issuer: str | None = None,
) -> list[CheckedLog]:
    """Verify every log's ``(checkpoint note, proofs)`` and that they cover every receipt by
    a trusted service key among ``statements`` (module docs). Raises ``UnknownIssuer``
    (``untrusted-log``: no trusted key signed a checkpoint), ``InconsistentCheckpoint`` (also
    two checkpoints of one origin and size, other roots), ``InvalidProof`` ``checkpoint-twice``
    (two of one origin at other sizes: one view of each log),
    ``InvalidProof`` (an inclusion proof, a proof for another receipt, or a second proof of
    one receipt) or
    ``VerificationFailed`` ``no-checkpoint`` (a trusted receipt no checkpoint covers), and,
    with ``now``, ``receipt-from-the-future`` (a proven receipt issued more than 300 s after
    it: :func:`ironroot.cose.verify_receipt`).

    With ``witness_quorum`` > 0 every checkpoint must also carry valid cosignatures
    (c2sp.org/tlog-cosignature) from that many distinct ``witnesses`` — distinct by name, so
    one witness's two keys count once, and with ``now`` (POSIX seconds) a cosignature dated
    more than ``FUTURE_SKEW`` after it does not count: ``InsufficientCosignatures`` when it
    has fewer, ``BadSignature`` when a line by a trusted witness key does not verify.

    With ``paired`` (the trust's :class:`~ironroot.audit.TrustedLog` entries) a checkpoint
    counts only as one of those logs (signed by its checkpoint keys, of its origin), and a
    receipt is proven only under a checkpoint of the log its key is paired with:
    ``UnknownIssuer`` ``receipt-log-mismatch`` for a receipt of another service.

    A proven receipt signed by no key of ``service_keys`` or, with ``issuer`` (the trust's
    ``service_issuer``), not naming that transparency service in its CWT ``iss`` is
    ``UnknownIssuer`` ``untrusted-service``: :func:`ironroot.cose.verify_receipt`'s code, as
    :func:`ironroot.cose.on_trusted_log` gives it to the other steps."""
    verifiers = tuple(checkpoint_keys)
    covered: set[tuple[str, int]] = set()
    checked: list[CheckedLog] = []
    seen: dict[str, Checkpoint] = {}
    for text, proofs_bytes in logs:
        log: TrustedLog | None = None
        if paired:
            checkpoint, log = _open_paired(text, paired)
        else:
            try:
                checkpoint = open_checkpoint(text, verifiers)
            except UnknownIssuer as exc:
                raise UnknownIssuer(
                    f"no trusted checkpoint key signed a checkpoint in the bundle ({exc.detail})",
                    code="untrusted-log",
                ) from exc
        _once_per_log(checkpoint, seen)
        cosigners = _cosigned(text, checkpoint, witnesses, witness_quorum, now)
        proofs = LogProofs.decode(proofs_bytes)
        newest: int | None = None
        if proofs.origin != checkpoint.origin or proofs.tree_size != checkpoint.size:
            raise InvalidProof(
                f"the proofs are for {proofs.origin} at {proofs.tree_size}, the checkpoint is "
                f"{checkpoint.origin} at {checkpoint.size}"
            )
        for proof in proofs.entries:
            if (proof.member, proof.receipt) in covered:  # each costs a signature: once
                raise InvalidProof(f"receipt {proof.receipt} of {proof.member} is proven twice")
            data = statements.get(proof.member)
            if data is None:
                raise InvalidProof(f"a proof names {proof.member}, which is no logged statement")
            entry, receipts = _receipts(data)
            if proof.receipt >= len(receipts):
                raise InvalidProof(f"{proof.member} has no receipt {proof.receipt}")
            kid = receipts[proof.receipt].kid
            if log is not None and kid not in log.receipt_kids:
                raise UnknownIssuer(
                    f"receipt {proof.receipt} of {proof.member} is signed by service key "
                    f"{kid.hex()[:16]}…, not a key of log {log.origin}: the trust pairs it with "
                    "another log, under whose checkpoint alone it is proven",
                    code="receipt-log-mismatch",
                )
            try:
                receipt = verify_receipt(
                    receipts[proof.receipt], entry, service_keys, issuer=issuer, now=now
                )
            except UnknownIssuer as exc:  # cose's untrusted-service, named for the receipt
                raise UnknownIssuer(
                    f"receipt {proof.receipt} of {proof.member} is not by the trusted "
                    f"transparency service ({exc.detail})",
                    code=exc.code,
                ) from exc
            if receipt.iat is not None:
                newest = receipt.iat if newest is None else max(newest, receipt.iat)
            index, size, root = _receipt_root(receipt, entry)
            if (index, size) != (proof.leaf_index, proof.receipt_tree_size):
                raise InvalidProof(f"the proof for {proof.member} is for another receipt")
            try:
                verify_consistency(size, checkpoint.size, proof.consistency, root, checkpoint.root)
            except InvalidProof as exc:
                raise InconsistentCheckpoint(
                    f"checkpoint {checkpoint.origin} at {checkpoint.size} is not consistent "
                    f"with the tree of {size} the receipt of {proof.member} signs: the log "
                    f"presented two views ({exc.detail})"
                ) from exc
            verify_inclusion(
                index, checkpoint.size, leaf_hash(entry), proof.inclusion, checkpoint.root
            )
            covered.add((proof.member, proof.receipt))
        checked.append(CheckedLog(checkpoint, len(proofs.entries), newest))
        note(
            f"checkpoint {checkpoint.origin} at size {checkpoint.size}: "
            f"{len(proofs.entries)} receipt(s) consistent with it and included"
        )
        if witness_quorum:
            note(
                f"cosigned by {len(cosigners)} trusted witness(es), {witness_quorum} required: "
                + ", ".join(cosigners)
            )
    for member, data in sorted(statements.items()):
        _entry, receipts = _receipts(data)
        for number, receipt in enumerate(receipts):
            if receipt.kid in service_keys and (member, number) not in covered:
                raise VerificationFailed(
                    f"no checkpoint in the bundle covers receipt {number} of {member}",
                    code="no-checkpoint",
                )
    return checked
