"""The HSM audit log: hash-chained, keyed records, their verification, and signed checkpoints.

Each record is ``(seq, time, identity, operation, key, result, prev, mac)``. Its hash is
``SHA-256(deterministic CBOR of [seq, time, identity, operation, key, result, prev])``; ``prev``
is the hash of the record before it (32 zero bytes for record 0); ``seq`` counts from 0 without
gaps. So a removed, altered or reordered record breaks the chain at that point, and anyone can
check the chain with public information only.

``mac`` is ``HMAC-SHA-256(audit key, "ironroot/hsm/audit/v1" ‖ hash)``. The audit key is drawn
when the HSM is initialized and lives only in its sealed store: it never leaves the boundary.
A chain rewritten and rehashed by someone outside the HSM (a ``release`` record turned into
``key-info``, or records after the last anchor replaced) has hashes that chain but MACs that do
not verify. Records cut from the *end* are caught against the head the HSM seals in its anchor
at every security event (bound to the root of trust's monotonic counter, see ``_anchor``) and
against checkpoints: ``size`` records with head hash ``head``, signed by the attestation key as
a SCITT Signed Statement (payload: CBOR map ``{"hsm": bstr, "size": uint, "head": bstr,
"time": uint}``, content type ``application/vnd.ironroot.hsm-audit-checkpoint+cbor``) so it
can be registered on the transparency service, where an auditor holds it without any key.

On disk the log is JSON Lines, one record per line with ``prev`` and ``mac`` in lowercase hex:
readable with any tool, while the hash always covers the CBOR form. ``time`` is POSIX seconds,
``key`` is the key handle or ``null`` (``parent->new`` for derive and unwrap; ``<name> <key
id>`` for an EAR verifier or wrap recipient an officer adds or removes, ``<name> -`` when
refused before the key was known: ``_audit_buffer.named_subject``), ``result`` is ``"ok"`` or
the error code of a refused operation. Lines are read strictly (:mod:`ironroot._json`,
UTF-8): the hash covers the values read, so a line naming a member twice (``"result": "ok"``
before the true ``"result"``) would verify here, where the last one counts, and show the other
to a tool that keeps the first; it is not JSON.

A ``release`` record written since release binding (ADR 0015) carries one more member,
``release``: what the release was bound to (:class:`ReleaseBinding`), each a SHA-256 digest in
hex — ``statement`` (of the exact bytes of the release statement the HSM signed and returned,
on a granted release only), ``recipient`` (of the TEE's wrapping key, canonical SPKI DER, as
the statement's ``recipient`` claim) and ``ear`` (of the EAR bytes presented), each present
when the HSM got that far. Such a record hashes as the CBOR array of the seven fields followed
by the map ``{"statement"?: bstr, "recipient"?: bstr, "ear"?: bstr}`` (eight items); a record
without it hashes as before (seven items). So chains written before the change verify
unchanged, and a binding cannot be removed, added or altered without breaking the chain and
the MAC, which cover it. A release statement presented later is matched to exactly one record
by its digest (:func:`release_records`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ironroot._json import DECODER as STRICT_JSON
from ironroot.cose import SignedStatement, create_statement, decode_cbor, encode_cbor
from ironroot.crypto import Signer, Verifier
from ironroot.errors import AuditChainBroken, LimitExceeded, MalformedInput

__all__ = [
    "CHECKPOINT_CONTENT_TYPE",
    "MAX_AUDIT_FILE",
    "ZERO_HASH",
    "AuditCheckpoint",
    "AuditRecord",
    "AuditSpan",
    "ReleaseBinding",
    "audit_mac",
    "checkpoint_statement",
    "format_audit_log",
    "parse_audit_log",
    "parse_segment_name",
    "release_records",
    "segment_name",
    "segments_from",
    "verify_audit",
    "verify_audit_checkpoint",
    "verify_audit_segments",
]

ZERO_HASH: Final = bytes(32)
CHECKPOINT_CONTENT_TYPE: Final = "application/vnd.ironroot.hsm-audit-checkpoint+cbor"
CHECKPOINT_SUBJECT: Final = "hsm-audit-log"
MAX_LINE: Final = 4096
MAX_RECORDS: Final = 10_000_000
MAX_AUDIT_FILE: Final = 1024 * 1024 * 1024
"""The most read of one audit log file, the live log or an archived segment (1 GiB, some 3
to 4 million records): the HSM at power-up, ``ironroot hsm audit verify`` and an audit bundle
all read within it (a larger file once read until memory ran out)."""
_FIELDS: Final = frozenset({"seq", "time", "identity", "operation", "key", "result", "prev", "mac"})
_BOUND_FIELDS: Final = _FIELDS | {"release"}
_BINDING: Final = ("statement", "recipient", "ear")
PRUNE: Final = "audit-prune"
SEGMENT_PREFIX: Final = "audit-"
SEGMENT_SUFFIX: Final = ".jsonl"
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]{0,18}")
_LOWER_HEX32: Final = re.compile(r"[0-9a-f]{64}")
MAC_LABEL: Final = b"ironroot/hsm/audit/v1"


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hex32(value: object, name: str) -> bytes:
    """A digest as the HSM writes it: 64 lowercase hex digits, nothing else (the hash covers
    the bytes, so another spelling of them, upper case or spaced, would verify as well)."""
    if not isinstance(value, str) or not _LOWER_HEX32.fullmatch(value):
        raise MalformedInput(f"audit {name} is 64 lowercase hex digits")
    return bytes.fromhex(value)


def audit_mac(key: bytes | bytearray, digest: bytes) -> bytes:
    """The MAC of a record whose hash is ``digest`` (module docs)."""
    return hmac.new(bytes(key), MAC_LABEL + digest, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class ReleaseBinding:
    """What one ``release`` record binds (module docs): SHA-256 digests of the release
    statement returned (granted releases only), of the TEE's wrapping key and of the EAR;
    ``None`` where the HSM did not get that far."""

    statement: bytes | None = None
    recipient: bytes | None = None
    ear: bytes | None = None

    def __post_init__(self) -> None:
        for name in _BINDING:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, bytes) or len(value) != 32):
                raise MalformedInput(f"audit release {name} is a 32-byte SHA-256 digest")
        if self.statement is None and self.recipient is None and self.ear is None:
            raise MalformedInput("an audit release binding names at least one digest")

    def to_cbor(self) -> dict[str, bytes]:
        return {n: v for n in _BINDING if (v := getattr(self, n)) is not None}

    def to_json(self) -> dict[str, str]:
        return {n: v.hex() for n, v in self.to_cbor().items()}

    @classmethod
    def from_json(cls, value: object) -> ReleaseBinding:
        if not isinstance(value, dict) or not value or not set(value) <= set(_BINDING):
            raise MalformedInput("audit release is a map of statement, recipient and ear")
        return cls(**{n: _hex32(value[n], f"release {n}") for n in _BINDING if n in value})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit record (see the module docstring)."""

    seq: int
    time: int
    identity: str
    operation: str
    key: str | None
    result: str
    prev: bytes
    mac: bytes = bytes(32)
    release: ReleaseBinding | None = None

    def __post_init__(self) -> None:
        if not _is_uint(self.seq) or not _is_uint(self.time):
            raise MalformedInput("audit seq and time are non-negative integers")
        for name in ("identity", "operation", "result"):
            if not isinstance(getattr(self, name), str):
                raise MalformedInput(f"audit {name} must be text")
        if self.key is not None and not isinstance(self.key, str):
            raise MalformedInput("audit key must be a handle or null")
        if not isinstance(self.prev, bytes) or len(self.prev) != 32:
            raise MalformedInput("audit prev is a 32-byte hash")
        if not isinstance(self.mac, bytes) or len(self.mac) != 32:
            raise MalformedInput("audit mac is a 32-byte HMAC-SHA-256 tag")
        if self.release is not None and not isinstance(self.release, ReleaseBinding):
            raise MalformedInput("audit release is a release binding")

    def binding_error(self) -> str | None:
        """Why this record's release binding cannot be one the HSM wrote (only a release
        binds; a granted one binds its statement, a refused one none), or ``None``."""
        if self.release is None:
            return None
        if self.operation != "release":
            return f"record {self.seq} is a {self.operation!r}, yet binds a release"
        if (self.result == "ok") != (self.release.statement is not None):
            return (
                f"record {self.seq} binds a release statement to a refusal"
                if self.result != "ok"
                else f"record {self.seq} is a granted release that binds no statement"
            )
        return None

    @property
    def prunes(self) -> int:
        """For a granted ``audit-prune`` record (key ``before-<N>``): ``N``, the first record
        an officer kept when archived segments holding the records before it were removed
        (``Hsm.prune_audit``); 0 for any other record."""
        if self.operation != PRUNE or self.result != "ok" or self.key is None:
            return 0
        number = self.key.removeprefix("before-")
        return int(number) if number != self.key and _DECIMAL.fullmatch(number) else 0

    def digest(self) -> bytes:
        """The record hash that the next record's ``prev`` must equal (seven items, and the
        release binding as an eighth when there is one: module docs)."""
        items: list[object] = [
            self.seq,
            self.time,
            self.identity,
            self.operation,
            self.key,
            self.result,
            self.prev,
        ]
        if self.release is not None:
            items.append(self.release.to_cbor())
        return hashlib.sha256(encode_cbor(items)).digest()

    def to_json(self) -> dict[str, object]:
        bound = {} if self.release is None else {"release": self.release.to_json()}
        return {
            "seq": self.seq,
            "time": self.time,
            "identity": self.identity,
            "operation": self.operation,
            "key": self.key,
            "result": self.result,
            "prev": self.prev.hex(),
            "mac": self.mac.hex(),
            **bound,
        }

    @classmethod
    def from_json(cls, value: object) -> AuditRecord:
        if not isinstance(value, dict) or set(value) not in (_FIELDS, _BOUND_FIELDS):
            raise MalformedInput(
                "an audit record has exactly the eight members, and a release record may "
                "have a ninth, release"
            )
        return cls(
            seq=value["seq"],
            time=value["time"],
            identity=value["identity"],
            operation=value["operation"],
            key=value["key"],
            result=value["result"],
            prev=_hex32(value["prev"], "prev"),
            mac=_hex32(value["mac"], "mac"),
            release=ReleaseBinding.from_json(value["release"]) if "release" in value else None,
        )


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """``size`` records whose last record hashes to ``head``, as of ``time``, for HSM ``hsm``."""

    hsm: bytes
    size: int
    head: bytes
    time: int

    def __post_init__(self) -> None:
        if not isinstance(self.hsm, bytes) or not self.hsm:
            raise MalformedInput("checkpoint hsm id must be non-empty bytes")
        if not _is_uint(self.size) or not _is_uint(self.time):
            raise MalformedInput("checkpoint size and time are non-negative integers")
        if not isinstance(self.head, bytes) or len(self.head) != 32:
            raise MalformedInput("checkpoint head is a 32-byte hash")

    def to_payload(self) -> bytes:
        return encode_cbor(
            {"hsm": self.hsm, "size": self.size, "head": self.head, "time": self.time}
        )

    @classmethod
    def from_payload(cls, payload: bytes) -> AuditCheckpoint:
        value = decode_cbor(payload)
        if not isinstance(value, dict) or set(value) != {"hsm", "size", "head", "time"}:
            raise MalformedInput("an audit checkpoint is a map of hsm, size, head and time")
        return cls(value["hsm"], value["size"], value["head"], value["time"])


