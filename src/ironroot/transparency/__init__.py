"""The Code Transparency Service (SCITT): registration policy, log, receipts, HTTP API, client."""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.transparency._app import create_app
    from ironroot.transparency._client import Registration, RemoteProblem, TransparencyClient
    from ironroot.transparency._config import (
        IssuerKey,
        TransparencyConfig,
        init_data_dir,
        load_config,
    )
    from ironroot.transparency._policy import RegistrationPolicy
    from ironroot.transparency._receipt_keys import (
        ReceiptBatchVerifier,
        load_receipt_keys,
        publish_receipt_keys,
    )
    from ironroot.transparency._server import ServiceThread, serve
    from ironroot.transparency._service import TransparencyService

__all__ = [
    "IssuerKey",
    "ReceiptBatchVerifier",
    "Registration",
    "RegistrationPolicy",
    "RemoteProblem",
    "ServiceThread",
    "TransparencyClient",
    "TransparencyConfig",
    "TransparencyService",
    "create_app",
    "init_data_dir",
    "load_config",
    "load_receipt_keys",
    "publish_receipt_keys",
    "serve",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
