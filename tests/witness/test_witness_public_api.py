"""The public surface of ironroot.witness is exactly what is meant to be public."""

from __future__ import annotations

import pytest

import ironroot.witness
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedInput, UnsupportedAlgorithm
from ironroot.log import NoteVerifier
from ironroot.witness import CosignatureVerifier

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


def test_a_note_key_and_a_cosigner_key_share_the_vkey_rules_but_are_never_equal() -> None:
    public = PrivateKey.generate(Algorithm.ED25519).public_key
    note, cosigner = NoteVerifier("w.example", public), CosignatureVerifier("w.example", public)
    assert (note.signature_type, cosigner.signature_type) == (0x01, 0x04)
    assert note.key_id != cosigner.key_id
    assert note != cosigner
    assert CosignatureVerifier.from_vkey(cosigner.vkey) == cosigner
    assert NoteVerifier.from_vkey(note.vkey) == note
    with pytest.raises(UnsupportedAlgorithm, match="cosignature type 0x01"):
        CosignatureVerifier.from_vkey(note.vkey)
    with pytest.raises(MalformedInput, match="a cosigner name must not contain"):
        CosignatureVerifier("two words", public)
    with pytest.raises(UnsupportedAlgorithm, match="ES256 keys have no note signature type"):
        NoteVerifier("a", PrivateKey.generate(Algorithm.ES256).public_key)
