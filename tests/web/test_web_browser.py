"""The dashboard in a real browser: Debian's chromium, driven by Playwright, one browser for
the session. Every page loads without a console error (a Content-Security-Policy violation is
one), every link resolves, a quarantined node is red with its reason, the log page verifies a
receipt, login is required where it should be, hostile input stays text, and everything
works with JavaScript off (the pages have none)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from tests.web.web_world import (
    HELD,
    HOSTILE_ISSUER,
    HOSTILE_REASON,
    OPERATOR,
    PASSWORD,
    ROGUE_FIRMWARE,
    WebWorld,
)

pytestmark = pytest.mark.integration

RED = "rgb(207, 34, 46)"


class Watched:
    """A page whose console errors, page errors and failed requests are collected."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)
        page.on(
            "response",
            lambda r: self.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
        )

    def _failed(self, request: Any) -> None:
        if "ERR_ABORTED" not in (request.failure or ""):  # not a load cut short by navigating
            self.problems.append(f"failed: {request.url} ({request.failure})")

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def goto(self, url: str) -> Any:
        return self.page.goto(url, wait_until="load")


def _log_in(page: Any, base: str, next_path: str = "/") -> None:
    page.goto(f"{base}/login?next={urllib.parse.quote(next_path)}")
    page.fill("#user", OPERATOR)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


