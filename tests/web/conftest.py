"""The dashboard tests' fixtures: one world per session (tests/web/web_world.py), the dashboard
served over real HTTP, an HTTP client logged in as the world's operator, and a browser."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.web.web_world import OPERATOR, PASSWORD, WebWorld, web_world

from ironroot._trust import system_trust
from ironroot.http import ServerThread
from ironroot.web import Dashboard, create_dashboard_app

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebWorld]:
    with web_world(tmp_path_factory.mktemp("web-world")) as built:
        yield built


@pytest.fixture(scope="session")
def dashboard(world: WebWorld) -> Dashboard:
    return world.dashboard()


@pytest.fixture(scope="session")
def served(dashboard: Dashboard) -> Iterator[str]:
    """The dashboard's base URL (plain HTTP on a free loopback port)."""
    with ServerThread(create_dashboard_app(dashboard), name="dashboard") as server:
        yield server.url


def login_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


def log_in(client: httpx.Client, user: str = OPERATOR, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/login")
    return client.post(
        "/login",
        data={"user": user, "password": password, "csrf": login_token(form.text), "next": "/"},
    )


@pytest.fixture
def anon(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=served, follow_redirects=False, timeout=30, verify=system_trust()
    ) as client:
        yield client


@pytest.fixture
def client(served: str) -> Iterator[httpx.Client]:
    """A client logged in as the world's operator."""
    with httpx.Client(
        base_url=served, follow_redirects=False, timeout=30, verify=system_trust()
    ) as client:
        answer = log_in(client)
        assert answer.status_code == 303, answer.text
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Debian chromium for the module (Playwright cannot download its own
    browser here: scripts/install-test-deps.sh installs the distribution's). Not for the
    session: Playwright's sync API keeps an event loop running in the main thread while it is
    open, and a later test's ``asyncio.run`` in the same worker would find it."""
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (scripts/install-test-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM) if CHROMIUM.exists() else shutil.which("chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield launched
        finally:
            launched.close()
