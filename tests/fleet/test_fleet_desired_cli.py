"""``ironroot fleet desired init|sign|publish|show``, ``fleet reconcile`` and ``fleet rollout``
from the command line, against a live operator log."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.desired_world import ALICE, BOB, CAROL, Ops, make_ops
from tests.fleet.fleet_world import make_fleet
from tests.platform.node_world import NOW, World, make_world

from ironroot.cli import main
from ironroot.fleet import DesiredState, DesiredStore, FuseTarget, sign_desired

AT = ["--at", "2026-06-01T12:00:00Z"]  # node_world.NOW


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("desired-cli-world")) as w:
        yield w


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    with make_ops(tmp_path_factory.mktemp("desired-cli-ops")) as o:
        yield o


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_desired_state_reconcile_and_rollout_from_the_cli(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    f = ["--fleet", str(fleet.directory)]
    for iss, name in ((ALICE, "alice"), (BOB, "bob")):
        (tmp_path / f"{name}.key").write_bytes(ops.keys[iss].to_pem())
        (tmp_path / f"{name}.pub.pem").write_bytes(ops.keys[iss].public_key.to_pem())
    (tmp_path / "ops-keys.cbor").write_bytes(ops.log.service_keys_bytes())
    signers = ["--signer", f"{ALICE}={tmp_path / 'alice.pub.pem'}"]
    signers += ["--signer", f"{BOB}={tmp_path / 'bob.pub.pem'}"]
    keys = ["--service-keys", str(tmp_path / "ops-keys.cbor")]
    code, out = run(capsys, "fleet", "desired", "init", *f, *signers, "--required", "2", *keys)
    assert code == 0
    assert out["class"] == "node-7"
    code, out = run(capsys, "fleet", "desired", "init", *f, *signers, *keys)
    assert (code, out["error"]["code"]) == (1, "conflict")  # type: ignore[index]

    releases = tmp_path / "releases"
    releases.mkdir()
    host = world.release("host", "2.0")
    (releases / "host-2.0.bin").write_bytes(host.bundle)
    (releases / "host-2.0.manifest.ts").write_bytes(host.statements[0])
    (tmp_path / "desired.toml").write_text(
        'version = 1\nnote = "host 2.0"\n[firmware]\nhost = "releases/host-2.0.bin"\n'
        "[fuses]\nmin_svn = 3\n"
    )
    doc = str(tmp_path / "desired.toml")
    alice = str(tmp_path / "alice.cose")
    code, out = run(
        capsys, "fleet", "desired", "sign", doc, *f, "--key", str(tmp_path / "alice.key"),
        "--iss", ALICE, "--out", alice, *AT,
    )  # fmt: skip
    assert code == 0
    assert out["version"] == 1

    # Alice alone is one person: refused, with the exact code.
    code, out = run(
        capsys, "fleet", "desired", "publish", *f, "--statement", alice, "--url", ops.url, *AT
    )
    assert (code, out["error"]["code"]) == (1, "too-few-signers")  # type: ignore[index]
    # Bob signs now; both approvals are registered, verified, and the state is in force.
    code, out = run(
        capsys, "fleet", "desired", "publish", doc, *f, "--statement", alice,
        "--sign", f"{BOB}={tmp_path / 'bob.key'}", "--url", ops.url, *AT,
    )  # fmt: skip
    assert code == 0
    assert out["signers"] == [ALICE, BOB]
    code, out = run(capsys, "fleet", "desired", "show", *f)
    assert code == 0
    assert out["history"] == [1]
    assert out["desired"]["firmware"]["host"]["version"] == "2.0"  # type: ignore[index]

    # Both nodes run host 1.0: drift, exit 1.
    code, out = run(capsys, "fleet", "reconcile", *f, *AT)
    assert code == 1
    assert out["ok"] is False
    assert out["drifted"] == ["node-0001", "node-0002"]

    code, out = run(capsys, "fleet", "rollout", *f, "--releases", str(releases), *AT)
    assert code == 0
    assert out["counts"]["updated"] == 2  # type: ignore[index]
    assert out["waves"] == 2

    assert main(["fleet", "reconcile", *f, "--measure", *AT]) == 0
    assert "in sync" in capsys.readouterr().out
    assert main(["fleet", "rollout", *f, *AT]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert main(["fleet", "desired", "show", *f]) == 0
    assert "approved by" in capsys.readouterr().out


def test_rollout_that_stops_exits_1_with_its_report(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 2)
    f = ["--fleet", str(fleet.directory)]
    (tmp_path / "alice.pub.pem").write_bytes(ops.keys[ALICE].public_key.to_pem())
    (tmp_path / "alice.key").write_bytes(ops.keys[ALICE].to_pem())
    (tmp_path / "ops-keys.cbor").write_bytes(ops.log.service_keys_bytes())
    assert main([
        "fleet", "desired", "init", *f, "--signer", f"{ALICE}={tmp_path / 'alice.pub.pem'}",
        "--required", "1", "--service-keys", str(tmp_path / "ops-keys.cbor"),
    ]) == 0  # fmt: skip
    releases = tmp_path / "releases"
    releases.mkdir()
    nvme = world.release("nvme", "2.0")
    (releases / "nvme-2.0.bin").write_bytes(nvme.bundle)
    for i, s in enumerate(nvme.statements):
        (releases / f"nvme-2.0.{i}.ts").write_bytes(s)
    (tmp_path / "desired.toml").write_text(
        'version = 1\n[firmware]\nnvme = "releases/nvme-2.0.bin"\n'
    )
    assert main([
        "fleet", "desired", "publish", str(tmp_path / "desired.toml"), *f,
        "--sign", f"{ALICE}={tmp_path / 'alice.key'}", "--url", ops.url, *AT,
    ]) == 0  # fmt: skip
    capsys.readouterr()
    code = main([
        "fleet", "rollout", *f, "--releases", str(releases), "--wave-size", "2",
        "--inject", "node-0001=fail-health", *AT,
    ])  # fmt: skip
    assert code == 1
    out = capsys.readouterr().out
    assert "rolled-back" in out
    assert "stopped at node-0001" in out
    assert "not-reached" in out
    events_before = fleet.events()[-1]
    # an empty --class is no class (not the fleet's first); a fault for a node the rollout
    # does not cover is refused, not dropped: both before anything changes
    for extra, detail in (
        (["--class", ""], "no node class ''"),
        (
            ["--node", "node-0002", "--inject", "node-0001=fail-health"],
            "a fault is injected only in a node the rollout covers: node-0001 is not",
        ),
    ):
        code = main(["fleet", "rollout", *f, "--releases", str(releases), *extra, *AT])
        assert code in (1, 2), extra
        assert detail in capsys.readouterr().err, extra
    assert fleet.events()[-1] == events_before
    # A power-loss drill stops the rollout as `platform update --inject` does: exit 1 and the
    # error power-lost, not a PowerLost traceback out of main.
    code, out = run(
        capsys,
        "fleet", "rollout", *f, "--releases", str(releases), "--inject", "node-0001=write", *AT,
    )  # fmt: skip
    assert code == 1
    assert out["error"]["code"] == "power-lost"  # type: ignore[index]
    # The next rollout reports the node the drill cut short (RolloutReport.interrupted): the
    # table and summary of the text output left it out, and the marker is gone once reported.
    for reported in (True, False):  # reported once
        main(["fleet", "rollout", *f, "--releases", str(releases), *AT])
        out = " ".join(capsys.readouterr().out.split())
        assert ("interrupted earlier: node-0001 (an earlier rollout" in out) is reported, out
        assert ("node-0001 │ failed (interrupted" in out) is reported, out


def test_text_in_the_tables_is_shown_not_read_as_rich_markup(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A note (signed text) or a fleet path with "[/bold]" in it made `desired show` and
    # `reconcile` fail with internal-error (rich's MarkupError) instead of printing it.
    fleet, _ = make_fleet(world, tmp_path / "fl[/bold]eet", 1)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    note = "host [/bold] back to [red]1.0[/red]"
    state = DesiredState.build(fleet.node_class("node-7"), 1, note=note, fleet=fleet.identity())
    store.publish("node-7", ops.approve(state, ALICE, BOB), now=NOW)
    f = ["--fleet", str(fleet.directory)]
    assert main(["fleet", "desired", "show", *f]) == 0
    assert note in capsys.readouterr().out
    assert main(["fleet", "reconcile", *f, *AT]) == 0
    assert "in sync" in capsys.readouterr().out
    assert main(["fleet", "rollout", *f, *AT]) == 0
    assert "1 skipped" in capsys.readouterr().out


def test_desired_show_lists_the_revoked_vendor_keys(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    fuses = FuseTarget(world.descriptor_hash, pqc_revoked=0b1010)
    state = DesiredState.build(fleet.node_class("node-7"), 1, fuses=fuses, fleet=fleet.identity())
    store.publish("node-7", ops.approve(state, ALICE, BOB), now=NOW)
    assert main(["fleet", "desired", "show", "--fleet", str(fleet.directory)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"fuse:ecc-revoked\s+│\s+none required", out)
    assert re.search(r"fuse:pqc-revoked\s+│\s+revokes 1, 3", out)
    code, doc = run(capsys, "fleet", "desired", "show", "--fleet", str(fleet.directory))
    assert code == 0
    shown = doc["desired"]["fuses"]  # type: ignore[index]
    assert (shown["ecc_revoked"], shown["pqc_revoked"]) == (0, 0b1010)


def test_desired_show_at_a_time_judges_the_approvals_then(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``desired show`` had no ``--at`` (the library judges the state at a time, and
    ``reconcile``/``rollout --at`` act on it so): it is the state they act on at TIME, and
    not in force once an approval expired."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    state = DesiredState.build(fleet.node_class("node-7"), 1, fleet=fleet.identity())
    exp = NOW + dt.timedelta(days=3650)  # after the wall clock: the log registers it
    approvals = [
        sign_desired(state, ops.keys[iss], iss=iss, iat=NOW, exp=exp) for iss in (ALICE, BOB)
    ]
    store.publish("node-7", approvals, now=NOW, registrar=ops.log)
    f = ["--fleet", str(fleet.directory)]
    for at in ([], AT, ["--at", (exp - dt.timedelta(seconds=1)).isoformat()]):
        code, out = run(capsys, "fleet", "desired", "show", *f, *at)
        assert (code, out["desired"]["version"]) == (0, 1), at  # type: ignore[index]
    code, out = run(capsys, "fleet", "desired", "show", *f, "--at", exp.isoformat())
    assert code == 1
    assert out["error"]["code"] == "statement-expired"  # type: ignore[index]
    assert main(["fleet", "desired", "show", *f, "--at", exp.isoformat()]) == 1
    assert "statement-expired" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # a usage error, as every --at
        main(["fleet", "desired", "show", *f, "--at", "yesterday"])
    assert info.value.code == 2
    assert "is not a time" in capsys.readouterr().err


def test_desired_init_service_issuer_pins_the_operator_log(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    f = ["--fleet", str(fleet.directory)]
    (tmp_path / "alice.pub.pem").write_bytes(ops.keys[ALICE].public_key.to_pem())
    (tmp_path / "alice.key").write_bytes(ops.keys[ALICE].to_pem())
    (tmp_path / "ops-keys.cbor").write_bytes(ops.log.service_keys_bytes())
    other = "https://another-ts.example"  # not the operator log's issuer
    code, out = run(
        capsys, "fleet", "desired", "init", *f, "--signer", f"{ALICE}={tmp_path / 'alice.pub.pem'}",
        "--required", "1", "--service-keys", str(tmp_path / "ops-keys.cbor"),
        "--service-issuer", other,
    )  # fmt: skip
    assert code == 0
    assert out["governance"]["service_issuer"] == other  # type: ignore[index]
    (tmp_path / "desired.toml").write_text("version = 1\n[fuses]\nmin_svn = 3\n")
    code, out = run(
        capsys, "fleet", "desired", "publish", str(tmp_path / "desired.toml"), *f,
        "--sign", f"{ALICE}={tmp_path / 'alice.key'}", "--url", ops.url, *AT,
    )  # fmt: skip
    assert (code, out["error"]["code"]) == (1, "untrusted-service")  # type: ignore[index]
    assert DesiredStore(fleet).version("node-7") == 0


def test_approvers_are_revoked_by_a_governed_change_from_the_cli(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    f = ["--fleet", str(fleet.directory)]
    people = ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"))
    for iss, name in people:
        (tmp_path / f"{name}.key").write_bytes(ops.keys[iss].to_pem())
        (tmp_path / f"{name}.pub.pem").write_bytes(ops.keys[iss].public_key.to_pem())
    (tmp_path / "ops-keys.cbor").write_bytes(ops.log.service_keys_bytes())
    signers = [a for iss, n in people for a in ("--signer", f"{iss}={tmp_path / n}.pub.pem")]
    keys = ["--service-keys", str(tmp_path / "ops-keys.cbor")]
    assert run(capsys, "fleet", "desired", "init", *f, *signers, "--required", "2", *keys)[0] == 0
    bob = str(tmp_path / "bob.cose")
    code, out = run(
        capsys, "fleet", "desired", "approver-sign", *f, "--revoke", ALICE,
        "--key", str(tmp_path / "bob.key"), "--iss", BOB, "--out", bob, *AT,
    )  # fmt: skip
    assert (code, out["action"], out["epoch"]) == (0, "revoke", 1)
    # Bob alone is below the quorum: refused, nothing changes
    code, out = run(
        capsys, "fleet", "desired", "approver-apply", *f, "--revoke", ALICE,
        "--statement", bob, "--url", ops.url, *AT,
    )  # fmt: skip
    assert (code, out["error"]["code"]) == (1, "too-few-signers")  # type: ignore[index]
    code, out = run(
        capsys, "fleet", "desired", "approver-apply", *f, "--revoke", ALICE,
        "--statement", bob, "--sign", f"{CAROL}={tmp_path / 'carol.key'}", "--url", ops.url, *AT,
    )  # fmt: skip
    assert code == 0
    assert out["signers"] == [BOB, CAROL]
    code, out = run(capsys, "fleet", "desired", "approvers", *f)
    assert code == 0
    assert out["epoch"] == 2
    assert [a["iss"] for a in out["approvers"]] == [BOB, CAROL]  # type: ignore[union-attr]
    assert [(r["iss"], r["epoch"]) for r in out["revoked"]] == [(ALICE, 2)]  # type: ignore[union-attr]
    code, out = run(capsys, "fleet", "events", *f, "--kind", "desired-governance")
    assert [e["detail"]["epoch"] for e in out["events"]] == [2]  # type: ignore[union-attr,index]
    # the last approvers are never removed below the quorum
    code, out = run(
        capsys, "fleet", "desired", "approver-apply", *f, "--revoke", BOB,
        "--sign", f"{BOB}={tmp_path / 'bob.key'}", "--sign", f"{CAROL}={tmp_path / 'carol.key'}",
        "--url", ops.url, *AT,
    )  # fmt: skip
    assert (code, out["error"]["code"]) == (1, "below-quorum")  # type: ignore[index]
    # Alice's approval counts no more: a desired state she co-signs is refused
    (tmp_path / "desired.toml").write_text("version = 1\n")
    doc = str(tmp_path / "desired.toml")
    code, out = run(
        capsys, "fleet", "desired", "publish", doc, *f,
        "--sign", f"{ALICE}={tmp_path / 'alice.key'}",
        "--sign", f"{BOB}={tmp_path / 'bob.key'}", "--url", ops.url, *AT,
    )  # fmt: skip
    assert (code, out["error"]["code"]) == (1, "signer-revoked")  # type: ignore[index]
    code, out = run(
        capsys, "fleet", "desired", "publish", doc, *f,
        "--sign", f"{CAROL}={tmp_path / 'carol.key'}",
        "--sign", f"{BOB}={tmp_path / 'bob.key'}", "--url", ops.url, *AT,
    )  # fmt: skip
    assert code == 0
    code, out = run(capsys, "fleet", "desired", "show", *f, *AT)
    assert out["governance"]["epoch"] == 2  # type: ignore[index]
    assert main(["fleet", "desired", "show", *f, *AT]) == 0
    assert "approvers now (governance epoch 2, 2 per change)" in " ".join(
        capsys.readouterr().out.split()
    )


def test_the_quorum_and_the_services_are_governed_changes_from_the_cli(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    f = ["--fleet", str(fleet.directory)]
    people = ((ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"))
    for iss, name in people:
        (tmp_path / f"{name}.key").write_bytes(ops.keys[iss].to_pem())
        (tmp_path / f"{name}.pub.pem").write_bytes(ops.keys[iss].public_key.to_pem())
    (tmp_path / "ops-keys.cbor").write_bytes(ops.log.service_keys_bytes())
    (tmp_path / "new-keys.cbor").write_bytes(ops.rogue.service_keys_bytes())
    signers = [a for iss, n in people for a in ("--signer", f"{iss}={tmp_path / n}.pub.pem")]
    keys = ["--service-keys", str(tmp_path / "ops-keys.cbor")]
    assert run(capsys, "fleet", "desired", "init", *f, *signers, "--required", "2", *keys)[0] == 0
    sign = {n: f"{iss}={tmp_path / n}.key" for iss, n in people}
    (tmp_path / "desired.toml").write_text("version = 1\n")
    code, _ = run(
        capsys, "fleet", "desired", "publish", str(tmp_path / "desired.toml"), *f,
        "--sign", sign["alice"], "--sign", sign["bob"], "--url", ops.url, *AT,
    )  # fmt: skip
    assert code == 0
    apply = ["fleet", "desired", "approver-apply", *f, "--url", ops.url, *AT]
    # one operator cannot lower the quorum to 1: the quorum in force (2) approves it
    bob = str(tmp_path / "bob.cose")
    code, out = run(
        capsys, "fleet", "desired", "approver-sign", *f, "--required", "1",
        "--key", str(tmp_path / "bob.key"), "--iss", BOB, "--out", bob, *AT,
    )  # fmt: skip
    assert (code, out["action"], out["required"]) == (0, "set", 1)
    code, out = run(capsys, *apply, "--required", "1", "--statement", bob)
    assert (code, out["error"]["code"]) == (1, "too-few-signers")  # type: ignore[index]
    two = ["--sign", sign["alice"], "--sign", sign["bob"]]
    for required, error in (("0", "invalid-quorum"), ("4", "invalid-quorum"),
                            ("2", "governance-unchanged")):  # fmt: skip
        code, out = run(capsys, *apply, "--required", required, *two)
        assert (code, out["error"]["code"]) == (1, error)  # type: ignore[index]
    code, out = run(capsys, *apply, *two)  # a change of nothing at all
    assert (code, out["error"]["code"]) == (2, "config")  # type: ignore[index]
    code, out = run(capsys, *apply, "--required", "3", *two)
    assert code == 0
    assert out["governance"]["quorum"] == {"required": 3, "epoch": 2}  # type: ignore[index]
    # the state in force stays in force; show names the quorum and the epoch it was set at
    code, out = run(capsys, "fleet", "desired", "show", *f, *AT)
    assert code == 0
    assert out["desired"]["version"] == 1  # type: ignore[index]
    assert out["governance"]["quorum"] == {"required": 3, "epoch": 2}  # type: ignore[index]
    assert main(["fleet", "desired", "show", *f, *AT]) == 0
    assert "quorum 3 of 3 since governance epoch 2" in " ".join(capsys.readouterr().out.split())
    # the trusted services: approved by the quorum (3 now) on the services in force
    three = [*two, "--sign", sign["carol"]]
    code, out = run(capsys, *apply, "--service-keys", str(tmp_path / "new-keys.cbor"), *three)
    assert code == 0
    new = sorted(ops.rogue.service_keys())
    assert sorted(out["governance"]["service_kids"]) == [k.hex() for k in new]  # type: ignore[index]
    code, out = run(capsys, "fleet", "desired", "approvers", *f)
    assert (out["epoch"], out["quorum"]) == (3, {"required": 3, "epoch": 2})


def test_desired_show_refuses_an_edited_first_governance(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old behaviour: ``governance.json`` edited to a quorum of 1 was shown (and enforced) as
    the class's governance. ``desired show`` exits 1 with ``governance-altered``."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    state = DesiredState.build(fleet.node_class("node-7"), 1, fleet=fleet.identity())
    store.publish("node-7", ops.sign(state, ALICE, BOB), now=NOW, registrar=ops.log)
    path = store.directory / "node-7" / "governance.json"
    doc = json.loads(path.read_bytes())
    doc["required"] = 1
    path.write_text(json.dumps(doc, indent=2))
    f = ["--fleet", str(fleet.directory)]
    code, out = run(capsys, "fleet", "desired", "show", *f, *AT)
    assert (code, out["error"]["code"]) == (1, "governance-altered")  # type: ignore[index]
    assert main(["fleet", "desired", "show", *f, *AT]) == 1
    err = capsys.readouterr().err
    assert "governance-altered" in err
    assert "is not the one the fleet's log pinned at `ironroot fleet desired init`" in err


def test_desired_publish_refuses_a_version_that_clears_a_revoked_key(
    world: World, ops: Ops, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``fleet desired publish`` of a later version whose mask clears a bit the version in
    force sets exits 1 with ``revocation-lowered``; nothing is put in force."""
    fleet, _ = make_fleet(world, tmp_path / "fleet", 1)
    store = DesiredStore(fleet)
    store.init(ops.governance())
    fuses = FuseTarget(world.descriptor_hash, ecc_revoked=0b0100)
    state = DesiredState.build(fleet.node_class("node-7"), 1, fuses=fuses, fleet=fleet.identity())
    store.publish("node-7", ops.approve(state, ALICE, BOB), now=NOW)
    for iss, name in ((ALICE, "alice"), (BOB, "bob")):
        (tmp_path / f"{name}.key").write_bytes(ops.keys[iss].to_pem())
    doc = tmp_path / "desired.toml"
    doc.write_text("version = 2\n[fuses]\necc_revoked = 0x2\n")
    f = ["--fleet", str(fleet.directory)]
    publish = [
        "fleet", "desired", "publish", str(doc), *f, "--sign", f"{ALICE}={tmp_path / 'alice.key'}",
        "--sign", f"{BOB}={tmp_path / 'bob.key'}", "--url", ops.url, *AT,
    ]  # fmt: skip
    detail = (
        "version 2 of class node-7's desired state does not revoke vendor ECC key(s) 2, which "
        "version 1 in force revokes: a revocation fuse is never un-blown and a revoked vendor "
        "key stays revoked (keep its bit in ecc_revoked)"
    )
    code, out = run(capsys, *publish)
    assert (code, out["error"]["code"]) == (1, "revocation-lowered")  # type: ignore[index]
    assert out["error"]["message"] == detail  # type: ignore[index]
    assert main(publish) == 1
    err = capsys.readouterr().err
    assert "revocation-lowered" in err
    assert detail in err
    assert store.history("node-7") == [1]
    # keeping key 2 revoked (and revoking key 1 too) is a change like any other
    doc.write_text("version = 2\n[fuses]\necc_revoked = 0x6\n")
    code, out = run(capsys, *publish)
    assert (code, out["desired"]["version"]) == (0, 2)  # type: ignore[index]
    assert store.current("node-7", now=NOW).state.fuses.ecc_revoked == 0b0110
