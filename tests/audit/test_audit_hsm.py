"""A node with an HSM: its audit chain, its signed audit checkpoint and its key release
records travel in the bundle; a rewritten chain and a checkpoint by an untrusted key fail."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world, install_node_hsm
from tests.platform.node_world import NOW

from ironroot.audit import AuditBundle, verify_bundle
from ironroot.crypto import PublicKey
from ironroot.errors import AuditChainBroken, IronrootError, UnknownIssuer
from ironroot.fleet import ADMISSION_DIR
from ironroot.hsm import AuditRecord, format_audit_log, parse_audit_log


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-hsm"))


@pytest.fixture(scope="module")
def hsm_key(aw: AuditWorld) -> PublicKey:
    """An HSM in the node (keyed to its RoT), one refused key release, a signed checkpoint."""
    return install_node_hsm(aw, NOW)


def test_the_hsm_audit_chain_and_key_releases_are_verified(
    aw: AuditWorld, hsm_key: PublicKey
) -> None:
    bundle = aw.export()
    members = AuditBundle.parse(bundle).members
    assert {"hsm/audit.jsonl", "hsm/checkpoint-0.cose"} <= set(members)
    step = verify_bundle(bundle, aw.trust(hsm_attestation_keys=(hsm_key,))).step("hsm")
    assert step.status == "ok"
    assert step.lines[0].startswith("audit chain of ")
    assert "reaches hsm/checkpoint-0.cose" in step.lines[1]
    assert step.lines[2] == (  # a self-signed HSM device, and no attestation chain exported
        "nothing signed binds the HSM to the node's RoT (the node's hsm/attestation-chain.pem "
        "does not exist; ironroot hsm info --chain-out writes it): its records could be "
        "another node's HSM's"
    )
    assert step.lines[3] == "1 key release record(s)"
    when, who, what = step.lines[4].split(" ", 2)
    assert (when, who) == ("2026-06-01T12:00:00Z", "service")
    assert what.startswith("release of ")
    assert what.endswith(": nonce-unknown")  # the refusal's code, as the HSM audited it


def test_a_rewritten_audit_record_breaks_the_chain(aw: AuditWorld, hsm_key: PublicKey) -> None:
    export = aw.collect()
    log = export.members["hsm/audit.jsonl"][0]
    records = [json.loads(line) for line in log.splitlines()]
    release = next(r for r in records if r["operation"] == "release")
    release["result"] = "ok"  # a refused release made to look granted
    rewritten = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
    data = export.replace(members={"hsm/audit.jsonl": (rewritten, "application/jsonl")}).seal(
        aw.fleet.rot(NODE)
    )
    with pytest.raises(IronrootError) as info:
        verify_bundle(data, aw.trust(hsm_attestation_keys=(hsm_key,)))
    assert (type(info.value), info.value.check) == (AuditChainBroken, "hsm")


def test_an_audit_checkpoint_by_an_untrusted_key_is_refused(
    aw: AuditWorld, hsm_key: PublicKey
) -> None:
    with pytest.raises(IronrootError) as info:
        verify_bundle(aw.export(), aw.trust())  # the trust names no HSM key
    assert (type(info.value), info.value.check) == (UnknownIssuer, "hsm")


def test_records_after_the_last_signed_checkpoint_are_reported_as_unvouched(
    aw: AuditWorld, hsm_key: PublicKey
) -> None:
    """The chain's hashes are public: a record added after the last signed checkpoint (or
    one rewritten there, or the tail cut) chains and verifies offline, and the report said
    the chain was intact with nothing else. It says now which records nothing signed vouches
    for, and marks the releases among them."""
    export = aw.collect()
    records = parse_audit_log(export.members["hsm/audit.jsonl"][0])
    last = records[-1]
    added = AuditRecord(
        last.seq + 1, last.time, "service", "release", "forged", "nonce-unknown", last.digest()
    )
    log = format_audit_log([*records, added])
    data = export.replace(members={"hsm/audit.jsonl": (log, "application/jsonl")}).seal(
        aw.fleet.rot(NODE)
    )
    step = verify_bundle(data, aw.trust(hsm_attestation_keys=(hsm_key,))).step("hsm")
    assert step.status == "ok"  # nothing offline can tell: the report says so
    assert (
        f"records {added.seq} to {added.seq} follow the last signed checkpoint: nothing signed "
        "vouches for them (rewritten, added or cut from the end, they would not show)"
    ) in step.lines
    assert step.lines[-1].endswith(
        "release of forged: nonce-unknown (after the last signed checkpoint)"
    )
    assert not step.lines[-2].endswith("(after the last signed checkpoint)")


@pytest.mark.parametrize("planted", ["checkpoints/1.cose", "audit-0-0.jsonl"])
def test_a_link_planted_in_the_node_s_hsm_directory_is_not_followed(
    aw: AuditWorld, hsm_key: PublicKey, planted: str
) -> None:
    """``<node>/hsm`` is the HSM's and its key service's data directory, not the operator's:
    a symbolic link planted there (to the fleet CA's private key) was followed by the export,
    and the key sealed into a bundle handed to an outside auditor. The HSM itself reads only
    regular files there; the export states the link absent instead."""
    hsm = aw.fleet.directory / "nodes" / NODE / "hsm"
    secret = aw.fleet.directory / ADMISSION_DIR / "ca.key.pem"
    link = hsm / planted
    link.symlink_to(secret)
    try:
        export = aw.collect()
    finally:
        link.unlink()
    name = "hsm/checkpoint-1.cose" if planted.startswith("checkpoints/") else f"hsm/{planted}"
    assert name not in export.members
    assert all(secret.read_bytes() not in data for data, _media in export.members.values())
    assert "not a regular file" in export.absent[name]
