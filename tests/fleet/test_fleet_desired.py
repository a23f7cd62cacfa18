"""The desired state of a node class: the document, its approvals on the log, the two-person
rule and version monotonicity — each refusal its exact error."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.desired_world import ALICE, BOB, CAROL, MALLORY, Ops, make_ops
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from ironroot._fileio import DirectoryLock
from ironroot.cose import TransparentStatement, create_statement, encode_cbor, make_transparent
from ironroot.errors import (
    BadSignature,
    ConfigError,
    Conflict,
    FirmwareRejected,
    InvalidProof,
    MalformedInput,
    MalformedStatement,
    NotFound,
    PolicyRejected,
    StorageError,
    UnknownIssuer,
)
from ironroot.fleet import (
    DesiredState,
    DesiredStore,
    Fleet,
    FuseTarget,
    _desired,
    check_approvals,
    desired_subject,
    verify_desired,
)
from ironroot.platform import COMPONENTS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("desired-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("desired-ops")) as o:
        yield o


@pytest.fixture
def fleet(world: World, tmp_path: Path) -> Fleet:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    return fleet


def desired(world: World, fleet: Fleet, version: int, **versions: str) -> DesiredState:
    """The class's desired state at ``version``, some components at other releases."""
    bundles = {c: world.release(c, v).bundle for c, v in versions.items()}
    return DesiredState.build(fleet.node_class("node-7"), version, bundles=bundles)


def store(fleet: Fleet, ops: Ops, required: int = 2) -> DesiredStore:
    s = DesiredStore(fleet)
    s.init(ops.governance(required))
    return s


# --- the document -----------------------------------------------------------------------------


def test_the_document_is_deterministic_cbor_that_round_trips(world: World, fleet: Fleet) -> None:
    state = desired(world, fleet, 1, host="2.0")
    data = state.encode()
    assert DesiredState.decode(data) == state
    assert state.firmware["host"].version == "2.0"
    assert state.firmware["host"].sha384 == world.release("host", "2.0").sha384
    assert state.fuses.debug_locked
    assert state.fuses.lifecycle == "production"
    assert list(state.firmware) == list(COMPONENTS)
    assert encode_cbor(dict(reversed(list(state.to_cbor().items())))) == data  # keys sorted
    with pytest.raises(MalformedInput) as info:
        DesiredState.decode(data + b"\x00")
    assert info.value.code == "malformed-desired-state"


def test_a_format_that_only_compares_equal_to_1_is_refused(world: World, fleet: Fleet) -> None:
    doc = desired(world, fleet, 1).to_cbor()
    for fake in (True, 1.0):
        with pytest.raises(MalformedInput) as info:
            DesiredState.decode(encode_cbor({**doc, "format": fake}))
        assert info.value.code == "malformed-desired-state"
        assert info.value.detail == f"the desired state is malformed: unknown format {fake!r}"


def test_a_non_canonical_document_is_refused(world: World, fleet: Fleet) -> None:
    data = desired(world, fleet, 1).encode()
    # The version 1 as a two-byte integer (0x18 0x01): same value, not the shortest form.
    index = data.index(b"gversion\x01") + len(b"gversion")
    longer = data[:index] + b"\x18\x01" + data[index + 1 :]
    with pytest.raises(MalformedInput) as info:
        DesiredState.decode(longer)
    assert info.value.code == "malformed-desired-state"


def test_a_document_the_pfm_does_not_allow_is_never_built(world: World, fleet: Fleet) -> None:
    klass = fleet.node_class("node-7")
    stray = world.bundle("host", svn=9, tag="stray")
    with pytest.raises(FirmwareRejected) as info:
        DesiredState.build(klass, 1, bundles={"host": stray})
    assert info.value.code == "not-in-pfm"
    with pytest.raises(ConfigError):
        DesiredState.build(klass, 1, bundles={"toaster": stray})


def test_policies_are_named_by_digest(world: World, fleet: Fleet) -> None:
    klass = fleet.node_class("node-7")
    state = DesiredState.build(klass, 1, policies={"appraisal": b"debug == false"})
    state.check_policy("appraisal", b"debug == false")
    with pytest.raises(PolicyRejected) as info:
        state.check_policy("appraisal", b"true")
    assert info.value.code == "policy-not-desired"
    with pytest.raises(PolicyRejected) as info:
        state.check_policy("release", b"{}")
    assert info.value.code == "policy-not-desired"


# --- publish and show -------------------------------------------------------------------------