@pytest.fixture
def operator(browser: Any, served: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = Watched(context.new_page())
    _log_in(page.page, served)
    yield page
    context.close()


def test_every_page_loads_without_errors_and_every_link_resolves(
    operator: Watched, served: str, world: WebWorld
) -> None:
    start = [
        "/",
        f"/log/trusted-log/entries/{world.hostile_entry}",
        f"/log/ops-log/entries/{world.hostile_issuer_entry}",
    ]
    queue, seen = list(start), set()
    while queue and len(seen) < 80:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = operator.goto(served + path)
        assert response is not None, path
        assert response.status == 200, path
        assert operator.page.evaluate("document.scripts.length") == 0, path
        hrefs = operator.page.eval_on_selector_all(
            "a[href]",  # HTML and SVG links alike
            "els => els.map(e => new URL(e.getAttribute('href'), document.baseURI).href)",
        )
        for href in hrefs:
            parsed = urllib.parse.urlsplit(href)
            if f"{parsed.scheme}://{parsed.netloc}" != served or parsed.path.endswith(".cose"):
                continue
            target = parsed.path + (f"?{parsed.query}" if parsed.query else "")
            if target not in seen:
                queue.append(target)
    assert operator.problems == []
    for page in ("/fleet", "/log", "/reviews", "/keys", "/alerts", f"/fleet/nodes/{HELD}"):
        assert page in seen
    assert len(seen) > 25


def test_a_quarantined_node_is_red_with_its_reason(operator: Watched, served: str) -> None:
    page = operator.page
    operator.goto(f"{served}/fleet")
    row = page.locator(f'tr[data-node="{ROGUE_FIRMWARE}"]')
    badge = row.locator(".badge")
    assert badge.inner_text() == "quarantined"
    assert badge.evaluate("e => getComputedStyle(e).color") == RED
    assert "no logged reference value for runtime" in row.locator("td.reason").inner_text()

    operator.goto(f"{served}/fleet/nodes/{ROGUE_FIRMWARE}")
    banner = page.locator("#quarantine")
    assert banner.is_visible()
    assert "no logged reference value for runtime" in banner.inner_text()
    quote = page.locator('svg.chain g[data-link="quote"]')
    assert quote.get_attribute("data-status") == "fail"
    assert quote.locator("rect").first.get_attribute("stroke") == "#cf222e"
    assert "failed: rot: reference-values" in (quote.text_content() or "")
    fuses = page.locator('svg.chain g[data-link="fuses"]')
    assert fuses.locator("rect").first.get_attribute("stroke") == "#1a7f37"
    page.locator('svg.chain g[data-link="quote"]').click()  # the picture links to the check
    assert page.url.endswith("#link-quote")
    assert operator.problems == []


def test_the_log_page_verifies_a_receipt(browser: Any, served: str, world: WebWorld) -> None:
    context = browser.new_context()  # nobody logged in: the log is public
    page = Watched(context.new_page())
    page.goto(f"{served}/log/trusted-log")
    page.page.locator(f'a[href$="/entries/{world.review_entry}"]').click()
    page.page.wait_for_load_state("load")
    status = page.page.locator("#receipt-status")
    assert "Receipt verified" in status.inner_text()
    assert page.page.locator('.receipt[data-verified="true"]').count() == 1
    assert page.page.locator(".receipt ol li").count() >= 1  # the inclusion proof
    assert page.problems == []
    context.close()


def test_login_is_required_where_it_should_be(browser: Any, served: str) -> None:
    context = browser.new_context()
    page = Watched(context.new_page())
    for path in ("/", "/fleet", f"/fleet/nodes/{HELD}", "/reviews", "/keys", "/alerts"):
        page.goto(served + path)
        assert urllib.parse.urlsplit(page.page.url).path == "/login", path
        assert HOSTILE_REASON not in page.page.content()
    page.goto(served + "/log")
    assert urllib.parse.urlsplit(page.page.url).path == "/log"
    _log_in(page.page, served, "/alerts")
    assert urllib.parse.urlsplit(page.page.url).path == "/alerts"
    assert page.page.locator("#quarantined").is_visible()
    page.page.click("header form button")  # log out
    page.page.wait_for_load_state("load")
    page.goto(served + "/fleet")
    assert urllib.parse.urlsplit(page.page.url).path == "/login"
    assert page.problems == []
    context.close()


def test_hostile_input_stays_text(operator: Watched, served: str, world: WebWorld) -> None:
    page = operator.page
    for path, text in (
        (f"/fleet/nodes/{HELD}", HOSTILE_REASON),
        ("/alerts", HOSTILE_REASON),
        ("/log/ops-log", HOSTILE_ISSUER),
        (f"/log/ops-log/entries/{world.hostile_issuer_entry}", HOSTILE_ISSUER),
        (f"/log/trusted-log/entries/{world.hostile_entry}", "<script>window.__pwned=1</script>"),
    ):
        operator.goto(served + path)
        assert text in page.inner_text("main"), path
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert page.locator("main img, main script").count() == 0, path
    assert operator.problems == []


def test_everything_works_with_javascript_off(browser: Any, served: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    _log_in(page, served, "/fleet")
    assert urllib.parse.urlsplit(page.url).path == "/fleet"
    page.select_option("select[name=status]", "quarantined")
    page.click("form.filters button")
    page.wait_for_load_state("load")
    assert page.locator("tr.node").count() == 2
    page.goto(f"{served}/fleet/nodes/{ROGUE_FIRMWARE}")
    assert page.locator('svg.chain g[data-status="fail"]').count() >= 3
    context.close()


def test_a_page_of_another_site_keeps_no_handle_on_the_dashboard_it_opens(
    browser: Any, served: str
) -> None:
    """A hostile page that opens the dashboard (``window.open``) would keep a handle on its
    window: to navigate it to a look-alike login once the operator looked away, or to watch
    it. ``Cross-Origin-Opener-Policy: same-origin`` puts the dashboard in a browsing context
    group of its own: the handle is closed the moment the dashboard loads."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.route(
            "http://hostile.example/",
            lambda route: route.fulfill(status=200, content_type="text/html", body="<p>hi</p>"),
        )
        page.goto("http://hostile.example/")
        with context.expect_page() as opened:
            page.evaluate("url => { window.opened = window.open(url); }", f"{served}/log")
        popup = opened.value
        popup.wait_for_load_state("load")
        assert popup.locator("h1").count() > 0  # the dashboard did load
        assert page.evaluate("() => window.opened.closed") is True
    finally:
        context.close()


def test_hostile_text_the_request_carries_stays_text(operator: Watched, served: str) -> None:
    """What a link can make a page repeat, in a real browser: a fleet search (shown back in
    its field), a page to go to after the login (kept in the form), a path no page has (the
    404 page): attribute breakouts and markup stay text, nothing runs."""
    hostile = '"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    quoted = urllib.parse.quote(hostile, safe="")
    page = operator.page
    operator.goto(f"{served}/fleet?q={quoted}")
    assert page.input_value("input[name=q]") == hostile
    for path in (f"/login?next=/fleet%3Fq%3D{quoted}", f"/log/{quoted}"):
        operator.goto(served + path)
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert page.locator("main img, main script").count() == 0, path
    expected = {  # the 404 page's own status, and the console's line for it
        f"404: {served}/log/{quoted}",
        "console error: Failed to load resource: the server responded with a status of 404 "
        "(Not Found)",
    }
    assert set(operator.problems) <= expected
