"""Approver revocation and addition (``ironroot.fleet._governance``): a governed change on the
log, approved by the quorum in force; a revoked approver's signature stops counting, for
changes signed before the revocation too — each refusal its exact error."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import ALICE, BOB, CAROL, MALLORY, Ops, make_ops
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from ironroot.cose import decode_cbor, encode_cbor
from ironroot.errors import (
    ConfigError,
    Conflict,
    MalformedInput,
    MalformedStatement,
    PolicyRejected,
    StorageError,
    UnknownIssuer,
)
from ironroot.fleet import (
    DesiredState,
    DesiredStore,
    Fleet,
    Governance,
    GovernanceChange,
    RevokedSigner,
    check_approvals,
    check_governance_change,
    sign_governance_change,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("governance-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("governance-ops")) as o:
        yield o


@pytest.fixture
def fleet(world: World, tmp_path: Path) -> Fleet:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    return fleet


def desired(world: World, fleet: Fleet, version: int, **versions: str) -> DesiredState:
    bundles = {c: world.release(c, v).bundle for c, v in versions.items()}
    return DesiredState.build(
        fleet.node_class("node-7"), version, bundles=bundles, fleet=fleet.identity()
    )


def store(fleet: Fleet, ops: Ops, signers: tuple[str, ...] = (ALICE, BOB, CAROL)) -> DesiredStore:
    s = DesiredStore(fleet)
    s.init(ops.governance(2, signers))
    return s


def change(
    fleet: Fleet, ops: Ops, action: str, iss: str, *, epoch: int = 1, key: str | None = None
) -> GovernanceChange:
    return GovernanceChange(
        fleet.identity(), "node-7", epoch, action, iss, ops.keys[key or iss].public_key
    )


def approve(ops: Ops, what: GovernanceChange, *who: str) -> list[bytes]:
    return [sign_governance_change(what, ops.keys[iss], iss=iss, iat=NOW) for iss in who]


def revoke(s: DesiredStore, fleet: Fleet, ops: Ops, iss: str, *who: str, epoch: int = 1) -> None:
    s.change_governance(
        "node-7", approve(ops, change(fleet, ops, "revoke", iss, epoch=epoch), *who),
        now=NOW, registrar=ops.log,
    )  # fmt: skip


def test_a_revocation_approved_by_the_quorum_is_logged_and_the_key_stops_counting(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.sign(desired(world, fleet, 1), ALICE, BOB), now=NOW, registrar=ops.log)
    verified = s.change_governance(
        "node-7",
        approve(ops, change(fleet, ops, "revoke", ALICE), ALICE, BOB),  # she may sign it too
        now=NOW,
        registrar=ops.log,
    )
    assert verified.signers == (ALICE, BOB)
    governance = s.governance("node-7")
    assert governance.epoch == 2
    assert [x.iss for x in governance.signers] == [BOB, CAROL]
    assert governance.revoked == (RevokedSigner(ALICE, ops.keys[ALICE].public_key.kid, 2),)
    assert [g.epoch for g in s.governance_history("node-7")] == [1, 2]
    event = fleet.events(kind="desired-governance")[-1]
    assert event.detail["epoch"] == 2
    assert event.detail["approvers"] == [BOB, CAROL]
    assert event.detail["signers"] == [ALICE, BOB]
    assert event.detail["revoked"][0]["iss"] == ALICE
    # the state put in force before the revocation stays in force (it was applied)
    assert s.current("node-7", now=NOW).signers == (ALICE, BOB)
    # a change counted with the revoked key's signature is refused, with the exact error
    with pytest.raises(UnknownIssuer) as info:
        s.publish(
            "node-7", ops.sign(desired(world, fleet, 2), ALICE, BOB), now=NOW, registrar=ops.log
        )
    assert info.type is UnknownIssuer
    assert info.value.code == "signer-revoked"
    kid = ops.keys[ALICE].public_key.kid.hex()[:16]
    assert info.value.detail == (
        f"the key {kid} of {ALICE} was revoked from class node-7's approvers at governance "
        "epoch 2: an approval it signed no longer counts (a change it approved that was not put "
        "in force before then needs a quorum of today's approvers)"
    )
    assert s.version("node-7") == 1
    # the remaining quorum changes it
    nxt = desired(world, fleet, 2)
    assert s.publish("node-7", ops.sign(nxt, BOB, CAROL), now=NOW, registrar=ops.log).state == nxt
    stored = decode_cbor((fleet.directory / "desired" / "node-7" / "v2.cbor").read_bytes())
    assert stored["governance"] == 2
    assert fleet.events(kind="desired-state")[-1].detail["governance"] == 2
    assert s.current("node-7", now=NOW).signers == (BOB, CAROL)


def test_a_change_signed_before_the_revocation_and_published_after_is_refused(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    """Decided: a revoked key's approval no longer meets the quorum unless the change was
    already applied — even an approval registered on the log before the revocation."""
    s = store(fleet, ops)
    early = ops.approve(desired(world, fleet, 1), ALICE, BOB)  # signed and logged, not published
    revoke(s, fleet, ops, ALICE, BOB, CAROL)
    with pytest.raises(UnknownIssuer) as info:
        s.publish("node-7", early, now=NOW)
    assert info.value.code == "signer-revoked"
    assert s.version("node-7") == 0
    # and with the governance value alone (check_approvals) too
    with pytest.raises(UnknownIssuer) as info:
        check_approvals(early, s.governance("node-7"), fleet=fleet.identity(), now=NOW)
    assert info.value.code == "signer-revoked"


def test_a_revocation_signed_by_fewer_than_the_quorum_is_refused(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    with pytest.raises(PolicyRejected) as info:
        revoke(s, fleet, ops, ALICE, BOB)
    assert info.type is PolicyRejected
    assert info.value.code == "too-few-signers"
    assert info.value.detail == (
        f"class node-7 needs 2 distinct authorized signers, this change has 1 ({BOB})"
    )
    # nor by someone who is no approver, nor by one person twice
    with pytest.raises(UnknownIssuer) as unknown:
        revoke(s, fleet, ops, ALICE, BOB, MALLORY)
    assert unknown.value.code == "signer-not-authorized"
    with pytest.raises(PolicyRejected) as twice:
        revoke(s, fleet, ops, ALICE, BOB, BOB)
    assert twice.value.code == "duplicate-signer"
    assert s.governance("node-7").epoch == 1
    assert fleet.events(kind="desired-governance") == []
    assert not (fleet.directory / "desired" / "node-7" / "governance").exists()


def test_the_last_approvers_cannot_be_removed_below_the_quorum(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    revoke(s, fleet, ops, ALICE, BOB, CAROL)  # three to two: the quorum is still reachable
    with pytest.raises(PolicyRejected) as info:
        revoke(s, fleet, ops, BOB, BOB, CAROL, epoch=2)
    assert info.type is PolicyRejected
    assert info.value.code == "below-quorum"
    assert info.value.detail == (
        f"revoking {BOB} would leave class node-7 1 approver(s), fewer than the 2 every change "
        "needs: no change could be approved again; add an approver first"
    )
    assert [x.iss for x in s.governance("node-7").signers] == [BOB, CAROL]
    # adding one first makes room for the revocation
    s.change_governance(
        "node-7", approve(ops, change(fleet, ops, "add", MALLORY, epoch=2), BOB, CAROL),
        now=NOW, registrar=ops.log,
    )  # fmt: skip
    revoke(s, fleet, ops, BOB, CAROL, MALLORY, epoch=3)
    assert [x.iss for x in s.governance("node-7").signers] == [CAROL, MALLORY]


def test_a_revoked_key_is_never_an_approver_again(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    revoke(s, fleet, ops, ALICE, BOB, CAROL)
    for iss in (ALICE, MALLORY):  # her key, under her name or another
        with pytest.raises(UnknownIssuer) as info:
            s.change_governance(
                "node-7",
                approve(ops, change(fleet, ops, "add", iss, epoch=2, key=ALICE), BOB, CAROL),
                now=NOW,
                registrar=ops.log,
            )
        assert info.value.code == "signer-revoked"
    with pytest.raises(PolicyRejected) as exists:
        s.change_governance(
            "node-7", approve(ops, change(fleet, ops, "add", BOB, epoch=2), BOB, CAROL), now=NOW
        )
    assert exists.value.code == "approver-exists"
    with pytest.raises(PolicyRejected) as gone:
        revoke(s, fleet, ops, ALICE, BOB, CAROL, epoch=2)
    assert gone.value.code == "not-an-approver"
    with pytest.raises(ConfigError):  # nor in a governance value
        Governance(
            "node-7",
            ops.governance(2, (ALICE, BOB)).signers,
            2,
            ops.log.service_keys(),
            epoch=2,
            revoked=(RevokedSigner(ALICE, ops.keys[ALICE].public_key.kid, 2),),
        )


def test_a_change_approved_for_another_epoch_is_not_replayed(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    add = approve(ops, change(fleet, ops, "add", MALLORY), BOB, CAROL)  # for epoch 1
    revoke(s, fleet, ops, ALICE, BOB, CAROL)
    with pytest.raises(PolicyRejected) as info:
        s.change_governance("node-7", add, now=NOW, registrar=ops.log)
    assert info.value.code == "governance-epoch"
    assert info.value.detail == (
        "the change was approved for governance epoch 1 of class node-7, epoch 2 is in force: "
        "approve it again"
    )
    with pytest.raises(PolicyRejected) as ahead:  # nor one approved ahead of time
        s.change_governance(
            "node-7", approve(ops, change(fleet, ops, "add", MALLORY, epoch=3), BOB, CAROL),
            now=NOW,
        )  # fmt: skip
    assert ahead.value.code == "governance-epoch"


def test_a_change_must_be_a_governance_statement_for_this_class_and_fleet(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    governance = s.governance("node-7")
    with pytest.raises(MalformedStatement) as kind:  # a desired-state approval is not one
        check_governance_change(
            ops.sign(desired(world, fleet, 1), ALICE, BOB), governance, fleet=fleet.identity()
        )
    assert kind.value.code == "not-governance-change"
    other = GovernanceChange("urn:uuid:other", "node-7", 1, "revoke", ALICE,
                             ops.keys[ALICE].public_key)  # fmt: skip
    with pytest.raises(PolicyRejected) as wrong:
        check_governance_change(approve(ops, other, ALICE, BOB), governance, fleet=fleet.identity())
    assert wrong.value.code == "wrong-fleet"
    with pytest.raises(MalformedInput) as bad:
        GovernanceChange.decode(change(fleet, ops, "revoke", ALICE).encode() + b"\x00")
    assert bad.value.code == "malformed-governance-change"
    doc = change(fleet, ops, "revoke", ALICE).to_cbor()
    with pytest.raises(MalformedInput) as action:
        GovernanceChange.decode(encode_cbor({**doc, "action": "promote"}))
    assert action.value.code == "malformed-governance-change"


def test_removed_governance_changes_do_not_bring_a_revoked_approver_back(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.sign(desired(world, fleet, 1), ALICE, BOB), now=NOW, registrar=ops.log)
    revoke(s, fleet, ops, ALICE, BOB, CAROL)
    (fleet.directory / "desired" / "node-7" / "governance" / "e2.cbor").unlink()
    for read in (lambda: s.governance("node-7"), lambda: s.current("node-7", now=NOW)):
        with pytest.raises(StorageError) as info:
            read()
        assert info.value.code == "governance-rolled-back"
    with pytest.raises(StorageError) as publish:
        s.publish(
            "node-7", ops.sign(desired(world, fleet, 2), ALICE, BOB), now=NOW, registrar=ops.log
        )
    assert publish.value.code == "governance-rolled-back"


def test_a_tampered_governance_change_is_a_storage_error(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    revoke(s, fleet, ops, ALICE, BOB, CAROL)
    path = fleet.directory / "desired" / "node-7" / "governance" / "e2.cbor"
    stored = decode_cbor(path.read_bytes())
    # one approval dropped: the stored change no longer meets the quorum of epoch 1
    path.write_bytes(encode_cbor({"statements": stored["statements"][:1]}))
    with pytest.raises(StorageError) as info:
        s.governance("node-7")
    assert info.value.detail.startswith(
        "class node-7's stored governance change e2.cbor does not verify against epoch 1: "
        "too-few-signers"
    )


def test_a_first_governance_is_epoch_1(ops: Ops, fleet: Fleet) -> None:
    governance = ops.governance(2, (ALICE, BOB, CAROL))
    later = Governance("node-7", governance.signers, 2, governance.service_keys, epoch=3)
    with pytest.raises(ConfigError):
        DesiredStore(fleet).init(later)
    # the JSON form carries epoch and revoked only once they are set, and reads back
    assert "epoch" not in governance.to_json()
    revoked = Governance(
        "node-7", governance.signers[1:], 2, governance.service_keys, epoch=2,
        revoked=(RevokedSigner(ALICE, ops.keys[ALICE].public_key.kid, 2),),
    )  # fmt: skip
    assert Governance.from_json(revoked.to_json()) == revoked


# --- the quorum itself: a governed change, approved by the quorum in force ------------------


def quorum(fleet: Fleet, required: int | None, *, epoch: int = 1) -> GovernanceChange:
    return GovernanceChange(fleet.identity(), "node-7", epoch, "set", required=required)


def apply(s: DesiredStore, ops: Ops, what: GovernanceChange, *who: str) -> None:
    s.change_governance("node-7", approve(ops, what, *who), now=NOW, registrar=ops.log)


def test_lowering_the_quorum_needs_the_quorum_in_force(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    """2 -> 1 needs 2 approvals: one operator cannot lower the quorum and then approve alone."""
    s = store(fleet, ops)
    with pytest.raises(PolicyRejected) as info:
        apply(s, ops, quorum(fleet, 1), ALICE)
    assert info.type is PolicyRejected
    assert info.value.code == "too-few-signers"
    assert info.value.detail == (
        f"class node-7 needs 2 distinct authorized signers, this change has 1 ({ALICE})"
    )
    assert s.governance("node-7").required == 2
    assert fleet.events(kind="desired-governance") == []
    apply(s, ops, quorum(fleet, 1), ALICE, BOB)
    assert [(g.epoch, g.required) for g in s.governance_history("node-7")] == [(1, 2), (2, 1)]
    event = fleet.events(kind="desired-governance")[-1].detail
    assert (event["epoch"], event["required"], event["signers"]) == (2, 1, [ALICE, BOB])
    # now one approval puts a state in force
    s.publish("node-7", ops.sign(desired(world, fleet, 1), CAROL), now=NOW, registrar=ops.log)
    assert s.current("node-7", now=NOW).signers == (CAROL,)
    # the stored change is replayed against the quorum of epoch 1: one approval dropped from
    # it does not verify (nobody lowers the quorum by editing the store)
    path = fleet.directory / "desired" / "node-7" / "governance" / "e2.cbor"
    stored = decode_cbor(path.read_bytes())
    path.write_bytes(encode_cbor({"statements": stored["statements"][:1]}))
    with pytest.raises(StorageError) as replay:
        s.governance("node-7")
    assert replay.value.detail.startswith(
        "class node-7's stored governance change e2.cbor does not verify against epoch 1: "
        "too-few-signers"
    )


def test_raising_the_quorum_leaves_the_state_in_force(world: World, ops: Ops, fleet: Fleet) -> None:
    """Decided, as for a revocation: a state put in force before stays in force; every later
    change needs the new quorum."""
    s = store(fleet, ops)
    s.publish("node-7", ops.sign(desired(world, fleet, 1), ALICE, BOB), now=NOW, registrar=ops.log)
    apply(s, ops, quorum(fleet, 3), ALICE, BOB)
    assert (s.governance("node-7").epoch, s.governance("node-7").required) == (2, 3)
    assert s.current("node-7", now=NOW).signers == (ALICE, BOB)
    with pytest.raises(PolicyRejected) as info:
        s.publish(
            "node-7", ops.sign(desired(world, fleet, 2), ALICE, BOB), now=NOW, registrar=ops.log
        )
    assert info.value.code == "too-few-signers"
    assert info.value.detail == (
        f"class node-7 needs 3 distinct authorized signers, this change has 2 ({ALICE}, {BOB})"
    )
    nxt = desired(world, fleet, 2)
    s.publish("node-7", ops.sign(nxt, ALICE, BOB, CAROL), now=NOW, registrar=ops.log)
    assert s.current("node-7", now=NOW).state == nxt
    # and lowering it again takes the three
    with pytest.raises(PolicyRejected) as lower:
        apply(s, ops, quorum(fleet, 2, epoch=2), ALICE, BOB)
    assert lower.value.code == "too-few-signers"


def test_a_quorum_of_0_or_above_the_approvers_is_refused(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    for required, detail in (
        (0, "a quorum of 0 for class node-7: it is 1 to the number of approvers (3)"),
        (4, "a quorum of 4 for class node-7: it is 1 to the number of approvers (3)"),
    ):
        with pytest.raises(PolicyRejected) as info:
            apply(s, ops, quorum(fleet, required), ALICE, BOB)
        assert info.type is PolicyRejected
        assert info.value.code == "invalid-quorum"
        assert info.value.detail == detail
    # counted after the change: a revocation leaving two cannot set three
    both = GovernanceChange(
        fleet.identity(), "node-7", 1, "revoke", ALICE, ops.keys[ALICE].public_key, required=3
    )
    with pytest.raises(PolicyRejected) as after:
        apply(s, ops, both, ALICE, BOB)
    assert after.value.code == "invalid-quorum"
    assert after.value.detail == (
        "a quorum of 3 for class node-7: it is 1 to the number of approvers (2)"
    )
    assert s.governance("node-7").epoch == 1
    assert not (fleet.directory / "desired" / "node-7" / "governance").exists()
    # while an addition and a higher quorum together are one change
    grow = GovernanceChange(
        fleet.identity(), "node-7", 1, "add", MALLORY, ops.keys[MALLORY].public_key, required=4
    )
    apply(s, ops, grow, ALICE, BOB)
    governance = s.governance("node-7")
    assert (governance.epoch, governance.required, len(governance.signers)) == (2, 4, 4)


def test_a_governance_change_that_does_nothing_is_refused(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    for what in (quorum(fleet, 2), quorum(fleet, None)):
        with pytest.raises(PolicyRejected) as info:
            apply(s, ops, what, ALICE, BOB)
        assert info.type is PolicyRejected
        assert info.value.code == "governance-unchanged"
        assert info.value.detail == (
            "the change leaves class node-7's governance as it is (2 of 3 approvers, the same "
            "trusted services): nothing to approve"
        )
    assert fleet.events(kind="desired-governance") == []


def test_a_quorum_change_decodes_strictly(ops: Ops, fleet: Fleet) -> None:
    what = quorum(fleet, 1)
    assert GovernanceChange.decode(what.encode()) == what
    assert what.to_cbor()["required"] == 1
    assert "iss" not in what.to_cbor()
    doc = what.to_cbor()
    key = ops.keys[ALICE].public_key.to_der()
    for bad in (
        {**doc, "iss": ALICE, "key": key},  # a "set" names no approver
        {**doc, "action": "revoke"},  # a revocation names one
        {**doc, "required": -1},
        {**doc, "required": True},
    ):
        with pytest.raises(MalformedInput) as info:
            GovernanceChange.decode(encode_cbor(bad))
        assert info.value.code == "malformed-governance-change"
    with pytest.raises(MalformedInput) as made:
        GovernanceChange(fleet.identity(), "node-7", 1, "add", required=2)
    assert made.value.code == "malformed-governance-change"


def test_the_trusted_services_are_replaced_by_a_governed_change(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    """Approved (and logged) under the services in force; from the next epoch only the new
    services' receipts count. The state in force stays in force, as for a revocation."""
    s = store(fleet, ops)
    s.publish("node-7", ops.sign(desired(world, fleet, 1), ALICE, BOB), now=NOW, registrar=ops.log)
    new = tuple(ops.rogue.service_keys().values())
    move = GovernanceChange(
        fleet.identity(), "node-7", 1, "set", service_keys=new, service_issuer=None
    )
    with pytest.raises(UnknownIssuer) as early:  # logged on the new service: not yet trusted
        s.change_governance("node-7", approve(ops, move, ALICE, BOB), now=NOW, registrar=ops.rogue)
    assert early.value.code == "untrusted-service"
    same = GovernanceChange(
        fleet.identity(), "node-7", 1, "set",
        service_keys=tuple(ops.log.service_keys().values()),
    )  # fmt: skip
    with pytest.raises(PolicyRejected) as unchanged:
        apply(s, ops, same, ALICE, BOB)
    assert unchanged.value.code == "governance-unchanged"
    apply(s, ops, move, ALICE, BOB)
    governance = s.governance("node-7")
    assert set(governance.service_keys) == {k.kid for k in new}
    assert governance.required == 2
    event = fleet.events(kind="desired-governance")[-1].detail
    assert event["service_kids"] == [k.kid.hex() for k in new]
    assert s.current("node-7", now=NOW).signers == (ALICE, BOB)
    with pytest.raises(UnknownIssuer) as old:
        s.publish(
            "node-7", ops.sign(desired(world, fleet, 2), ALICE, BOB), now=NOW, registrar=ops.log
        )
    assert old.value.code == "untrusted-service"
    nxt = desired(world, fleet, 2)
    s.publish("node-7", ops.sign(nxt, ALICE, BOB), now=NOW, registrar=ops.rogue)
    assert s.current("node-7", now=NOW).state == nxt
    assert GovernanceChange.decode(move.encode()) == move
    with pytest.raises(MalformedInput) as pinned:  # an issuer pins the keys given with it
        GovernanceChange(fleet.identity(), "node-7", 2, "set", service_issuer="https://ts.example")
    assert pinned.value.code == "malformed-governance-change"


