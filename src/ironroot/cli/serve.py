"""``ironroot serve``: run the transparency service on a data directory.

Service keys are PEM files under ``<data>/keys/`` unless ``[keys]`` in ``ironroot.toml`` puts
them in an HSM (a PKCS#11 token or the built-in boundary; see ``ironroot.hsm.ServiceKeys``):
then this command opens the HSM, creates any missing key inside it, and hands the service
signers whose private keys never leave the HSM.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from ironroot.crypto import Algorithm, Signer
from ironroot.hsm import ServiceKeys, ServiceKeysConfig
from ironroot.transparency import TransparencyConfig, init_data_dir, load_config, serve


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the transparency service",
        description="Serve the transparency service from DIR, creating DIR, its ironroot.toml "
        "and its service keys on first start.",
    )
    parser.add_argument("--data", required=True, type=Path, help="data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=8000, type=int)
    parser.add_argument(
        "--issuer", default="https://transparency.example", help="service_issuer on first start"
    )
    parser.add_argument(
        "--init-only", action="store_true", help="create the data directory and keys, then exit"
    )
    parser.set_defaults(func=_serve)


def hsm_signers(config: TransparencyConfig, keys: ServiceKeys) -> tuple[list[Signer], list[Signer]]:
    """The receipt and checkpoint signers of ``config`` from an HSM (created if missing)."""
    receipts: list[Signer] = [
        keys.signer(f"receipt-{alg.label}", alg, create=True) for alg in config.receipt_algorithms
    ]
    checkpoints: list[Signer] = [keys.signer("checkpoint", Algorithm.EDDSA, create=True)]
    if config.checkpoint_algorithm is Algorithm.ML_DSA_44:
        checkpoints.append(keys.signer("checkpoint-ML-DSA-44", Algorithm.ML_DSA_44, create=True))
    return receipts, checkpoints


def _serve(args: argparse.Namespace) -> int:
    init_data_dir(args.data, service_issuer=args.issuer)
    config = load_config(args.data)
    keys_config = ServiceKeysConfig.parse(config.keys, args.data)
    with contextlib.ExitStack() as stack:
        receipts: list[Signer] | None = None
        checkpoints: list[Signer] | None = None
        where = "PEM files in keys/"
        if keys_config.in_hsm:
            keys = stack.enter_context(ServiceKeys(keys_config))
            receipts, checkpoints = hsm_signers(config, keys)
            where = f"the {keys_config.backend} backend"
        if args.init_only:
            print(
                f"initialized {args.data} (issuer {config.service_issuer}, origin "
                f"{config.origin}; service keys in {where})"
            )
            return 0
        serve(
            args.data,
            args.host,
            args.port,
            receipt_signers=receipts,
            checkpoint_signers=checkpoints,
        )
    return 0
