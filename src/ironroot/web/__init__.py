"""The dashboard: the trust plane as server-rendered pages, read-only.

:class:`Dashboard` opens a data directory's sources — transparency logs, a fleet, HSMs, key
release, monitors, witnesses (:class:`DashboardConfig`, :func:`load_dashboard_config`) —
without writing to them, and computes each page, verifying what it shows (receipts,
checkpoint consistency, cosignatures, each node's chain of trust, the HSM audit chain).
:func:`create_dashboard_app` is its Starlette app (Jinja2 templates, no script, no external
asset), :func:`serve_dashboard` serves it; :class:`Operators` are who may log in. See
``docs/dashboard.md``.

Layering: the top layer beside ``cli`` (which serves it, and mounts it in ``fleet serve``).
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.web._app import SECURITY_HEADERS, create_dashboard_app, dashboard_hosts
    from ironroot.web._auth import LoginThrottle, Operators, Session, SessionKeys
    from ironroot.web._config import DashboardConfig, load_dashboard_config
    from ironroot.web._dashboard import Alert, Dashboard
    from ironroot.web._fleet import FleetSource, Link, NodeChain
    from ironroot.web._keys import HsmSource
    from ironroot.web._logs import LogSource
    from ironroot.web._server import serve_dashboard
    from ironroot.web._svg import bar_chart, chain_svg

__all__ = [
    "SECURITY_HEADERS",
    "Alert",
    "Dashboard",
    "DashboardConfig",
    "FleetSource",
    "HsmSource",
    "Link",
    "LogSource",
    "LoginThrottle",
    "NodeChain",
    "Operators",
    "Session",
    "SessionKeys",
    "bar_chart",
    "chain_svg",
    "create_dashboard_app",
    "dashboard_hosts",
    "load_dashboard_config",
    "serve_dashboard",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
