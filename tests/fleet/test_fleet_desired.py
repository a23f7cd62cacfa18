"""The desired state of a node class: the document, its approvals on the log, the two-person
rule and version monotonicity — each refusal its exact error."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fleet.desired_world import ALICE, BOB, CAROL, MALLORY, Ops, make_ops
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from ironroot._fileio import DirectoryLock
from ironroot.cose import (
    TransparentStatement,
    create_statement,
    decode_cbor,
    encode_cbor,
    make_transparent,
)
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    Conflict,
    FirmwareRejected,
    InvalidProof,
    KeyRevoked,
    MalformedInput,
    MalformedStatement,
    NotFound,
    PolicyRejected,
    StorageError,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.fleet import (
    AuthorizedSigner,
    DesiredState,
    DesiredStore,
    Fleet,
    FuseTarget,
    Governance,
    _desired,
    check_approvals,
    desired_subject,
    reconcile,
    sign_desired,
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
    return DesiredState.build(
        fleet.node_class("node-7"), version, bundles=bundles, fleet=fleet.identity()
    )


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
        DesiredState.build(klass, 1, bundles={"host": stray}, fleet=fleet.identity())
    assert info.value.code == "not-in-pfm"
    with pytest.raises(ConfigError):
        DesiredState.build(klass, 1, bundles={"toaster": stray}, fleet=fleet.identity())


def test_policies_are_named_by_digest(world: World, fleet: Fleet) -> None:
    klass = fleet.node_class("node-7")
    state = DesiredState.build(
        klass, 1, policies={"appraisal": b"debug == false"}, fleet=fleet.identity()
    )
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
        verify_desired(ops.approve(state, BOB), ops.governance(), fleet=fleet.identity())
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
        verify_desired(ops.approve(state, BOB, BOB), ops.governance(), fleet=fleet.identity())
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
        verify_desired(ops.approve(state, MALLORY, BOB), ops.governance(), fleet=fleet.identity())
    assert info.value.code == "signer-not-authorized"
    # Bob's name with Mallory's key is not Bob.
    with pytest.raises(UnknownIssuer) as info:
        check_approvals([*ops.sign(state, ALICE), *ops.sign(state, BOB, key=MALLORY)],
                        ops.governance(), fleet=fleet.identity())  # fmt: skip
    assert info.value.code == "signer-not-authorized"
    assert s.version("node-7") == 0


def test_a_forged_signature_is_refused(world: World, ops: Ops, fleet: Fleet) -> None:
    state = desired(world, fleet, 1)
    good = ops.sign(state, BOB)[0]
    forged = good[:-8] + bytes(b ^ 0xFF for b in good[-8:])
    with pytest.raises(BadSignature):
        check_approvals([*ops.sign(state, ALICE), forged], ops.governance(), fleet=fleet.identity())


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


def test_a_pinned_service_issuer_refuses_approvals_whose_receipt_names_another_service(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    state = desired(world, fleet, 1)
    approvals = ops.approve(state, ALICE, BOB)
    service = "https://transparency.example"  # the operator log's issuer (init_data_dir's)
    base = ops.governance()
    assert base.service_issuer is None
    assert "service_issuer" not in base.to_json()  # governance.json as before, when left out
    assert verify_desired(approvals, base, fleet=fleet.identity(), now=NOW).state == state
    right = dataclasses.replace(base, service_issuer=service)
    assert Governance.from_json(right.to_json()) == right
    assert verify_desired(approvals, right, fleet=fleet.identity(), now=NOW).state == state
    # the trusted key signed the receipts, but the class knows its log by another iss
    other = "https://another-ts.example"
    wrong = dataclasses.replace(base, service_issuer=other)
    s = DesiredStore(fleet)
    s.init(wrong)
    assert s.governance("node-7") == wrong
    with pytest.raises(UnknownIssuer) as info:
        s.publish("node-7", approvals, now=NOW)
    assert type(info.value) is UnknownIssuer
    assert info.value.code == "untrusted-service"
    assert info.value.detail == (
        f"no receipt of the approval by {ALICE} is by a trusted transparency service (the "
        f"receipt is issued by {service!r}, not by the transparency service {other!r})"
    )
    assert s.version("node-7") == 0
    for bad in ("", 7, "x" * 257):
        with pytest.raises(ConfigError, match="the transparency service's issuer is text"):
            dataclasses.replace(base, service_issuer=bad)


def test_approvals_must_be_of_one_document_and_this_class(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    governance = ops.governance()
    a = desired(world, fleet, 1)
    b = desired(world, fleet, 1, host="2.0")
    with pytest.raises(PolicyRejected) as info:
        check_approvals(
            [*ops.sign(a, ALICE), *ops.sign(b, BOB)], governance, fleet=fleet.identity()
        )
    assert info.value.code == "documents-differ"
    other = dataclasses.replace(a, node_class="node-8")
    with pytest.raises(PolicyRejected) as info:
        check_approvals(ops.sign(other, ALICE, BOB), governance, fleet=fleet.identity())
    assert info.value.code == "wrong-class"
    not_desired = create_statement(
        ops.keys[ALICE], b"{}", iss=ALICE, sub=desired_subject("node-7"), content_type="text/x"
    )
    with pytest.raises(MalformedStatement) as info:
        check_approvals([not_desired], governance, fleet=fleet.identity())
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


def test_the_same_key_under_two_names_is_not_two_people(ops: Ops) -> None:
    # Bob's name bound to Alice's key would let Alice alone meet the two-person rule: the
    # governance refuses it, whether built or read from governance.json.
    alice = ops.keys[ALICE].public_key
    with pytest.raises(ConfigError, match="two authorized signers share one key"):
        Governance("node-7", (AuthorizedSigner(ALICE, alice), AuthorizedSigner(BOB, alice)), 2,
                   ops.log.service_keys())  # fmt: skip
    doc = ops.governance().to_json()
    doc["signers"][1]["key"] = doc["signers"][0]["key"]
    with pytest.raises(ConfigError, match="two authorized signers share one key"):
        Governance.from_json(doc)


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


# --- one fleet: approvals are never replayed into another --------------------------------------


def test_approvals_for_another_fleet_are_refused(
    world: World, ops: Ops, fleet: Fleet, tmp_path: Path
) -> None:
    # Two fleets trusting the same approvers and the same log: what Alice and Bob approved
    # for one used to be put in force in the other by replaying its transparent statements.
    other, _ = make_fleet(world, tmp_path / "other", 1)
    assert other.identity() != fleet.identity()
    ours, theirs = store(fleet, ops), store(other, ops)
    state = desired(world, fleet, 1, host="2.0")
    assert state.fleet == fleet.identity()
    approved = ours.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    with pytest.raises(PolicyRejected) as info:
        theirs.publish("node-7", list(approved.statements), now=NOW)
    assert info.value.code == "wrong-fleet"
    assert info.value.detail == (
        f"the document is for fleet {fleet.identity()}, not {other.identity()}: approvals are "
        "never replayed from another fleet"
    )
    with pytest.raises(PolicyRejected) as info:
        verify_desired(list(approved.statements), ops.governance(), fleet=other.identity())
    assert info.value.code == "wrong-fleet"
    assert theirs.version("node-7") == 0
    assert not [e for e in other.events() if e.kind == "desired-state"]
    # Signing the same document anew for the other fleet does not help: it names the first.
    with pytest.raises(PolicyRejected) as info:
        theirs.publish("node-7", ops.sign(state, ALICE, CAROL), now=NOW, registrar=ops.log)
    assert info.value.code == "wrong-fleet"


def test_the_fleet_binding_is_covered_by_every_approval(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    state = desired(world, fleet, 1)
    data = state.encode()
    assert DesiredState.decode(data).fleet == fleet.identity()
    assert DesiredState.decode(data).to_cbor()["format"] == 2
    # Re-pointing one approval at another fleet makes it another document.
    moved = dataclasses.replace(state, fleet="urn:uuid:00000000-0000-4000-8000-000000000000")
    with pytest.raises(PolicyRejected) as info:
        check_approvals(
            [*ops.sign(state, ALICE), *ops.sign(moved, BOB)],
            ops.governance(),
            fleet=fleet.identity(),
        )
    assert info.value.code == "documents-differ"
    with pytest.raises(ConfigError):
        DesiredState.build(fleet.node_class("node-7"), 1, fleet="")


def test_a_format_1_document_names_no_fleet_and_is_refused(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    unbound = dataclasses.replace(desired(world, fleet, 1), fleet="")
    assert unbound.to_cbor()["format"] == 1
    assert "fleet" not in unbound.to_cbor()
    assert DesiredState.decode(unbound.encode()) == unbound  # it still decodes
    for check in (check_approvals, verify_desired):
        with pytest.raises(PolicyRejected) as info:
            check(ops.approve(unbound, ALICE, BOB), ops.governance(), fleet=fleet.identity())
        assert info.value.code == "fleet-unbound"
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(unbound, ALICE, BOB), now=NOW, registrar=ops.log)
    assert info.value.code == "fleet-unbound"
    assert info.value.detail.startswith(
        "desired state v1 of class node-7 is format 1, which names no fleet: its approvals "
        "could be replayed from another fleet"
    )
    assert s.version("node-7") == 0
    # A format-1 member set with a fleet, or format 2 without one, is malformed.
    doc = desired(world, fleet, 1).to_cbor()
    for bad in ({**doc, "format": 1}, {k: v for k, v in doc.items() if k != "fleet"}):
        with pytest.raises(MalformedInput) as malformed:
            DesiredState.decode(encode_cbor(bad))
        assert malformed.value.code == "malformed-desired-state"


def test_a_format_1_state_put_in_force_before_fleets_had_identities_is_read(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    # What an older store wrote, as it wrote it: v1.cbor and current.json of a format-1
    # document approved and registered. It stays in force (readable, reconcilable), and the
    # next change must be format 2.
    s = store(fleet, ops)
    unbound = dataclasses.replace(desired(world, fleet, 1), fleet="")
    base = fleet.directory / "desired" / "node-7"
    statements = ops.approve(unbound, ALICE, BOB)
    (base / "v1.cbor").write_bytes(
        encode_cbor({"document": unbound.encode(), "statements": statements})
    )
    (base / "current.json").write_text(
        f'{{"version": 1, "sha384": "{unbound.sha384.hex()}"}}', encoding="utf-8"
    )
    fleet.record(None, "desired-state", {"class": "node-7", "version": 1,
                 "sha384": unbound.sha384.hex(), "signers": [ALICE, BOB],
                 "previous": None}, now=NOW)  # fmt: skip
    assert s.current("node-7").state == unbound
    again = dataclasses.replace(unbound, version=2)
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(again, ALICE, BOB), now=NOW, registrar=ops.log)
    assert info.value.code == "fleet-unbound"
    bound = desired(world, fleet, 2, host="2.0")
    assert (
        s.publish("node-7", ops.sign(bound, ALICE, BOB), now=NOW, registrar=ops.log).state == bound
    )
    assert s.current("node-7").state == bound


def test_the_fleet_identity_is_made_once_and_kept(world: World, fleet: Fleet) -> None:
    first = fleet.identity()
    assert first.startswith("urn:uuid:")
    assert Fleet.open(fleet.directory).identity() == first
    # A fleet made where another's identity was left never takes it over (with the approvals
    # given for that one).
    klass = fleet.node_class("node-7")
    (fleet.directory / "fleet.json").rename(fleet.directory / "fleet.json.old")
    with pytest.raises(Conflict, match=r"holds the identity of a fleet \(fleet-id\)"):
        Fleet.create(fleet.directory, node_class=klass)
    (fleet.directory / "fleet.json.old").rename(fleet.directory / "fleet.json")
    (fleet.directory / "fleet-id").write_text("not an identity\n", encoding="utf-8")
    with pytest.raises(StorageError, match="is not the fleet's identity"):
        fleet.identity()


# --- the state and its event: a crash between them ---------------------------------------------


def _changes(fleet: Fleet) -> list[tuple[int, int | None, bool]]:
    return [
        (e.detail["version"], e.detail["previous"], bool(e.detail.get("recovered")))
        for e in fleet.events()
        if e.kind == "desired-state"
    ]


def test_a_crash_between_current_json_and_the_event_is_recovered_on_read(
    world: World, ops: Ops, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash (kill -9) after current.json named v2, before its desired-state event was
    # written, used to leave v2 in force with no event: the audit trail lost why it changed.
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    v2 = desired(world, fleet, 2, host="2.0")
    real = fleet.record

    def crash(node: str | None, kind: str, detail: Any, *, now: Any) -> None:
        if kind == "desired-state":
            raise SystemExit("killed")
        real(node, kind, detail, now=now)

    monkeypatch.setattr(fleet, "record", crash)
    with pytest.raises(SystemExit):
        s.publish("node-7", ops.approve(v2, ALICE, BOB), now=NOW)
    monkeypatch.undo()
    assert s.version("node-7") == 2
    assert _changes(fleet) == [(1, None, False)]
    # The next reader (another process: a fresh fleet object) sees v2 with its event.
    reopened = Fleet.open(fleet.directory)
    assert DesiredStore(reopened).current("node-7").state == v2
    assert _changes(reopened) == [(1, None, False), (2, 1, True)]
    written = (fleet.directory / "desired" / "node-7" / "current.json").stat().st_mtime
    recovered = [e for e in reopened.events() if e.kind == "desired-state"][-1]
    assert recovered.detail["sha384"] == v2.sha384.hex()
    assert recovered.detail["signers"] == [ALICE, BOB]
    assert recovered.at == dt.datetime.fromtimestamp(written, dt.UTC).isoformat().replace(
        "+00:00", "Z"
    )  # when the state changed, not when the event was repaired
    # Once: later reads and publishes do not record it again.
    assert DesiredStore(reopened).current("node-7").state == v2
    v3 = desired(world, fleet, 3, host="2.0", nic="2.0")
    assert s.publish("node-7", ops.approve(v3, ALICE, BOB), now=NOW).state == v3
    assert _changes(reopened) == [(1, None, False), (2, 1, True), (3, 2, False)]


def test_a_crash_before_the_event_is_recovered_by_the_next_publish(
    world: World, ops: Ops, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    real = fleet.record

    def crash(node: str | None, kind: str, detail: Any, *, now: Any) -> None:
        if kind == "desired-state":
            raise SystemExit("killed")
        real(node, kind, detail, now=now)

    monkeypatch.setattr(fleet, "record", crash)
    with pytest.raises(SystemExit):
        s.publish("node-7", ops.approve(desired(world, fleet, 2, host="2.0"), ALICE, BOB), now=NOW)
    monkeypatch.undo()
    # No read in between: the publish of v3 first writes v2's event, then its own.
    v3 = desired(world, fleet, 3, host="2.0", nic="2.0")
    s.publish("node-7", ops.approve(v3, ALICE, BOB), now=NOW)
    assert _changes(fleet) == [(1, None, False), (2, 1, True), (3, 2, False)]


def test_a_reader_that_finds_the_event_missing_while_a_publish_runs_reads_again(
    world: World, ops: Ops, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    # current.json names v1, its event is not yet written, and the publish holds its lock.
    base = fleet.directory / "desired" / "node-7"
    with contextlib.closing(sqlite3.connect(fleet.database)) as db, db:
        db.execute("DELETE FROM events WHERE kind = 'desired-state'")
    publishing = DirectoryLock(base, ".publish.lock", what="desired state")
    try:
        with pytest.raises(Conflict) as busy:
            s.current("node-7")
        assert busy.value.code == "desired-state-publishing"
    finally:
        publishing.close()
    assert s.current("node-7").state.version == 1  # then the reader writes it
    assert _changes(fleet) == [(1, None, True)]


# --- the approvals' own validity (CWT exp / nbf) ----------------------------------------------


def _dated(ops: Ops, state: DesiredState, *who: str, **when: dt.datetime) -> list[bytes]:
    return [sign_desired(state, ops.keys[iss], iss=iss, iat=NOW, **when) for iss in who]


def test_an_expired_approval_does_not_become_the_desired_state(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    hour = dt.timedelta(hours=1)
    approvals = [*_dated(ops, state, ALICE, exp=NOW - hour), *ops.sign(state, BOB)]
    with pytest.raises(VerificationFailed) as info:
        s.publish("node-7", approvals, now=NOW, registrar=ops.log)
    assert info.value.code == "statement-expired"
    assert f"the approval by {ALICE} " in info.value.detail
    with pytest.raises(VerificationFailed) as info:
        check_approvals(approvals, ops.governance(), fleet=fleet.identity(), now=NOW)
    assert info.value.code == "statement-expired"
    assert s.version("node-7") == 0


def test_an_approval_not_yet_valid_does_not_become_the_desired_state(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    # the log, its clock at NOW, takes an nbf up to its max_clock_skew (300 s) ahead
    nbf = NOW + dt.timedelta(seconds=300)
    approvals = [*ops.sign(state, ALICE), *_dated(ops, state, BOB, nbf=nbf)]
    with pytest.raises(VerificationFailed) as info:
        s.publish("node-7", approvals, now=NOW, registrar=ops.log)
    assert info.value.code == "statement-not-yet-valid"
    assert s.version("node-7") == 0
    # At its nbf it counts.
    later = nbf
    assert s.publish("node-7", approvals, now=later, registrar=ops.log).state == state


def test_a_desired_state_whose_approval_expires_does_not_stay_in_force(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    exp = NOW + dt.timedelta(days=3650)  # after the wall clock: the log registers it
    approvals = [*_dated(ops, state, ALICE, exp=exp), *ops.sign(state, BOB)]
    s.publish("node-7", approvals, now=NOW, registrar=ops.log)
    assert s.current("node-7", now=NOW).state == state
    with pytest.raises(VerificationFailed) as info:
        s.current("node-7", now=exp)
    assert info.value.code == "statement-expired"
    # Re-publishing the expired approvals does not revive it.
    with pytest.raises(VerificationFailed) as info:
        s.publish("node-7", approvals, now=exp, registrar=ops.log)
    assert info.value.code == "statement-expired"
    # Nor do fresh approvals of the same version: what is stored is what is in force.
    with pytest.raises(VerificationFailed) as info:
        s.publish("node-7", ops.sign(state, ALICE, BOB), now=exp, registrar=ops.log)
    assert info.value.code == "statement-expired"
    # A new version with fresh approvals replaces it: the expired one is still the floor.
    nxt = desired(world, fleet, 2, host="2.0")
    assert s.publish("node-7", ops.sign(nxt, ALICE, BOB), now=exp, registrar=ops.log).state == nxt
    assert s.current("node-7", now=exp).state == nxt
    old = desired(world, fleet, 1, host="2.0")  # an older version, freshly approved
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(old, ALICE, BOB), now=exp, registrar=ops.log)
    assert info.value.code == "version-rollback"


# --- a store whose later versions were removed: the fleet's log remembers ---------------------


def test_removed_later_versions_do_not_put_an_older_state_back_in_force(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    """Removing ``v2.cbor`` and pointing ``current.json`` back at v1 (whose approvals are
    genuine) is a rollback: the fleet's log recorded v2 in force."""
    s = store(fleet, ops)
    v1 = desired(world, fleet, 1)
    s.publish("node-7", ops.approve(v1, ALICE, BOB), now=NOW)
    base = fleet.directory / "desired" / "node-7"
    old_pointer = (base / "current.json").read_bytes()
    s.publish("node-7", ops.approve(desired(world, fleet, 2, host="2.0"), ALICE, BOB), now=NOW)
    (base / "v2.cbor").unlink()
    (base / "current.json").write_bytes(old_pointer)
    with pytest.raises(StorageError) as info:
        s.current("node-7", now=NOW)
    assert info.value.code == "desired-state-rolled-back"
    with pytest.raises(StorageError) as info:
        s.publish("node-7", ops.approve(v1, ALICE, BOB), now=NOW)
    assert info.value.code == "desired-state-rolled-back"
    with pytest.raises(StorageError) as info:
        reconcile(fleet, now=NOW)
    assert info.value.code == "desired-state-rolled-back"


