"""The fleet table in pages: a fleet of 10,000 nodes was one page of 10,000 rows, each
reading its node's firmware state (some 1 ms a node: 10 s and megabytes a view). Fails if
its defence goes."""

from __future__ import annotations

import re

import httpx
import pytest
from tests.web.web_world import ADMITTED, HELD, PENDING, ROGUE_FIRMWARE

import ironroot.web._dashboard as web_dashboard
from ironroot.web._fleet import FleetSource

pytestmark = pytest.mark.integration

ALL = sorted([*ADMITTED, ROGUE_FIRMWARE, HELD, PENDING])


def _nodes(page: str) -> list[str]:
    return re.findall(r'<tr class="node[^"]*" data-node="([^"]+)"', page)


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two rows a page; the nodes whose firmware a view reads."""
    monkeypatch.setattr(web_dashboard, "FLEET_PAGE_SIZE", 2)
    nodes: list[str] = []
    firmware = FleetSource.firmware

    def counted(source: FleetSource, node: str) -> dict[str, str]:
        nodes.append(node)
        return firmware(source, node)

    monkeypatch.setattr(FleetSource, "firmware", counted)
    return nodes


def test_the_fleet_table_is_shown_a_page_at_a_time(client: httpx.Client, read: list[str]) -> None:
    first = client.get("/fleet")
    assert first.status_code == 200
    assert _nodes(first.text) == ALL[:2]
    assert read == ALL[:2]  # was every node's, for every view
    assert "page 1 of 3" in first.text
    assert 'href="/fleet?page=2">next' in first.text
    second = client.get("/fleet", params={"page": "2"})
    assert _nodes(second.text) == ALL[2:4]
    assert 'href="/fleet?page=1">' in second.text
    assert 'href="/fleet?page=3">next' in second.text
    beyond = client.get("/fleet", params={"page": "99"})
    assert _nodes(beyond.text) == ALL[4:6]
    assert "page 3 of 3" in beyond.text


def test_a_filtered_fleet_table_keeps_its_filters_from_page_to_page(
    client: httpx.Client, read: list[str]
) -> None:
    page = client.get("/fleet", params={"status": "admitted", "q": "node"})
    assert _nodes(page.text) == list(ADMITTED[:2])
    assert "3 nodes match" in page.text
    assert 'href="/fleet?status=admitted&amp;q=node&amp;page=2">next' in page.text
    last = client.get("/fleet", params={"status": "admitted", "q": "node", "page": "2"})
    assert _nodes(last.text) == [ADMITTED[2]]


def test_a_fleet_page_that_is_not_a_number_is_a_400(client: httpx.Client) -> None:
    answer = client.get("/fleet", params={"page": "x"})
    assert answer.status_code == 400
    assert "page is a number" in answer.text


def test_the_alerts_and_the_overview_read_no_node_s_firmware(
    client: httpx.Client, read: list[str]
) -> None:
    # the alerts' quarantine table shows no firmware: every quarantined node's firmware
    # state was read for it, on every view of the alerts and of the overview
    alerts = client.get("/alerts")
    assert alerts.status_code == 200
    listed = re.findall(r'<tr class="row-bad"><td><a href="/fleet/nodes/([^"]+)"', alerts.text)
    assert sorted(listed) == sorted([ROGUE_FIRMWARE, HELD])
    assert client.get("/").status_code == 200
    assert read == []
