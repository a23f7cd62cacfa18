"""The public surface of ironroot.witness is exactly what is meant to be public."""

from __future__ import annotations

import ironroot.witness

EXPECTED = {
    "COSIGNATURE_TYPE_ED25519",
    "COSIGNATURE_TYPE_MLDSA44",
    "FORK_PROOF_TYPE",
    "TLOG_SIZE_MEDIA_TYPE",
    "AddCheckpoint",
    "Cosignature",
    "CosignatureVerifier",
    "CosignedCheckpoint",
    "Cosigner",
    "Evidence",
    "ForkProof",
    "MemoryWitnessStore",
    "SqliteWitnessStore",
    "StoredCheckpoint",
    "Witness",
    "WitnessClient",
    "WitnessConfig",
    "WitnessPolicy",
    "WitnessStore",
    "WitnessThread",
    "WitnessedLog",
    "add_log",
    "cosignature_v1_message",
    "create_witness_app",
    "explicit_consistency_proof",
    "fork_roots",
    "init_witness_dir",
    "load_witness_config",
    "monitoring_path",
    "open_witness",
    "parse_cosignatures",
    "serve_witness",
    "subtree_v1_message",
    "verify_cosignatures",
}


def test_witness_public_names() -> None:
    assert set(ironroot.witness.__all__) == EXPECTED
