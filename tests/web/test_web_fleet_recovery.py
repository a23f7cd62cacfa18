"""The dashboard's firmware link re-verifies each active image as the update path would, with
the component's recovery image: a node whose PFM in force no longer allows a recovery image
(an update the operator let drop it) is shown broken, naming the component."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import NoteVerifier
from ironroot.platform import COMPONENTS, PlatformWitnesses
from ironroot.web._fleet import FleetSource
from ironroot.witness import Cosigner, WitnessPolicy

_DROPPED = (
    "the active PFM no longer allows the host recovery image: host could not be recovered "
    "(allow_recovery_removal must name it to accept that)"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("web-recovery-world")) as w:
        yield w


def test_a_pfm_that_no_longer_allows_a_recovery_image_breaks_the_firmware_link(
    world: World, tmp_path: Path
) -> None:
    # Old behaviour: each active image was verified without its recovery image against the
    # PFM in force, so the link was green although boot could no longer restore the host.
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    listed["host"] = [world.release("host", "2.0")]
    pfm = world.make_pfm(2, listed)
    host = world.release("host", "2.0")
    result = fleet.node("node-0001").update(
        "host",
        host.bundle,
        host.statements,
        now=NOW,
        pfm=pfm,
        pfm_statement=world.log_pfm(pfm),
        allow_recovery_removal=["host"],
    )
    assert result.outcome == "committed"
    source = FleetSource(fleet.directory)
    links = {link.key: link for link in source.chain("node-0001", now=NOW).links}
    firmware = links["firmware"]
    assert (firmware.status, firmware.check) == ("fail", "host: pfm")
    assert firmware.summary == f"host: {_DROPPED}"
    assert f"host 2.0: pfm: {_DROPPED}" in firmware.details
    assert links["pfm"].status == "ok"
    # the other node, whose PFM still allows every recovery image, stays green
    other = {link.key: link for link in source.chain("node-0002", now=NOW).links}
    assert other["firmware"].status == "ok"


def test_the_firmware_link_of_a_class_that_requires_witnesses_reads_the_kept_evidence(
    world: World, tmp_path: Path
) -> None:
    # A node keeps an update's Transparent Statements as its evidence (the witnessing was
    # checked when the update was decided, and is not in them): re-verifying them under the
    # class's trust with its witnesses showed every image "not-witnessed".
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    log = NoteVerifier("ts.example/log", PrivateKey.generate(Algorithm.ED25519).public_key)
    witness = Cosigner("witness.example/w1", PrivateKey.generate(Algorithm.ED25519))
    witnesses = PlatformWitnesses((log,), WitnessPolicy((witness.verifier(),), 1))
    for path in (fleet.directory / "class").glob("*/class.json"):
        doc = json.loads(path.read_text())
        doc["trust"]["witnesses"] = witnesses.to_json()
        path.write_text(json.dumps(doc))
    source = FleetSource(fleet.directory)
    record = source.fleet.record_of("node-0001")
    assert source.fleet.node_class(record.node_class).trust.witnesses == witnesses
    links = {link.key: link for link in source.chain("node-0001", now=NOW).links}
    assert links["firmware"].status == "ok", links["firmware"].summary


def test_a_pfm_whose_receipt_is_from_the_dashboards_future_breaks_the_pfm_link(
    world: World, tmp_path: Path
) -> None:
    # the PFM was logged at NOW: a dashboard whose clock reads a day earlier is shown a
    # receipt from its future, and the PFM link says so rather than "on the log"
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    source = FleetSource(fleet.directory)
    assert {link.key: link for link in source.chain("node-0001", now=NOW).links}["pfm"].ok
    earlier = NOW - dt.timedelta(days=1)
    pfm = {link.key: link for link in source.chain("node-0001", now=earlier).links}["pfm"]
    assert (pfm.status, pfm.check) == ("fail", "receipt-from-the-future")
    assert pfm.summary.startswith("the receipt is issued at ")
