"""Audit log rotation: a bounded live log, archived segments that continue one chain, power-up
that reads the live log only, verification of every segment, and crash safety of each step."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from _hsm_helpers import (
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    SECRET,
    CrashingStorage,
    DeviceChain,
    new_hsm,
    sessions,
)

from ironroot.cose import decode_cbor, encode_cbor
from ironroot.errors import AuditChainBroken, ConfigError, MalformedInput, StorageError
from ironroot.hsm import (
    AuditCheckpoint,
    AuditRecord,
    AuditReport,
    DirectoryStorage,
    Hsm,
    HsmConfig,
    KeyType,
    MemoryStorage,
    check_sealed_audit,
    format_audit_log,
    parse_audit_log,
    parse_segment_name,
    verify_audit_checkpoint,
    verify_audit_segments,
)
from ironroot.hsm._anchor import Anchor, seal_anchor
from ironroot.hsm._audit import audit_mac
from ironroot.hsm._document import decode_store
from ironroot.hsm._storage import seal, unseal
from ironroot.rot import MemoryCounter

SEGMENT = 10
SEG = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=SEGMENT)


def _open(storage: MemoryStorage | DirectoryStorage, config: HsmConfig = SEG) -> Hsm:
    return Hsm.open(storage, SECRET, config=config, clock=lambda: NOW_TS)


def _busy(
    device: DeviceChain, storage: MemoryStorage | DirectoryStorage, signs: int
) -> tuple[Hsm, str]:
    hsm = new_hsm(device.identity, storage, config=SEG)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    for _ in range(signs):
        hsm.sign(user, handle, b"m")
    return hsm, handle


def _verify(storage: MemoryStorage | DirectoryStorage) -> int:
    """Verify the whole chain (segments and live log); return how many records it holds."""
    span = verify_audit_segments(
        storage.audit_segments(), storage.read_audit_segment, storage.read_audit()
    )
    assert span.first == 0
    return span.records


def _everything(storage: MemoryStorage) -> dict[int, bytes]:
    """``seq -> hash`` of every record on the medium, segments and live log (a record in two
    files must be the same record)."""
    found: dict[int, bytes] = {}
    sources = [storage.read_audit_segment(n) for n in storage.audit_segments()]
    for data in [*sources, storage.read_audit()]:
        for record in parse_audit_log(data):
            assert found.setdefault(record.seq, record.digest()) == record.digest()
    return found


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, -5, 250_001, True, "10", 10.0])
def test_the_segment_size_is_validated(value: object) -> None:
    with pytest.raises(ConfigError, match="audit_segment_records must be an integer from 2"):
        HsmConfig(audit_segment_records=value)  # type: ignore[arg-type]


def test_the_default_segment_is_bounded(device: DeviceChain) -> None:
    assert HsmConfig().audit_segment_records is None  # the HSM's own, sealed in its store
    hsm = new_hsm(device.identity, MemoryStorage())  # a new HSM with none named: 100,000
    assert hsm.audit_segment_records == 100_000
    hsm.close()


def _sealed_doc(storage: MemoryStorage) -> dict[str, Any]:
    """The HSM's sealed store, unsealed and decoded."""
    sealed = storage.read_store()
    assert sealed is not None
    doc = decode_cbor(unseal(SECRET, sealed))
    assert isinstance(doc, dict)
    return doc


def _reseal(storage: MemoryStorage, doc: dict[str, Any]) -> None:
    storage.write_store(seal(SECRET, encode_cbor(doc)))


def _sealed_segment(storage: MemoryStorage) -> object:
    return _sealed_doc(storage)["audit"].get("segment")


def _segment_records(storage: MemoryStorage) -> list[str | None]:
    return [r.key for r in _records(storage) if r.operation == "audit-segment"]


UNNAMED = HsmConfig(scrypt_n=2**10, audit_group_commit=1)  # as the CLI opens: no segment size


def test_the_segment_size_is_sealed_and_an_opener_naming_none_rotates_at_it(
    device: DeviceChain,
) -> None:
    """Was: the size lived only in each opener's ``HsmConfig``, so the CLI (default
    100,000) and a service configured with another rotated one directory at two sizes."""
    storage = MemoryStorage()
    hsm, handle = _busy(device, storage, 0)  # initialized with 10
    hsm.close()
    assert _sealed_segment(storage) == SEGMENT
    reopened = _open(storage, UNNAMED)
    assert reopened.audit_segment_records == SEGMENT
    user = reopened.login("service", b"user-credential")
    for _ in range(3 * SEGMENT):
        reopened.sign(user, handle, b"m")
    reopened.close()
    names = storage.audit_segments()
    assert len(names) >= 3
    for first, last in map(parse_segment_name, names):  # type: ignore[misc]
        assert last - first == SEGMENT  # the threshold, then the rotation record
    assert _segment_records(storage) == []  # nothing changed: no record


def test_a_size_an_opener_names_is_sealed_and_audited(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 0)
    hsm.close()
    wider = dataclasses.replace(SEG, audit_segment_records=20)
    _open(storage, wider).close()
    assert _sealed_segment(storage) == 20
    assert _segment_records(storage) == ["records-20"]
    again = _open(storage, UNNAMED)  # named by nobody now: the sealed one
    assert again.audit_segment_records == 20
    again.close()
    _open(storage, wider).close()  # named again, unchanged: no new record
    assert _segment_records(storage) == ["records-20"]
    assert _verify(storage) == len(_records(storage))


def test_a_store_before_the_sealed_size_gets_it_at_power_up(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 0)
    hsm.close()
    doc = _sealed_doc(storage)
    del doc["audit"]["segment"]  # as the version before the setting was sealed wrote it
    _reseal(storage, doc)
    reopened = _open(storage, UNNAMED)
    assert reopened.audit_segment_records == 100_000
    reopened.close()
    assert _sealed_segment(storage) == 100_000
    assert _segment_records(storage) == ["records-100000"]


