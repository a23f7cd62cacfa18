"""The dashboard's PFM link holds the PFM the platform journal names to the one the RoT
measured at its last boot (PCR 2 ``pfm-digest``), the comparison the audit's ``pfm`` step and
reconcile's ``measured:pfm`` make (:func:`ironroot.rot.check_booted_pfm`).

Before, the link verified the journal's PFM only: a journal naming a vendor-signed, logged
PFM the node did not boot (power lost after a PFM update's activation record) showed green,
"signed by the vendor, on the log", and the firmware was checked against it."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world
from tests.web.conftest import log_in
from tests.web.web_world import CHEAP_SCRYPT, OPERATOR, PASSWORD

from ironroot.fleet import Fleet
from ironroot.http import ServerThread
from ironroot.platform import COMPONENTS, AccountStore, Faults, PowerLost
from ironroot.web import Dashboard, create_dashboard_app

_SEEN = NOW + dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("web-pfm-measured-world")) as w:
        yield w


def _links(fleet: Fleet, tmp_path: Path, node: str) -> dict[str, tuple[str, str]]:
    """The node page's links over HTTP: each one's status and text (tags stripped)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "dashboard.toml").write_text(f'[sources]\nfleet = "{fleet.directory}"\n')
    dashboard = Dashboard.open(data, clock=lambda: _SEEN)
    dashboard.config.state_dir.mkdir(mode=0o700, exist_ok=True)
    accounts = AccountStore(dashboard.config.state_dir / "operators.json", kdf=CHEAP_SCRYPT)
    accounts.add(OPERATOR, PASSWORD, "ReadOnly")
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert log_in(client).status_code == 303
        answer = client.get(f"/fleet/nodes/{node}")
    assert answer.status_code == 200
    found = re.findall(
        r'<section class="[^"]*" id="link-([a-z]+)" data-status="([a-z]+)">(.*?)</section>',
        answer.text,
        re.S,
    )
    return {
        key: (status, " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()))
        for key, status, text in found
    }


def test_the_pfm_the_rot_measured_is_shown_as_measured(world: World, tmp_path: Path) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    links = _links(fleet, tmp_path, "node-0001")
    status, text = links["pfm"]
    assert status == "ok", text
    booted = hashlib.sha384(world.pfm).hexdigest()
    assert f"measured at boot (PCR 2): {booted[:32]}… is the journal's PFM" in text


def test_a_journal_pfm_the_rot_did_not_boot_is_a_failure_not_a_verified_pfm(
    world: World, tmp_path: Path
) -> None:
    """Power lost after a PFM update's activation record: the journal names the newer PFM
    (vendor-signed, logged), the RoT still enforces and measured the old one."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    both = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    newer = world.make_pfm(2, both)
    host = world.release("host", "2.0")
    with pytest.raises(PowerLost):
        fleet.node("node-0001").update(
            "host",
            host.bundle,
            host.statements,
            now=NOW,
            pfm=newer,
            pfm_statement=world.log_pfm(newer),
            faults=Faults("reboot"),
        )
    assert fleet.node("node-0001").state().pfm.image.sha384 == hashlib.sha384(newer).digest()  # type: ignore[union-attr]
    links = _links(fleet, tmp_path, "node-0001")
    status, text = links["pfm"]
    assert status == "fail", text
    assert "failed: pfm-not-booted" in text
    journal = hashlib.sha384(newer).hexdigest()[:16]
    booted = hashlib.sha384(world.pfm).hexdigest()[:16]
    assert (
        f"the journal's PFM ({journal}…) is not the PFM the RoT measured at boot ({booted}…)"
    ) in text
    assert "signed by the vendor, on the log" not in text
    # and the firmware is not shown as allowed by a PFM the node does not enforce
    assert links["firmware"] == (
        "unknown",
        "Firmware not checked not checked: the fuses or PFM failed",
    )


def test_a_node_booted_before_pfms_were_measured_is_told_to_boot_again(
    world: World, tmp_path: Path
) -> None:
    """The RoT's boot as an earlier Ironroot left it: the BMC and the DPE children measured,
    no ``pfm-digest``. Neither green (the journal's word) nor a verified PFM."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    platform = fleet.node("node-0001")
    rot = fleet.rot("node-0001")
    rot.boot(platform.active_image("bmc"), now=NOW, advance_svn=False)
    for component in COMPONENTS[1:]:
        rot.derive_child(hashlib.sha384(platform.active_image(component)).digest(), label=component)
    links = _links(fleet, tmp_path, "node-0001")
    status, text = links["pfm"]
    assert status == "unknown", text
    assert text.startswith("PFM not checked not measured: boot again")
    assert (
        "the RoT's last boot measured no PFM (it predates PFM measurement): boot the node "
        "again (ironroot platform boot) so that its RoT measures the PFM it enforces"
    ) in text
    assert "signed by the vendor, on the log" not in text
    assert links["firmware"][0] == "ok"  # checked against the journal's PFM, as before
