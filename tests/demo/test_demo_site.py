"""The demo's dashboard site (``dashboard_site``): the root and ``/dashboard`` lead to the
dashboard by a relative ``Location``; no path makes it redirect to the client's ``Host``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ironroot.demo._serve import dashboard_site, demo_dashboard
from ironroot.http import problem_app
from ironroot.web import load_dashboard_config


async def _page(request: Request) -> Response:
    return PlainTextResponse(f"dashboard page {request.url.path}")


def _get(path: str) -> httpx.Response:
    inner = problem_app([Route("/", _page), Route("/log", _page)])

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=dashboard_site(inner))
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as c:
            return await c.get(path)

    return asyncio.run(run())


def test_the_root_and_the_bare_prefix_lead_to_the_dashboard_by_a_relative_location() -> None:
    for path in ("/", "/dashboard"):
        response = _get(path)
        assert (response.status_code, response.headers["location"]) == (307, "/dashboard/")
    assert _get("/dashboard/log").text == "dashboard page /dashboard/log"


def test_no_path_redirects_to_the_clients_host() -> None:
    # Starlette's slash redirect answered these with http://evil.example/...
    for path in ("/dashboard/log/", "/nothing/", "//evil.example/x", "/dashboard//log"):
        response = _get(path)
        assert response.status_code == 404, path
        assert "evil.example" not in response.headers.get("location", ""), path


def test_the_demo_s_dashboard_answers_only_its_loopback_names(tmp_path: Path) -> None:
    # was: created without allowed_hosts, so a page of rebound.evil.example whose name its
    # owner pointed at 127.0.0.1 read the demo's dashboard and posted its login form, the DNS
    # rebinding `ironroot dashboard` refuses (docs/dashboard.md)
    app = demo_dashboard(load_dashboard_config(tmp_path))

    async def run(base: str, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            return await client.get(path, headers={"accept": "application/json"})

    for base in ("http://rebound.evil.example:8480", "http://127.0.0.1.evil.example:8480"):
        for path in ("/dashboard/login", "/dashboard/log", "/dashboard/health"):
            refused = asyncio.run(run(base, path))
            assert refused.status_code == 421, (base, path)
            assert refused.json()["code"] == "misdirected"
    for base in ("http://127.0.0.1:8480", "http://localhost:39117"):
        assert asyncio.run(run(base, "/dashboard/login")).status_code == 200, base