def parse_audit_log(data: bytes, *, max_records: int = MAX_RECORDS) -> tuple[AuditRecord, ...]:
    """Parse JSON Lines audit records (structure only: :func:`verify_audit` checks the chain)."""
    if not isinstance(data, bytes | bytearray):
        raise MalformedInput("an audit log is bytes")
    records: list[AuditRecord] = []
    for number, line in enumerate(bytes(data).splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE:
            raise LimitExceeded(f"audit line {number} is longer than {MAX_LINE} bytes")
        if len(records) >= max_records:
            raise LimitExceeded(f"the audit log has more than {max_records} records")
        try:  # strictly: a member named twice reads one way here and another elsewhere
            value = STRICT_JSON.decode(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise MalformedInput(f"audit line {number} is not JSON") from exc
        try:
            records.append(AuditRecord.from_json(value))
        except MalformedInput as exc:
            raise MalformedInput(f"audit line {number}: {exc.detail}") from exc
    return tuple(records)


def format_audit_log(records: Sequence[AuditRecord]) -> bytes:
    """The JSON Lines form (compact, key order fixed, one record per line)."""
    return b"".join(
        json.dumps(r.to_json(), separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
        for r in records
    )


def verify_audit(
    records: Sequence[AuditRecord],
    *,
    checkpoint: AuditCheckpoint | None = None,
    key: bytes | bytearray | None = None,
    mac_from: int = 0,
    start: int = 0,
    prev: bytes = ZERO_HASH,
) -> AuditCheckpoint | None:
    """Check the chain from record ``start`` (whose ``prev`` must be ``prev``: record 0 and
    the zero hash unless ``records`` is a later segment, see :func:`verify_audit_segments`);
    return ``None`` or raise ``AuditChainBroken``.

    With ``checkpoint``, the log must also hold its first ``size`` records unchanged (its
    record ``size - 1`` hashes to ``head``): a log cut short, rewritten or forked is refused.
    With ``key`` (the audit key, inside the HSM only), the MAC of every record from ``seq``
    ``mac_from`` on (the first record this HSM wrote; earlier ones belong to a zeroized
    predecessor) must verify too: a chain rewritten and rehashed outside the boundary is
    refused. Returns nothing on success
    (``None``), like every ``verify`` in Ironroot.
    """
    for index, record in enumerate(records, start=start):
        if record.seq != index:
            raise AuditChainBroken(
                f"record {index} has seq {record.seq}: a record is missing or out of order"
            )
        if not hmac.compare_digest(record.prev, prev):
            raise AuditChainBroken(
                f"record {index} does not chain to the record before it "
                "(removed, altered or reordered)"
            )
        if (wrong := record.binding_error()) is not None:
            raise AuditChainBroken(f"{wrong}: the HSM writes no such record")
        prev = record.digest()
        if (
            key is not None
            and index >= mac_from
            and not hmac.compare_digest(record.mac, audit_mac(key, prev))
        ):
            raise AuditChainBroken(
                f"record {index}'s MAC does not verify: it was written or rewritten outside the HSM"
            )
        at_checkpoint = checkpoint is not None and index + 1 == checkpoint.size
        if at_checkpoint and checkpoint and not hmac.compare_digest(prev, checkpoint.head):
            raise AuditChainBroken(f"record {index} does not match the checkpoint's head")
    if checkpoint is not None:
        end = start + len(records)
        if end < checkpoint.size:
            raise AuditChainBroken(
                f"the log has {end} records, the checkpoint covers {checkpoint.size}: "
                f"its last {checkpoint.size - end} were cut"
            )
        if checkpoint.size == 0 and checkpoint.head != ZERO_HASH:
            raise AuditChainBroken("an empty checkpoint must have the zero head")
    return None


def segment_name(first: int, last: int) -> str:
    """The file name of the archived segment holding records ``first`` to ``last``."""
    return f"{SEGMENT_PREFIX}{first}-{last}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """``(first, last)`` of an archived segment's file name, or ``None`` when ``name`` is not
    one (only the form :func:`segment_name` writes: decimal, no leading zeros)."""
    if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
        return None
    first, sep, last = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)].partition("-")
    if not sep or not _DECIMAL.fullmatch(first) or not _DECIMAL.fullmatch(last):
        return None
    span = int(first), int(last)
    return span if span[0] <= span[1] else None


def segments_from(names: Iterable[str], start: int) -> list[str]:
    """Of the file names ``names``, the archived segments whose first record is at ``start``
    or after: those a rotation cut short before its commit left (the live log, or the sealed
    base, still holds their records), which power-up removes."""
    return [n for n in names if (span := parse_segment_name(n)) is not None and span[0] >= start]


@dataclass(frozen=True, slots=True)
class AuditSpan:
    """What :func:`verify_audit_segments` verified: ``records`` records from seq ``first``
    (0 for a whole log), the last of which hashes to ``head`` (the zero hash when empty).

    ``live`` holds the live log's records as parsed, and ``archived`` (only when asked for:
    ``keep_archived``) the archived segments' in chain order, so that a check that goes on
    with them (``check_sealed_audit``, an audit bundle's) does not read and parse them again.
    """

    first: int
    records: int
    head: bytes
    live: tuple[AuditRecord, ...] = field(default=(), repr=False)
    archived: tuple[AuditRecord, ...] = field(default=(), repr=False)


def verify_audit_segments(
    segments: Iterable[str],
    read: Callable[[str], bytes],
    live: bytes,
    *,
    checkpoint: AuditCheckpoint | None = None,
    key: bytes | bytearray | None = None,
    mac_from: int = 0,
    complete: bool = True,
    keep_archived: bool = False,
) -> AuditSpan:
    """Verify a whole audit log: its archived segments (their file names, in any order: the
    names order them; ``read(name)`` returns one's bytes, read one at a time) and then the
    live log, as one chain from record 0.

    ``AuditChainBroken`` naming the file when a segment is missing (a gap in the ranges the
    names state), when a segment's records are not the range its name states (truncated,
    extended, or swapped with another), when two segments overlap, when a record in one was
    altered (the chain breaks at it), and when the live log does not start where the last
    segment ends; ``MalformedInput`` for a name that is not a segment's. ``checkpoint``,
    ``key`` and ``mac_from`` as for :func:`verify_audit`, over the whole chain.

    A chain that starts after record 0 because an officer pruned the archived segments before
    it (``Hsm.prune_audit``) verifies when an ``audit-prune`` record in it covers the records
    missing (:attr:`AuditRecord.prunes`); :attr:`AuditSpan.first` states where it starts.
    Otherwise the records missing are named (``AuditChainBroken``). With no segment and an
    empty live log nothing can show records cut: the sealed check (``check_sealed_audit``)
    compares the end with the base the HSM sealed.

    With ``complete=False`` the chain may start later than record 0 without that record: at
    the first record of the earliest segment given (or of the live log when none is), whose
    ``prev`` is taken as it is; :attr:`AuditSpan.first` states where (the records before it
    were left out, as an audit bundle of a long log does: they are not verified). A
    checkpoint of fewer records than that start cannot be checked and raises
    ``AuditChainBroken``.

    Each segment and the live log is read and parsed once: the span returned holds the live
    log's records, and with ``keep_archived`` every segment's too (:class:`AuditSpan`).
    """
    spans: list[tuple[int, int, str]] = []
    for name in segments:
        span = parse_segment_name(name)
        if span is None:
            raise MalformedInput(f"{name!r} is not an audit segment's name")
        spans.append((span[0], span[1], name))
    spans.sort()
    start, prev, given = 0, ZERO_HASH, True
    if not complete or not spans or spans[0][0] > 0:
        # a chain that may start later: left out (``complete=False``), or pruned (it must
        # then hold an ``audit-prune`` record covering what is missing)
        start, given = spans[0][0] if spans else -1, False
    origin, pruned = start, 0
    archived: list[AuditRecord] = []
    for first, last, name in spans:
        if first != start:
            raise AuditChainBroken(
                f"segment {name} starts at record {first}, the chain before it ends at "
                f"record {start - 1}: "
                + (
                    f"records {start} to {first - 1} are missing (a segment was removed)"
                    if first > start
                    else "it overlaps the segment before it"
                )
            )
        try:
            records = parse_audit_log(read(name))
        except MalformedInput as exc:  # which of the files, for the operator
            raise type(exc)(f"segment {name}: {exc.detail}", code=exc.code) from exc
        if not given and records:
            prev, given = records[0].prev, True
        if len(records) != last - first + 1 or records[0].seq != first:
            held = f"records {records[0].seq} to {records[-1].seq}" if records else "no records"
            raise AuditChainBroken(
                f"segment {name} holds {held}, its name says {first} to {last}: "
                "it was truncated, extended or swapped with another segment"
            )
        pruned = max([pruned, *(r.prunes for r in records)])
        try:
            verify_audit(
                records,
                start=start,
                prev=prev,
                # the checkpoint for the one segment holding its last record (the cut check
                # is the live log's)
                checkpoint=checkpoint
                if checkpoint is not None and first < checkpoint.size <= last + 1
                else None,
                key=key,
                mac_from=mac_from,
            )
        except AuditChainBroken as exc:
            raise AuditChainBroken(f"segment {name}: {exc.detail}") from exc
        start, prev = last + 1, records[-1].digest()
        if keep_archived:
            archived.extend(records)
    records = parse_audit_log(live)
    if not given:  # no segment: the live log is the chain
        start, prev = (records[0].seq, records[0].prev) if records else (0, ZERO_HASH)
        origin = start
    if checkpoint is not None and 0 < checkpoint.size <= origin:
        raise AuditChainBroken(
            f"the checkpoint covers {checkpoint.size} records, all before record {origin}, "
            "where the records given start"
        )
    if records and records[0].seq != start:
        raise AuditChainBroken(
            f"the live log starts at record {records[0].seq}, the archived segments end at "
            f"record {start - 1}: "
            + (
                f"records {start} to {records[0].seq - 1} are missing (a segment was removed)"
                if records[0].seq > start
                else "a segment overlaps the live log"
            )
        )
    verify_audit(records, start=start, prev=prev, checkpoint=checkpoint, key=key, mac_from=mac_from)
    pruned = max([pruned, *(r.prunes for r in records)])
    if complete and origin > 0 and pruned < origin:
        raise AuditChainBroken(
            f"the chain starts at record {origin}: records 0 to {origin - 1} are missing, and "
            "no audit-prune record covers them (archived segments were removed, not pruned)"
        )
    end = start + len(records)
    head = records[-1].digest() if records else prev
    return AuditSpan(origin, end - origin, head, records, tuple(archived))


def release_records(records: Sequence[AuditRecord]) -> dict[bytes, AuditRecord]:
    """The granted, bound release records of a (verified) chain by their statement digest.

    ``AuditChainBroken`` when two records bind one statement (the HSM signs each release
    once, so one of them was not written by it), or when a granted release without a binding
    follows one with a binding: an HSM that binds its releases binds every one of them, so an
    unbound one after it was written by other software (an HSM rolled back to a version
    before release binding). Unbound granted releases before the first bound one are the
    records of that older version, and are left out."""
    found: dict[bytes, AuditRecord] = {}
    bound_since: int | None = None
    for record in records:
        if record.operation != "release" or record.result != "ok":
            continue
        if record.release is None:
            if bound_since is not None:
                raise AuditChainBroken(
                    f"record {record.seq} is a granted release without a release binding, "
                    f"after record {bound_since} had one: written by an HSM that does not "
                    "bind its releases"
                )
            continue
        digest = record.release.statement
        if digest is None:
            raise AuditChainBroken(f"record {record.seq} is a granted release binding no statement")
        if bound_since is None:
            bound_since = record.seq
        if digest in found:
            raise AuditChainBroken(
                f"records {found[digest].seq} and {record.seq} bind the same release statement"
            )
        found[digest] = record
    return found


def checkpoint_statement(signer: Signer, checkpoint: AuditCheckpoint) -> bytes:
    """The checkpoint as a Signed Statement (``iss`` = ``urn:ironroot:hsm:<hsm id hex>``)."""
    return create_statement(
        signer,
        checkpoint.to_payload(),
        iss=f"urn:ironroot:hsm:{checkpoint.hsm.hex()}",
        sub=CHECKPOINT_SUBJECT,
        content_type=CHECKPOINT_CONTENT_TYPE,
        iat=checkpoint.time,
    )


def verify_audit_checkpoint(statement: bytes, verifier: Verifier) -> AuditCheckpoint:
    """Verify a checkpoint statement signed by the HSM's attestation key; return it.

    ``MalformedStatement``/``MalformedInput`` for bad structure, ``AlgorithmNotAccepted`` or
    ``BadSignature`` when it is not signed by ``verifier``.
    """
    parsed = SignedStatement.parse(statement)
    if parsed.content_type != CHECKPOINT_CONTENT_TYPE or parsed.claims.sub != CHECKPOINT_SUBJECT:
        raise MalformedInput("not an HSM audit checkpoint statement")
    parsed.sign1.verify(verifier)
    checkpoint = AuditCheckpoint.from_payload(parsed.payload)
    if parsed.claims.iss != f"urn:ironroot:hsm:{checkpoint.hsm.hex()}":
        raise MalformedInput("the checkpoint's issuer is not its HSM")
    return checkpoint