def test_two_authorized_signers_publish_a_change(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    verified = s.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    assert verified.state == state
    assert verified.signers == (ALICE, BOB)
    again = s.current("node-7")  # verified again from the stored transparent statements
    assert again.state == state
    assert again.signers == (ALICE, BOB)
    assert s.version("node-7") == 1
    assert s.history("node-7") == [1]
    event = fleet.events()[-1]
    assert event.kind == "desired-state"
    assert event.detail["version"] == 1
    assert event.detail["signers"] == [ALICE, BOB]
    # Already-registered approvals are accepted as they are.
    nxt = desired(world, fleet, 2, host="2.0")
    assert s.publish("node-7", ops.approve(nxt, CAROL, ALICE), now=NOW).state == nxt
    assert s.history("node-7") == [1, 2]


def test_one_signer_where_two_are_required_is_refused(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(state, ALICE), now=NOW, registrar=ops.log)
    assert info.value.code == "too-few-signers"
    # Registered or not, one approval is one approval.
    with pytest.raises(PolicyRejected) as info:
        verify_desired(ops.approve(state, BOB), ops.governance())
    assert info.value.code == "too-few-signers"
    assert s.version("node-7") == 0
    with pytest.raises(NotFound):
        s.current("node-7")


def test_one_signer_suffices_where_one_is_required(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops, required=1)
    state = desired(world, fleet, 1)
    assert s.publish("node-7", ops.sign(state, CAROL), now=NOW, registrar=ops.log).state == state


def test_the_same_signer_twice_is_refused(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    twice = ops.sign(state, ALICE, ALICE)  # two statements, two signatures, one person
    assert twice[0] != twice[1]
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", twice, now=NOW, registrar=ops.log)
    assert info.value.code == "duplicate-signer"
    with pytest.raises(PolicyRejected) as info:
        verify_desired(ops.approve(state, BOB, BOB), ops.governance())
    assert info.value.code == "duplicate-signer"
    assert s.version("node-7") == 0


def test_an_unauthorized_signer_is_refused(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    # Mallory's statements are admitted by the log, but she is no approver of this class.
    with pytest.raises(UnknownIssuer) as info:
        s.publish("node-7", ops.sign(state, ALICE, MALLORY), now=NOW, registrar=ops.log)
    assert info.value.code == "signer-not-authorized"
    with pytest.raises(UnknownIssuer) as info:
        verify_desired(ops.approve(state, MALLORY, BOB), ops.governance())
    assert info.value.code == "signer-not-authorized"
    # Bob's name with Mallory's key is not Bob.
    with pytest.raises(UnknownIssuer) as info:
        check_approvals([*ops.sign(state, ALICE), *ops.sign(state, BOB, key=MALLORY)],
                        ops.governance())  # fmt: skip
    assert info.value.code == "signer-not-authorized"
    assert s.version("node-7") == 0


def test_a_forged_signature_is_refused(world: World, ops: Ops, fleet: Fleet) -> None:
    state = desired(world, fleet, 1)
    good = ops.sign(state, BOB)[0]
    forged = good[:-8] + bytes(b ^ 0xFF for b in good[-8:])
    with pytest.raises(BadSignature):
        check_approvals([*ops.sign(state, ALICE), forged], ops.governance())


def test_a_version_rollback_is_refused(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    v2 = desired(world, fleet, 2, host="2.0")
    s.publish("node-7", ops.sign(v2, ALICE, BOB), now=NOW, registrar=ops.log)
    v1 = desired(world, fleet, 1)
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(v1, ALICE, BOB), now=NOW, registrar=ops.log)
    assert info.value.code == "version-rollback"
    other_v2 = desired(world, fleet, 2, nic="2.0")
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(other_v2, ALICE, BOB), now=NOW, registrar=ops.log)
    assert info.value.code == "version-reused"
    # The same version with the same document again changes nothing.
    assert s.publish("node-7", ops.approve(v2, BOB, CAROL), now=NOW).state == v2
    assert s.current("node-7").state == v2
    assert s.history("node-7") == [2]
    assert [e.kind for e in fleet.events()].count("desired-state") == 1


def test_a_rolled_back_pointer_to_the_state_in_force_is_refused(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    s.publish("node-7", ops.approve(desired(world, fleet, 2, host="2.0"), ALICE, BOB), now=NOW)
    pointer = fleet.directory / "desired" / "node-7" / "current.json"
    pointer.write_text(pointer.read_text().replace('"version": 2', '"version": 1'))
    with pytest.raises(StorageError) as info:
        s.current("node-7")
    assert info.value.code == "desired-state-rolled-back"


def test_another_approved_document_of_the_version_in_force_is_not_in_force(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    # current.json names the version and the SHA-384 of the document put in force; only the
    # version was compared, so another document approved at that version (a draft Alice and
    # Bob also signed, refused at publish as version-reused) swapped into v1.cbor was in force.
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    draft = desired(world, fleet, 1, host="2.0")
    swapped = {"document": draft.encode(), "statements": ops.approve(draft, ALICE, BOB)}
    (fleet.directory / "desired" / "node-7" / "v1.cbor").write_bytes(encode_cbor(swapped))
    with pytest.raises(StorageError, match=r"not the document current\.json names"):
        s.current("node-7")


def test_a_publish_cut_short_is_finished_by_the_next(
    world: World, ops: Ops, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash (kill -9) after v2.cbor was written, before current.json pointed at it, left
    # the class wedged: every read and every publish failed desired-state-rolled-back.
    s = store(fleet, ops)
    v1 = ops.approve(desired(world, fleet, 1), ALICE, BOB)
    s.publish("node-7", v1, now=NOW)
    v2 = desired(world, fleet, 2, host="2.0")
    approvals = ops.approve(v2, ALICE, BOB)
    real = _desired.write_atomic

    def crash(path: Path, data: bytes, **kw: Any) -> None:
        if path.name == "current.json":
            raise SystemExit("killed")
        real(path, data, **kw)

    monkeypatch.setattr(_desired, "write_atomic", crash)
    with pytest.raises(SystemExit):
        s.publish("node-7", approvals, now=NOW)
    monkeypatch.undo()
    # While a publish holds its lock between its two writes, a reader is told to read again
    # (not a tamper alarm); with no publish running, a later version not in force is one.
    publishing = DirectoryLock(
        fleet.directory / "desired" / "node-7", ".publish.lock", what="desired state"
    )
    try:
        with pytest.raises(Conflict) as busy:
            s.current("node-7")
        assert busy.value.code == "desired-state-publishing"
    finally:
        publishing.close()
    with pytest.raises(StorageError) as info:
        s.current("node-7")
    assert info.value.code == "desired-state-rolled-back"
    # The operator's retry finishes it: v2 is in force, once, with its event.
    assert s.publish("node-7", approvals, now=NOW).state == v2
    assert s.current("node-7").state == v2
    changes = [e.detail for e in fleet.events() if e.kind == "desired-state"]
    assert [(c["version"], c["previous"]) for c in changes] == [(1, None), (2, 1)]
    # With the pointer gone, the old approvals of v1 are a rollback, not a first publish.
    (fleet.directory / "desired" / "node-7" / "current.json").unlink()
    with pytest.raises(PolicyRejected) as refused:
        s.publish("node-7", v1, now=NOW)
    assert refused.value.code == "version-rollback"
    assert s.current("node-7").state == v2


def test_approvals_must_be_logged_by_a_trusted_service(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW)  # no registrar, no receipt
    assert info.value.code == "no-receipt"
    rogue = [ops.rogue.register(x).transparent_statement for x in ops.sign(state, ALICE, BOB)]
    with pytest.raises(UnknownIssuer) as info:
        s.publish("node-7", rogue, now=NOW)
    assert info.value.code == "untrusted-service"
    # A receipt of the trusted log, but for another entry (Alice's), on Bob's statement.
    alice, bob = ops.approve(state, ALICE), ops.sign(state, BOB)
    borrowed = make_transparent(bob[0], TransparentStatement.parse(alice[0]).receipts)
    with pytest.raises(InvalidProof) as info:
        s.publish("node-7", [*alice, borrowed], now=NOW)
    assert info.value.code == "receipt-not-for-statement"
    assert s.version("node-7") == 0


def test_approvals_must_be_of_one_document_and_this_class(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    governance = ops.governance()
    a = desired(world, fleet, 1)
    b = desired(world, fleet, 1, host="2.0")
    with pytest.raises(PolicyRejected) as info:
        check_approvals([*ops.sign(a, ALICE), *ops.sign(b, BOB)], governance)
    assert info.value.code == "documents-differ"
    other = dataclasses.replace(a, node_class="node-8")
    with pytest.raises(PolicyRejected) as info:
        check_approvals(ops.sign(other, ALICE, BOB), governance)
    assert info.value.code == "wrong-class"
    not_desired = create_statement(
        ops.keys[ALICE], b"{}", iss=ALICE, sub=desired_subject("node-7"), content_type="text/x"
    )
    with pytest.raises(MalformedStatement) as info:
        check_approvals([not_desired], governance)
    assert info.value.code == "not-desired-state"


def test_governance_is_set_once_and_checked(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    assert s.governance("node-7") == ops.governance()
    with pytest.raises(Conflict):
        s.init(ops.governance())
    with pytest.raises(ConfigError):
        ops.governance(required=4)
    with pytest.raises(ConfigError):
        ops.governance(required=0)
    with pytest.raises(NotFound):
        s.governance("node-9")


def test_fuse_targets_are_checked(world: World) -> None:
    with pytest.raises(MalformedInput):
        FuseTarget(vendor_key_hash=world.descriptor_hash, lifecycle="retired")
    with pytest.raises(MalformedInput):
        FuseTarget(vendor_key_hash=b"short")


def test_store_files_nested_too_deep_are_storage_errors(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    # RecursionError from json.loads (found writing the desired-store fuzz target): the
    # governance and the pointer to the state in force are read by every reconcile.
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    folder = fleet.directory / "desired" / "node-7"
    (folder / "current.json").write_bytes(b"[" * 4000)
    with pytest.raises(StorageError, match=r"current\.json is malformed"):
        s.current("node-7")
    (folder / "governance.json").write_bytes(b"[" * 100_000)
    with pytest.raises(StorageError, match=r"governance\.json is not JSON"):
        s.governance("node-7")
