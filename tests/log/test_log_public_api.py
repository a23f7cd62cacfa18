"""The public surface of ironroot.log is exactly what is meant to be public."""

from __future__ import annotations

import ast
from pathlib import Path

import ironroot.log
from ironroot.log import layout

EXPECTED = {
    "AuditReader",
    "AuditableStore",
    "BatchSigner",
    "BatchVerifier",
    "CACHE_CHECKPOINT",
    "CACHE_FULL",
    "CACHE_PARTIAL",
    "CONFIG_PATH",
    "Checkpoint",
    "DirectoryLogFetcher",
    "ExportReport",
    "DSN_ENV",
    "HttpLogFetcher",
    "Integrated",
    "Log",
    "LogFetcher",
    "LogIdentity",
    "LogReader",
    "LogReport",
    "LogStore",
    "LogView",
    "MAX_ENTRY_SIZE",
    "MemoryLogStore",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Outcome",
    "SIGNATURE_TYPE_ED25519",
    "SIGNATURE_TYPE_MLDSA44",
    "STORE_KEYS",
    "PostgresLogStore",
    "SequencerLease",
    "SchemaStatus",
    "SqliteLogStore",
    "StoreBatch",
    "StoreLogFetcher",
    "StoreConfig",
    "StoreView",
    "TILE_HEIGHT",
    "TILE_INDEX_PATTERN",
    "TILE_LEVEL_PATTERN",
    "TILE_WIDTH",
    "Submission",
    "Ticket",
    "TileAddress",
    "TileTree",
    "TreeState",
    "VerifierKey",
    "cache_control",
    "check_resource_path",
    "check_batch",
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
    "unfit_pending",
    "subtree_v1_message",
    "tile_path",
    "tiles_for_size",
    "verify_log",
    "verify_log_dir",
    "verify_remote_log",
}


def test_log_public_names() -> None:
    assert set(ironroot.log.__all__) == EXPECTED
    assert len(ironroot.log.__all__) == len(EXPECTED)
    for name in EXPECTED:
        assert hasattr(ironroot.log, name), name


def test_layout_public_names() -> None:
    assert set(layout.__all__) == {
        "CHECKPOINT_KEY",
        "CHECKPOINT_PUBLIC_KEY",
        "CONFIG_FILE",
        "LOG_DB",
        "RECEIPT_KEYS",
        "LogIdentity",
        "checkpoint_key_path",
        "checkpoint_public_key_path",
        "config_path",
        "load_checkpoint_signer",
        "load_log_identity",
        "log_db_path",
        "read_log_origin",
        "read_log_table",
        "receipt_keys_path",
    }


def test_the_log_imports_only_lower_layers() -> None:
    allowed = (
        "ironroot._fileio",
        "ironroot._httpclient",
        "ironroot._lazy",
        "ironroot._statedb",
        "ironroot._trust",
        "ironroot.crypto",
        "ironroot.errors",
        "ironroot.merkle",
        "ironroot.log",
    )
    package = Path(ironroot.log.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("ironroot"):
                    assert name.startswith(allowed), f"{source.name} imports {name}"
