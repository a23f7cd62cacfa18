"""The service's database restored from an older backup, and the service restarted: it
signs no checkpoint at a size it signed before with another root.

It used to start from the restored (smaller) tree, give acknowledged entries' indexes to new
registrations and sign new checkpoints of sizes already signed: a fork of the log, of its
own making. The latest checkpoint it signed is now kept outside the database
(``<data>/signed-checkpoint``); after a real restore (SQLite: the database files copied back;
PostgreSQL: the log's tables) every registration is answered 503 ``store-rolled-back`` with
``Retry-After``, ``/ready`` fails, and the database is left as the restore left it.
"""

from __future__ import annotations

import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StoreUnavailable
from ironroot.log import Checkpoint, Note, layout
from ironroot.transparency import ServiceThread, TransparencyService
from ironroot_pg import TestStore, clone_schema, drop_schema

NOW = datetime(2026, 6, 1, tzinfo=UTC)
COSE = {"Content-Type": "application/cose"}
JSON = {"Accept": "application/json"}


def _stmt(key: PrivateKey, n: int) -> bytes:
    return create_statement(key, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:restore/{n}")


def _register(data: Path, vendor: PrivateKey, numbers: range) -> None:
    with (
        TransparencyService.open(data, clock=lambda: NOW) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        for n in numbers:
            answer = client.post("/entries", content=_stmt(vendor, n), headers={**COSE, **JSON})
            assert answer.status_code == 201, answer.text


def _restore(data: Path, store: TestStore, backup: Path, schema: str | None) -> None:
    if store.kind == "sqlite":
        for path in data.glob(layout.LOG_DB + "*"):
            path.unlink()
        for path in backup.iterdir():
            shutil.copy2(path, data / path.name)
        return
    assert store.schema is not None
    assert schema is not None
    drop_schema(store.schema)
    clone_schema(schema, store.schema)


def test_a_service_restarted_on_a_restored_backup_signs_no_fork(
    tmp_path: Path, log_store: TestStore
) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _register(data, vendor, range(3))
    backup = tmp_path / "backup"
    schema = None if log_store.kind == "sqlite" else "b_" + secrets.token_hex(6)
    if schema is not None:
        assert log_store.schema is not None
        clone_schema(log_store.schema, schema)
    else:
        backup.mkdir()
        for path in data.glob(layout.LOG_DB + "*"):
            shutil.copy2(path, backup / path.name)
    try:
        _register(data, vendor, range(3, 5))
        signed = Checkpoint.parse(Note.parse((data / "signed-checkpoint").read_bytes()).body)
        assert signed.size == 5
        _restore(data, log_store, backup, schema)
        with (
            TransparencyService.open(data, clock=lambda: NOW) as service,
            ServiceThread(service) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            assert service.log.tree_size == 3
            for n in (5, 6):
                answer = client.post("/entries", content=_stmt(vendor, n), headers={**COSE, **JSON})
                assert answer.status_code == 503, answer.text
                problem = answer.json()
                assert problem["code"] == "store-rolled-back", problem
                assert "restored from an older copy" in problem["detail"]
                assert int(answer.headers["Retry-After"]) >= 1
            ready = client.get("/ready")
            assert ready.status_code == 503, ready.text
            assert "integration-stalled" in ready.json()["checks"]["integration"]
            assert service.log.tree_size == 3
        with TransparencyService.open(data, clock=lambda: NOW) as service:
            assert service.log.tree_size == 3  # nothing signed at 4 or 5 again
    finally:
        if schema is not None:
            drop_schema(schema)


def test_a_data_directory_from_before_the_record_takes_its_witnessed_checkpoint_as_one(
    tmp_path: Path, log_store: TestStore
) -> None:
    """A data directory written before ``signed-checkpoint`` existed, whose service published
    witnessed checkpoints: the first start with the record takes the witnessed checkpoint
    (kept outside the database too) as the floor, rather than the restored database's head."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _register(data, vendor, range(3))
    backup = tmp_path / "backup"
    schema = None if log_store.kind == "sqlite" else "b_" + secrets.token_hex(6)
    if schema is not None:
        assert log_store.schema is not None
        clone_schema(log_store.schema, schema)
    else:
        backup.mkdir()
        for path in data.glob(layout.LOG_DB + "*"):
            shutil.copy2(path, backup / path.name)
    try:
        _register(data, vendor, range(3, 5))
        # as an earlier version left it: the witnessed checkpoint only
        (data / "signed-checkpoint").rename(data / "witnessed-checkpoint")
        _restore(data, log_store, backup, schema)
        with TransparencyService.open(data, clock=lambda: NOW) as service:
            stalled = service.log.stalled
            assert stalled is not None
            assert stalled.code == "store-rolled-back"
            ticket = service.log.submit(b"after the restore")
            with pytest.raises(StoreUnavailable, match="restored from an older copy"):
                ticket.integrated.result(30)
        assert (data / "signed-checkpoint").exists()
    finally:
        if schema is not None:
            drop_schema(schema)


def test_a_record_restored_with_the_database_is_raised_by_the_witnessed_checkpoint(
    tmp_path: Path, log_store: TestStore
) -> None:
    """The database and ``signed-checkpoint`` restored together from one backup, while the
    witnessed checkpoint published since (larger) stayed: the larger of the two is the
    floor."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _register(data, vendor, range(3))
    backup = tmp_path / "backup"
    schema = None if log_store.kind == "sqlite" else "b_" + secrets.token_hex(6)
    if schema is not None:
        assert log_store.schema is not None
        clone_schema(log_store.schema, schema)
    else:
        backup.mkdir()
        for path in data.glob(layout.LOG_DB + "*"):
            shutil.copy2(path, backup / path.name)
    old_record = (data / "signed-checkpoint").read_bytes()
    try:
        _register(data, vendor, range(3, 5))
        shutil.copy2(data / "signed-checkpoint", data / "witnessed-checkpoint")
        _restore(data, log_store, backup, schema)
        (data / "signed-checkpoint").write_bytes(old_record)
        with TransparencyService.open(data, clock=lambda: NOW) as service:
            stalled = service.log.stalled
            assert stalled is not None
            assert stalled.code == "store-rolled-back"
    finally:
        if schema is not None:
            drop_schema(schema)