@pytest.mark.parametrize("value", [1, 250_001, -1, "10"])
def test_a_sealed_size_out_of_range_is_refused(device: DeviceChain, value: object) -> None:
    from ironroot.errors import SealedStoreError

    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 0)
    hsm.close()
    doc = _sealed_doc(storage)
    doc["audit"]["segment"] = value
    _reseal(storage, doc)
    with pytest.raises(SealedStoreError, match="opened but does not parse"):
        _open(storage, UNNAMED)


# --- rotation -------------------------------------------------------------------------------


def test_the_live_log_rotates_at_the_threshold_and_the_chain_goes_on(
    device: DeviceChain,
) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)
    names = storage.audit_segments()
    assert names == ("audit-0-10.jsonl", "audit-11-21.jsonl", "audit-22-32.jsonl")
    previous: AuditRecord | None = None
    for name in names:
        records = parse_audit_log(storage.read_audit_segment(name))
        assert (records[0].seq, records[-1].seq) == parse_segment_name(name)
        assert len(records) == SEGMENT + 1  # the threshold, then the rotation record
        rotation = records[-1]
        assert (rotation.identity, rotation.operation, rotation.key, rotation.result) == (
            "-",
            "audit-rotate",
            name,
            "ok",
        )
        if previous is not None:
            assert records[0].prev == previous.digest()
        previous = rotation
    live = parse_audit_log(storage.read_audit())
    assert previous is not None
    assert live[0].seq == 33
    assert live[0].prev == previous.digest()
    assert len(live) < SEGMENT
    assert _verify(storage) == live[-1].seq + 1
    hsm.close()


def test_power_up_after_many_rotations_reads_only_the_live_log(
    device: DeviceChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = MemoryCounter()
    storage = DirectoryStorage(tmp_path, counter=counter)
    hsm, _handle = _busy(device, storage, 60)
    hsm.close()
    storage.close()
    segments = sorted(tmp_path.glob("audit-*.jsonl"))
    assert len(segments) == 6
    # every archived segment garbage, and every open of one recorded: power-up never needs them
    for path in segments:
        path.write_bytes(b"not an audit log\n")
    opened: list[str] = []
    real_open = os.open

    def spy(path: object, *args: object, **kwargs: object) -> int:
        opened.append(os.fspath(path))  # type: ignore[arg-type]
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", spy)
    storage = DirectoryStorage(tmp_path, counter=counter)
    reopened = _open(storage)
    monkeypatch.undo()
    assert reopened.state == "operational"
    assert any(p.endswith("audit.jsonl") for p in opened)
    assert not [p for p in opened if Path(p).name.startswith("audit-")]
    reopened.close()
    storage.close()


def test_power_up_ignores_deleted_archived_segments(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)
    hsm.close()
    for name in storage.audit_segments():
        storage.remove_audit_segment(name)
    reopened = _open(storage)  # the sealed base, not the segments, says where the log starts
    assert reopened.state == "operational"
    reopened.close()
    with pytest.raises(AuditChainBroken, match=r"records 0 to 32 are missing"):
        _verify(storage)  # ... while verify reports them gone


def test_a_live_log_cut_after_a_rotation_is_refused_at_power_up(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 25)
    hsm.close()
    live = storage.read_audit().splitlines(keepends=True)
    storage.reset_audit()
    storage.append_audit(b"".join(live[:-1]))
    with pytest.raises(AuditChainBroken, match="its last 1 were cut"):
        _open(storage)


def test_a_live_log_replaced_by_an_older_segment_is_refused(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)
    hsm.close()
    storage.reset_audit()
    storage.append_audit(storage.read_audit_segment("audit-11-21.jsonl"))
    with pytest.raises(
        AuditChainBroken, match=r"records 11 to 21, all archived; the HSM sealed a head covering"
    ):
        _open(storage)


def test_the_old_single_file_store_opens_and_rotates(device: DeviceChain) -> None:
    """A store written before rotation (no ``audit.base``) with one big log keeps working and
    rotates at the next audit write past the threshold."""
    storage = MemoryStorage()
    big = HsmConfig(scrypt_n=2**10, audit_group_commit=1)
    hsm = new_hsm(device.identity, storage, config=big)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    for _ in range(25):
        hsm.sign(user, handle, b"m")
    hsm.close()
    assert storage.audit_segments() == ()
    # the store as the version before rotation wrote it: no "base" in its audit map
    doc = _sealed_doc(storage)
    del doc["audit"]["base"]
    _reseal(storage, doc)
    before = len(parse_audit_log(storage.read_audit()))
    reopened = _open(storage)  # the 10-record threshold is long passed: rotates at once
    assert storage.audit_segments() == (f"audit-0-{before + 1}.jsonl",)
    # the power-up record, the rotation's, then the record of the size sealed
    assert _verify(storage) == before + 3
    assert _segment_records(storage) == [f"records-{SEGMENT}"]
    session = reopened.login(OFFICER, OFFICER_PASS)
    assert reopened.keys(session)
    reopened.close()
    _open(storage).close()


def test_a_zeroized_hsms_rotated_log_is_continued(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)
    hsm.zeroize(hsm.login(OFFICER, OFFICER_PASS))
    before = _verify(storage)
    successor = new_hsm(device.identity, storage, config=SEG)
    successor.close()
    assert _verify(storage) > before  # one chain, the successor's records after its own
    report = check_sealed_audit(
        audit=storage.read_audit(),
        store=storage.read_store(),
        anchor=storage.read_anchor(),
        sealing_secret=SECRET,
        segments=list(storage.audit_segments()),
        read_segment=storage.read_audit_segment,
    )
    assert report.keyed_from == before


# --- verification of the segments: every tamper case ----------------------------------------


@pytest.fixture
def rotated(device: DeviceChain) -> MemoryStorage:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)  # segments 0-10, 11-21, 22-32; live from 33
    hsm.close()
    return storage


