"""HSMs and key release, read-only: key metadata, the audit chain, release decisions.

The dashboard never logs in to an HSM (a login is an audited operation, and it would need a
credential): it reads the HSM's **audit log** (``audit.jsonl``, public by design) and checks
its hash chain with :func:`ironroot.hsm.verify_audit`, and reads the key release service's
``keyrelease.toml`` for the names its keys are offered under. From those it shows:

* the **audit chain** of the live log: how many records, the head hash, intact or where it
  breaks (a live log that starts after record 0, the HSM having archived the records before
  it, must follow an archived segment of that name; the segments are not read here); and each
  HSM audit checkpoint registered on a shown log (``iss`` ``urn:ironroot:hsm:<id>``) or kept
  in ``<hsm>/checkpoints/*.cose``, checked against the chain (the log holds the records the
  checkpoint covers, unchanged): each HSM's own (those naming the id of a checkpoint its
  chain matches or its directory keeps; another HSM's checkpoint is not one of its failures,
  :func:`apart`);
* **keys** (metadata only: there is no key material in an audit log): each handle, when and
  by whom it was made, what it was used for and how often, whether it was deleted, and the
  name a key release service offers it under;
* **release decisions**: every ``release`` record — who asked, which key, when, and whether
  the HSM released it (``ok``) or refused it (the error code: ``release-denied``,
  ``unknown-issuer``, ``nonce-unknown``, …).

The MACs that bind the records to the HSM's audit key can only be checked with the device's
sealing secret (``ironroot hsm audit verify --sealing-secret-file``); the page says so.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited
from ironroot.cose import SignedStatement
from ironroot.errors import AuditChainBroken, IronrootError, LimitExceeded
from ironroot.hsm import (
    CHECKPOINT_CONTENT_TYPE,
    MAX_AUDIT_FILE,
    AuditCheckpoint,
    AuditRecord,
    parse_audit_log,
    parse_segment_name,
    verify_audit,
)
from ironroot.web._logs import failure
from ironroot.web._text import utc

__all__ = ["HsmSource", "HsmView", "KeyRow", "ReleaseRow", "apart"]

_MAX_AUDIT: Final = 256 * 1024 * 1024
"""The most the keys page reads of the live audit log: a quarter of ``MAX_AUDIT_FILE``, on
purpose. The page reads, parses and chains the whole live log on every view: 1.7 s and 60 MiB
of memory per 100,000 records (26 MiB of log, the default segment size) on the 2-core
development machine, so some 17 s and 600 MiB at 256 MiB (about a million records), and
over a minute and 2.4 GiB at the HSM's 1 GiB — per request, with no answer meanwhile. A
rotating HSM keeps its live log far below (250,000 records, the largest segment size, are
some 65 MiB); a larger one is an HSM that does not rotate, or a file the HSM did not write.
Over the cap the page says so at once (the size is read, not the file) and names the
command that checks the log: ``ironroot hsm audit verify`` reads up to ``MAX_AUDIT_FILE``."""
_MAX_CHECKPOINT: Final = 64 * 1024
_ZERO: Final = bytes(32)
_CREATING: Final = frozenset({"generate", "unwrap", "derive"})


def _utc(seconds: int) -> str:
    return utc(seconds)


@dataclass(frozen=True, slots=True)
class KeyRow:
    handle: str
    names: tuple[str, ...]
    created: str | None
    created_by: str | None
    how: str | None
    deleted: bool
    uses: tuple[tuple[str, int], ...]
    released: int
    refused: int


@dataclass(frozen=True, slots=True)
class ReleaseRow:
    seq: int
    time: int
    identity: str
    key: str | None
    result: str

    @property
    def when(self) -> str:
        return _utc(self.time)

    @property
    def released(self) -> bool:
        return self.result == "ok"


@dataclass(frozen=True, slots=True)
class CheckpointCheck:
    where: str
    size: int
    time: int
    ok: bool
    error: str | None = None
    hsm: str = ""
    """The id of the HSM the checkpoint names (hex)."""

    @property
    def when(self) -> str:
        return _utc(self.time)


@dataclass(frozen=True, slots=True)
class HsmView:
    name: str
    records: int
    head: str
    intact: bool
    error: str | None
    hsm_id: str | None
    keys: tuple[KeyRow, ...]
    releases: tuple[ReleaseRow, ...]
    checkpoints: tuple[CheckpointCheck, ...] = field(default=())
    refusals: int = 0
    first: int = 0
    """The seq of the live log's first record: the records before it are in archived
    segments (``audit-<first>-<last>.jsonl``), which the page does not read."""
    own: frozenset[str] = frozenset()
    """The ids (hex) of the checkpoints that are this HSM's (:func:`apart`)."""


