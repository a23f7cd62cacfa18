"""``GET /`` on every service: a page for a person (HTML) when the client prefers HTML, the
same facts as JSON otherwise; the service's endpoints, links and documentation either way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot import __version__
from ironroot.http import ServerThread, ServiceInfo, problem_app

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


async def _things(request: Request) -> Response:
    return Response("[]", media_type="application/json")


@contextmanager
def _served(docs: str | None) -> Iterator[httpx.Client]:
    info = ServiceInfo(
        name="things",
        description="Things <& more>",
        links={"openapi": "/openapi.json"},
        docs=docs,
    )
    routes = [
        Route("/things", _things, methods=["GET"]),
        Route("/things/{name}", _things, methods=["PUT", "DELETE"]),
    ]
    with (
        ServerThread(problem_app(routes, info), name="things") as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with _served("docs/things.md") as client:
        yield client


@pytest.mark.parametrize(
    "accept",
    [BROWSER, "text/html", "application/json;q=0.5, text/html", "TEXT/HTML; q=0.9"],
)
def test_a_browser_gets_a_page(client: httpx.Client, accept: str) -> None:
    page = client.get("/", headers={"Accept": accept})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<h1>Ironroot things</h1>" in text
    assert "Things &lt;&amp; more&gt;" in text  # escaped, never markup from a description
    assert f"Version {__version__}" in text
    assert '<a href="/openapi.json">openapi</a>' in text
    assert '<a href="/health">health</a>' in text
    assert "<code>GET /things</code>" in text
    assert "<code>DELETE PUT /things/{name}</code>" in text
    assert "<code>docs/things.md</code> in the Ironroot documentation" in text
    assert "<script" not in text


def test_the_page_runs_nothing_is_never_framed_and_is_never_sniffed(client: httpx.Client) -> None:
    page = client.get("/", headers={"Accept": BROWSER})
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["vary"] == "Accept"
    assert client.get("/", headers={"Accept": "application/json"}).headers["vary"] == "Accept"


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "application/json",
        "application/json, text/html;q=0.5",
        "text/html;q=0",
        "text/html;q=oops",
        "application/cbor",
    ],
)
def test_scripts_get_json(client: httpx.Client, accept: str | None) -> None:
    request = client.build_request("GET", "/")
    if accept is None:
        del request.headers["accept"]
    else:
        request.headers["accept"] = accept
    response = client.send(request)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {
        "service": "things",
        "description": "Things <& more>",
        "version": __version__,
        "links": {
            "health": "/health",
            "ready": "/ready",
            "metrics": "/metrics",
            "openapi": "/openapi.json",
        },
        "endpoints": ["GET /things", "DELETE PUT /things/{name}"],
        "docs": "docs/things.md",
    }


def test_documentation_at_a_url_is_a_link_and_none_is_left_out() -> None:
    with _served("https://docs.example/things") as client:
        page = client.get("/", headers={"Accept": "text/html"}).text
        assert '<a href="https://docs.example/things">https://docs.example/things</a>' in page
    with _served(None) as client:
        assert "docs" not in client.get("/").json()
        assert "Documentation" not in client.get("/", headers={"Accept": "text/html"}).text


def test_the_transparency_service_links_its_openapi_and_docs(tmp_path: Path) -> None:
    from ironroot.transparency import ServiceThread, TransparencyService, init_data_dir

    init_data_dir(tmp_path / "ts", service_issuer="https://ts.example")
    with (
        TransparencyService.open(tmp_path / "ts") as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        body = client.get("/", headers={"Accept": "application/json"}).json()
        assert body["service"] == "transparency"
        assert body["links"]["openapi"] == "/openapi.json"
        assert body["docs"] == "docs/transparency.md"
        assert "POST /entries" in body["endpoints"]
        assert client.get("/openapi.json").status_code == 200
        page = client.get("/", headers={"Accept": BROWSER}).text
        assert "<h1>Ironroot transparency</h1>" in page