def _replace(storage: MemoryStorage, name: str, data: bytes) -> None:
    storage.remove_audit_segment(name)
    storage._segments[name] = data


def test_a_missing_middle_segment_is_named(rotated: MemoryStorage) -> None:
    rotated.remove_audit_segment("audit-11-21.jsonl")
    with pytest.raises(
        AuditChainBroken,
        match=r"segment audit-22-32.jsonl starts at record 22, the chain before it ends at "
        r"record 10: records 11 to 21 are missing \(a segment was removed\)",
    ):
        _verify(rotated)


def test_a_missing_first_segment_is_named(rotated: MemoryStorage) -> None:
    rotated.remove_audit_segment("audit-0-10.jsonl")
    with pytest.raises(AuditChainBroken, match=r"records 0 to 10 are missing"):
        _verify(rotated)


def test_a_missing_last_segment_is_named(rotated: MemoryStorage) -> None:
    rotated.remove_audit_segment("audit-22-32.jsonl")
    with pytest.raises(
        AuditChainBroken,
        match=r"the live log starts at record 33, the archived segments end at record 21: "
        r"records 22 to 32 are missing",
    ):
        _verify(rotated)


def test_a_truncated_segment_is_named(rotated: MemoryStorage) -> None:
    data = rotated.read_audit_segment("audit-11-21.jsonl")
    _replace(rotated, "audit-11-21.jsonl", b"".join(data.splitlines(keepends=True)[:-1]))
    with pytest.raises(
        AuditChainBroken,
        match=r"segment audit-11-21.jsonl holds records 11 to 20, its name says 11 to 21: "
        "it was truncated",
    ):
        _verify(rotated)


def test_swapped_segments_are_named(rotated: MemoryStorage) -> None:
    first = rotated.read_audit_segment("audit-0-10.jsonl")
    second = rotated.read_audit_segment("audit-11-21.jsonl")
    _replace(rotated, "audit-0-10.jsonl", second)
    _replace(rotated, "audit-11-21.jsonl", first)
    with pytest.raises(
        AuditChainBroken,
        match=r"segment audit-0-10.jsonl holds records 11 to 21, its name says 0 to 10",
    ):
        _verify(rotated)


def test_a_renamed_segment_is_refused(rotated: MemoryStorage) -> None:
    data = rotated.read_audit_segment("audit-11-21.jsonl")
    rotated.remove_audit_segment("audit-11-21.jsonl")
    rotated._segments["audit-11-20.jsonl"] = data
    with pytest.raises(AuditChainBroken, match="holds records 11 to 21, its name says 11 to 20"):
        _verify(rotated)


def test_an_overlapping_segment_is_refused(rotated: MemoryStorage) -> None:
    data = rotated.read_audit_segment("audit-11-21.jsonl")
    rotated._segments["audit-5-15.jsonl"] = data
    with pytest.raises(AuditChainBroken, match="it overlaps the segment before it"):
        _verify(rotated)


def test_an_altered_record_in_a_segment_is_named(rotated: MemoryStorage) -> None:
    data = rotated.read_audit_segment("audit-11-21.jsonl")
    _replace(
        rotated,
        "audit-11-21.jsonl",
        data.replace(b'"operation":"sign"', b'"operation":"verify"', 1),
    )
    with pytest.raises(
        AuditChainBroken,
        match=r"segment audit-11-21.jsonl: record \d+ does not chain to the record before it",
    ):
        _verify(rotated)


def test_a_rechained_segment_is_caught_by_its_macs(rotated: MemoryStorage) -> None:
    """A segment rewritten and rehashed to the end of the chain passes the public check only
    when the rest is rehashed too; with the sealing secret its MACs fail."""
    names = rotated.audit_segments()
    records: list[AuditRecord] = []
    for name in names:
        records.extend(parse_audit_log(rotated.read_audit_segment(name)))
    records.extend(parse_audit_log(rotated.read_audit()))
    forged_key = bytes(32)
    prev = records[0].prev
    rewritten: list[AuditRecord] = []
    for record in records:
        operation = "verify" if record.seq == 15 else record.operation
        changed = dataclasses.replace(record, operation=operation, prev=prev)
        prev = changed.digest()
        rewritten.append(dataclasses.replace(changed, mac=audit_mac(forged_key, prev)))
    for name in names:
        first, last = parse_segment_name(name) or (0, 0)
        _replace(rotated, name, format_audit_log(rewritten[first : last + 1]))
    rotated.reset_audit()
    rotated.append_audit(format_audit_log(rewritten[33:]))
    assert _verify(rotated) == len(records)  # the public chain holds
    with pytest.raises(AuditChainBroken):
        check_sealed_audit(
            audit=rotated.read_audit(),
            store=rotated.read_store(),
            anchor=rotated.read_anchor(),
            sealing_secret=SECRET,
            segments=list(names),
            read_segment=rotated.read_audit_segment,
        )


def test_the_sealed_check_covers_every_segment(rotated: MemoryStorage) -> None:
    report = check_sealed_audit(
        audit=rotated.read_audit(),
        store=rotated.read_store(),
        anchor=rotated.read_anchor(),
        sealing_secret=SECRET,
        segments=list(rotated.audit_segments()),
        read_segment=rotated.read_audit_segment,
    )
    assert (report.base, report.archived, report.records) == (33, 3, _verify(rotated))
    data = rotated.read_audit_segment("audit-0-10.jsonl")
    line = data.splitlines(keepends=True)[3]
    at = line.index(b'"mac":"') + 7
    tampered = line[:at] + b"0" * 64 + line[at + 64 :]
    _replace(rotated, "audit-0-10.jsonl", data.replace(line, tampered))
    with pytest.raises(AuditChainBroken, match=r"segment audit-0-10\.jsonl: record 3's MAC"):
        check_sealed_audit(
            audit=rotated.read_audit(),
            store=rotated.read_store(),
            anchor=rotated.read_anchor(),
            sealing_secret=SECRET,
            segments=list(rotated.audit_segments()),
            read_segment=rotated.read_audit_segment,
        )


