"""The PFM an audit bundle presents is the one the node booted: the RoT measures the active
PFM at boot (PCR 2 ``pfm-digest``), and `audit verify` holds the exported PFM to it.

Before, the PFM was tied only to `platform/state.json`, the unsigned journal that whoever
seals writes: a bundle presenting another vendor-signed, logged PFM of the platform (SVN at
or above the journal's floor) — not the one the node enforced — passed every step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from ironroot.audit import AuditExport, check_bundle, collect_export
from ironroot.audit._proofs import fetch_log
from ironroot.errors import VerificationFailed
from ironroot.log import HttpLogFetcher
from ironroot.platform import COMPONENTS
from ironroot.rot import measured_pfm


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-pfm"))


def _with_pfm(aw: AuditWorld, export: AuditExport, pfm: bytes, statement: bytes) -> AuditExport:
    """``export`` rebuilt around another PFM: the member, its logged statement, the journal
    naming it, and the transparency proofs computed again for the statements it now holds."""
    state = json.loads(export.members["platform/state.json"][0])
    state["pfm"]["active"]["sha384"] = hashlib.sha384(pfm).hexdigest()
    members: dict[str, tuple[bytes, str] | None] = {
        "pfm/pfm.cose": (pfm, export.members["pfm/pfm.cose"][1]),
        "pfm/statement.cose": (statement, export.members["pfm/statement.cose"][1]),
        "platform/state.json": (json.dumps(state).encode(), "application/json"),
    }
    statements = {
        name: members[name][0] if name in members and members[name] is not None else data  # type: ignore[index]
        for name, (data, _t) in export.members.items()
        if name.endswith(".cose") and "/statement" in name
    }
    with HttpLogFetcher(aw.world.urls["trusted"]) as fetcher:
        fetched = fetch_log(fetcher, statements)
    checkpoint = export.members["transparency/0/checkpoint"][1]
    proofs = export.members["transparency/0/proofs.cbor"][1]
    members["transparency/0/checkpoint"] = (fetched.checkpoint, checkpoint)
    members["transparency/0/proofs.cbor"] = (fetched.proofs.encode(), proofs)
    return export.replace(members=members)


def test_an_honest_bundle_names_the_measured_pfm(aw: AuditWorld) -> None:
    report = check_bundle(aw.export(), aw.trust())
    step = report.step("pfm")
    assert step.status == "ok", step.error
    booted = hashlib.sha384(aw.world.pfm).hexdigest()
    assert any(f"measured at boot (PCR 2): {booted[:32]}" in line for line in step.lines)
    quote_log = aw.fleet.rot(NODE).boot_state
    assert quote_log is not None
    assert measured_pfm(quote_log.log) == hashlib.sha384(aw.world.pfm).digest()


def test_another_logged_pfm_than_the_booted_one_is_refused(aw: AuditWorld) -> None:
    """P2: vendor-signed, logged by the trusted service, for this platform, SVN 2 above the
    floor (1), allowing the node's images — but the node booted P1."""
    world = aw.world
    other = world.make_pfm(2, {c: [world.release(c, "1.0")] for c in COMPONENTS})
    statement = world.log_pfm(other)
    with HttpLogFetcher(world.urls["trusted"]) as fetcher:
        export = collect_export(aw.fleet, NODE, logs=[fetcher], now=EXPORTED)
    data = _with_pfm(aw, export, other, statement).seal(aw.fleet.rot(NODE))
    report = check_bundle(data, aw.trust())
    step = report.step("pfm")
    assert step.status == "failed"
    assert isinstance(step.error, VerificationFailed)
    assert (step.error.code, step.error.check) == ("pfm-not-booted", "pfm")
    assert step.error.detail == (
        f"the exported PFM ({hashlib.sha384(other).hexdigest()[:16]}…) is not the PFM the RoT "
        f"measured at boot ({hashlib.sha384(world.pfm).hexdigest()[:16]}…)"
    )
    assert report.step("firmware:bmc").status == "not-run"


def test_a_node_booted_before_the_pfm_was_measured_is_told_to_boot_again(
    aw: AuditWorld,
) -> None:
    """A RoT whose last boot measured no PFM (a node booted by an earlier Ironroot): the RoT's
    boot and DPE measurements as they were, no ``pfm-digest`` event. Refused, not trusted."""
    node = aw.fleet.node(NODE)
    rot = aw.fleet.rot(NODE)
    rot.boot(node.active_image("bmc"), now=EXPORTED, advance_svn=False)
    for component in COMPONENTS[1:]:
        rot.derive_child(hashlib.sha384(node.active_image(component)).digest(), label=component)
    boot_state = rot.boot_state
    assert boot_state is not None
    assert measured_pfm(boot_state.log) is None
    report = check_bundle(aw.export(), aw.trust())
    step = report.step("pfm")
    assert step.status == "failed"
    assert isinstance(step.error, VerificationFailed)
    assert (step.error.code, step.error.check) == ("pfm-not-measured", "pfm")
    assert step.error.detail == (
        "the RoT's last boot measured no PFM (it predates PFM measurement): boot the node "
        "again (ironroot platform boot) so that its RoT measures the PFM it enforces, "
        "then export again"
    )