def apart(views: list[HsmView]) -> list[HsmView]:
    """``views`` of the HSMs one page shows, each keeping the checkpoints that are its own.

    The logs hold the checkpoints of every HSM, and each names its HSM (``urn:ironroot:hsm:
    <id>``, the id in its payload), an id the HSM's directory does not say (it is sealed).
    An HSM's own ids are those of its kept checkpoints (``<hsm>/checkpoints``) and of every
    checkpoint its chain holds unchanged (the head is a hash over records MACed with its
    own audit key: another HSM's cannot match). An HSM with an own id checks the
    checkpoints naming it, and no other; one without (none matches: every checkpoint of it
    is of records no longer there, or the logs hold none) checks every checkpoint no other
    HSM shown owns, as it cannot tell which are its own: failing there says its trail may
    have been rewritten, or that a checkpoint is of an HSM this dashboard does not show."""
    owned = {i for view in views for i in view.own}
    kept = []
    for view in views:
        if view.own:
            checkpoints = tuple(c for c in view.checkpoints if c.hsm in view.own)
        else:
            checkpoints = tuple(c for c in view.checkpoints if c.hsm not in owned)
        hsm_id = next(iter(view.own)) if len(view.own) == 1 else None
        kept.append(replace(view, checkpoints=checkpoints, hsm_id=hsm_id))
    return kept


