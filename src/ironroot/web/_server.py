"""Serving the dashboard: until SIGINT/SIGTERM (``ironroot dashboard``), over HTTP or HTTPS."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ironroot._netaddr import is_loopback_host
from ironroot.http import ServerLimits, ServerTls, run_server, server_config
from ironroot.web._app import create_dashboard_app, dashboard_hosts
from ironroot.web._config import host_names
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
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Serve ``dashboard`` on ``host:port`` until interrupted (``on_start(url)`` first),
    answering the ``Host`` names of :func:`dashboard_hosts`: ``allowed_hosts`` and those of
    its configuration besides its own address; with ``limits``, or its configuration's
    ``[server]`` (the proxies it trusts among them)."""
    names = (*dashboard.config.allowed_hosts, *host_names(list(allowed_hosts), "--allowed-host"))
    hosts = dashboard_hosts(host, port, names)
    if not hosts:  # bound to every address (0.0.0.0, ::), and no name given
        _log.warning(
            "the dashboard on %s answers no Host name: every request gets 421; give the names "
            "clients use with --allowed-host (or allowed_hosts in dashboard.toml)",
            host,
        )
    if tls is None and not is_loopback_host(host):
        _log.warning(
            "the dashboard on %s is plain HTTP on an address other hosts reach: operators' "
            "passwords and session cookies (not Secure) cross the network in clear; serve it "
            "with --tls-cert and --tls-key, or bind it to a loopback address behind a TLS proxy",
            host,
        )
    app = create_dashboard_app(dashboard, allowed_hosts=hosts)
    limits = limits if limits is not None else dashboard.config.server
    url = f"{'https' if tls is not None else 'http'}://{host}:{port}"
    _log.info("dashboard on %s: data %s", url, dashboard.config.data_dir)
    if on_start is not None:
        on_start(url)
    run_server(server_config(app, host, port, limits, tls=tls))
