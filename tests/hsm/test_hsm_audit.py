"""The audit log: every operation recorded, the chain detects removal, alteration and
reordering, checkpoints pin the tail, and the written log is what the HSM trusts at power-up."""

from __future__ import annotations

import dataclasses
import json

import pytest
from _hsm_helpers import FAST, NOW_TS, OFFICER, SECRET, USER, new_hsm, sessions
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import AuditChainBroken, BadSignature, LimitExceeded, MalformedInput
from ironroot.hsm import (
    AuditCheckpoint,
    AuditRecord,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    ReleaseBinding,
    format_audit_log,
    parse_audit_log,
    verify_audit,
    verify_audit_checkpoint,
)
from ironroot.hsm._audit import ZERO_HASH


def _chain(count: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    prev = ZERO_HASH
    for seq in range(count):
        record = AuditRecord(seq, 1000 + seq, "user", "sign", f"k{seq}", "ok", prev)
        prev = record.digest()
        records.append(record)
    return records


def test_record_hash_is_sha256_of_deterministic_cbor() -> None:
    import hashlib

    import cbor2

    record = AuditRecord(3, 1700000000, "alice", "sign", None, "ok", bytes(32))
    expected = cbor2.dumps([3, 1700000000, "alice", "sign", None, "ok", bytes(32)])
    assert record.digest() == hashlib.sha256(expected).digest()


def test_every_operation_is_audited(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    hsm.sign(user, handle, b"m")
    records = hsm.audit_records(auditor)
    verify_audit(records)
    summary = [(r.identity, r.operation, r.key, r.result) for r in records]
    assert summary[0] == (OFFICER, "initialize", None, "ok")
    assert (OFFICER, "generate", handle, "ok") in summary
    assert (USER, "sign", handle, "ok") in summary
    assert all(r.time == int(NOW_TS) for r in records)


@settings(max_examples=examples(30), deadline=None)
@given(count=st.integers(min_value=2, max_value=12), data=st.data())
def test_removed_altered_or_reordered_records_are_detected(count: int, data: st.DataObject) -> None:
    records = _chain(count)
    verify_audit(records)
    index = data.draw(st.integers(min_value=0, max_value=count - 1))
    removed = records[:index] + records[index + 1 :]
    if index != count - 1:  # removing the last record needs a checkpoint (below)
        with pytest.raises(AuditChainBroken):
            verify_audit(removed)
    field = data.draw(st.sampled_from(["time", "identity", "operation", "key", "result"]))
    value = {"time": 1, "identity": "mallory", "operation": "x", "key": "zz", "result": "no"}[field]
    altered = list(records)
    altered[index] = dataclasses.replace(records[index], **{field: value})
    if index != count - 1:
        with pytest.raises(AuditChainBroken):
            verify_audit(altered)
    other = data.draw(st.integers(min_value=0, max_value=count - 1).filter(lambda i: i != index))
    reordered = list(records)
    reordered[index], reordered[other] = reordered[other], reordered[index]
    with pytest.raises(AuditChainBroken):
        verify_audit(reordered)
    checkpoint = AuditCheckpoint(b"hsm", count, records[-1].digest(), 0)
    verify_audit(records, checkpoint=checkpoint)
    with pytest.raises(AuditChainBroken):
        verify_audit(removed if index == count - 1 else records[:-1], checkpoint=checkpoint)
    with pytest.raises(AuditChainBroken):
        verify_audit(altered, checkpoint=checkpoint)


def test_a_renumbered_log_is_detected() -> None:
    records = _chain(4)
    renumbered = [dataclasses.replace(r, seq=r.seq + 1) for r in records]
    with pytest.raises(AuditChainBroken):
        verify_audit(renumbered)
    fresh = [dataclasses.replace(records[0], prev=bytes([1]) * 32)]
    with pytest.raises(AuditChainBroken):
        verify_audit(fresh)


def test_checkpoint_statement_verifies(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    _, _, auditor = sessions(hsm)
    statement = hsm.audit_checkpoint(auditor)
    checkpoint = verify_audit_checkpoint(statement, hsm.attestation_public_key)
    assert checkpoint.hsm == hsm.hsm_id
    records = hsm.audit_records(auditor)
    verify_audit(records, checkpoint=checkpoint)
    assert checkpoint.size == len(records)  # the audit-read is recorded after it returns
    with pytest.raises(BadSignature):
        verify_audit_checkpoint(statement, PrivateKey.generate(Algorithm.ES384).public_key)
    with pytest.raises(AuditChainBroken):
        verify_audit(records[: checkpoint.size - 1], checkpoint=checkpoint)


def test_checkpoint_is_a_signed_statement_for_the_transparency_service(device: object) -> None:
    from ironroot.cose import SignedStatement

    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    _, _, auditor = sessions(hsm)
    parsed = SignedStatement.parse(hsm.audit_checkpoint(auditor))
    assert parsed.claims.iss == f"urn:ironroot:hsm:{hsm.hsm_id.hex()}"
    assert parsed.claims.sub == "hsm-audit-log"
    assert parsed.kid == hsm.attestation_public_key.kid
    parsed.sign1.verify(hsm.attestation_public_key)


def copy_of(storage: MemoryStorage, *, audit: bytes) -> MemoryStorage:
    """The same HSM (files and counter) with another audit log."""
    copy = MemoryStorage(counter=storage.counter)
    copy.write_store(storage.read_store() or b"")
    copy.write_anchor(storage.read_anchor() or b"")
    copy.append_audit(audit)
    return copy


def test_written_log_is_verified_at_power_up(device: object) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)  # type: ignore[attr-defined]
    officer, _user, _ = sessions(hsm)
    hsm.generate(officer, KeyType.EC_P256)
    hsm.close()
    lines = storage.read_audit().splitlines(keepends=True)
    for mangle in (
        lambda ls: ls[:2] + ls[3:],  # a record removed
        lambda ls: [ls[1], ls[0], *ls[2:]],  # reordered
        lambda ls: [ls[0].replace(b'"ok"', b'"no"'), *ls[1:]],  # altered
        lambda ls: ls[:-2],  # the tail cut below the head sealed in the anchor
    ):
        with pytest.raises(AuditChainBroken):
            Hsm.open(copy_of(storage, audit=b"".join(mangle(lines))), SECRET, config=FAST)
    garbage = copy_of(storage, audit=b"{not json\n")
    with pytest.raises(MalformedInput):
        Hsm.open(garbage, SECRET, config=FAST)


def test_use_records_are_group_committed(device: object) -> None:
    storage = MemoryStorage()
    config = dataclasses.replace(FAST, audit_group_commit=4)
    hsm = new_hsm(device.identity, storage, config=config)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    written = len(storage.read_audit().splitlines())
    hsm.sign(user, handle, b"1")
    hsm.sign(user, handle, b"2")
    assert len(storage.read_audit().splitlines()) == written  # waiting in memory
    hsm.sign(user, handle, b"3")
    hsm.sign(user, handle, b"4")
    assert len(storage.read_audit().splitlines()) == written + 4  # one group
    hsm.sign(user, handle, b"5")
    hsm.flush()
    assert len(storage.read_audit().splitlines()) == written + 5
    verify_audit(parse_audit_log(storage.read_audit()))
    assert HsmConfig(audit_group_commit=1).audit_group_commit == 1


def test_parse_rejects_malformed_logs() -> None:
    good = format_audit_log(_chain(2))
    assert parse_audit_log(good) == tuple(_chain(2))
    line = json.loads(good.splitlines()[0])
    for bad in (
        {**line, "extra": 1},
        {k: v for k, v in line.items() if k != "prev"},
        {**line, "prev": "zz" * 32},
        {**line, "prev": "00"},
        {**line, "seq": -1},
        {**line, "seq": True},
        {**line, "identity": 5},
        {**line, "key": 5},
        [],
    ):
        with pytest.raises(MalformedInput):
            parse_audit_log(json.dumps(bad).encode())
    with pytest.raises(LimitExceeded):
        parse_audit_log(b"[" + b" " * 5000 + b"]")
    with pytest.raises(LimitExceeded):
        parse_audit_log(good, max_records=1)


def test_a_record_naming_a_member_twice_is_not_json() -> None:
    """The hash covers the values read, and Python keeps the last of a member named twice: a
    line saying ``"result": "ok"`` before its true result chained and verified, while a
    reader that keeps the first member saw a granted operation. Read strictly, it is not
    JSON; so is a line that is not UTF-8, or a number past a double's range."""
    records = _chain(2)
    good = format_audit_log(records).decode()
    first, second = good.splitlines()
    assert '"result":"ok"' in second
    twice = second.replace('"result":"ok"', '"result":"refused","result":"ok"', 1)
    assert json.loads(twice) == json.loads(second)  # what the lenient reader kept
    huge = second.replace('"time":', '"time":1e999,"t":', 1)
    for bad in (
        f"{first}\n{twice}\n".encode(),
        f"{first}\n{second}\n".encode("utf-16"),
        f"{first}\n{huge}\n".encode(),
    ):
        with pytest.raises(MalformedInput, match=r"^audit line \d is not JSON$"):
            parse_audit_log(bad)
    verify_audit(parse_audit_log(good.encode()))


def test_a_digest_in_other_than_lowercase_hex_is_malformed() -> None:
    """The HSM writes each digest as 64 lowercase hex digits, and the hash covers the bytes,
    not the text: ``prev``, ``mac`` or a release binding in upper case (or with spaces) read
    the same and verified, so a line an auditor greps for a statement's digest could be
    rewritten not to match while the chain still verified. Only the HSM's form is read."""
    records = _chain(2)
    bound = dataclasses.replace(
        AuditRecord(2, 1002, "user", "release", "k", "ok", records[-1].digest()),
        release=ReleaseBinding(bytes(range(32)), None, None),
    )
    good = format_audit_log([*records, bound])
    verify_audit(parse_audit_log(good))
    first, second, third = good.decode().splitlines()
    line = json.loads(second)
    binding = json.loads(third)
    statement = binding["release"]["statement"]
    for bad in (
        f"{first}\n{json.dumps({**line, 'prev': line['prev'].upper()})}\n",
        f"{first}\n{json.dumps({**line, 'mac': line['prev'][:62] + ' 1'})}\n",
        f"{first}\n{second}\n"
        + json.dumps({**binding, "release": {"statement": statement.upper()}})
        + "\n",
    ):
        with pytest.raises(MalformedInput, match="64 lowercase hex digits"):
            parse_audit_log(bad.encode())


def test_records_name_created_keys_even_one_per_write(device: object) -> None:
    config = dataclasses.replace(FAST, audit_group_commit=1)
    hsm = new_hsm(device.identity, config=config)  # type: ignore[attr-defined]
    officer, user, auditor = sessions(hsm)
    parent = hsm.generate(officer, KeyType.HMAC_SHA384)
    hsm_parent = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["derive"]))
    child = hsm.derive(user, hsm_parent, info=b"ctx")
    keys = [(r.operation, r.key) for r in hsm.audit_records(auditor)]
    assert ("generate", parent) in keys
    assert ("derive", f"{hsm_parent}->{child}") in keys


def test_an_operation_that_fails_with_an_unexpected_exception_is_audited(
    device: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the library's own errors were audited: an operation that failed otherwise (a bug
    in a library, an input type nothing checked) left no record — for a release, after its
    nonce was spent. It is recorded as ``internal-error`` and the exception still raised."""
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("a library failed")

    monkeypatch.setattr(hsm, "_in_use", broken)
    with pytest.raises(RuntimeError):
        hsm.sign(user, handle, b"data")
    record = [r for r in hsm.audit_records(auditor) if r.operation == "sign"][-1]
    assert (record.identity, record.key, record.result) == (USER, handle, "internal-error")
    monkeypatch.undo()
    hsm.sign(user, handle, b"data")  # the HSM goes on
