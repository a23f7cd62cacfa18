"""The dashboard's alerts when a monitor's or a witness's database lost the fork proof or the
evidence it kept (a copy taken before the fork was found, restored): a warning naming the
loss, never a page that just no longer shows the split view."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from witness_testkit import ORIGIN, LogFetcher, entries, grown

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ForkDetected
from ironroot.log import NoteSigner
from ironroot.monitor import Monitor, MonitorStore
from ironroot.web import Dashboard, DashboardConfig
from ironroot.witness import AddCheckpoint, WitnessedLog, init_witness_dir, open_witness


def _restore(backup: Path, path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, path)


def _backup(path: Path, backup: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    shutil.copy(path, backup)


def test_a_lost_fork_proof_or_evidence_is_a_warning(tmp_path: Path) -> None:
    log_key = PrivateKey.generate(Algorithm.ED25519)
    honest = grown(log_key, entries(6))
    forked = grown(log_key, entries(6, tag=b"evil"))
    monitor = tmp_path / "monitor.db"
    store = MonitorStore(monitor)
    try:
        Monitor(store).check("a", LogFetcher(honest), honest.note_verifiers)
        _backup(monitor, tmp_path / "monitor.backup")
        Monitor(store).check("a", LogFetcher(forked), forked.note_verifiers)
        assert len(store.forks()) == 1
    finally:
        store.close()
    witness_dir = tmp_path / "witness"
    log = WitnessedLog(ORIGIN, (NoteSigner(ORIGIN, log_key).verifier(),))
    config = init_witness_dir(witness_dir, name="witness.example/w1", logs=[log])
    witness = open_witness(witness_dir)
    try:
        witness.add_checkpoint(AddCheckpoint(0, (), honest.checkpoint()).encode())
        _backup(config.database, tmp_path / "witness.backup")
        with pytest.raises(ForkDetected):
            witness.add_checkpoint(AddCheckpoint(6, (), forked.checkpoint()).encode())
    finally:
        witness.close()
    _restore(tmp_path / "monitor.backup", monitor)
    _restore(tmp_path / "witness.backup", config.database)
    dashboard = Dashboard(
        DashboardConfig(data_dir=tmp_path, monitors=(monitor,), witnesses=(witness_dir,))
    )
    try:
        alerts = dashboard.alerts()["alerts"]
    finally:
        dashboard.close()
    warned = {(a.kind, a.source): str(a.what) for a in alerts if a.severity == "warning"}
    assert f"holds 0 fork proofs of {ORIGIN}, but 1 were kept" in warned["monitor", "monitor.db"]
    assert f"holds 0 evidence rows of {ORIGIN}, but 1 were kept" in warned["witness", "witness"]
