"""The Code Transparency Service (SCITT): registration policy, log, receipts, HTTP API, client;
publication of witnessed checkpoints and clients that require witnesses (docs/witness.md)."""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.transparency._app import create_app
    from ironroot.transparency._client import Registration, RemoteProblem, TransparencyClient
    from ironroot.transparency._config import (
        IssuerKey,
        TransparencyConfig,
        WitnessEndpoint,
        init_data_dir,
        load_config,
        lock_data_dir,
    )
    from ironroot.transparency._policy import RegistrationPolicy
    from ironroot.transparency._receipt_keys import (
        ReceiptBatchVerifier,
        load_receipt_keys,
        publish_receipt_keys,
    )
    from ironroot.transparency._server import ServiceThread, serve
    from ironroot.transparency._service import TransparencyService
    from ironroot.transparency._tiles_app import create_tiles_app
    from ironroot.transparency._witnessed import (
        WITNESSED_STATEMENT_FORMAT,
        WitnessedStatement,
        decode_witnessed_statement,
        receipt_tree,
        verify_witnessed,
        verify_witnessed_statement,
    )
    from ironroot.transparency._witnessing import WITNESSED_CHECKPOINT, CheckpointWitnessing

__all__ = [
    "WITNESSED_CHECKPOINT",
    "WITNESSED_STATEMENT_FORMAT",
    "CheckpointWitnessing",
    "IssuerKey",
    "ReceiptBatchVerifier",
    "Registration",
    "RegistrationPolicy",
    "RemoteProblem",
    "ServiceThread",
    "TransparencyClient",
    "TransparencyConfig",
    "TransparencyService",
    "WitnessEndpoint",
    "WitnessedStatement",
    "create_app",
    "create_tiles_app",
    "decode_witnessed_statement",
    "init_data_dir",
    "load_config",
    "load_receipt_keys",
    "lock_data_dir",
    "publish_receipt_keys",
    "receipt_tree",
    "serve",
    "verify_witnessed",
    "verify_witnessed_statement",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