def test_a_store_emptied_of_its_versions_does_not_take_old_approvals_again(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    v1 = desired(world, fleet, 1)
    s.publish("node-7", ops.approve(v1, ALICE, BOB), now=NOW)
    s.publish("node-7", ops.approve(desired(world, fleet, 2, host="2.0"), ALICE, BOB), now=NOW)
    base = fleet.directory / "desired" / "node-7"
    for name in ("current.json", "v2.cbor"):
        (base / name).unlink()
    # v1.cbor alone is left: it is not finished into force as a publish cut short
    with pytest.raises(StorageError) as info:
        s.publish("node-7", ops.approve(v1, ALICE, BOB), now=NOW)
    assert info.value.code == "desired-state-rolled-back"
    assert not (base / "current.json").exists()
    (base / "v1.cbor").unlink()
    with pytest.raises(StorageError) as info:
        s.publish("node-7", ops.approve(v1, ALICE, BOB), now=NOW)
    assert info.value.code == "desired-state-rolled-back"
    with pytest.raises(StorageError) as info:
        s.current("node-7", now=NOW)
    assert info.value.code == "desired-state-rolled-back"
    assert s.history("node-7") == []


def test_a_governance_needing_more_signers_than_a_change_may_carry_is_refused(ops: Ops) -> None:
    """A change carries at most 16 approvals: a governance requiring more could never put a
    desired state in force (every publish ``too-few-signers`` or refused for its count), so
    the class's configuration would be frozen by its own rule. Refused when set."""
    keys = [PrivateKey.generate(Algorithm.ES384).public_key for _ in range(17)]
    signers = tuple(AuthorizedSigner(f"https://ops.example/{n}", k) for n, k in enumerate(keys))
    Governance("node-7", signers, 16, ops.log.service_keys())
    with pytest.raises(ConfigError) as caught:
        Governance("node-7", signers, 17, ops.log.service_keys())
    assert caught.value.detail == (
        "required is 1 to the number of authorized signers (17) and at most 16, the most "
        "approvals a change carries"
    )


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("version = 1\nnote = 3\n", "note is text"),
        ("version = 1\npfm = 5\n", "pfm is a file name (text)"),
        ("version = 1\n[firmware]\nhost = 2\n", "firmware.host is a file name (text)"),
        ('version = 1\nfirmware = "host.bin"\n', "[firmware] is a table"),
        ('version = 1\npolicies = ["a.cel"]\n', "[policies] is a table"),
        ("version = 1\nfuses = 1\n", "[fuses] is a table"),
        ("version = 1\n[fuses]\nfused = true\n", "unknown [fuses] fused"),
    ],
    ids=["note", "pfm", "firmware-file", "firmware", "policies", "fuses", "fuse-unknown"],
)
def test_a_desired_toml_is_read_as_written(
    fleet: Fleet, tmp_path: Path, text: str, detail: str
) -> None:
    # a number or a list is never made a file name or a note by str() (a string read a
    # character at a time, or a note "3" nobody wrote as text)
    path = tmp_path / "desired.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        DesiredState.load_toml(path, fleet.node_class("node-7"), fleet=fleet.identity())
    assert caught.value.detail == f"{path}: {detail}"


