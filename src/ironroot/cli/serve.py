"""``ironroot serve``: run the transparency service on a data directory.

Service keys are PEM files under ``<data>/keys/`` unless ``[keys]`` in ``ironroot.toml`` puts
them in an HSM (a PKCS#11 token or the built-in boundary; see ``ironroot.hsm.ServiceKeys``):
then this command opens the HSM, creates any missing key inside it, and hands the service
signers whose private keys never leave the HSM.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
from pathlib import Path
from typing import Any

from ironroot import hsm, http, transparency
from ironroot.crypto import Algorithm, Signer
from ironroot.errors import ConfigError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the transparency service",
        description="Serve the transparency service from DIR, creating DIR, its ironroot.toml "
        "and its service keys on first start.",
    )
    parser.add_argument("--data", required=True, type=Path, help="data directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", default=8000, type=int, help="TCP port, 1-65535 (8000)")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (info)")
    parser.add_argument(
        "--log-format", default="text", choices=http.LOG_FORMATS, help="log lines as text or JSON"
    )
    parser.add_argument(
        "--issuer", default="https://transparency.example", help="service_issuer on first start"
    )
    parser.add_argument(
        "--init-only", action="store_true", help="create the data directory and keys, then exit"
    )
    parser.set_defaults(func=_serve)


def hsm_signers(
    config: transparency.TransparencyConfig, keys: hsm.ServiceKeys
) -> tuple[list[Signer], list[Signer]]:
    """The receipt and checkpoint signers of ``config`` from an HSM (created if missing)."""
    receipts: list[Signer] = [
        keys.signer(f"receipt-{alg.label}", alg, create=True) for alg in config.receipt_algorithms
    ]
    checkpoints: list[Signer] = [keys.signer("checkpoint", Algorithm.EDDSA, create=True)]
    if config.checkpoint_algorithm is Algorithm.ML_DSA_44:
        checkpoints.append(keys.signer("checkpoint-ML-DSA-44", Algorithm.ML_DSA_44, create=True))
    return receipts, checkpoints


def check_listen(host: str, port: int) -> None:
    """Refuse a port out of range or already in use before anything is created on disk."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: a TCP port is 1-65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(f"--host {host}: {exc.strerror or exc}") from exc
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


def _serve(args: argparse.Namespace) -> int:
    if not args.init_only:
        check_listen(args.host, args.port)
        http.configure_logging(args.log_level, args.log_format)
    transparency.init_data_dir(args.data, service_issuer=args.issuer)
    config = transparency.load_config(args.data)
    keys_config = hsm.ServiceKeysConfig.parse(config.keys, args.data)
    with contextlib.ExitStack() as stack:
        receipts: list[Signer] | None = None
        checkpoints: list[Signer] | None = None
        where = "PEM files in keys/"
        if keys_config.in_hsm:
            keys = stack.enter_context(hsm.ServiceKeys(keys_config))
            receipts, checkpoints = hsm_signers(config, keys)
            where = f"the {keys_config.backend} backend"
        if args.init_only:
            print(
                f"initialized {args.data} (issuer {config.service_issuer}, origin "
                f"{config.origin}; service keys in {where})"
            )
            return 0
        transparency.serve(
            args.data,
            args.host,
            args.port,
            receipt_signers=receipts,
            checkpoint_signers=checkpoints,
        )
    return 0