# --- the first governance, pinned in the fleet's log ------------------------------------------


def _canonical_sha384(doc: dict[str, object]) -> str:
    """The digest the fleet's log pins: SHA-384 of the governance's JSON, keys sorted, no
    whitespace (docs/fleet.md)."""
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha384(data).hexdigest()


def _altered(fleet: Fleet, path: Path, doc: dict[str, object]) -> str:
    pinned = fleet.events(kind="desired-governance-pinned")[0].detail["sha384"]
    return (
        f"class node-7's first governance ({path}) is not the one the fleet's log pinned at "
        f"`ironroot fleet desired init` (SHA-384 {str(pinned)[:16]}, the file's "
        f"{_canonical_sha384(doc)[:16]}): it was changed outside a governed change (put the "
        "original back; later changes are approved on the log: `ironroot fleet desired "
        "approver-apply`)"
    )


def test_init_pins_the_first_governance_in_the_fleets_log(ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    (event,) = fleet.events(kind="desired-governance-pinned")
    doc = json.loads((s.directory / "node-7" / "governance.json").read_bytes())
    assert event.detail == {
        "class": "node-7",
        "sha384": _canonical_sha384(doc),
        "approvers": [ALICE, BOB, CAROL],
        "required": 2,
        "service_kids": [kid.hex() for kid in ops.log.service_keys()],
        "service_issuer": None,
    }
    assert fleet.events(kind="desired-governance") == []  # no change: still epoch 1
    assert s.governance("node-7").required == 2


@pytest.mark.parametrize(
    "edit", ["quorum lowered", "approver added", "service issuer set", "approver removed"]
)
def test_an_edited_first_governance_is_refused_by_every_reader(
    world: World, ops: Ops, fleet: Fleet, edit: str
) -> None:
    """Old behaviour: ``governance.json`` (epoch 1) was local configuration nothing pinned:
    whoever could write it lowered the quorum to 1 (every later epoch that does not set it
    inherits it) or added their own key, and every reader and publish took it."""
    s = store(fleet, ops)
    s.publish("node-7", ops.sign(desired(world, fleet, 1), ALICE, BOB), now=NOW, registrar=ops.log)
    path = s.directory / "node-7" / "governance.json"
    doc = json.loads(path.read_bytes())
    if edit == "quorum lowered":
        doc["required"] = 1
    elif edit == "approver added":
        mallory = ops.governance(2, (ALICE, BOB, CAROL, MALLORY)).to_json()["signers"][3]
        doc["signers"].append(mallory)
    elif edit == "service issuer set":
        doc["service_issuer"] = "https://elsewhere.example"
    else:
        doc["signers"].pop()
    path.write_text(json.dumps(doc, indent=2))
    message = _altered(fleet, path, doc)
    for read in (
        lambda: s.governance("node-7"),
        lambda: s.governance_history("node-7"),
        lambda: s.current("node-7", now=NOW),
        lambda: s.publish(
            "node-7", ops.sign(desired(world, fleet, 2), ALICE), now=NOW, registrar=ops.log
        ),
        lambda: revoke(s, fleet, ops, CAROL, ALICE, BOB),
    ):
        with pytest.raises(StorageError) as info:
            read()
        assert (info.value.code, info.value.detail) == ("governance-altered", message)
    assert s.version("node-7") == 1
    assert fleet.events(kind="desired-governance") == []


def test_a_first_governance_reformatted_only_is_the_same_governance(ops: Ops, fleet: Fleet) -> None:
    """The pin is of the governance, not of its bytes: the same document with other
    whitespace and its members in another order is the same governance."""
    s = store(fleet, ops)
    path = s.directory / "node-7" / "governance.json"
    doc = json.loads(path.read_bytes())
    path.write_text(json.dumps(dict(reversed(doc.items())), indent=7) + "\n\n")
    assert s.governance("node-7") == ops.governance(2)


def test_a_removed_first_governance_is_refused_and_never_initialised_again(
    ops: Ops, fleet: Fleet
) -> None:
    """Removing ``governance.json`` to ``init`` another first governance (with a quorum of 1,
    or other approvers) is refused: the fleet's log pinned the first one."""
    s = store(fleet, ops)
    path = s.directory / "node-7" / "governance.json"
    pinned = fleet.events(kind="desired-governance-pinned")[0].detail["sha384"]
    path.unlink()
    with pytest.raises(StorageError) as info:
        s.governance("node-7")
    assert (info.value.code, info.value.detail) == (
        "governance-altered",
        f"class node-7's first governance ({path}) is missing, but the fleet's log pinned it "
        f"at `ironroot fleet desired init` (SHA-384 {pinned[:16]}): put the original back",
    )
    with pytest.raises(Conflict) as conflict:
        s.init(ops.governance(1))
    assert (conflict.value.code, conflict.value.detail) == (
        "governance-pinned",
        f"class node-7's first governance was pinned in the fleet's log at `ironroot fleet "
        f"desired init` (SHA-384 {pinned[:16]}): it is set once (put the original "
        f"{path.name} back)",
    )
    assert not path.exists()
    assert len(fleet.events(kind="desired-governance-pinned")) == 1


def test_a_store_initialised_before_the_pin_is_pinned_at_its_first_read(
    ops: Ops, fleet: Fleet
) -> None:
    """A class whose ``governance.json`` was written before ``init`` pinned it (or by an
    ``init`` cut short before its event) is pinned as it is at the first read, dated when the
    file was written; from then on an edit is refused."""
    s = store(fleet, ops)
    with contextlib.closing(sqlite3.connect(fleet.database)) as db, db:
        db.execute("DELETE FROM events WHERE kind = 'desired-governance-pinned'")
    assert s.governance("node-7") == ops.governance(2)
    (event,) = fleet.events(kind="desired-governance-pinned")
    path = s.directory / "node-7" / "governance.json"
    doc = json.loads(path.read_bytes())
    assert event.detail["sha384"] == _canonical_sha384(doc)
    assert event.detail["recovered"] is True
    assert s.governance("node-7") == ops.governance(2)  # pinned once
    assert len(fleet.events(kind="desired-governance-pinned")) == 1
    doc["required"] = 1
    path.write_text(json.dumps(doc))
    with pytest.raises(StorageError) as info:
        s.governance("node-7")
    assert (info.value.code, info.value.detail) == (
        "governance-altered",
        _altered(fleet, path, doc),
    )


def test_a_pin_whose_digest_is_damaged_refuses_the_governance(ops: Ops, fleet: Fleet) -> None:
    """A pin event whose digest is no SHA-384 (a damaged row) matches no governance: refused,
    never read as no pin."""
    s = store(fleet, ops)
    with contextlib.closing(sqlite3.connect(fleet.database)) as db, db:
        db.execute(
            "UPDATE events SET detail = json_set(detail, '$.sha384', 7) "
            "WHERE kind = 'desired-governance-pinned'"
        )
    path = s.directory / "node-7" / "governance.json"
    with pytest.raises(StorageError) as info:
        s.governance("node-7")
    assert (info.value.code, info.value.detail) == (
        "governance-altered",
        _altered(fleet, path, json.loads(path.read_bytes())),
    )
