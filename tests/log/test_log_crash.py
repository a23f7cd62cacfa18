"""KILL -9, on each durable store: no entry whose ``durable`` future resolved is ever lost,
and no published checkpoint is ever inconsistent with a later one."""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from log_testkit import ORIGIN, LogPlace, ed25519_key, make_data_dir, signer

from ironroot.log import Log, SqliteLogStore, layout, open_checkpoint, verify_log
from ironroot.merkle import verify_consistency
from ironroot_pg import add_store_to_config

SCRIPT = Path(__file__).with_name("log_crash_writer.py")
RUNS = 4


def _lines(path: Path) -> list[str]:
    text = path.read_text()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return complete.splitlines()


def _run_until_killed(
    data_dir: Path, run: int, max_batch: int, out: Path, delay: float, *window: int
) -> None:
    with out.open("w") as stdout, out.with_suffix(".err").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(data_dir), str(run), str(max_batch)]
            + [str(w) for w in window],
            stdout=stdout,
            stderr=stderr,
        )
        try:
            deadline = time.monotonic() + 60
            while not any(line.startswith("D ") for line in _lines(out)):
                assert proc.poll() is None, out.with_suffix(".err").read_text()
                assert time.monotonic() < deadline, "the writer never made an entry durable"
                time.sleep(0.02)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.integration
def test_kill_9_loses_no_durable_entry_and_forks_no_checkpoint(
    tmp_path: Path, place: LogPlace
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    key = ed25519_key()
    data_dir = make_data_dir(place.data_dir, key)
    add_store_to_config(data_dir, place.store)
    durable: list[bytes] = []
    checkpoints: list[bytes] = []
    for run in range(RUNS):
        out = tmp_path / f"run{run}.out"
        _run_until_killed(data_dir, run, rng.choice([1, 5, 64, 4096]), out, rng.uniform(0.0, 0.4))
        for line in _lines(out):
            kind, _, value = line.partition(" ")
            if kind == "D":
                durable.append(bytes.fromhex(value))
            elif kind == "C":
                checkpoints.append(base64.b64decode(value))
    assert durable, f"seed {seed}: nothing became durable"

    verifier = signer(key).verifier()
    with place.open_log(origin=ORIGIN, note_signers=[signer(key)]) as log:
        deadline = time.monotonic() + 60
        while log.store.pending():
            assert time.monotonic() < deadline, f"seed {seed}: pending entries not integrated"
            time.sleep(0.02)
        missing = [i.hex() for i in durable if log.status(i) is None]
        assert not missing, f"seed {seed}: durable entries lost or unintegrated: {missing[:3]}"
        final = log.tree_size
        assert final >= len(set(durable))
        verify_log(log.store, origin=ORIGIN, verifiers=[verifier])
        for note in checkpoints:
            checkpoint = open_checkpoint(note, [verifier], origin=ORIGIN)
            assert checkpoint.size <= final, f"seed {seed}"
            assert log.root(checkpoint.size) == checkpoint.root, f"seed {seed}"
            if checkpoint.size:
                proof = log.consistency_proof(checkpoint.size, final)
                verify_consistency(checkpoint.size, final, proof, checkpoint.root, log.root())


def test_kill_9_while_the_id_window_is_merged_loses_no_entry(tmp_path: Path) -> None:
    """The SQLite store keeps the latest ids in a window and merges it into its key index on a
    thread of its own, in slices (no fsync per slice). A real ``kill -9`` at a random moment of
    a writer whose window is small (so that it merges all the time): after each kill, and
    every entry made durable is found by its id, each at an index of its own within the tree,
    and the log verifies."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    key = ed25519_key()
    data_dir = make_data_dir(tmp_path / "data", key)
    durable: list[bytes] = []
    verifier = signer(key).verifier()
    for run in range(RUNS):
        out = tmp_path / f"run{run}.out"
        _run_until_killed(data_dir, run, rng.choice([5, 64]), out, rng.uniform(0.05, 0.4), 16)
        for line in _lines(out):
            kind, _, value = line.partition(" ")
            if kind == "D":
                durable.append(bytes.fromhex(value))
        store = SqliteLogStore(layout.log_db_path(data_dir), index_window=16)
        with Log(store, origin=ORIGIN, note_signers=[signer(key)]) as log:
            deadline = time.monotonic() + 60
            while log.store.pending():
                assert time.monotonic() < deadline, f"seed {seed}: pending entries left"
                time.sleep(0.02)
            found = store.lookup(durable)
            missing = [i.hex() for i, index in found.items() if index is None]
            assert not missing, f"seed {seed}, run {run}: durable ids not found: {missing[:3]}"
            indexes = set(found.values())
            assert len(indexes) == len(found), f"seed {seed}, run {run}: two ids share an index"
            assert max(i for i in indexes if i is not None) < log.tree_size, f"seed {seed}"
            verify_log(log.store, origin=ORIGIN, verifiers=[verifier])
    assert len(set(durable)) > 16 * RUNS, f"seed {seed}: too few entries to merge the window"
