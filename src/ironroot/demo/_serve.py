"""``--serve``: after the story, leave its services running and print where they are.

The transparency service, the witness, the fleet's admission service and planes and the key
service keep running from the demo's process; the dashboard (``ironroot.web``) is started on
the demo's data directory when that package is installed. Everything stops at Ctrl-C (or
SIGTERM).
"""

from __future__ import annotations

import importlib
import importlib.util
import signal
import threading
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

from ironroot.demo._world import Story

__all__ = ["dashboard_available", "serve", "service_urls"]


def dashboard_available() -> bool:
    """Whether the dashboard package (``ironroot.web``) is installed."""
    return importlib.util.find_spec("ironroot.web") is not None


def service_urls(story: Story) -> dict[str, str]:
    """Every service the story left running, by name (dashboard included when it starts)."""
    urls: dict[str, str] = {"transparency": story.log_url, "witness": story.witness_url}
    if story.servers is not None:
        urls["fleet-admission"] = story.servers.admission_url
        urls["fleet-control"] = story.servers.control_url
        urls["fleet-data"] = story.servers.data_url
    if story.keyservice_url:
        urls["keyrelease"] = story.keyservice_url
    dashboard = _start_dashboard(story)
    if dashboard is not None:
        urls["dashboard"] = dashboard
    return {name: url for name, url in urls.items() if url}


def _start_dashboard(story: Story) -> str | None:
    """Start the dashboard on the demo's directory; its URL, or ``None`` without the package."""
    if not dashboard_available():
        story.ui.say(
            "[dim](the dashboard package ironroot.web is not installed: no dashboard)[/dim]"
        )
        return None
    web: Any = importlib.import_module("ironroot.web")
    starter = getattr(web, "demo_dashboard", None)
    if starter is None:
        story.ui.say("[dim](ironroot.web offers no demo_dashboard(): no dashboard)[/dim]")
        return None
    return str(starter(story.work, story.stack))


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
    stop = threading.Event()

    def stopped(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ui.console.print("stopping")