def test_a_name_that_is_not_a_segments_is_refused(rotated: MemoryStorage) -> None:
    with pytest.raises(MalformedInput, match="is not an audit segment's name"):
        verify_audit_segments(["audit-1.jsonl"], rotated.read_audit_segment, b"")
    with pytest.raises(MalformedInput, match="is not an audit segment's name"):
        rotated.archive_audit("../audit-0-1.jsonl")


@pytest.mark.parametrize(
    "name",
    ["audit-01-2.jsonl", "audit-2-1.jsonl", "audit--1-2.jsonl", "audit-1-2.json", "x-1-2.jsonl"],
)
def test_segment_names_are_strict(name: str) -> None:
    assert parse_segment_name(name) is None


def test_a_partial_chain_states_where_it_starts(rotated: MemoryStorage) -> None:
    names = rotated.audit_segments()[1:]
    span = verify_audit_segments(
        names, rotated.read_audit_segment, rotated.read_audit(), complete=False
    )
    assert span.first == 11
    assert span.records == _verify(rotated) - 11


# --- crash safety ---------------------------------------------------------------------------

STEPS = ["after-rotation-record", "after-archive", "after-store", "after-anchor", "before-reset"]


@pytest.mark.parametrize("step", STEPS)
def test_a_rotation_cut_short_at_any_step_loses_and_duplicates_nothing(
    device: DeviceChain, step: str
) -> None:
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage, config=SEG)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    while len(parse_audit_log(storage.read_audit())) + 1 < SEGMENT:
        hsm.sign(user, handle, b"m")
    storage.crash_at = step
    with pytest.raises(StorageError, match=f"power cut at {step}"):
        hsm.sign(user, handle, b"m")  # its record reaches the threshold: rotation
    assert hsm.state == "error"
    durable = _everything(storage)
    reopened = _open(storage)
    assert reopened.state == "operational"
    after = _everything(storage)
    assert {s: after[s] for s in durable} == durable  # every record written is kept as it was
    assert _verify(storage) == len(after)  # one chain, each record once
    assert max(after) > max(durable)  # the power-up record (and a rotation it may have done)
    # and it rotates on as before
    session = reopened.login("service", b"user-credential")
    for _ in range(2 * SEGMENT):
        reopened.sign(session, handle, b"m")
    reopened.close()
    assert _verify(storage) == len(_everything(storage))
    assert len(storage.audit_segments()) >= 2
    _open(storage).close()


def test_a_finished_rotation_whose_segment_is_missing_keeps_the_live_log(
    device: DeviceChain,
) -> None:
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage, config=SEG)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    while len(parse_audit_log(storage.read_audit())) + 1 < SEGMENT:
        hsm.sign(user, handle, b"m")
    storage.crash_at = "before-reset"
    with pytest.raises(StorageError):
        hsm.sign(user, handle, b"m")
    (name,) = storage.audit_segments()
    storage.remove_audit_segment(name)
    live = storage.read_audit()
    with pytest.raises(AuditChainBroken, match=f"{name}, and that segment is missing"):
        _open(storage)
    assert storage.read_audit() == live  # nothing was reset


def test_rotation_on_a_directory_links_the_segment(device: DeviceChain, tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path, counter=MemoryCounter())
    hsm, _handle = _busy(device, storage, 12)
    hsm.close()
    segment = tmp_path / "audit-0-10.jsonl"
    assert segment.is_file()
    assert not segment.is_symlink()
    assert segment.stat().st_nlink == 1  # the live log is a new file since
    assert parse_audit_log((tmp_path / "audit.jsonl").read_bytes())[0].seq == 11
    assert storage.audit_segments() == ("audit-0-10.jsonl",)
    assert _verify(storage) == parse_audit_log(storage.read_audit())[-1].seq + 1
    storage.close()


# --- ironroot hsm audit verify --------------------------------------------------------------


