"""The durable append-only log: stores, sequencing, C2SP checkpoints, notes and tiles.

Entries are opaque bytes (at most 65,535 each); an entry's id is SHA-256(entry). The log
integrates entries in batches, signs a C2SP checkpoint per batch (Ed25519 and/or ML-DSA-44
note signatures), keeps C2SP tiles, serves proofs from them, and can be checked end to end
(:func:`verify_log`, :func:`verify_remote_log`); every reader of a served log fetches its
checkpoint with :func:`fetch_checkpoint` and its documents with :func:`fetch_document`.
:class:`Log` is the sequencer (one writer thread, group commit); :class:`LogView` is its read
side alone (proofs, tiles, checkpoints), which a read replica opens on a store another process
writes (:func:`open_view`: SQLite read-only), with no writer and no signing key.
:class:`TileTree` computes nodes, roots, proofs and entries of a served log from its tiles.
:func:`export_tiles` writes the log as static tlog-tiles files (:class:`DirectoryLogFetcher`
reads them back; :func:`cache_control` says how long each may be cached). The data-directory
layout is in :mod:`ironroot.log.layout`.

Stores: :class:`SqliteLogStore` (the embedded default), :class:`PostgresLogStore` (shared by
several processes and hosts) and :class:`MemoryLogStore`, all behind :class:`LogStore` and
checked by the one :func:`check_batch`; :func:`open_store` opens a data directory or a
PostgreSQL URL, and :class:`StoreConfig` reads ``[log] store`` from ``ironroot.toml``.
:class:`SequencerLease` elects the one sequencer among replicas sharing a PostgreSQL log.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.log import layout
    from ironroot.log._checkpoint import Checkpoint
    from ironroot.log._export import ExportReport, export_tiles
    from ironroot.log._http import HttpLogFetcher
    from ironroot.log._log import BatchSigner, Log, Outcome, Submission, Ticket, unfit_pending
    from ironroot.log._memory import MemoryLogStore
    from ironroot.log._note import (
        SIGNATURE_TYPE_ED25519,
        SIGNATURE_TYPE_MLDSA44,
        Note,
        NoteSignature,
        NoteSigner,
        NoteVerifier,
        VerifierKey,
        note_key_id,
        open_checkpoint,
        open_note,
        parse_vkey,
        sign_checkpoint,
        sign_note,
        subtree_v1_message,
    )
    from ironroot.log._open import DSN_ENV, STORE_KEYS, SchemaStatus, StoreConfig, open_store
    from ironroot.log._postgres import PostgresLogStore
    from ironroot.log._postgres_lease import SequencerLease
    from ironroot.log._sqlite import SqliteLogStore
    from ironroot.log._static import (
        CACHE_CHECKPOINT,
        CACHE_FULL,
        CACHE_PARTIAL,
        DirectoryLogFetcher,
        StoreLogFetcher,
        cache_control,
        check_resource_path,
    )
    from ironroot.log._store import (
        AuditableStore,
        AuditReader,
        LogReader,
        LogStore,
        StoreBatch,
        StoreView,
        TreeState,
        check_batch,
    )
    from ironroot.log._tiles import (
        MAX_ENTRY_SIZE,
        TILE_HEIGHT,
        TILE_INDEX_PATTERN,
        TILE_LEVEL_PATTERN,
        TILE_WIDTH,
        TileAddress,
        encode_entry_bundle,
        entry_bundle_path,
        entry_bundles_for_size,
        parse_entry_bundle,
        parse_tile,
        parse_tile_path,
        partial_tile_width,
        tile_path,
        tiles_for_size,
    )
    from ironroot.log._tiletree import TileTree
    from ironroot.log._verify import (
        CONFIG_PATH,
        BatchVerifier,
        LogFetcher,
        LogReport,
        fetch_checkpoint,
        fetch_document,
        fetch_log_identity,
        verify_log,
        verify_log_dir,
        verify_remote_log,
    )
    from ironroot.log._view import Integrated, LogView, open_view
    from ironroot.log.layout import LogIdentity, load_log_identity

__all__ = [
    "CACHE_CHECKPOINT",
    "CACHE_FULL",
    "CACHE_PARTIAL",
    "CONFIG_PATH",
    "DSN_ENV",
    "MAX_ENTRY_SIZE",
    "SIGNATURE_TYPE_ED25519",
    "SIGNATURE_TYPE_MLDSA44",
    "STORE_KEYS",
    "TILE_HEIGHT",
    "TILE_INDEX_PATTERN",
    "TILE_LEVEL_PATTERN",
    "TILE_WIDTH",
    "AuditReader",
    "AuditableStore",
    "BatchSigner",
    "BatchVerifier",
    "Checkpoint",
    "DirectoryLogFetcher",
    "ExportReport",
    "HttpLogFetcher",
    "Integrated",
    "Log",
    "LogFetcher",
    "LogIdentity",
    "LogReader",
    "LogReport",
    "LogStore",
    "LogView",
    "MemoryLogStore",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Outcome",
    "PostgresLogStore",
    "SchemaStatus",
    "SequencerLease",
    "SqliteLogStore",
    "StoreBatch",
    "StoreConfig",
    "StoreLogFetcher",
    "StoreView",
    "Submission",
    "Ticket",
    "TileAddress",
    "TileTree",
    "TreeState",
    "VerifierKey",
    "cache_control",
    "check_batch",
    "check_resource_path",
    "encode_entry_bundle",
    "entry_bundle_path",
    "entry_bundles_for_size",
    "export_tiles",
    "fetch_checkpoint",
    "fetch_document",
    "fetch_log_identity",
    "layout",
    "load_log_identity",
    "note_key_id",
    "open_checkpoint",
    "open_note",
    "open_store",
    "open_view",
    "parse_entry_bundle",
    "parse_tile",
    "parse_tile_path",
    "parse_vkey",
    "partial_tile_width",
    "sign_checkpoint",
    "sign_note",
    "subtree_v1_message",
    "tile_path",
    "tiles_for_size",
    "unfit_pending",
    "verify_log",
    "verify_log_dir",
    "verify_remote_log",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
