"""An HSM audit chain in a hostile bundle: the work of checking it grows with the chain and
the checkpoints, never with their product."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.audit.audit_world import NODE, AuditWorld, audit_world, install_node_hsm
from tests.platform.node_world import NOW

from ironroot.audit import check_bundle
from ironroot.hsm import AuditRecord, format_audit_log, parse_audit_log


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-hsm-bounds"))


def test_copies_of_a_checkpoint_do_not_walk_the_chain_again(
    aw: AuditWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records chained after the one genuine signed checkpoint (no key needed: only a hash
    chain) and copies of that checkpoint under other names: each copy walked the whole chain
    again — a thousand copies and millions of records, billions of hashes. Each is compared
    with the chain once verified now."""
    key = install_node_hsm(aw, NOW)
    export = aw.collect()
    records = list(parse_audit_log(export.members["hsm/audit.jsonl"][0]))
    for _ in range(1000):
        last = records[-1]
        records.append(
            AuditRecord(last.seq + 1, last.time, "service", "sign", None, "ok", last.digest())
        )
    checkpoint = export.members["hsm/checkpoint-0.cose"]
    copies = {f"hsm/checkpoint-{n}.cose": checkpoint for n in range(1, 101)}
    members = {"hsm/audit.jsonl": (format_audit_log(records), "application/jsonl"), **copies}
    data = export.replace(members=members).seal(aw.fleet.rot(NODE))

    hashed = 0
    digest = AuditRecord.digest

    def counted(record: AuditRecord) -> bytes:
        nonlocal hashed
        hashed += 1
        return digest(record)

    monkeypatch.setattr(AuditRecord, "digest", counted)
    step = check_bundle(data, aw.trust(hsm_attestation_keys=(key,))).step("hsm")
    assert step.status == "ok", step.error
    assert sum("reaches hsm/checkpoint-" in line for line in step.lines) == 101
    assert hashed <= len(records) + 2 * 101
