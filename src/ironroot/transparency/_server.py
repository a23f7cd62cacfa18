"""Run the service under uvicorn (the thin I/O shell around the app)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ironroot.crypto import Signer
from ironroot.http import (
    ServerLimits,
    ServerThread,
    ServerTls,
    configure_logging,
    run_server,
    server_config,
)
from ironroot.transparency._app import create_app
from ironroot.transparency._service import TransparencyService

__all__ = ["ServiceThread", "serve"]

_log = logging.getLogger("ironroot.transparency")


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    receipt_signers: Sequence[Signer] | None = None,
    checkpoint_signers: Sequence[Signer] | None = None,
    tls: ServerTls | None = None,
    workers: int = 0,
    replica: bool = False,
    lease: float = 5.0,
    log_level: str = "info",
    log_format: str = "text",
) -> None:
    """Open (creating on first start) the service in ``data_dir`` and serve it until stopped
    (HTTPS with ``tls``).

    ``workers`` > 0 serves HTTP from that many worker processes, this one sequencing
    (:mod:`ironroot.transparency._workers`); ``log_level``/``log_format`` are theirs.
    ``replica`` serves as one of any number of replicas sharing a PostgreSQL log, one of them
    elected to sequence with a ``lease`` of that many seconds
    (:mod:`ironroot.transparency._replica`, ADR 0009).

    SIGINT/SIGTERM stop it gracefully: uvicorn finishes open requests, then the log writer
    drains its queue and the store checkpoints and closes (``ironroot.http.run_server``).
    """
    if not logging.getLogger("ironroot").handlers:
        configure_logging(log_level, log_format)
    if replica:
        from ironroot.errors import ConfigError
        from ironroot.transparency._replica import serve_replica

        if workers:
            raise ConfigError("--replica runs one process per replica: drop --workers")
        serve_replica(
            data_dir,
            host,
            port,
            lease=lease,
            receipt_signers=receipt_signers,
            checkpoint_signers=checkpoint_signers,
            tls=tls,
        )
        return
    if workers:
        from ironroot.transparency._workers import serve_workers

        serve_workers(
            data_dir,
            host,
            port,
            workers,
            receipt_signers=receipt_signers,
            checkpoint_signers=checkpoint_signers,
            tls=tls,
            log_level=log_level,
            log_format=log_format,
        )
        return
    service = TransparencyService.open(
        data_dir, receipt_signers=receipt_signers, checkpoint_signers=checkpoint_signers
    )
    service.start()
    _log.info(
        "%s, origin %s, receipt keys %s, checkpoint keys %s",
        service.serving(data_dir, host=host, port=port, tls=tls is not None),
        service.config.origin,
        ", ".join(k.kid.hex()[:16] for k in service.receipt_keys),
        ", ".join(service.checkpoint_vkeys),
    )
    try:
        run_server(server_config(create_app(service), host, port, service.config.server, tls=tls))
    finally:
        service.close()


class ServiceThread(ServerThread):
    """Serve a started :class:`TransparencyService` over real HTTP from a background thread.

    For embedding the service in another program (an appliance, an integration test)::

        with service, ServiceThread(service) as server:
            TransparencyClient(server.url).register(statement)

    Port 0 picks a free loopback port; ``url`` says which.
    """

    def __init__(
        self,
        service: TransparencyService,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: ServerLimits | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        super().__init__(
            create_app(service),
            host,
            port,
            name="transparency",
            limits=limits or service.config.server,
            tls=tls,
        )