class HsmSource:
    """One HSM directory (module docs); ``names`` maps handles to key release names."""

    def __init__(self, directory: Path, names: dict[str, list[str]] | None = None) -> None:
        self.directory = Path(directory)
        self.name = self.directory.name
        self.names = names or {}

    def __repr__(self) -> str:
        return f"HsmSource({str(self.directory)!r})"

    def records(self) -> tuple[AuditRecord, ...]:
        try:
            data = read_limited(self.directory / "audit.jsonl", _MAX_AUDIT)
        except LimitExceeded as exc:
            raise LimitExceeded(
                f"the live audit log is larger than {_MAX_AUDIT >> 20} MiB, the most this page "
                f"reads and checks per view (the HSM reads up to {MAX_AUDIT_FILE >> 20} MiB): "
                f"check it with ironroot hsm audit verify --dir {self.directory}"
            ) from exc
        return parse_audit_log(data)

    def view(self, logged: list[tuple[str, bytes]]) -> HsmView:
        """The page's view; ``logged`` is ``(where, statement)`` of every HSM audit
        checkpoint found on the shown logs."""
        try:
            records = self.records()
        except (IronrootError, OSError) as exc:
            reason = failure(exc) if isinstance(exc, IronrootError) else str(exc)
            return HsmView(self.name, 0, "", False, reason, None, (), ())
        error = None
        first = records[0].seq if records else self._archived_end()
        try:
            self._archived_before(first, max((r.prunes for r in records), default=0))
            verify_audit(records, start=first, prev=records[0].prev if records else _ZERO)
        except IronrootError as exc:
            error = failure(exc)
        head = records[-1].digest().hex() if records else "0" * 64
        checkpoints, own = self._checkpoints(records, logged)
        return HsmView(
            first=first,
            name=self.name,
            records=len(records),
            head=head,
            intact=error is None,
            error=error,
            hsm_id=next(iter(own)) if len(own) == 1 else None,
            keys=tuple(self._keys(records)),
            releases=tuple(
                ReleaseRow(r.seq, r.time, r.identity, r.key, r.result)
                for r in reversed(records)
                if r.operation == "release"
            ),
            checkpoints=tuple(checkpoints),
            refusals=sum(1 for r in records if r.result != "ok"),
            own=own,
        )

    def _archived_end(self) -> int:
        """The seq after the last archived segment's (names only), 0 when there is none."""
        spans = [parse_segment_name(p.name) for p in self.directory.glob("audit-*.jsonl")]
        return max((span[1] + 1 for span in spans if span is not None), default=0)

    def _archived_before(self, first: int, pruned: int) -> None:
        """A live log that starts after record 0 continues an archived segment ending just
        before it (its name is checked, its records are not read: ``ironroot hsm audit
        verify`` checks the whole chain), or holds an ``audit-prune`` record covering the
        records before it (``pruned``); ``AuditChainBroken`` when neither."""
        if (
            first
            and pruned < first
            and not any(
                parse_segment_name(p.name) is not None
                for p in self.directory.glob(f"audit-*-{first - 1}.jsonl")
            )
        ):
            raise AuditChainBroken(
                f"the live audit log starts at record {first} and no archived segment ends at "
                f"record {first - 1}: records before it were removed"
            )

    def _keys(self, records: tuple[AuditRecord, ...]) -> list[KeyRow]:
        created: dict[str, AuditRecord] = {}
        deleted: set[str] = set()
        uses: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        released: collections.Counter[str] = collections.Counter()
        refused: collections.Counter[str] = collections.Counter()
        for record in records:
            if record.key is None:
                continue
            handle = record.key.rpartition("->")[2] if "->" in record.key else record.key
            parent = record.key.partition("->")[0] if "->" in record.key else None
            if record.result == "ok" and record.operation in _CREATING:
                created.setdefault(handle, record)
                if parent:
                    uses[parent][record.operation] += 1
                continue
            if record.operation == "delete" and record.result == "ok":
                deleted.add(handle)
            if record.operation == "release":
                (released if record.result == "ok" else refused)[handle] += 1
            elif record.result == "ok":
                uses[handle][record.operation] += 1
        handles = list(created) + sorted(set(self.names) - set(created))
        rows = []
        for handle in handles:
            made = created.get(handle)
            rows.append(
                KeyRow(
                    handle=handle,
                    names=tuple(self.names.get(handle, ())),
                    created=_utc(made.time) if made else None,
                    created_by=made.identity if made else None,
                    how=made.operation if made else None,
                    deleted=handle in deleted,
                    uses=tuple(sorted(uses[handle].items())),
                    released=released[handle],
                    refused=refused[handle],
                )
            )
        return rows

    def _checkpoints(
        self, records: tuple[AuditRecord, ...], logged: list[tuple[str, bytes]]
    ) -> tuple[list[CheckpointCheck], frozenset[str]]:
        """Every checkpoint on the logs and in ``<hsm>/checkpoints`` checked against the
        chain, and the ids of those that are this HSM's (:func:`apart`)."""
        found: list[tuple[str, bytes, bool]] = [(where, data, False) for where, data in logged]
        folder = self.directory / "checkpoints"
        if folder.is_dir():
            for path in sorted(folder.glob("*.cose")):
                try:
                    data = read_limited(path, _MAX_CHECKPOINT)
                except (IronrootError, OSError):
                    continue
                found.append((f"checkpoints/{path.name}", data, True))
        out: list[CheckpointCheck] = []
        own: set[str] = set()
        for where, statement, kept in found:
            try:
                parsed = SignedStatement.parse(statement)
                if parsed.content_type != CHECKPOINT_CONTENT_TYPE:
                    continue
                checkpoint = AuditCheckpoint.from_payload(parsed.payload)
            except IronrootError:
                continue
            hsm = checkpoint.hsm.hex()
            if parsed.claims.iss != f"urn:ironroot:hsm:{hsm}":
                continue
            if kept:
                own.add(hsm)
            first = records[0].seq if records else 0
            try:
                if 0 < checkpoint.size <= first:
                    raise AuditChainBroken(
                        f"it covers archived records only (before record {first}): check it "
                        "with ironroot hsm audit verify --checkpoint"
                    )
                verify_audit(
                    records,
                    checkpoint=checkpoint,
                    start=first,
                    prev=records[0].prev if records else _ZERO,
                )
                out.append(CheckpointCheck(where, checkpoint.size, checkpoint.time, True, hsm=hsm))
                own.add(hsm)
            except IronrootError as exc:
                out.append(
                    CheckpointCheck(
                        where, checkpoint.size, checkpoint.time, False, failure(exc), hsm=hsm
                    )
                )
        if own:
            out = [c for c in out if c.hsm in own]
        return out, frozenset(own)


def keyrelease_names(
    directories: tuple[Path, ...],
) -> tuple[dict[Path, dict[str, list[str]]], list[str]]:
    """``hsm directory -> handle -> [key names]`` from the key release directories, and the
    reasons any could not be read."""
    from ironroot.keyrelease import load_keyrelease_config

    out: dict[Path, dict[str, list[str]]] = {}
    errors = []
    for directory in directories:
        try:
            config = load_keyrelease_config(directory)
        except IronrootError as exc:
            errors.append(f"{directory.name}: {failure(exc)}")
            continue
        names = out.setdefault(config.hsm_dir, {})
        for key in config.keys:
            names.setdefault(key.handle, []).append(key.name)
    return out, errors