@pytest.fixture
def rotated_dir(device: DeviceChain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("IRONROOT_HSM_ROT_DEVICE", raising=False)
    monkeypatch.delenv("IRONROOT_HSM_SEALING_SECRET_FILE", raising=False)
    directory = tmp_path / "hsm"
    storage = DirectoryStorage(directory, counter=MemoryCounter())
    hsm, _handle = _busy(device, storage, 30)
    hsm.close()
    storage.close()
    (tmp_path / "sealing.secret").write_bytes(SECRET)
    return directory


def _cli_verify(directory: Path, *extra: str) -> int:
    from ironroot.cli import _main

    return _main.main(["hsm", "audit", "verify", "--dir", str(directory), *extra])


def test_cli_verify_checks_every_segment(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = str(rotated_dir.parent / "sealing.secret")
    assert _cli_verify(rotated_dir, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    live = parse_audit_log((rotated_dir / "audit.jsonl").read_bytes())
    assert (report["records"], report["segments"]) == (live[-1].seq + 1, 3)
    assert report["head"] == live[-1].digest().hex()
    assert _cli_verify(rotated_dir, "--sealing-secret-file", secret, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sealed"] is True
    assert report["anchored"] == report["records"]
    assert _cli_verify(rotated_dir) == 0
    assert "in 3 archived segment(s) and the live log" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("remove", "records 11 to 21 are missing (a segment was removed)"),
        ("truncate", "segment audit-11-21.jsonl holds records 11 to 20, its name says 11 to 21"),
        ("alter", "segment audit-11-21.jsonl: record 13 does not chain"),  # 12 altered
        ("swap", "segment audit-0-10.jsonl holds records 11 to 21, its name says 0 to 10"),
        ("stray", "'audit-old.jsonl' is not an audit segment's name"),
    ],
)
def test_cli_verify_names_a_tampered_segment(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str], tamper: str, message: str
) -> None:
    segment = rotated_dir / "audit-11-21.jsonl"
    data = segment.read_bytes()
    if tamper == "remove":
        segment.unlink()
    elif tamper == "truncate":
        segment.write_bytes(b"".join(data.splitlines(keepends=True)[:-1]))
    elif tamper == "alter":
        lines = data.splitlines(keepends=True)
        lines[1] = lines[1].replace(b'"time":', b'"time":1', 1)
        segment.write_bytes(b"".join(lines))
    elif tamper == "swap":
        first = rotated_dir / "audit-0-10.jsonl"
        segment.write_bytes(first.read_bytes())
        first.write_bytes(data)
    else:
        (rotated_dir / "audit-old.jsonl").write_bytes(b"")
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == (2 if tamper == "stray" else 1)  # input / verification
    assert message in capsys.readouterr().err


# --- pruning: an officer's retention policy, in the chain -----------------------------------

ORIGINAL = ("audit-0-10.jsonl", "audit-11-21.jsonl", "audit-22-32.jsonl")


def _records(storage: MemoryStorage) -> list[AuditRecord]:
    names = storage.audit_segments()
    data = [*(storage.read_audit_segment(n) for n in names), storage.read_audit()]
    return [r for chunk in data for r in parse_audit_log(chunk)]


def test_an_officer_prunes_whole_segments_and_the_chain_says_so(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)  # segments 0-10, 11-21, 22-32; live from 33
    officer = hsm.login(OFFICER, OFFICER_PASS)
    assert hsm.prune_audit(officer, 22) == ("audit-0-10.jsonl", "audit-11-21.jsonl")
    assert storage.audit_segments() == ("audit-22-32.jsonl",)
    span = verify_audit_segments(
        storage.audit_segments(), storage.read_audit_segment, storage.read_audit()
    )
    assert span.first == 22
    prune = [r for r in parse_audit_log(storage.read_audit()) if r.operation == "audit-prune"]
    assert [(r.identity, r.key, r.result, r.prunes) for r in prune] == [
        (OFFICER, "before-22", "ok", 22)
    ]
    hsm.close()
    reopened = _open(storage)  # power-up never needed them
    reopened.close()
    report = check_sealed_audit(
        audit=storage.read_audit(),
        store=storage.read_store(),
        anchor=storage.read_anchor(),
        sealing_secret=SECRET,
        segments=list(storage.audit_segments()),
        read_segment=storage.read_audit_segment,
    )
    assert report.archived == len(storage.audit_segments())
    # a segment removed beyond what was pruned is still a break
    storage.remove_audit_segment("audit-22-32.jsonl")
    with pytest.raises(
        AuditChainBroken,
        match=r"the chain starts at record 33: records 0 to 32 are missing, and no "
        r"audit-prune record covers them",
    ):
        _verify(storage)


def test_pruning_up_to_the_live_log_leaves_a_verifiable_chain(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 27)  # live from 33, not empty
    officer = hsm.login(OFFICER, OFFICER_PASS)
    assert len(hsm.prune_audit(officer, 33)) == 3
    hsm.close()
    assert storage.audit_segments() == ()
    assert verify_audit_segments((), storage.read_audit_segment, storage.read_audit()).first == 33


@pytest.mark.parametrize(
    ("before", "message"),
    [
        (15, "record 15 does not start an archived segment or the live log"),
        (34, "records from 33 on are in the live log, which is never pruned"),
        (0, "the first record kept is a positive record number"),
        (True, "the first record kept is a positive record number"),
    ],
)
def test_a_prune_that_is_not_at_a_segment_boundary_is_refused(
    rotated: MemoryStorage, before: int, message: str
) -> None:
    hsm = _open(rotated)
    officer = hsm.login(OFFICER, OFFICER_PASS)
    with pytest.raises(MalformedInput, match=message):
        hsm.prune_audit(officer, before)
    assert set(ORIGINAL) <= set(rotated.audit_segments())  # none removed
    hsm.close()


def test_only_an_officer_prunes(rotated: MemoryStorage) -> None:
    from ironroot.errors import RoleNotPermitted

    hsm = _open(rotated)
    user = hsm.login("service", b"user-credential")
    with pytest.raises(RoleNotPermitted, match="may not audit-prune"):
        hsm.prune_audit(user, 11)
    hsm.close()
    assert set(ORIGINAL) <= set(rotated.audit_segments())
    refused = [r for r in _records(rotated) if r.operation == "audit-prune"]
    assert [(r.identity, r.result, r.prunes) for r in refused] == [
        ("service", "role-not-permitted", 0)
    ]


def test_a_prune_cut_short_leaves_the_segments_verifiable(device: DeviceChain) -> None:
    storage = CrashingStorage()
    hsm, _handle = _busy(device, storage, 30)
    officer = hsm.login(OFFICER, OFFICER_PASS)
    storage.crash_at = "before-remove"
    with pytest.raises(StorageError, match="power cut at before-remove"):
        hsm.prune_audit(officer, 22)
    assert set(ORIGINAL) <= set(storage.audit_segments())
    assert _verify(storage) == len(_everything(storage))  # whole, the prune record in it
    reopened = _open(storage)
    assert reopened.prune_audit(reopened.login(OFFICER, OFFICER_PASS), 22) == (
        "audit-0-10.jsonl",
        "audit-11-21.jsonl",
    )
    reopened.close()


def test_cli_verify_states_a_pruned_start(
    device: DeviceChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = DirectoryStorage(tmp_path, counter=MemoryCounter())
    hsm, _handle = _busy(device, storage, 30)
    hsm.prune_audit(hsm.login(OFFICER, OFFICER_PASS), 11)
    hsm.close()
    storage.close()
    capsys.readouterr()
    assert _cli_verify(tmp_path) == 0
    assert "records from record 11 (those before it pruned)" in capsys.readouterr().out


def test_every_segment_removed_behind_an_empty_live_log_shows_with_the_sealing_secret(
    device: DeviceChain,
) -> None:
    storage = MemoryStorage()
    hsm, handle = _busy(device, storage, 1)
    user = hsm.login("service", b"user-credential")
    while storage.read_audit():  # until a rotation leaves the live log empty
        hsm.sign(user, handle, b"m")
    hsm.close()  # nothing waits: the live log stays empty
    assert storage.read_audit() == b""
    base = parse_segment_name(storage.audit_segments()[-1])
    assert base is not None
    for name in storage.audit_segments():
        storage.remove_audit_segment(name)
    assert _verify(storage) == 0  # the public check sees an empty log
    with pytest.raises(
        AuditChainBroken,
        match=rf"the HSM sealed that the live log starts at record {base[1] + 1}: "
        rf"records 0 to {base[1]} are missing",
    ):
        check_sealed_audit(
            audit=storage.read_audit(),
            store=storage.read_store(),
            anchor=storage.read_anchor(),
            sealing_secret=SECRET,
            segments=[],
            read_segment=storage.read_audit_segment,
        )


def test_a_successor_removes_the_segment_of_a_rotation_cut_short(device: DeviceChain) -> None:
    storage = CrashingStorage()
    hsm = new_hsm(device.identity, storage, config=SEG)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    while len(parse_audit_log(storage.read_audit())) + 1 < SEGMENT:
        hsm.sign(user, handle, b"m")
    storage.crash_at = "after-archive"
    with pytest.raises(StorageError):
        hsm.sign(user, handle, b"m")
    assert storage.audit_segments() == (f"audit-0-{SEGMENT}.jsonl",)
    # the log as it was left (no store, nobody powered it up again), given to a new HSM on a
    # new counter: no zeroized anchor seals it, so it is not continued (anyone could have
    # edited it: tests/hsm/test_hsm_rollback.py), and nothing of it is removed
    left = MemoryStorage()
    left.append_audit(storage.read_audit())
    left.archive_audit(f"audit-0-{SEGMENT}.jsonl")
    with pytest.raises(AuditChainBroken, match="no zeroized HSM's anchor seals"):
        new_hsm(device.identity, left, config=SEG)
    assert left.audit_segments() == (f"audit-0-{SEGMENT}.jsonl",)
    # zeroized as it was left (its anchor sealing the live log; the segment the rotation
    # archived still there): the successor continues it and removes that segment
    zeroized = MemoryStorage(counter=MemoryCounter(storage.counter.value() + 1))
    zeroized.append_audit(storage.read_audit())
    zeroized.archive_audit(f"audit-0-{SEGMENT}.jsonl")
    records = parse_audit_log(storage.read_audit())
    sealed = Anchor(
        storage.counter.value() + 1,
        0,
        len(records),
        records[-1].digest(),
        zeroized=True,
        hsm=decode_store(unseal(SECRET, storage.read_store() or b"")).hsm_id,
    )
    zeroized.write_anchor(seal_anchor(SECRET, sealed))
    successor = new_hsm(device.identity, zeroized, config=SEG)
    successor.close()
    assert _verify(zeroized) == len(_everything(zeroized))


def test_a_live_log_replaced_by_the_last_segment_is_a_cut_tail(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)  # live from 33, its records anchored
    hsm.close()
    live = storage.read_audit()
    storage.reset_audit()
    storage.append_audit(storage.read_audit_segment("audit-22-32.jsonl"))
    with pytest.raises(AuditChainBroken, match=r"records 22 to 32, all archived; .* were cut"):
        _open(storage)
    assert storage.read_audit() == storage.read_audit_segment("audit-22-32.jsonl")  # kept
    storage.reset_audit()
    storage.append_audit(live)
    _open(storage).close()


# --- one pass: each file read and verified once ----------------------------------------------


def test_cli_verify_with_the_sealing_secret_reads_each_file_once(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the public chain, then the sealed check, each read and parsed every segment (and
    the live log three times). Now one pass checks the chain, every MAC and the sealed head."""
    from ironroot.cli import hsm as cli_hsm

    read: list[str] = []
    real_read = cli_hsm._read_log

    def spy(path: Path) -> bytes:
        read.append(path.name)
        return real_read(path)

    monkeypatch.setattr(cli_hsm, "_read_log", spy)
    secret = str(rotated_dir.parent / "sealing.secret")
    assert _cli_verify(rotated_dir, "--sealing-secret-file", secret, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["sealed"], report["segments"], report["first"]) == (True, 3, 0)
    live = parse_audit_log((rotated_dir / "audit.jsonl").read_bytes())
    assert (report["records"], report["head"]) == (live[-1].seq + 1, live[-1].digest().hex())
    logs = [n for n in read if n.startswith("audit")]
    assert sorted(logs) == sorted([*ORIGINAL, "audit.jsonl"])  # each once


def test_the_sealed_check_checks_a_checkpoint_in_the_same_pass(
    device: DeviceChain,
) -> None:
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 30)
    auditor = hsm.login("auditor", b"auditor-credential")
    checkpoint = verify_audit_checkpoint(hsm.audit_checkpoint(auditor), hsm.attestation_public_key)
    hsm.close()

    def check(point: AuditCheckpoint | None, segments: list[str] | None) -> AuditReport:
        return check_sealed_audit(
            audit=storage.read_audit(),
            store=storage.read_store(),
            anchor=storage.read_anchor(),
            sealing_secret=SECRET,
            segments=segments,
            read_segment=storage.read_audit_segment,
            checkpoint=point,
        )

    names = list(storage.audit_segments())
    report = check(checkpoint, names)
    assert (report.first, report.records) == (0, _verify(storage))
    forked = dataclasses.replace(checkpoint, head=bytes(32))
    with pytest.raises(AuditChainBroken, match="does not match the checkpoint's head"):
        check(forked, names)
    beyond = dataclasses.replace(checkpoint, size=checkpoint.size + 5)
    with pytest.raises(AuditChainBroken, match=r"the checkpoint covers \d+: its last 5 were cut"):
        check(beyond, names)
    with pytest.raises(MalformedInput, match="checking a checkpoint needs the archived segments"):
        check(checkpoint, None)


def test_a_span_holds_the_records_it_verified(rotated: MemoryStorage) -> None:
    names = rotated.audit_segments()
    span = verify_audit_segments(names, rotated.read_audit_segment, rotated.read_audit())
    assert span.live == parse_audit_log(rotated.read_audit())
    assert span.archived == ()  # not kept unless asked for
    kept = verify_audit_segments(
        names, rotated.read_audit_segment, rotated.read_audit(), keep_archived=True
    )
    assert [*kept.archived, *kept.live] == _records(rotated)
    assert "AuditRecord" not in repr(kept)


# --- a write cut short: a trailing partial line -----------------------------------------------


def test_a_partial_last_line_of_the_live_log_is_dropped_at_power_up(
    device: DeviceChain, tmp_path: Path
) -> None:
    """Was: an append a crash cut short (a power cut, or a kill -9 between two pages of a
    group's write) left a partial last line, and power-up refused for ever: "audit line N is
    not JSON". Those bytes were never a record the HSM anchored: power-up drops them, says so
    in the chain, and goes on."""
    counter = MemoryCounter()
    storage = DirectoryStorage(tmp_path, counter=counter)
    hsm, _handle = _busy(device, storage, 12)
    hsm.close()
    storage.close()
    live = tmp_path / "audit.jsonl"
    whole = live.read_bytes()
    torn = b'{"seq":99,"time":17486'  # what a write cut short leaves
    live.write_bytes(whole + torn)
    storage = DirectoryStorage(tmp_path, counter=counter)
    reopened = _open(storage)
    reopened.close()
    data = live.read_bytes()
    assert torn not in data
    records = [
        r
        for chunk in [*map(storage.read_audit_segment, storage.audit_segments()), data]
        for r in parse_audit_log(chunk)
    ]
    assert set(parse_audit_log(whole)) <= set(records)  # every complete record kept
    cut = [r for r in records if r.operation == "audit-torn-write"]
    assert [(r.identity, r.key, r.result) for r in cut] == [("-", f"bytes-{len(torn)}", "ok")]
    assert _verify(storage) == records[-1].seq + 1
    check_sealed_audit(
        audit=data,
        store=storage.read_store(),
        anchor=storage.read_anchor(),
        sealing_secret=SECRET,
        segments=list(storage.audit_segments()),
        read_segment=storage.read_audit_segment,
    )
    storage.close()


def test_a_partial_last_line_does_not_hide_a_cut_tail(device: DeviceChain) -> None:
    """Dropping a partial line never drops a record the HSM anchored: a log cut into the
    anchored records, then given a partial line, is still a cut tail."""
    storage = MemoryStorage()
    hsm, _handle = _busy(device, storage, 12)
    hsm.close()
    lines = storage.read_audit().splitlines(keepends=True)
    storage.reset_audit()
    storage.append_audit(b"".join(lines[:-1]) + lines[-1][:40])
    with pytest.raises(AuditChainBroken, match="its last 1 were cut"):
        _open(storage)


def test_a_live_log_of_only_a_partial_line_is_dropped(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm, handle = _busy(device, storage, 1)
    user = hsm.login("service", b"user-credential")
    while storage.read_audit():  # until a rotation leaves the live log empty
        hsm.sign(user, handle, b"m")
    hsm.close()
    storage.append_audit(b'{"seq":')  # the first append after it, cut short
    _open(storage).close()
    assert [r.key for r in _records(storage) if r.operation == "audit-torn-write"] == ["bytes-7"]
    assert _verify(storage) == len(_records(storage))


def test_a_segment_that_does_not_parse_is_named(rotated: MemoryStorage) -> None:
    """Was: "audit line 12 is not JSON", without saying which of the files."""
    data = rotated.read_audit_segment("audit-11-21.jsonl")
    _replace(rotated, "audit-11-21.jsonl", data + b'{"seq":22,"ti')
    with pytest.raises(
        MalformedInput, match=r"^segment audit-11-21\.jsonl: audit line 12 is not JSON$"
    ):
        _verify(rotated)


# --- hsm audit verify while the HSM runs: an append, a rotation or a prune meanwhile -----------


def test_cli_verify_reads_again_when_a_prune_removed_a_segment_meanwhile(
    device: DeviceChain,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was: a segment an officer pruned between the listing and its read failed the check
    ("cannot read …", exit 2) instead of reading again, as a rotation meanwhile does."""
    from ironroot.cli import hsm as cli_hsm

    storage = DirectoryStorage(tmp_path, counter=MemoryCounter())
    hsm, _handle = _busy(device, storage, 30)  # running: segments 0-10, 11-21, 22-32
    officer = hsm.login(OFFICER, OFFICER_PASS)
    real_names = cli_hsm._segment_names
    pruned: list[str] = []

    def names(directory: Path) -> list[str]:
        listed = real_names(directory)
        if not pruned:
            pruned.extend(hsm.prune_audit(officer, 22))  # just after the listing
        return listed

    monkeypatch.setattr(cli_hsm, "_segment_names", names)
    capsys.readouterr()
    assert _cli_verify(tmp_path, "--json") == 0, capsys.readouterr().err
    assert pruned == ["audit-0-10.jsonl", "audit-11-21.jsonl"]
    assert json.loads(capsys.readouterr().out)["first"] == 22
    hsm.close()
    storage.close()


def test_cli_verify_reads_again_when_it_read_an_append_half_done(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a group of records read while the HSM appended it (a partial last line) failed
    the check ("audit line N is not JSON", exit 2) instead of reading again."""
    from ironroot.cli import hsm as cli_hsm

    real_read = cli_hsm._read_log
    halves: list[bytes] = []

    def read(path: Path) -> bytes:
        data = real_read(path)
        if path.name == "audit.jsonl" and not halves:
            halves.append(b'{"seq":40,"ti')
            return data + halves[0]  # the append finishes after this read
        return data

    monkeypatch.setattr(cli_hsm, "_read_log", read)
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == 0, capsys.readouterr().err
    assert halves


def test_cli_verify_still_refuses_a_partial_line_that_stays(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = rotated_dir / "audit.jsonl"
    live.write_bytes(live.read_bytes() + b'{"seq":40,"ti')  # a crash's, not yet powered up
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == 2
    assert "audit line" in capsys.readouterr().err


# --- a segment replaced by something else than a file ------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "link-to-dev-zero", "directory"])
def test_cli_verify_refuses_a_segment_that_is_no_regular_file_unread(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Was: a link to ``/dev/zero`` in place of a segment was read to the 1 GiB cap (2 GiB
    of memory) before the refusal, a pipe read as an empty segment, a directory was an input
    error. The HSM writes only regular files there; anything else is refused before a read."""
    segment = rotated_dir / "audit-11-21.jsonl"
    segment.unlink()
    if kind == "fifo":
        os.mkfifo(segment)
    elif kind == "directory":
        segment.mkdir()
    else:
        segment.symlink_to("/dev/zero")
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == 1
    assert (
        "audit-chain-broken: audit-11-21.jsonl is not a regular file: the HSM writes only "
        "regular files there" in capsys.readouterr().err
    )


def test_cli_verify_follows_a_link_to_a_segment_moved_elsewhere(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator may move archived segments to other storage and leave links: the bytes
    are checked as any segment's."""
    segment = rotated_dir / "audit-11-21.jsonl"
    moved = rotated_dir.parent / "cold" / segment.name
    moved.parent.mkdir()
    segment.rename(moved)
    segment.symlink_to(moved)
    assert _cli_verify(rotated_dir) == 0
    moved.write_bytes(b"".join(moved.read_bytes().splitlines(keepends=True)[:-1]))
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == 1
    assert "holds records 11 to 20, its name says 11 to 21" in capsys.readouterr().err


def test_cli_verify_waits_out_a_rotation_and_still_names_a_crashs_leftover(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read between a rotation's link and its commit, a segment overlaps the live log while
    nothing else has moved yet: verify waits and reads again (it failed at once, now and then,
    beside a busy HSM: ``test_hsm_audit_crash.py::test_audit_verify_while_a_process_rotates``).
    The same state left by a crash, with nothing running, still fails once the waits are up."""
    from ironroot.cli import hsm as cli_hsm

    live = parse_audit_log((rotated_dir / "audit.jsonl").read_bytes())
    name = f"audit-{live[0].seq}-{live[-1].seq}.jsonl"
    os.link(rotated_dir / "audit.jsonl", rotated_dir / name)  # step 2, then a crash
    waits: list[float] = []
    monkeypatch.setattr(cli_hsm.time, "sleep", waits.append)
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == 1
    assert "a segment overlaps the live log" in capsys.readouterr().err
    assert len(waits) == cli_hsm._ROTATION_WAITS


def test_prunes_racing_rotations_on_two_threads_keep_one_chain(device: DeviceChain) -> None:
    """An officer prunes to the newest segment again and again while a user's signing
    rotates every four records: every prune is at a boundary it saw, and the chain, the
    sealed check and power-up all hold after."""
    import threading

    config = dataclasses.replace(SEG, audit_group_commit=2, audit_segment_records=3)
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage, config=config)
    officer, user, _auditor = sessions(hsm)
    handle = hsm.generate(officer, KeyType.EC_P256)
    failures: list[BaseException] = []
    pruned: list[int] = []

    def sign() -> None:
        try:
            for _ in range(400):
                hsm.sign(user, handle, b"m")
        except BaseException as exc:  # reported below
            failures.append(exc)

    signer = threading.Thread(target=sign)
    signer.start()
    while signer.is_alive():
        starts = sorted(s[0] for n in storage.audit_segments() if (s := parse_segment_name(n)))
        if starts[1:]:
            hsm.prune_audit(officer, starts[-1])
            pruned.append(starts[-1])
    signer.join()
    hsm.close()
    assert not failures
    assert pruned
    names = storage.audit_segments()
    span = verify_audit_segments(names, storage.read_audit_segment, storage.read_audit())
    assert span.first >= pruned[-1]
    check_sealed_audit(
        audit=storage.read_audit(),
        store=storage.read_store(),
        anchor=storage.read_anchor(),
        sealing_secret=SECRET,
        segments=list(names),
        read_segment=storage.read_audit_segment,
    )
    _open(storage, config).close()


def test_a_segment_replaced_by_a_hard_link_to_the_live_log_is_named(
    rotated_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segment = rotated_dir / "audit-22-32.jsonl"
    segment.unlink()
    os.link(rotated_dir / "audit.jsonl", segment)
    capsys.readouterr()
    assert _cli_verify(rotated_dir) == 1
    assert "segment audit-22-32.jsonl holds records 33 to" in capsys.readouterr().err