def test_a_governance_signer_without_a_text_iss_is_refused(ops: Ops) -> None:
    doc = ops.governance().to_json()
    doc["signers"][0]["iss"] = None  # was read as the issuer "None"
    with pytest.raises(ConfigError, match="a signer's iss is text"):
        Governance.from_json(doc)


def test_approvals_whose_receipts_are_from_the_future_do_not_become_the_desired_state(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    # logged at NOW: to a fleet whose clock reads a day earlier the receipts are from its future
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    approvals = [*ops.sign(state, ALICE), *ops.sign(state, BOB)]
    with pytest.raises(VerificationFailed) as info:
        s.publish("node-7", approvals, now=NOW - dt.timedelta(days=1), registrar=ops.log)
    assert type(info.value) is VerificationFailed
    assert info.value.code == "receipt-from-the-future"
    assert s.version("node-7") == 0
    assert s.publish("node-7", approvals, now=NOW, registrar=ops.log).state == state


# --- the verification cache (module docs) ---------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every signature verification (statements and receipts)."""
    calls = [0]
    original = PublicKey.verify

    def verify(self: PublicKey, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PublicKey, "verify", verify)
    return calls


def test_a_second_read_of_unchanged_files_verifies_no_signature(
    world: World, ops: Ops, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    _desired._VERIFIED.clear()
    calls = _counting(monkeypatch)
    first = s.current("node-7", now=NOW)
    assert calls[0] >= 4  # two approvals, each a signature and a receipt
    calls[0] = 0
    assert s.current("node-7", now=NOW) == first
    assert calls[0] == 0


def test_a_changed_byte_of_a_stored_statement_is_refused_after_a_cached_success(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    assert s.current("node-7", now=NOW).signers == (ALICE, BOB)  # cached
    path = fleet.directory / "desired" / "node-7" / "v1.cbor"
    doc = decode_cbor(path.read_bytes())
    statement = bytearray(doc["statements"][0])
    parsed = TransparentStatement.parse(bytes(statement))
    signature = parsed.statement.sign1.signature
    at = bytes(statement).index(signature)
    statement[at] ^= 1
    doc["statements"][0] = bytes(statement)
    path.write_bytes(encode_cbor(doc))
    with pytest.raises(BadSignature):
        s.current("node-7", now=NOW)
    _desired._VERIFIED.clear()
    with pytest.raises(BadSignature):  # exactly as without the cache
        s.current("node-7", now=NOW)


def test_an_approval_expiring_after_a_cached_success_fails_as_without_the_cache(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    exp = NOW + dt.timedelta(days=3650)
    approvals = [*_dated(ops, state, ALICE, exp=exp), *ops.sign(state, BOB)]
    s.publish("node-7", approvals, now=NOW, registrar=ops.log)
    assert s.current("node-7", now=NOW).state == state  # cached
    just_before = exp - dt.timedelta(seconds=1)
    assert s.current("node-7", now=just_before).state == state
    with pytest.raises(VerificationFailed) as cached:
        s.current("node-7", now=exp)
    _desired._VERIFIED.clear()
    with pytest.raises(VerificationFailed) as uncached:
        s.current("node-7", now=exp)
    assert cached.value.code == uncached.value.code == "statement-expired"
    assert cached.value.detail == uncached.value.detail


def test_the_rollback_checks_fire_after_a_cached_success(
    world: World, ops: Ops, fleet: Fleet
) -> None:
    s = store(fleet, ops)
    s.publish("node-7", ops.approve(desired(world, fleet, 1), ALICE, BOB), now=NOW)
    assert s.current("node-7", now=NOW).state.version == 1  # v1 verified, so cached
    pointer = fleet.directory / "desired" / "node-7" / "current.json"
    v1_pointer = pointer.read_bytes()
    s.publish("node-7", ops.approve(desired(world, fleet, 2, host="2.0"), ALICE, BOB), now=NOW)
    assert s.current("node-7", now=NOW).state.version == 2
    pointer.write_bytes(v1_pointer)  # rolled back to v1, its cached success
    with pytest.raises(StorageError) as info:
        s.current("node-7", now=NOW)
    assert info.value.code == "desired-state-rolled-back"
    # the later version's file removed too: the events still name it
    (fleet.directory / "desired" / "node-7" / "v2.cbor").unlink()
    with pytest.raises(StorageError) as info:
        s.current("node-7", now=NOW)
    assert info.value.code == "desired-state-rolled-back"


# --- the vendor key revocation masks --------------------------------------------------------


def test_a_document_without_revocation_masks_keeps_the_bytes_it_had(
    world: World, fleet: Fleet
) -> None:
    """Masks of 0 are left out of the encoding: a document written before the masks existed
    (its fuses exactly the five members then) decodes, with none revoked, to a state whose
    encoding is those very bytes — so every approval signed over them still verifies."""
    state = desired(world, fleet, 1)
    old = state.to_cbor()
    assert set(old["fuses"]) == {
        "debug_locked",
        "lifecycle",
        "min_svn",
        "anti_rollback",
        "vendor_key_hash",
    }
    data = encode_cbor(old)
    read = DesiredState.decode(data)
    assert (read.fuses.ecc_revoked, read.fuses.pqc_revoked) == (0, 0)
    assert read.encode() == data == state.encode()
    revoking = dataclasses.replace(
        state, fuses=FuseTarget(world.descriptor_hash, ecc_revoked=0b0100, pqc_revoked=1 << 31)
    )
    fuses = revoking.to_cbor()["fuses"]
    assert (fuses["ecc_revoked"], fuses["pqc_revoked"]) == (0b0100, 1 << 31)
    assert DesiredState.decode(revoking.encode()) == revoking
    assert revoking.to_json()["fuses"]["ecc_revoked"] == 0b0100
    assert state.to_json()["fuses"]["pqc_revoked"] == 0


def test_old_approvals_verify_once_the_masks_exist(world: World, ops: Ops, fleet: Fleet) -> None:
    """Approvals over a document without masks (signed as before) put it in force, and it is
    read back with none revoked."""
    s = store(fleet, ops)
    state = desired(world, fleet, 1)
    payload = encode_cbor(state.to_cbor())
    assert b"revoked" not in payload
    s.publish("node-7", ops.approve(state, ALICE, BOB), now=NOW)
    current = s.current("node-7", now=NOW).state
    assert current.encode() == payload
    assert current.fuses.ecc_revoked == current.fuses.pqc_revoked == 0


def test_a_mask_of_zero_written_out_is_not_the_canonical_document(
    world: World, fleet: Fleet
) -> None:
    doc = desired(world, fleet, 1).to_cbor()
    doc["fuses"] = {**doc["fuses"], "ecc_revoked": 0}
    with pytest.raises(MalformedInput) as info:
        DesiredState.decode(encode_cbor(doc))
    assert (info.value.code, info.value.detail) == (
        "malformed-desired-state",
        "the desired state is malformed: the bytes are not the document's deterministic encoding",
    )


@pytest.mark.parametrize(
    ("masks", "detail"),
    [
        ({"ecc_revoked": 0b10000}, "ecc_revoked is a mask of the 4 vendor ECC key slots"),
        ({"pqc_revoked": 1 << 32}, "pqc_revoked is a mask of the 32 vendor PQC key slots"),
        ({"ecc_revoked": 0b1111}, "ecc_revoked revokes every vendor ECC key: no image could boot"),
        (
            {"pqc_revoked": (1 << 32) - 1},
            "pqc_revoked revokes every vendor PQC key: no image could boot",
        ),
        ({"ecc_revoked": -1}, "ecc_revoked is an unsigned integer"),
        ({"pqc_revoked": True}, "pqc_revoked is an unsigned integer"),
    ],
    ids=["ecc-wide", "pqc-wide", "ecc-all", "pqc-all", "negative", "bool"],
)
def test_revocation_masks_are_checked(world: World, masks: dict[str, Any], detail: str) -> None:
    with pytest.raises(MalformedInput) as info:
        FuseTarget(world.descriptor_hash, **masks)
    assert info.value.detail == f"the desired state is malformed: {detail}"


def test_a_decoded_mask_out_of_range_is_refused(world: World, fleet: Fleet) -> None:
    doc = desired(world, fleet, 1).to_cbor()
    doc["fuses"] = {**doc["fuses"], "pqc_revoked": "4"}
    with pytest.raises(MalformedInput) as info:
        DesiredState.decode(encode_cbor(doc))
    assert info.value.detail == "the desired state is malformed: pqc_revoked is an unsigned integer"


def test_a_desired_state_revoking_the_key_its_images_are_signed_with_is_never_built(
    world: World, fleet: Fleet
) -> None:
    """No node with those fuses would boot them: refused before anyone signs it, with the
    RoT's own sentence."""
    klass = fleet.node_class("node-7")
    for fuses, detail in (
        (FuseTarget(world.descriptor_hash, ecc_revoked=0b0001), "vendor ECC key 0 is revoked"),
        (FuseTarget(world.descriptor_hash, pqc_revoked=0b0001), "vendor PQC key 0 is revoked"),
    ):
        with pytest.raises(KeyRevoked) as info:
            DesiredState.build(klass, 1, fuses=fuses, fleet=fleet.identity())
        assert (info.value.code, info.value.detail) == ("key-revoked", detail)
    built = DesiredState.build(
        klass,
        1,
        fuses=FuseTarget(world.descriptor_hash, ecc_revoked=0b0110),
        fleet=fleet.identity(),
    )
    assert built.fuses.ecc_revoked == 0b0110


def test_a_desired_toml_names_the_revoked_vendor_keys(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "desired.toml"
    path.write_text("version = 1\n[fuses]\necc_revoked = 0x4\npqc_revoked = 0x6\n")
    state = DesiredState.load_toml(path, fleet.node_class("node-7"), fleet=fleet.identity())
    assert (state.fuses.ecc_revoked, state.fuses.pqc_revoked) == (4, 6)
    assert _desired.revocation_of_toml(path) == (4, 6)
    path.write_text("version = 1\n[fuses]\necc_revoked = 0x10\n")
    detail = (
        f"{path}: the desired state is malformed: ecc_revoked is a mask of the 4 vendor ECC key "
        "slots"
    )
    with pytest.raises(ConfigError) as caught:
        DesiredState.load_toml(path, fleet.node_class("node-7"), fleet=fleet.identity())
    assert caught.value.detail == detail
    with pytest.raises(ConfigError) as caught:
        _desired.revocation_of_toml(path)
    assert caught.value.detail == detail
    path.write_text("version = 1\n")
    assert _desired.revocation_of_toml(path) == (0, 0)


def _revoking(world: World, fleet: Fleet, version: int, ecc: int, pqc: int) -> DesiredState:
    fuses = FuseTarget(world.descriptor_hash, ecc_revoked=ecc, pqc_revoked=pqc)
    return DesiredState.build(
        fleet.node_class("node-7"), version, fuses=fuses, fleet=fleet.identity()
    )


@pytest.mark.parametrize(
    ("ecc", "pqc", "detail"),
    [
        (
            0b0010,
            0b1010,
            "version 2 of class node-7's desired state does not revoke vendor ECC key(s) 2, "
            "which version 1 in force revokes: a revocation fuse is never un-blown and a "
            "revoked vendor key stays revoked (keep its bit in ecc_revoked)",
        ),
        (
            0b0110,
            0b0010,
            "version 2 of class node-7's desired state does not revoke vendor PQC key(s) 3, "
            "which version 1 in force revokes: a revocation fuse is never un-blown and a "
            "revoked vendor key stays revoked (keep its bit in pqc_revoked)",
        ),
    ],
    ids=["ecc", "pqc"],
)
def test_a_later_version_that_clears_a_revoked_key_is_refused(
    world: World, ops: Ops, fleet: Fleet, ecc: int, pqc: int, detail: str
) -> None:
    """Fuses cannot be un-blown: a later version whose mask clears a bit the version in force
    sets would un-revoke a vendor key (nodes admitted or rolled out against it could boot
    firmware signed with it again), refused at publish as a lower version is."""
    s = store(fleet, ops)
    s.publish(
        "node-7", ops.approve(_revoking(world, fleet, 1, 0b0110, 0b1010), ALICE, BOB), now=NOW
    )
    lowered = _revoking(world, fleet, 2, ecc, pqc)
    with pytest.raises(PolicyRejected) as info:
        s.publish("node-7", ops.sign(lowered, ALICE, BOB), now=NOW, registrar=ops.log)
    assert (info.value.code, info.value.detail) == ("revocation-lowered", detail)
    # the same refusal before any receipt (check_approvals), and the class stays at v1
    current = s.current("node-7", now=NOW).state
    with pytest.raises(PolicyRejected) as info:
        check_approvals(
            ops.sign(lowered, ALICE, BOB),
            ops.governance(),
            fleet=fleet.identity(),
            current=current,
            now=NOW,
        )
    assert (info.value.code, info.value.detail) == ("revocation-lowered", detail)
    assert s.history("node-7") == [1]
    assert s.version("node-7") == 1


def test_a_later_version_may_revoke_more_vendor_keys(world: World, ops: Ops, fleet: Fleet) -> None:
    s = store(fleet, ops)
    s.publish(
        "node-7", ops.approve(_revoking(world, fleet, 1, 0b0010, 0b0010), ALICE, BOB), now=NOW
    )
    v2 = _revoking(world, fleet, 2, 0b0110, 1 << 31 | 0b0010)
    assert s.publish("node-7", ops.approve(v2, ALICE, BOB), now=NOW).state == v2
    v3 = _revoking(world, fleet, 3, 0b0110, 1 << 31 | 0b0010)  # the same masks: kept
    assert s.publish("node-7", ops.approve(v3, ALICE, BOB), now=NOW).state == v3
    assert s.history("node-7") == [1, 2, 3]
    assert s.current("node-7", now=NOW).state.fuses.pqc_revoked == 1 << 31 | 0b0010
