"""A transparency service's log, read from its data directory (read-only) and verified here.

What the dashboard shows of a log it checks itself, with the public keys the data directory
publishes (``keys/checkpoint.pub.pem``, ``keys/receipt-keys.cbor``; never a private key):

* each **checkpoint** it shows is opened with the log's checkpoint key, and each one's
  consistency with the one before is proved from the stored tiles and checked against both
  signed roots (:func:`ironroot.merkle.verify_consistency`);
* a **statement's receipts** are assembled from what the service stored for the statement's
  batch — the ``[protected header, signature]`` pair under ``receipt:<alg>`` (see
  :mod:`ironroot.transparency`) — and the inclusion proof computed from the tiles, then
  verified with :func:`ironroot.cose.verify_receipt` against the receipt keys and the
  configuration's ``service_issuer`` (a receipt naming another service is unverified); the
  root the proof leads to is compared with the signed checkpoint of that size;
* **witness cosignatures** on the checkpoint the service published
  (``witnessed-checkpoint``) are verified with the witness keys of its configuration.

The store is opened read-only (:class:`ironroot.log.SqliteLogStore`), so a running service
keeps writing while the dashboard reads. The log only grows, and anyone its issuer policy
admits writes to it: what was parsed and verified of a store is kept for it (the entries up to
the latest checkpoint, notes whose signature opened, roots proved consistent), so a page that
reads the whole log costs what was added since, not the log (:meth:`LogSource.all_entries`,
:meth:`LogSource.checkpoints`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited
from ironroot.cose import (
    InclusionProof,
    Receipt,
    SignedStatement,
    build_receipt,
    decode_cbor,
    make_transparent,
    verify_receipt,
)
from ironroot.crypto import Verifier
from ironroot.errors import IronrootError, MalformedInput, NotFound, StorageError
from ironroot.log import (
    Note,
    NoteVerifier,
    SqliteLogStore,
    StoreLogFetcher,
    TileTree,
    layout,
    load_log_identity,
    open_checkpoint,
)
from ironroot.merkle import leaf_hash, root_from_inclusion_proof, verify_consistency
from ironroot.web._text import Trouble, utc
from ironroot.witness import CosignatureVerifier

__all__ = [
    "CheckpointRow",
    "CosignatureRow",
    "EntryRow",
    "LogSource",
    "LogSummary",
    "ReceiptView",
    "StatementView",
    "WitnessedView",
]

_RECEIPT_PREFIX: Final = "receipt:"  # how the service labels a batch's receipt signatures
_WITNESSED: Final = "witnessed-checkpoint"
_MAX_NOTE: Final = 1 << 20
_PREVIEW: Final = 2048
_ENTRY_ID: Final = re.compile(r"[0-9a-fA-F]{64}")


def _utc(seconds: int | None) -> str:
    return utc(seconds)


def failure(exc: IronrootError) -> str:
    """``code: detail`` of a typed error, as the pages show it: the server's own trouble (a
    5xx error: a store it cannot read, a host it cannot reach) as a :class:`Trouble`, which
    only operators see whole."""
    text = f"{exc.code}: {exc.detail}"
    return Trouble(text) if exc.http_status >= 500 else text


def unreadable(exc: IronrootError | OSError) -> Trouble:
    """A file of the source that cannot be read (too large, a directory, no permission): the
    server's trouble, with its path, whatever the error's class."""
    if isinstance(exc, IronrootError):
        return Trouble(f"{exc.code}: {exc.detail}")
    return Trouble(str(exc))


_SERIES_BATCHES: Final = 2048
"""Batches the registrations chart reads (the latest): what one public page may cost."""


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One log entry as the entries table shows it."""

    index: int
    entry_id: str
    iss: str
    sub: str
    content_type: str
    iat: int | None
    size: int
    error: str | None = None
    registered: int | None = None

    @property
    def when(self) -> str:
        return _utc(self.iat if self.iat is not None else self.registered)

    @property
    def registered_at(self) -> str:
        return _utc(self.registered)


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """One receipt of a statement, assembled and verified by the dashboard."""

    algorithm: str
    kid: str
    issuer: str | None
    iat: int | None
    tree_size: int
    leaf_index: int
    path: tuple[str, ...]
    root: str
    verified: bool
    error: str | None = None

    @property
    def when(self) -> str:
        return _utc(self.iat)


