"""The HSM's audit records are the node's HSM's: bound by signed data, not the bundle's word.

The HSM and the node share no identifier in what either signs: the HSM's id is random, its
signed audit checkpoints name only it, and the RoT's quote names nothing of the HSM. So a
bundle of node A carrying node B's HSM audit chain and signed checkpoint (both HSMs' keys
trusted by an auditor of the fleet), sealed by A's own RoT, verified as A's. The binding is
the HSM's attestation chain, exported from ``<node>/hsm/attestation-chain.pem``: its device
certificate is a DPE child of the node's RoT (as the demo's HSM is of its machine's), so it
reaches the vendor CA through the IDevID the seal was signed under."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world, install_node_hsm
from tests.platform.node_world import NOW

from ironroot.audit import AuditExport, AuditReport, check_bundle
from ironroot.cli import main
from ironroot.crypto import PublicKey
from ironroot.errors import VerificationFailed

OTHER = "node-0002"
CHAIN = "hsm/attestation-chain.pem"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-hsm-binding"))


@pytest.fixture(scope="module")
def keys(aw: AuditWorld) -> tuple[PublicKey, PublicKey]:
    """Node A's HSM and node B's, each a DPE child of its node's RoT."""
    (other,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=NOW)
    assert other == OTHER
    return (
        install_node_hsm(aw, NOW, bound=True),
        install_node_hsm(aw, NOW, node_id=OTHER, bound=True),
    )


@pytest.fixture(scope="module")
def collected(aw: AuditWorld, keys: tuple[PublicKey, PublicKey]) -> AuditExport:
    return aw.collect()


def _other_hsm(aw: AuditWorld) -> dict[str, tuple[bytes, str] | None]:
    """Node B's HSM files, as node A's bundle members."""
    hsm = aw.fleet.directory / "nodes" / OTHER / "hsm"
    return {
        "hsm/audit.jsonl": ((hsm / "audit.jsonl").read_bytes(), "application/jsonl"),
        "hsm/checkpoint-0.cose": (
            (hsm / "checkpoints" / "0.cose").read_bytes(),
            "application/cose",
        ),
        CHAIN: ((hsm / "attestation-chain.pem").read_bytes(), "application/pem-certificate-chain"),
    }


def _check(
    aw: AuditWorld, export: AuditExport, keys: tuple[PublicKey, ...], **trust: object
) -> AuditReport:
    data = export.seal(aw.fleet.rot(NODE))
    return check_bundle(data, aw.trust(hsm_attestation_keys=keys, **trust))


def test_the_node_s_own_hsm_is_bound_to_its_rot(
    aw: AuditWorld, collected: AuditExport, keys: tuple[PublicKey, PublicKey]
) -> None:
    assert CHAIN in collected.members
    report = _check(aw, collected, keys, require_hsm_node_binding=True)
    step = report.step("hsm")
    assert step.status == "ok", step.error
    assert any(
        line.startswith("the HSM ")
        and "is the node's: its attestation key" in line
        and "a DPE child of the sealing RoT" in line
        for line in step.lines
    )
    assert not any(c.startswith("HSM records:") for c in report.caveats)


def test_another_node_s_hsm_records_are_refused(
    aw: AuditWorld, collected: AuditExport, keys: tuple[PublicKey, PublicKey]
) -> None:
    """Node B's audit chain, signed checkpoint and attestation chain in node A's bundle,
    sealed by A's RoT: every signature holds, and the chain names B's RoT."""
    report = _check(aw, collected.replace(members=_other_hsm(aw)), keys)
    error = report.step("hsm").error
    assert error is not None
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "hsm-other-node",
        "hsm",
    )
    assert "not by the RoT that sealed the bundle" in error.detail


def test_another_node_s_hsm_records_without_their_chain_are_unbound(
    aw: AuditWorld, collected: AuditExport, keys: tuple[PublicKey, PublicKey]
) -> None:
    """Left without the chain that names B's RoT, the records verify, and the report says
    nothing signed ties them to the node; a trust that requires the binding refuses them."""
    members = {**_other_hsm(aw), CHAIN: None}
    spliced = collected.replace(members=members, absent={CHAIN: "left out"})
    report = _check(aw, spliced, keys)
    assert report.step("hsm").status == "ok"
    unbound = (
        "nothing signed binds the HSM to the node's RoT (left out): its records could be "
        "another node's HSM's"
    )
    assert unbound in report.step("hsm").lines
    assert f"HSM records: {unbound}" in report.caveats
    strict = _check(aw, spliced, keys, require_hsm_node_binding=True)
    error = strict.step("hsm").error
    assert error is not None
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "hsm-not-bound",
        "hsm:node-binding",
    )


