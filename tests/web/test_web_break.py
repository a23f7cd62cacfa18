"""The dashboard attacked by a hostile party with a foothold in what it reads: damaged files
of its own and of its sources, hostile strings, odd requests. Each test failed before the
defect it names was fixed."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from tests.web.conftest import log_in, login_token
from tests.web.web_world import OPERATOR, PASSWORD, SEEN, WebWorld

from ironroot.http import ServerThread
from ironroot.web import Dashboard, LoginThrottle, create_dashboard_app

pytestmark = pytest.mark.integration

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@pytest.fixture
def own_dir(world: WebWorld, tmp_path: Path) -> Path:
    """A dashboard directory with the world's operator and nothing else to break."""
    state = tmp_path / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    return tmp_path


def _assert_unreadable_page(answer: httpx.Response, hidden: Path) -> None:
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == CSP
    assert int(answer.headers["retry-after"]) >= 1
    assert "cannot be read now" in answer.text
    assert str(hidden) not in answer.text  # an anonymous visitor: no file names


def test_a_damaged_operators_file_is_a_503_page_at_the_login(own_dir: Path) -> None:
    # was: GET /login raised StorageError out of the handler, Starlette's bare "Internal
    # Server Error" (500, text/plain, no security headers) and a traceback in the log
    (own_dir / "dashboard" / "operators.json").write_bytes(b"{")
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        _assert_unreadable_page(anon.get("/login"), own_dir)


def test_an_operators_file_damaged_between_form_and_login_is_a_503_not_a_failure(
    own_dir: Path,
) -> None:
    # was: the StorageError of the damaged file counted as a wrong password (a throttle
    # failure), then the form shown again raised it once more: a bare 500
    dashboard = Dashboard.open(own_dir, clock=lambda: SEEN)
    dashboard.throttle = LoginThrottle(1, 60, clock=lambda: 0.0)  # one failure is the limit
    good = (own_dir / "dashboard" / "operators.json").read_bytes()
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as anon,
    ):
        token = login_token(anon.get("/login").text)
        (own_dir / "dashboard" / "operators.json").write_bytes(b"[not json")
        answer = anon.post("/login", data={"user": OPERATOR, "password": PASSWORD, "csrf": token})
        _assert_unreadable_page(answer, own_dir)
        assert "ironroot_session" not in answer.cookies
        (own_dir / "dashboard" / "operators.json").write_bytes(good)
        assert log_in(anon).status_code == 303  # not throttled: no guess was made