@dataclass(frozen=True, slots=True)
class StatementView:
    """A statement's page: its headers, payload and receipts."""

    log: str
    index: int
    entry_id: str
    leaf_hash: str
    iss: str
    sub: str
    content_type: str
    algorithm: str
    kid: str | None
    iat: int | None
    x5chain: int
    hash_envelope: str | None
    payload_size: int
    payload_text: str | None
    payload_hex: str
    receipts: tuple[ReceiptView, ...]
    checkpoint_size: int | None
    checkpoint_root: str | None
    checkpoint_verified: bool
    checkpoint_error: str | None
    error: str | None = None

    @property
    def when(self) -> str:
        return _utc(self.iat)

    @property
    def all_verified(self) -> bool:
        return bool(self.receipts) and all(r.verified for r in self.receipts)


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A stored checkpoint, its signature and its consistency with the one before it."""

    size: int
    root: str
    signed: bool
    consistent_with: int | None
    consistent: bool | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CosignatureRow:
    name: str
    key_id: str
    verified: bool
    timestamp: int | None
    error: str | None = None

    @property
    def when(self) -> str:
        return _utc(self.timestamp)


@dataclass(frozen=True, slots=True)
class WitnessedView:
    """The checkpoint the service published with witness cosignatures."""

    size: int | None
    root: str | None
    quorum: int
    witnesses: int
    """The witnesses trusted (names: the keys of one witness are one witness)."""
    cosignatures: tuple[CosignatureRow, ...]
    error: str | None = None

    @property
    def verified(self) -> int:
        """The distinct witnesses (names) whose cosignature verified: a witness counts once
        towards the quorum, however many of its lines or keys verified."""
        return len({c.name for c in self.cosignatures if c.verified})

    @property
    def meets_quorum(self) -> bool:
        return self.error is None and self.quorum > 0 and self.verified >= self.quorum


@dataclass(frozen=True, slots=True)
class LogSummary:
    name: str
    origin: str
    issuer: str
    size: int
    checkpoints: int
    pending: int
    latest_signed: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Config:
    issuer: str
    witnesses: tuple[CosignatureVerifier, ...] = ()
    quorum: int = 0
    errors: tuple[str, ...] = field(default=())


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def _payload_text(payload: bytes) -> str | None:
    """The payload as text when it is printable UTF-8 (escaped by the template)."""
    try:
        text = payload[:_PREVIEW].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\r\n\t" for c in text):
        return None
    return text


def _receipt_time(batch: Mapping[str, bytes]) -> int | None:
    """When a batch's receipts were signed: the ``iat`` of their protected header."""
    for label in sorted(k for k in batch if k.startswith(_RECEIPT_PREFIX)):
        try:
            pair = decode_cbor(batch[label])
            header = decode_cbor(pair[0]) if isinstance(pair, list) and pair else None
            claims = header.get(15) if isinstance(header, dict) else None
            value = claims.get(6) if isinstance(claims, dict) else None
        except IronrootError:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


_KEPT_CHECKS: Final = 8192
"""Checkpoint verdicts and batch times a :class:`LogSource` keeps of each kind (then it starts
again): the pages read the latest 2,048 at most, so this is room for a log's growth, and a
bound."""


