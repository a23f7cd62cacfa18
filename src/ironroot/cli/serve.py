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
from typing import Any, Final

from ironroot import hsm, http, transparency
from ironroot.cli._serving import add_server_options, data_dir, listen
from ironroot.crypto import Algorithm, Signer
from ironroot.errors import NotFound


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the transparency service",
        description="Serve the transparency service from DIR, creating DIR, its ironroot.toml "
        "and its service keys on first start.",
    )
    add_server_options(parser, default_host="127.0.0.1", default_port=8000)
    parser.add_argument(
        "--issuer", default="https://transparency.example", help="service_issuer on first start"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="N HTTP worker processes check and verify statements in parallel; this process "
        "sequences (default: one process does both)",
    )
    parser.add_argument(
        "--replica",
        action="store_true",
        help="serve as one of any number of replicas sharing the log in PostgreSQL; one of "
        "them, elected, sequences (docs/transparency.md)",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=5.0,
        metavar="S",
        help="with --replica: the sequencer's lease in seconds, 0.5-600 (default 5): a "
        "sequencer that stops renewing it is replaced that long after",
    )
    parser.add_argument(
        "--init-only", action="store_true", help="create the data directory and keys, then exit"
    )
    parser.epilog = (
        "example: ironroot serve --data ts --port 8000 --log-format json "
        "[--tls-cert cert.pem --tls-key key.pem]"
    )
    parser.set_defaults(func=_serve)


KEY_PURPOSES: Final = frozenset(
    {
        *(f"receipt-{alg.label}" for alg in Algorithm),
        "checkpoint",
        "checkpoint-ML-DSA-44",
    }
)
"""The service keys :func:`hsm_signers` asks for: what ``[keys.handles]`` may name."""


def hsm_signers(
    config: transparency.TransparencyConfig, keys: hsm.ServiceKeys, *, create: bool = True
) -> tuple[list[Signer], list[Signer]]:
    """The receipt and checkpoint signers of ``config`` from an HSM (with ``create``, made if
    missing: by a caller that holds the data directory's lock, see :func:`_service_signers`)."""
    receipts: list[Signer] = [
        keys.signer(f"receipt-{alg.label}", alg, create=create) for alg in config.receipt_algorithms
    ]
    checkpoints: list[Signer] = [keys.signer("checkpoint", Algorithm.EDDSA, create=create)]
    if config.checkpoint_algorithm is Algorithm.ML_DSA_44:
        checkpoints.append(keys.signer("checkpoint-ML-DSA-44", Algorithm.ML_DSA_44, create=create))
    return receipts, checkpoints


def _service_signers(
    data: Path, config: transparency.TransparencyConfig, keys: hsm.ServiceKeys
) -> tuple[list[Signer], list[Signer]]:
    """:func:`hsm_signers`, any missing key made while holding the data directory's lock
    (``InUse`` if another process holds it): two first starts at once never both make a key
    and write its handle over the other's, which may be signing by then. A directory whose
    keys are all there needs no lock (a running service's)."""
    try:
        return hsm_signers(config, keys, create=False)
    except NotFound:
        pass
    with transparency.lock_data_dir(data):
        return hsm_signers(config, keys)


def _serve(args: argparse.Namespace) -> int:
    data = data_dir(args)
    bind = listen(args, default_host="127.0.0.1", default_port=8000)
    if not args.init_only:
        http.check_listen(bind.host, bind.port)
        http.configure_logging(bind.log_level, bind.log_format)
    transparency.init_data_dir(data, service_issuer=args.issuer)
    config = transparency.load_config(data)
    keys_config = hsm.ServiceKeysConfig.parse(config.keys, data, purposes=KEY_PURPOSES)
    with contextlib.ExitStack() as stack:
        receipts: list[Signer] | None = None
        checkpoints: list[Signer] | None = None
        where = "PEM files in keys/"
        if keys_config.in_hsm:
            keys = stack.enter_context(hsm.ServiceKeys(keys_config))
            receipts, checkpoints = _service_signers(data, config, keys)
            where = f"the {keys_config.backend} backend"
        if args.init_only:
            print(
                f"initialized {data} (issuer {config.service_issuer}, origin "
                f"{config.origin}; service keys in {where})"
            )
            return 0
        transparency.serve(
            data,
            bind.host,
            bind.port,
            receipt_signers=receipts,
            checkpoint_signers=checkpoints,
            tls=bind.tls,
            workers=args.workers,
            replica=args.replica,
            lease=args.lease,
            log_level=bind.log_level,
            log_format=bind.log_format,
        )
    return 0
