"""The dashboard's ``/metrics`` is for operators and for the configured scraper's bearer token:
anyone else gets a 401 problem (it tells who logs in and when, and which pages fail)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from tests.web.web_world import WebWorld

from ironroot.errors import ConfigError
from ironroot.http import ServerThread
from ironroot.web import create_dashboard_app
from ironroot.web._config import load_dashboard_config

TOKEN = "scraper-token-0123456789abcdef0123456789"


def _refused(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    problem = json.loads(response.text)
    assert problem["status"] == 401
    assert problem["code"] == "metrics"
    assert "ironroot_http_requests_total" not in response.text


def test_an_anonymous_scrape_of_the_metrics_is_a_401_problem(anon: httpx.Client) -> None:
    _refused(anon.get("/metrics", headers={"Accept": "application/json"}))
    _refused(
        anon.get("/metrics", headers={"Accept": "application/json", "Authorization": "Bearer x"})
    )
    assert anon.get("/health").status_code == 200  # liveness stays public


def test_a_signed_in_operator_reads_the_metrics(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "ironroot_http_requests_total" in response.text


def test_the_configured_bearer_token_reads_the_metrics(world: WebWorld) -> None:
    dashboard = world.dashboard()
    dashboard.config = dataclasses.replace(
        dashboard.config, metrics_token_sha256=hashlib.sha256(TOKEN.encode()).digest()
    )
    json_only = {"Accept": "application/json"}
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url, headers=json_only) as scraper,
    ):
        right = scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status_code == 200
        assert "ironroot_http_requests_total" in right.text
        for wrong in (
            f"Bearer {TOKEN}x",
            f"Bearer {TOKEN[:-1]}",
            f"Basic {TOKEN}",
            f"Bearer  x{TOKEN}",
        ):
            _refused(scraper.get("/metrics", headers={"Authorization": wrong}))
        _refused(scraper.get("/metrics"))


def test_the_metrics_token_comes_from_a_file_named_in_dashboard_toml(tmp_path: Path) -> None:
    (tmp_path / "metrics.token").write_text(TOKEN + "\n")
    (tmp_path / "metrics.token").chmod(0o600)
    (tmp_path / "dashboard.toml").write_text('[metrics]\ntoken_file = "metrics.token"\n')
    config = load_dashboard_config(tmp_path)
    assert config.metrics_token_sha256 == hashlib.sha256(TOKEN.encode()).digest()
    assert TOKEN not in repr(config)
    (tmp_path / "dashboard.toml").write_text("")
    assert load_dashboard_config(tmp_path).metrics_token_sha256 is None  # operators only
    for toml, message in (
        ('[metrics]\ntoken_file = "short.token"\n', "32 or more printable ASCII"),
        ('[metrics]\ntoken_file = "absent.token"\n', "cannot be read"),
        ('[metrics]\ntoken = "inline"\n', "[metrics] takes token_file"),
    ):
        (tmp_path / "short.token").write_text("too short")
        (tmp_path / "dashboard.toml").write_text(toml)
        with pytest.raises(ConfigError) as info:
            load_dashboard_config(tmp_path)
        assert message in info.value.detail