class _Read:
    """What a :class:`LogSource` read and verified of one store, kept for it: the rows of the
    entries up to its latest checkpoint, the root of each checkpoint note whose signature
    opened (by the note's SHA-256), each pair of signed roots proved consistent, and when
    each batch's receipts were signed (by its tree size)."""

    def __init__(self, store: SqliteLogStore) -> None:
        self.store = store
        self.rows: list[EntryRow] = []
        self.opened: dict[bytes, bytes] = {}
        self.proved: set[tuple[int, bytes, int, bytes]] = set()
        self.signed_at: dict[int, int] = {}
        # one lock each: a first reading of a long log's entries (minutes at 10^6) must not
        # hold back the public pages' checkpoints and chart
        self.rows_lock = threading.Lock()
        self.checks_lock = threading.Lock()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class LogSource:
    """One transparency service's data directory, read-only (module docs)."""

    def __init__(self, data_dir: Path, name: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.name = name or self.data_dir.name
        identity = load_log_identity(self.data_dir)
        self.origin: str = identity.origin
        self.verifiers: tuple[NoteVerifier, ...] = identity.verifiers
        self.receipt_keys: Mapping[bytes, Verifier] = self._receipt_keys()
        self._config = self._load_config()
        self._open_lock = threading.Lock()
        self._opened: tuple[SqliteLogStore, tuple[int, int]] | None = None
        self._read_lock = threading.Lock()
        self._read: _Read | None = None

    def __repr__(self) -> str:
        return f"LogSource({str(self.data_dir)!r})"

    def _receipt_keys(self) -> Mapping[bytes, Verifier]:
        from ironroot.transparency import load_receipt_keys

        path = layout.receipt_keys_path(self.data_dir)
        return load_receipt_keys([path]) if path.exists() else {}

    def _load_config(self) -> _Config:
        from ironroot.transparency import load_config

        try:
            config = load_config(self.data_dir)
        except IronrootError as exc:
            return _Config(issuer="", errors=(failure(exc),))
        return _Config(
            issuer=config.service_issuer,
            witnesses=tuple(w.verifier for w in config.witnesses),
            quorum=config.witness_quorum,
            errors=config.rejected,
        )

    @property
    def service_issuer(self) -> str:
        return self._config.issuer

    @contextlib.contextmanager
    def store(self) -> Iterator[SqliteLogStore]:
        """The log store, opened read-only once and kept (a SQLite log's id look-ups keep the
        recent ids in memory, so a store per page would rebuild them on every page); opened
        again when the file at the path is another one (the service restored or migrated
        it). A store that failed mid-page is closed and dropped."""
        store, kept = self._store()
        try:
            yield store
        except StorageError:
            self._drop(store)
            raise
        finally:
            if not kept:
                store.close()

    def _store(self) -> tuple[SqliteLogStore, bool]:
        """The kept store (and True), or one for this page only (and False) when the file
        vanished as it was opened."""
        path = layout.log_db_path(self.data_dir)
        with self._open_lock:
            if self._opened is not None:
                kept, identity = self._opened
                if _identity(path) == identity:
                    return kept, True
                self._opened = None
                kept.close()
            store = SqliteLogStore(path, read_only=True)
            now = _identity(path)
            if now is None:
                return store, False
            self._opened = (store, now)
            return store, True

    def _drop(self, store: SqliteLogStore) -> None:
        with self._open_lock:
            if self._opened is not None and self._opened[0] is store:
                self._opened = None
        store.close()

    def close(self) -> None:
        """Close the kept store (the dashboard's shutdown)."""
        with self._open_lock:
            if self._opened is not None:
                self._opened[0].close()
                self._opened = None
        with self._read_lock:
            self._read = None

    def _kept(self, store: SqliteLogStore) -> _Read:
        """What was read and checked of ``store``: kept for the store it was read from, so a
        store opened again (its file replaced, restored) is read from its start."""
        with self._read_lock:
            if self._read is None or self._read.store is not store:
                self._read = _Read(store)
            return self._read

    # --- overview ---------------------------------------------------------------------------

    def summary(self) -> LogSummary:
        try:
            with self.store() as store:
                size = store.state().size
                sizes = store.checkpoint_sizes()
                pending = store.count_pending()
                latest = store.checkpoint()
            signed = False
            if latest is not None:
                open_checkpoint(latest, self.verifiers, origin=self.origin)
                signed = True
        except IronrootError as exc:
            return LogSummary(
                self.name, self.origin, self.service_issuer, 0, 0, 0, False, failure(exc)
            )
        return LogSummary(
            self.name, self.origin, self.service_issuer, size, len(sizes), pending, signed
        )

    # --- entries ----------------------------------------------------------------------------

    @staticmethod
    def _row(index: int, entry: bytes, registered: int | None = None) -> EntryRow:
        entry_id = hashlib.sha256(entry).hexdigest()
        try:
            statement = SignedStatement.parse(entry)
        except IronrootError as exc:
            return EntryRow(index, entry_id, "", "", "", None, len(entry), failure(exc), registered)
        ctype = statement.content_type
        if statement.hash_envelope is not None and statement.hash_envelope.preimage_content_type:
            ctype = statement.hash_envelope.preimage_content_type
        return EntryRow(
            index,
            entry_id,
            statement.claims.iss,
            statement.claims.sub,
            "" if ctype is None else _text(ctype),
            statement.claims.iat,
            len(entry),
            None,
            registered,
        )

    def entries(self, start: int, stop: int) -> list[EntryRow]:
        """Entries ``start`` to ``stop - 1`` (oldest first), parsed as Signed Statements,
        with when they were registered (their batch's receipt time)."""
        with self.store() as store:
            return self._entries(store, start, stop)

    def _entries(self, store: SqliteLogStore, start: int, stop: int) -> list[EntryRow]:
        start, stop = max(start, 0), max(stop, 0)
        times: dict[int, int | None] = {}
        rows = []
        found = store.entries(start, stop)
        for offset, entry in enumerate(found):
            size = store.batch_size_of(start + offset)
            if size is not None and size not in times:
                times[size] = _receipt_time(store.batch_data(size) or {})
            registered = times.get(size) if size is not None else None
            rows.append(self._row(start + offset, entry, registered))
        return rows

    def all_entries(self) -> list[EntryRow]:
        """Every entry, oldest first, each parsed once: the rows of the entries up to the
        latest checkpoint are kept (the log only grows, and what such an entry says and when
        its batch was registered never change), so the pages that read the whole log
        (overview, alerts, reviews, keys) parse only what was added since one last did,
        rather than the whole log again on every view (some 160 us an entry: a log of 10^6
        entries, which anyone an issuer policy admits may write, was minutes a view). The
        entries of batches not yet checkpointed are read each time. The rows kept cost the
        memory of one view's reading, once rather than per view."""
        with self.store() as store:
            kept = self._kept(store)
            with kept.rows_lock:
                size = store.state().size
                if len(kept.rows) > size:  # never in an append-only log: read it all again
                    kept.rows = []
                rows = kept.rows + self._entries(store, len(kept.rows), size)
                sizes = store.checkpoint_sizes()
                settled = min(sizes[-1] if sizes else 0, len(rows))
                if settled > len(kept.rows):
                    kept.rows = rows[:settled]
        return rows

    def size(self) -> int:
        with self.store() as store:
            return store.state().size

    def entry(self, entry_id: str) -> tuple[int, bytes]:
        """The index and bytes of the entry with this id (64 hex digits and nothing else:
        ``bytes.fromhex`` alone would skip spaces and line breaks); ``NotFound``."""
        if _ENTRY_ID.fullmatch(entry_id) is None:
            raise NotFound("no such entry")
        key = bytes.fromhex(entry_id)
        with self.store() as store:
            index = store.lookup([key]).get(key)
            found = store.entries(index, index + 1) if index is not None else []
            entry = found[0] if found else None
        if index is None or entry is None:
            raise NotFound(f"no entry {entry_id[:16]}… in {self.name}")
        return index, entry

    # --- receipts ---------------------------------------------------------------------------

    def _receipts(self, store: SqliteLogStore, index: int) -> tuple[int, list[bytes]]:
        """The tree size of the entry's batch and its receipts, assembled (module docs)."""
        size = store.batch_size_of(index)
        if size is None:
            raise NotFound("the entry is not in a checkpointed batch yet")
        batch = store.batch_data(size) or {}
        labels = sorted(k for k in batch if k.startswith(_RECEIPT_PREFIX))
        if not labels:
            raise NotFound(f"no receipt signature is stored for tree size {size}")
        path = TileTree(StoreLogFetcher(store), store.state().size).inclusion_proof(index, size)
        proof = InclusionProof(size, index, tuple(path))
        receipts = []
        for label in labels:
            pair = decode_cbor(batch[label])
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(p, bytes) for p in pair)
            ):
                raise MalformedInput(f"the stored {label} of tree size {size} is malformed")
            receipts.append(build_receipt(pair[0], pair[1], proof))
        return size, receipts

    def _receipt_view(self, receipt: bytes, entry: bytes) -> ReceiptView:
        parsed = Receipt.parse(receipt)
        proof = parsed.inclusion_proofs[0]
        root = root_from_inclusion_proof(
            proof.leaf_index, proof.tree_size, leaf_hash(entry), proof.path
        )
        verified, error = True, None
        try:
            # the service's own receipts name it (its configuration's issuer, when it loads)
            verify_receipt(parsed, entry, self.receipt_keys, issuer=self.service_issuer or None)
        except IronrootError as exc:
            verified, error = False, failure(exc)
        return ReceiptView(
            parsed.algorithm.label,
            parsed.kid.hex(),
            parsed.issuer,
            parsed.iat,
            proof.tree_size,
            proof.leaf_index,
            tuple(h.hex() for h in proof.path),
            root.hex(),
            verified,
            error,
        )

    def transparent_statement(self, entry_id: str) -> bytes:
        """The statement with its receipts (header 394), as the service would serve it."""
        index, entry = self.entry(entry_id)
        with self.store() as store:
            _size, receipts = self._receipts(store, index)
        return make_transparent(entry, receipts)

    def statement(self, entry_id: str) -> StatementView:
        """A statement's page (module docs): parsed, receipts assembled and verified."""
        index, entry = self.entry(entry_id)
        receipts: list[ReceiptView] = []
        checkpoint: tuple[int | None, str | None, bool, str | None] = (None, None, False, None)
        error = None
        try:
            with self.store() as store:
                size, raw = self._receipts(store, index)
                note = store.checkpoint(size)
            receipts = [self._receipt_view(r, entry) for r in raw]
            try:
                signed = open_checkpoint(note or b"", self.verifiers, origin=self.origin)
                same = all(r.root == signed.root.hex() for r in receipts)
                checkpoint = (
                    size,
                    signed.root.hex(),
                    same,
                    None if same else "the receipt's root is not the signed checkpoint's",
                )
            except IronrootError as exc:
                checkpoint = (size, None, False, failure(exc))
        except IronrootError as exc:
            error = failure(exc)
        statement: SignedStatement | None = None
        try:
            statement = SignedStatement.parse(entry)
        except IronrootError as exc:
            error = error or failure(exc)
        payload = statement.payload if statement is not None else b""
        envelope = None
        if statement is not None and statement.hash_envelope is not None:
            env = statement.hash_envelope
            envelope = f"hash alg {env.hash_alg}, preimage {env.preimage_content_type or '—'}"
            if env.location:
                envelope += f", at {env.location}"
        return StatementView(
            log=self.name,
            index=index,
            entry_id=hashlib.sha256(entry).hexdigest(),
            leaf_hash=leaf_hash(entry).hex(),
            iss=statement.claims.iss if statement else "",
            sub=statement.claims.sub if statement else "",
            content_type=_text(statement.content_type)
            if statement and statement.content_type is not None
            else "",
            algorithm=statement.algorithm.label if statement else "",
            kid=statement.kid.hex() if statement and statement.kid else None,
            iat=statement.claims.iat if statement else None,
            x5chain=len(statement.x5chain) if statement else 0,
            hash_envelope=envelope,
            payload_size=len(payload),
            payload_text=_payload_text(payload) if envelope is None else None,
            payload_hex=payload[:64].hex(),
            receipts=tuple(receipts),
            checkpoint_size=checkpoint[0],
            checkpoint_root=checkpoint[1],
            checkpoint_verified=checkpoint[2],
            checkpoint_error=checkpoint[3],
            error=error,
        )

    # --- checkpoints --------------------------------------------------------------------------

    def checkpoints(self, limit: int = 100) -> list[CheckpointRow]:
        """The latest ``limit`` checkpoints, newest first, each verified (module docs). What
        verified is not verified again: a stored note whose signature opened (the note read
        each time, its digest the key), and two signed roots proved consistent (a fact of
        the two roots, whatever the tiles hold later); the overview's alerts check the
        latest 1,000 of each log on every view. A failure is checked again every time."""
        rows: list[CheckpointRow] = []
        with self.store() as store:
            kept = self._kept(store)
            with kept.checks_lock:
                if len(kept.opened) > _KEPT_CHECKS or len(kept.proved) > _KEPT_CHECKS:
                    kept.opened.clear()
                    kept.proved.clear()
                sizes = store.checkpoint_sizes()
                shown = sizes[-(limit + 1) :]
                tree = TileTree(StoreLogFetcher(store), store.state().size)
                previous: tuple[int, bytes] | None = None
                for number, size in enumerate(shown):
                    note = store.checkpoint(size) or b""
                    digest = hashlib.sha256(note).digest()
                    root = kept.opened.get(digest)
                    if root is None:
                        try:
                            root = open_checkpoint(note, self.verifiers, origin=self.origin).root
                        except IronrootError as exc:
                            if number or len(sizes) <= limit:
                                rows.append(
                                    CheckpointRow(size, "", False, None, None, failure(exc))
                                )
                            previous = None
                            continue
                        kept.opened[digest] = root
                    consistent: bool | None = None
                    against: int | None = None
                    error = None
                    if previous is not None and previous[0] == 0:
                        against = 0  # every tree extends the empty one: there is nothing to prove
                    elif previous is not None:
                        against = previous[0]
                        pair = (*previous, size, root)
                        if pair in kept.proved:
                            consistent = True
                        else:
                            try:
                                proof = tree.consistency_proof(previous[0], size)
                                verify_consistency(previous[0], size, proof, previous[1], root)
                                consistent = True
                                kept.proved.add(pair)
                            except IronrootError as exc:
                                consistent, error = False, failure(exc)
                    previous = (size, root)
                    if number or len(sizes) <= limit:
                        rows.append(
                            CheckpointRow(size, root.hex(), True, against, consistent, error)
                        )
        return list(reversed(rows))

    def witnessed(self) -> WitnessedView | None:
        """The published witnessed checkpoint and its cosignatures (``None`` without one)."""
        path = self.data_dir / _WITNESSED
        quorum = self._config.quorum
        witnesses: Sequence[CosignatureVerifier] = self._config.witnesses
        named = len({w.name for w in witnesses})  # a witness is its name, whatever its keys
        if not path.is_file():
            return None
        try:
            note_bytes = read_limited(path, _MAX_NOTE)
        except (IronrootError, OSError) as exc:  # its path: said to operators only
            return WitnessedView(None, None, quorum, named, (), unreadable(exc))
        try:
            checkpoint = open_checkpoint(note_bytes, self.verifiers, origin=self.origin)
            note = Note.parse(note_bytes)
        except IronrootError as exc:
            return WitnessedView(None, None, quorum, named, (), failure(exc))
        log_keys = {(v.name, v.key_id) for v in self.verifiers}
        rows: list[CosignatureRow] = []
        for line in note.signatures:
            if (line.name, line.key_id) in log_keys:
                continue
            match = next((w for w in witnesses if w.matches(line)), None)
            if match is None:
                rows.append(
                    CosignatureRow(
                        line.name, line.key_id.hex(), False, None, "not a configured witness key"
                    )
                )
                continue
            try:
                stamp = match.verify(note.body, line.signature)
                rows.append(CosignatureRow(line.name, line.key_id.hex(), True, stamp))
            except IronrootError as exc:
                rows.append(CosignatureRow(line.name, line.key_id.hex(), False, None, failure(exc)))
        return WitnessedView(checkpoint.size, checkpoint.root.hex(), quorum, named, tuple(rows))

    # --- time series ------------------------------------------------------------------------

    def registrations(self, limit: int = _SERIES_BATCHES) -> list[tuple[int, int]]:
        """``(time, entries)`` per integrated batch of the latest ``limit``: when its receipts
        were signed (their ``iat``) and how many entries it added. Bounded: each batch is a
        read of its receipt data, and the page that draws them is public, so its cost must
        not grow with the log (a log of 10^7 entries has some 300,000 batches). Each batch's
        time is read once and kept: a read and a decode of 2,048 batches' receipts was some
        0.1 s of the server's time for every anonymous view."""
        out: list[tuple[int, int]] = []
        with self.store() as store:
            kept = self._kept(store)
            with kept.checks_lock:
                sizes = store.checkpoint_sizes()
                previous = 0 if len(sizes) <= limit else sizes[-limit - 1]
                for size in sizes[-limit:]:
                    added, previous = size - previous, size
                    if added <= 0:
                        continue
                    iat = kept.signed_at.get(size)
                    if iat is None:
                        iat = _receipt_time(store.batch_data(size) or {})
                        if iat is not None:  # a batch's receipts, once stored, stay as they are
                            if len(kept.signed_at) >= _KEPT_CHECKS:
                                kept.signed_at.clear()
                            kept.signed_at[size] = iat
                    if iat is not None:
                        out.append((iat, added))
        return out
