"""Open a witness from its data directory and serve it (the thin I/O shell)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ironroot._fileio import DirectoryLock
from ironroot.http import (
    ServerLimits,
    ServerThread,
    ServerTls,
    configure_logging,
    run_server,
    server_config,
)
from ironroot.witness._app import create_witness_app
from ironroot.witness._config import WitnessConfig, load_witness_config
from ironroot.witness._store import SqliteWitnessStore
from ironroot.witness._witness import Witness, _wall_clock

__all__ = ["WitnessThread", "open_witness", "serve_witness"]

_log = logging.getLogger("ironroot.witness")


def open_witness(data_dir: Path, *, clock: Callable[[], int] = _wall_clock) -> Witness:
    """The witness of ``data_dir`` (``witness.toml``, ``keys/``, ``witness.sqlite3``)."""
    config = load_witness_config(data_dir)
    cosigners = config.cosigners()
    store = SqliteWitnessStore(config.database)
    try:
        return Witness(config.name, cosigners, config.logs, store, clock=clock)
    except BaseException:
        store.close()
        raise


def serve_witness(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8300,
    *,
    tls: ServerTls | None = None,
) -> None:
    """Serve the witness of ``data_dir`` until SIGINT/SIGTERM (HTTPS with ``tls``).

    The directory's lock (``<data>/.lock``) is held for as long as it serves: a second
    process is ``InUse`` (exit 2) before it opens anything, instead of two witnesses
    cosigning from one directory, each from its own view of the latest checkpoints."""
    if not logging.getLogger("ironroot").handlers:
        configure_logging("info", "text")
    config = load_witness_config(data_dir)  # a directory that holds no witness: its error
    with DirectoryLock(Path(data_dir), what="witness data directory"):
        _serve_locked(data_dir, config, host, port, tls)


def _serve_locked(
    data_dir: Path, config: WitnessConfig, host: str, port: int, tls: ServerTls | None
) -> None:
    witness = open_witness(data_dir)
    _log.info(
        "witness %s on %s://%s:%d: keys %s; logs %s",
        witness.name,
        "https" if tls is not None else "http",
        host,
        port,
        ", ".join(v.vkey for v in witness.verifiers),
        ", ".join(log.origin for log in witness.logs) or "none (add one: witness add-log)",
    )
    try:
        app = create_witness_app(witness, max_request_bytes=config.max_request_bytes)
        run_server(server_config(app, host, port, config.server, tls=tls))
    finally:
        witness.close()


class WitnessThread(ServerThread):
    """Serve a :class:`Witness` over real HTTP from a background thread (tests, embedding).

    Port 0 picks a free loopback port; ``url`` says which.
    """

    def __init__(
        self,
        witness: Witness,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: ServerLimits | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        app = create_witness_app(witness)
        super().__init__(app, host, port, name="witness", limits=limits, tls=tls)
