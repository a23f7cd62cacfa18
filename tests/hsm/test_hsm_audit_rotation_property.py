"""Rotation and pruning under any sequence (hypothesis): signs, flushes, prunes, reopens,
rotations cut short at any step, appends cut short and segment sizes changed, in any order.
After each step the whole chain verifies (public and sealed, from where an officer's prune
left it), and no record that was ever on the medium changed or was lost unless it was pruned.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable

import pytest
from _hsm_helpers import (
    NOW_TS,
    OFFICER,
    OFFICER_PASS,
    SECRET,
    USER,
    USER_PASS,
    CrashingStorage,
    DeviceChain,
    make_device,
    new_hsm,
    sessions,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import StorageError
from ironroot.hsm import (
    DEFAULT_KATS,
    AuditRecord,
    Hsm,
    HsmConfig,
    KeyType,
    check_sealed_audit,
    parse_segment_name,
    verify_audit_segments,
)

# Each example powers the HSM up again and again (reopens, crashes, torn appends) and logs in
# before each run of signatures: what it proves is the audit chain's, not the credential hash's
# nor the power-up self-tests', which have tests of their own (test_hsm_selftest and the
# login tests). So the credential hash costs the least the config allows (scrypt N 2**10,
# r 1) and power-up runs one known-answer test, SHA-384, not the whole table: the same code
# paths (hash and verify a credential, run the table, refuse on a failure) at a fraction of
# the cost, so that the full budget of examples stays affordable.
BASE = HsmConfig(scrypt_n=2**10, scrypt_r=1, audit_group_commit=3, audit_segment_records=4)
KATS = tuple(kat for kat in DEFAULT_KATS if kat.mechanism == "sha384")
STEPS = ("after-rotation-record", "after-archive", "after-store", "after-anchor", "before-reset")

_ACTIONS = st.one_of(
    st.tuples(st.just("sign"), st.integers(1, 12)),
    st.tuples(st.just("flush"), st.just(0)),
    st.tuples(st.just("prune"), st.integers(0, 5)),
    st.tuples(st.just("reopen"), st.sampled_from([0, 2, 3, 7])),  # 0: the sealed size
    st.tuples(st.just("crash"), st.integers(0, len(STEPS) - 1)),
    st.tuples(st.just("torn"), st.integers(1, 60)),
)


@functools.cache
def _device() -> DeviceChain:
    return make_device()


# What a record's hash covers (AuditRecord.digest: every field but the MAC): two records with
# the same content have the same hash and the same hash means the same content, so the test
# compares the content itself. Hashing each record of the whole chain again after every step
# (a CBOR encoding and a SHA-256 each) was a fifth of the test's time.
_Content = tuple[int, int, str, str, str | None, str, bytes, object]


def _content(record: AuditRecord) -> _Content:
    return (
        record.seq,
        record.time,
        record.identity,
        record.operation,
        record.key,
        record.result,
        record.prev,
        record.release,
    )


def _chain(records: Iterable[AuditRecord]) -> dict[int, _Content]:
    found: dict[int, _Content] = {}
    for record in records:
        content = _content(record)
        assert found.setdefault(record.seq, content) == content
    return found


class _Run:
    def __init__(self) -> None:
        self.storage = CrashingStorage()
        self.hsm = new_hsm(_device().identity, self.storage, config=BASE, kats=KATS)
        officer, _user, _auditor = sessions(self.hsm)
        self.handle = self.hsm.generate(officer, KeyType.EC_P256)
        self.seen: dict[int, _Content] = {}

    def open(self, segment: int | None = None) -> None:
        config = dataclasses.replace(BASE, audit_segment_records=segment)
        self.hsm = Hsm.open(self.storage, SECRET, config=config, kats=KATS, clock=lambda: NOW_TS)
        assert self.hsm.state == "operational"

    def reopen(self, segment: int | None = None) -> None:
        if self.hsm.state == "operational":
            self.hsm.close()
        self.open(segment)

    def sign(self, times: int) -> None:
        user = self.hsm.login(USER, USER_PASS)
        for _ in range(times):
            self.hsm.sign(user, self.handle, b"m")

    def step(self, action: str, value: int) -> None:
        if action == "sign":
            self.sign(value)
        elif action == "flush":
            self.hsm.flush()
        elif action == "prune":
            starts = sorted(
                s[0] for n in self.storage.audit_segments() if (s := parse_segment_name(n))
            )
            if starts[1:]:
                officer = self.hsm.login(OFFICER, OFFICER_PASS)
                self.hsm.prune_audit(officer, starts[1:][value % len(starts[1:])])
        elif action == "reopen":
            self.reopen(value or None)
        elif action == "crash":
            self.storage.crash_at = STEPS[value]
            with pytest.raises(StorageError):
                self.sign(self.hsm.audit_segment_records + 2)  # a rotation, cut short
            self.storage.crash_at = ""
            self.open()
        else:  # an append cut short, then a power cut
            self.hsm.close()
            self.storage.append_audit(
                b'{"seq":1,"time":1,"identity":"-","operation":"sign"'[:value]
            )
            self.open()

    def check(self) -> None:
        self.hsm.flush()
        storage = self.storage
        names = storage.audit_segments()
        # every record on the medium, each file read and parsed once (keep_archived)
        span = verify_audit_segments(
            names, storage.read_audit_segment, storage.read_audit(), keep_archived=True
        )
        report = check_sealed_audit(
            audit=storage.read_audit(),
            store=storage.read_store(),
            anchor=storage.read_anchor(),
            sealing_secret=SECRET,
            segments=list(names),
            read_segment=storage.read_audit_segment,
        )
        assert (report.first, report.records) == (span.first, span.first + span.records)
        chain = _chain([*span.archived, *span.live])
        assert sorted(chain) == list(range(span.first, span.first + span.records))
        for seq, content in self.seen.items():  # kept unchanged, or pruned
            assert chain.get(seq, content) == content
            assert seq in chain or seq < span.first
        self.seen.update(chain)


@pytest.mark.slow
@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(_ACTIONS, min_size=1, max_size=14))
def test_any_sequence_keeps_one_verifiable_chain(actions: list[tuple[str, int]]) -> None:
    run = _Run()
    run.check()
    for action, value in actions:
        run.step(action, value)
        run.check()
    run.reopen()
    run.check()
    run.hsm.close()
