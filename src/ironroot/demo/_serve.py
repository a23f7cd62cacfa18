"""``--serve``: after the story, leave its services running and print where they are.

The transparency service, the witness, the fleet's admission service and planes and the key
service keep running from the demo's process, and the dashboard (``ironroot.web``) serves the
demo's data directory. Everything stops at Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Final

from rich.markup import escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from ironroot.demo._world import Story
from ironroot.http import ServerThread, stop_on_signals
from ironroot.web import (
    Dashboard,
    DashboardConfig,
    Operators,
    create_dashboard_app,
    load_dashboard_config,
)

__all__ = ["demo_dashboard", "serve", "service_urls"]


def service_urls(story: Story) -> dict[str, str]:
    """Every service the story left running, by name (dashboard included when it starts)."""
    urls: dict[str, str] = {"transparency": story.log_url, "witness": story.witness_url}
    if story.servers is not None:
        urls["fleet-admission"] = story.servers.admission_url
        urls["fleet-control"] = story.servers.control_url
        urls["fleet-data"] = story.servers.data_url
    if story.keyservice_url:
        urls["keyrelease"] = story.keyservice_url
    urls["dashboard"] = _start_dashboard(story)
    return {name: url for name, url in urls.items() if url}


DASHBOARD_USER = "demo"
"""The operator the demo creates to log in to the dashboard (its password is printed)."""


def dashboard_sources(story: Story) -> str:
    """``dashboard.toml`` for the demo's directory: the story's own services only (not the
    attackers' logs under ``attacks/``)."""
    sources = {
        "logs": ["ts"],
        "fleet": "fleet",
        "hsm": ["hsm"],
        "monitor": ["monitor.db"],
        "witness": ["witness"],
    }
    lines = ['title = "Ironroot demo"', "", "[sources]"]
    for key, value in sources.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def dashboard_site(dashboard: ASGIApp) -> Starlette:
    """The demo's dashboard site: ``dashboard`` under ``/dashboard/``, ``/`` and
    ``/dashboard`` sent there by a relative ``Location``. Starlette's own slash redirect is
    off: it builds an absolute URL from the client's ``Host``, a redirect to anywhere."""

    def to_dashboard(request: Request) -> Response:
        return RedirectResponse("/dashboard/")

    app = Starlette(
        routes=[
            Route("/", to_dashboard),
            Route("/dashboard", to_dashboard),
            Mount("/dashboard", app=dashboard),
        ]
    )
    app.router.redirect_slashes = False
    return app


LOOPBACK_NAMES: Final = ("localhost", "127.0.0.1")
"""The ``Host`` names the demo's dashboard answers (on any port: it listens on a port of
127.0.0.1 chosen when it starts)."""


def demo_dashboard(config: DashboardConfig) -> Starlette:
    """The demo's dashboard site for ``config``, answering only requests for ``localhost`` or
    ``127.0.0.1``: a page of another site whose name its owner points at 127.0.0.1 (DNS
    rebinding) gets the dashboard's 421, as from ``ironroot dashboard``
    (:func:`ironroot.web.dashboard_hosts`), not its pages and its login."""
    return dashboard_site(create_dashboard_app(Dashboard(config), allowed_hosts=LOOPBACK_NAMES))


def _start_dashboard(story: Story) -> str:
    """Serve the dashboard of the demo's directory under ``/dashboard`` on a loopback port,
    with an operator login made for the demo; its URL."""
    story.save("dashboard.toml", dashboard_sources(story))
    config = load_dashboard_config(story.work)
    password = secrets.token_urlsafe(12)
    Operators(config.state_dir).set_password(DASHBOARD_USER, password)
    story.save("dashboard/demo-login.txt", f"{DASHBOARD_USER} {password}\n", mode=0o600)
    app = demo_dashboard(config)
    server = story.stack.enter_context(ServerThread(app, "127.0.0.1", 0, name="dashboard"))
    story.ui.fact(
        "dashboard login",
        f"{DASHBOARD_USER} / {escape(password)} (also in dashboard/demo-login.txt)",
    )
    return f"{server.url}/dashboard/"


def serve(story: Story, urls: Mapping[str, str]) -> None:
    """Print the URLs and wait for Ctrl-C or SIGTERM."""
    ui = story.ui
    ui.console.print()
    ui.console.print("[bold]The services stay up[/bold] (Ctrl-C stops them):")
    for name, url in urls.items():
        ui.fact(name, escape(url))
    if story.servers is not None:
        ui.fact("fleet CA (for curl --cacert)", escape(str(story.servers.ca_file)))
    ui.fact("data directory", escape(str(story.work)))
    with stop_on_signals() as stop:
        while not stop.wait(1.0):
            pass
    ui.console.print("stopping")
