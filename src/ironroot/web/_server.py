"""Serving the dashboard: until SIGINT/SIGTERM (``ironroot dashboard``), over HTTP or HTTPS."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ironroot.http import ServerLimits, ServerTls, run_server, server_config
from ironroot.web._app import create_dashboard_app
from ironroot.web._dashboard import Dashboard

__all__ = ["serve_dashboard"]

_log = logging.getLogger("ironroot.web")


def serve_dashboard(
    dashboard: Dashboard,
    host: str,
    port: int,
    *,
    tls: ServerTls | None = None,
    limits: ServerLimits | None = None,
    on_start: Callable[[str], None] | None = None,
) -> None:
    """Serve ``dashboard`` on ``host:port`` until interrupted (``on_start(url)`` first)."""
    app = create_dashboard_app(dashboard)
    url = f"{'https' if tls is not None else 'http'}://{host}:{port}"
    _log.info("dashboard on %s: data %s", url, dashboard.config.data_dir)
    if on_start is not None:
        on_start(url)
    run_server(server_config(app, host, port, limits, tls=tls))
