"""An HSM whose audit log was rotated: its archived segments travel in the bundle and are
verified as one chain with the live log; a segment removed, or left out without saying so,
fails; the older segments beyond the bundle's budget are stated absent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world, install_node_hsm
from tests.platform.node_world import NOW

from ironroot.audit import AuditBundle, verify_bundle
from ironroot.crypto import PublicKey
from ironroot.errors import AuditChainBroken, IronrootError
from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyType

ARCHIVED = "hsm/audit-archived"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-hsm-segments"))


def _rotated_hsm(aw: AuditWorld) -> PublicKey:
    """The node's HSM (a checkpoint at its 9th record or so), then rotated three times."""
    key = install_node_hsm(aw, NOW)
    node = aw.fleet.directory / "nodes" / NODE
    storage = DirectoryStorage.on_device(node / "hsm", node / "rot")
    config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=10)
    hsm = Hsm.open(
        storage,
        aw.fleet.rot(NODE).sealing_secret("hsm"),
        config=config,
        clock=lambda: NOW.timestamp(),
    )
    try:
        officer = hsm.login("officer", b"officer-credential")
        for _ in range(24):
            hsm.generate(officer, KeyType.AES_256)
    finally:
        hsm.close()
        storage.close()
    assert len(list((node / "hsm").glob("audit-*.jsonl"))) >= 3
    return key


@pytest.fixture(scope="module")
def hsm_key(aw: AuditWorld) -> PublicKey:
    return _rotated_hsm(aw)


def _segments(members: object) -> list[str]:
    return sorted(n for n in members if n.startswith("hsm/audit-"))  # type: ignore[attr-defined]


def test_the_segments_and_the_live_log_are_verified_as_one_chain(
    aw: AuditWorld, hsm_key: PublicKey
) -> None:
    bundle = aw.export()
    members = AuditBundle.parse(bundle).members
    assert "hsm/audit-0-10.jsonl" in members
    step = verify_bundle(bundle, aw.trust(hsm_attestation_keys=(hsm_key,))).step("hsm")
    assert step.status == "ok"
    assert step.lines[0].startswith("audit chain of ")
    assert "intact from record 0 (" in step.lines[0]
    assert "archived segment(s) and the live log" in step.lines[0]
    assert any(line.startswith("reaches hsm/checkpoint-0.cose") for line in step.lines)


def test_a_segment_removed_from_the_bundle_breaks_the_chain(
    aw: AuditWorld, hsm_key: PublicKey
) -> None:
    export = aw.collect()
    data = export.replace(members={"hsm/audit-11-21.jsonl": None}).seal(aw.fleet.rot(NODE))
    with pytest.raises(IronrootError) as info:
        verify_bundle(data, aw.trust(hsm_attestation_keys=(hsm_key,)))
    assert (type(info.value), info.value.check) == (AuditChainBroken, "hsm")
    assert "records 11 to 21 are missing" in info.value.detail


def test_older_segments_left_out_must_be_stated(aw: AuditWorld, hsm_key: PublicKey) -> None:
    export = aw.collect()
    cut = export.replace(members={"hsm/audit-0-10.jsonl": None})
    with pytest.raises(IronrootError) as info:
        verify_bundle(cut.seal(aw.fleet.rot(NODE)), aw.trust(hsm_attestation_keys=(hsm_key,)))
    assert (type(info.value), info.value.check) == (AuditChainBroken, "hsm")
    assert "states why the records before it are absent" in info.value.detail
    stated = cut.replace(absent={ARCHIVED: "left out for the test"}).seal(aw.fleet.rot(NODE))
    step = verify_bundle(stated, aw.trust(hsm_attestation_keys=(hsm_key,))).step("hsm")
    assert step.status == "ok"
    assert "intact from record 11" in step.lines[0]
    assert step.lines[1] == "records 0 to 10 absent: left out for the test"
    assert any("all before record 11: archived and not in the bundle" in x for x in step.lines)


def test_the_export_keeps_the_newest_segments_within_its_budget(
    aw: AuditWorld, hsm_key: PublicKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ironroot.audit._export as export_module

    everything = aw.collect().members
    live = len(everything["hsm/audit.jsonl"][0])
    newest = _segments(everything)[-1]
    monkeypatch.setattr(export_module, "HSM_AUDIT_BUDGET", live + len(everything[newest][0]))
    export = aw.collect()
    assert [n for n in _segments(export.members) if n != "hsm/audit.jsonl"] == [newest]
    assert "archived segments left out of the bundle" in export.absent[ARCHIVED]
    step = verify_bundle(
        export.seal(aw.fleet.rot(NODE)), aw.trust(hsm_attestation_keys=(hsm_key,))
    ).step("hsm")
    assert step.status == "ok"
    assert step.lines[1].startswith("records 0 to ")


def test_a_chain_pruned_by_an_officer_verifies_from_where_it_starts(tmp_path: Path) -> None:
    """The node's oldest segment removed by an officer (recorded), in a world of its own: the
    module's other tests, on whichever worker runs them, keep theirs."""
    worlds = audit_world(tmp_path)
    aw = next(worlds)
    try:
        _pruned_chain_verifies(aw, _rotated_hsm(aw))
    finally:
        worlds.close()


def _pruned_chain_verifies(aw: AuditWorld, hsm_key: PublicKey) -> None:
    node = aw.fleet.directory / "nodes" / NODE
    storage = DirectoryStorage.on_device(node / "hsm", node / "rot")
    config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=10)
    hsm = Hsm.open(
        storage,
        aw.fleet.rot(NODE).sealing_secret("hsm"),
        config=config,
        clock=lambda: NOW.timestamp(),
    )
    try:
        assert hsm.prune_audit(hsm.login("officer", b"officer-credential"), 11) == (
            "audit-0-10.jsonl",
        )
    finally:
        hsm.close()
        storage.close()
    export = aw.collect()
    assert ARCHIVED not in export.absent
    step = verify_bundle(
        export.seal(aw.fleet.rot(NODE)), aw.trust(hsm_attestation_keys=(hsm_key,))
    ).step("hsm")
    assert step.status == "ok"
    assert "intact from record 11" in step.lines[0]
    assert step.lines[1] == "records 0 to 10 pruned by an officer (audit-prune record)"
