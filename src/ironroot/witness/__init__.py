"""Witnesses: C2SP tlog-witness and tlog-cosignature, quorums of cosignatures, fork proofs.

A witness (:class:`Witness`, served by ``ironroot witness serve``) keeps the latest checkpoint
it cosigned for each log it is configured for, and cosigns a new one only with a consistency
proof from it (``POST /add-checkpoint``); it never cosigns two checkpoints of one origin that
are not consistent, and keeps the two signed checkpoints when it is shown a fork
(:class:`ForkProof`). :class:`WitnessClient` is the log's (and anyone's) side of the protocol;
:class:`WitnessPolicy` is a relying party's: trust a checkpoint once k of n trusted witnesses
cosigned it. Protocol, configuration and file formats: ``docs/witness.md``.

Layering: above ``log`` (notes, checkpoints, tiles) and ``http``; below ``transparency``,
which asks witnesses to cosign its checkpoints, and ``monitor``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.witness._app import create_witness_app
    from ironroot.witness._client import WitnessClient
    from ironroot.witness._config import (
        WitnessConfig,
        add_log,
        init_witness_dir,
        load_witness_config,
    )
    from ironroot.witness._cosignature import (
        COSIGNATURE_TYPE_ED25519,
        COSIGNATURE_TYPE_MLDSA44,
        Cosignature,
        CosignatureVerifier,
        CosignedCheckpoint,
        Cosigner,
        WitnessPolicy,
        cosignature_v1_message,
        subtree_v1_message,
        verify_cosignatures,
    )
    from ironroot.witness._fork import (
        FORK_PROOF_TYPE,
        ForkProof,
        explicit_consistency_proof,
        fork_roots,
    )
    from ironroot.witness._protocol import (
        TLOG_SIZE_MEDIA_TYPE,
        AddCheckpoint,
        monitoring_path,
        parse_cosignatures,
    )
    from ironroot.witness._server import WitnessThread, open_witness, serve_witness
    from ironroot.witness._store import (
        Evidence,
        MemoryWitnessStore,
        SqliteWitnessStore,
        StoredCheckpoint,
        WitnessStore,
    )
    from ironroot.witness._witness import Witness, WitnessedLog

__all__ = [
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
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