def test_the_chain_of_another_hsm_is_refused(
    aw: AuditWorld, collected: AuditExport, keys: tuple[PublicKey, PublicKey]
) -> None:
    """B's records and checkpoint with A's attestation chain: the chain names another HSM."""
    other = _other_hsm(aw)
    spliced = collected.replace(
        members={n: other[n] for n in ("hsm/audit.jsonl", "hsm/checkpoint-0.cose")}
    )
    error = _check(aw, spliced, keys).step("hsm").error
    assert error is not None
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "hsm-chain-mismatch",
        "hsm",
    )


def test_an_hsm_of_a_self_signed_device_is_unbound(tmp_path: Path) -> None:
    """An HSM whose device chain reaches no trusted vendor CA (not a DPE child of any RoT)
    is reported unbound, and refused where the trust requires the binding."""
    for world in audit_world(tmp_path):
        key = install_node_hsm(world, NOW, chain_file=True)
        export = world.collect()
        report = _check(world, export, (key,))
        assert report.step("hsm").status == "ok"
        assert any(
            "reaches no trusted vendor CA (its device is not a DPE child of a root of trust" in line
            for line in report.step("hsm").lines
        )
        error = _check(world, export, (key,), require_hsm_node_binding=True).step("hsm").error
        assert error is not None
        assert (type(error), error.code) == (VerificationFailed, "hsm-not-bound")


def test_an_hsm_certified_by_another_dpe_child_of_the_rot_is_unbound(tmp_path: Path) -> None:
    """Any DPE child of the RoT can certify a key (a VM's identity holds its own child key):
    only the child for the RoT's HSM layer binds an HSM to the node."""
    for world in audit_world(tmp_path):
        key = install_node_hsm(world, NOW, bound=True, label="cvm")
        report = _check(world, world.collect(), (key,))
        assert report.step("hsm").status == "ok"
        assert any(
            "is certified by the sealing RoT for 'cvm', not for its HSM layer ('hsm')" in line
            for line in report.step("hsm").lines
        )
        assert any(c.startswith("HSM records: nothing signed binds") for c in report.caveats)


def test_the_requirement_on_the_command_line(
    aw: AuditWorld,
    collected: AuditExport,
    keys: tuple[PublicKey, PublicKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``audit verify --require-hsm-node-binding`` is ``[hsm] require_node_binding = true``:
    a bundle whose HSM nothing binds to the node exits 1 naming ``hsm-not-bound``; the
    node's own HSM passes, and without the flag the unbound one is only reported."""
    trust_file = aw.write_trust(tmp_path / "auditor")
    for number, key in enumerate(keys):
        (trust_file.parent / f"hsm-{number}.pub.pem").write_bytes(key.to_pem())
    trust_file.write_text(
        trust_file.read_text() + '\n[hsm]\nattestation_keys = ["hsm-0.pub.pem", "hsm-1.pub.pem"]\n'
    )
    bound = tmp_path / "bound.audit"
    bound.write_bytes(collected.seal(aw.fleet.rot(NODE)))
    spliced = collected.replace(members={**_other_hsm(aw), CHAIN: None}, absent={CHAIN: "left out"})
    unbound = tmp_path / "unbound.audit"
    unbound.write_bytes(spliced.seal(aw.fleet.rot(NODE)))
    argv = ["audit", "verify", "--trust", str(trust_file), "--json"]
    flag = "--require-hsm-node-binding"
    capsys.readouterr()
    assert main([*argv, str(bound), flag]) == 0
    assert main([*argv, str(unbound)]) == 0
    capsys.readouterr()
    assert main([*argv, str(unbound), flag]) == 1
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    detail = (
        "nothing signed binds the HSM to the node's RoT (left out): its records could be "
        "another node's HSM's, and the trust requires the HSM bound to the node"
    )
    assert error == {
        "code": "hsm-not-bound",
        "class": "VerificationFailed",
        "message": detail,
        "check": "hsm:node-binding",
    }
    assert captured.err == f"ironroot: hsm-not-bound: hsm: {detail}\n"
