"""The SQLite store's id → index map against a model: a dict of every registered id.

Hypothesis draws sequences of steps on one log file: new entries, re-registrations of old
ones, reopening the writer with another window (the small ones merge on the merger thread),
a merge on the caller's thread, a merge cut short after some slices (what ``kill -9`` in a
merge leaves: keys of window entries stored, ``indexed`` not moved, the window lost with its
process), and a fresh reader. After each step the writer's store and a read-only store kept
open across all of them (its window dropped and refilled by merges it does not run) answer
every id exactly as the model does, never-registered ids included, and count one id per
entry. Half the runs narrow the key to one byte, so keys clash and clashes are stored whole.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_testkit import ORIGIN, ed25519_key, fill, signer

from hypothesis_budget import examples
from ironroot.errors import StorageError
from ironroot.log import Log, SqliteLogStore, _sqlite, verify_log

KEY = ed25519_key()
NEVER = [hashlib.sha256(b"never registered %d" % i).digest() for i in range(4)]

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("new"), st.integers(1, 40)),
        st.tuples(st.just("again"), st.integers(1, 8)),
        st.tuples(st.just("reopen"), st.sampled_from([None, 1, 3, 8, 16, 50])),
        st.tuples(st.just("merge"), st.just(0)),
        st.tuples(st.just("cut"), st.integers(0, 5)),
        st.tuples(st.just("reader"), st.just(0)),
    ),
    min_size=1,
    max_size=20,
)


class _Model:
    """The log file under test, its writer, a reader kept open, and what they must answer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.index: dict[bytes, int] = {}
        self.entries: list[bytes] = []
        self.store, self.log = self._open(8)
        self.reader = SqliteLogStore(path, read_only=True)

    def _open(self, window: int | None) -> tuple[SqliteLogStore, Log]:
        store = SqliteLogStore(self.path, index_window=window)
        log = Log(store, origin=ORIGIN, note_signers=[signer(KEY)], max_batch=7)
        log.start()
        return store, log

    def reopen(self, window: int | None) -> None:
        self.log.close()
        self.store, self.log = self._open(window)

    def register(self, items: Sequence[bytes]) -> None:
        placed = fill(self.log, items)
        for entry, where in zip(items, placed, strict=True):
            entry_id = hashlib.sha256(entry).digest()
            if entry_id not in self.index:
                assert where.index == len(self.entries)
                self.index[entry_id] = where.index
                self.entries.append(entry)
            assert where.index == self.index[entry_id]
        assert self.log.tree_size == len(self.entries)

    def merge_apart(self) -> None:
        """Merge on the caller's thread, by a store object of its own (the writer stopped)."""
        self.log.close()
        store = SqliteLogStore(self.path, index_window=1 << 20)
        try:
            store.merge_index()
        finally:
            store.close()

    def check(self) -> None:
        asked = [*self.index, *NEVER]
        for store in (self.store, self.reader):
            assert store.lookup(asked) == self.index
        assert self.store.count_entry_ids() == len(self.entries)

    def close(self) -> None:
        self.log.close()
        self.reader.close()


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS, narrow=st.booleans(), slice_keys=st.sampled_from([1, 4, 2048]), data=st.data())
def test_look_ups_match_the_model_through_merges_cuts_and_reopens(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    steps: list[tuple[str, int | None]],
    narrow: bool,
    slice_keys: int,
    data: st.DataObject,
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(_sqlite, "_KEY_BYTES", 1 if narrow else 8)
        patch.setattr(_sqlite, "_SLICE_KEYS", slice_keys)
        model = _Model(tmp_path_factory.mktemp("model") / "log.sqlite3")
        made = 0
        try:
            for step, arg in steps:
                if step == "new":
                    assert arg is not None
                    model.register([b"entry %d " % (made + i) + bytes(i % 7) for i in range(arg)])
                    made += arg
                elif step == "again" and model.entries:
                    assert arg is not None
                    picks = st.integers(0, len(model.entries) - 1)
                    model.register([model.entries[data.draw(picks)] for _ in range(arg)])
                elif step == "reopen":
                    model.reopen(arg)
                elif step == "merge":
                    model.merge_apart()
                    model.reopen(8)
                elif step == "cut":
                    assert arg is not None
                    _merge_cut_short(model, patch, after=arg)
                    model.reopen(data.draw(st.sampled_from([None, 2, 8])))
                elif step == "reader":
                    model.reader.close()
                    model.reader = SqliteLogStore(model.path, read_only=True)
                model.check()
            model.log.close()
            final = SqliteLogStore(model.path, read_only=True)
            try:
                assert final.lookup([*model.index, *NEVER]) == model.index
                report = verify_log(final, origin=ORIGIN, verifiers=[signer(KEY).verifier()])
                assert report.size == len(model.entries)
            finally:
                final.close()
        finally:
            model.close()


def _merge_cut_short(model: _Model, patch: pytest.MonkeyPatch, *, after: int) -> None:
    """A merge whose slices after the first ``after`` fail: the keys stored so far stay."""
    real = _sqlite._index
    slices = [0]

    def cut(conn: sqlite3.Connection, rows: Sequence[tuple[int, int]]) -> None:
        slices[0] += 1
        if slices[0] > after:
            raise sqlite3.OperationalError("disk I/O error")
        real(conn, rows)

    patch.setattr(_sqlite, "_index", cut)
    failure = None  # a merge with no more than ``after`` slices completes
    try:
        model.merge_apart()
    except StorageError as exc:
        failure = exc.detail
    finally:
        patch.setattr(_sqlite, "_index", real)
    assert failure is None or "disk I/O error" in failure
