"""A pending row the sequencer cannot integrate, under the running service: it used to stall
integration, so every later registration waited (303) and none got a receipt. That row's
entry is now refused (its look-up answers 503 ``entry-refused``, saying why) and the others
go on; what stops integration with no row to blame makes ``/ready`` fail its
``integration`` check, the reason logged."""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cose import create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import StoreBatch
from ironroot.transparency import ServiceThread, TransparencyService, load_config
from ironroot_pg import raw_sql

NOW = datetime(2026, 6, 1, tzinfo=UTC)
COSE = {"Content-Type": "application/cose"}
JSON = {"Accept": "application/json"}


def _stmt(key: PrivateKey, n: int) -> bytes:
    return create_statement(key, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:pending/{n}")


def _with_pending_row(data: Path, vendor: PrivateKey, statement: bytes) -> bytes:
    """Store ``statement``'s entry as a pending row (as a sequencer that could not integrate
    it left it); its entry id."""
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        entry = service.check(statement)
    store = load_config(data).store.open(data)
    try:
        entry_id = hashlib.sha256(entry).digest()
        store.write(StoreBatch(first_index=0, pending=[(entry_id, entry)]))
    finally:
        store.close()
    return entry_id


def test_an_altered_pending_row_is_refused_and_registration_goes_on(tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    first = _stmt(vendor, 1)
    entry_id = _with_pending_row(data, vendor, first)
    raw_sql(data, "UPDATE pending SET entry = ?", b"altered in the database")
    with (
        TransparencyService.open(data, clock=lambda: NOW) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        later = client.post("/entries", content=_stmt(vendor, 2), headers={**COSE, **JSON})
        assert later.status_code == 201, later.text
        refused = client.get(f"/entries/{entry_id.hex()}", headers=JSON)
        assert refused.status_code == 503
        problem = refused.json()
        assert problem["code"] == "entry-refused"
        assert problem["detail"] == (
            "the sequencer refused this entry's stored row, so it is not in the log (its entry "
            "does not hash to its id (SHA-256): the row was altered): register the statement "
            "again"
        )
        assert client.get("/ready").json()["checks"]["integration"] == "ok"
        again = client.post("/entries", content=first, headers={**COSE, **JSON})
        assert again.status_code == 201
        assert again.headers["Location"] == f"/entries/{entry_id.hex()}"
        assert client.get(f"/entries/{entry_id.hex()}").status_code == 200
        assert client.get("/health").json()["tree_size"] == 2


def test_a_pending_page_that_cannot_be_read_makes_the_service_not_ready(
    tmp_path: Path, store_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    if store_kind != "sqlite":
        pytest.skip("SQLite only: a PostgreSQL bytea column holds bytes whatever is stored")
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)], registration_wait=0.2)
    _with_pending_row(data, vendor, _stmt(vendor, 1))
    raw_sql(data, "UPDATE pending SET entry = 'text'")
    with (
        caplog.at_level(logging.WARNING, logger="ironroot.ready"),
        TransparencyService.open(data, clock=lambda: NOW) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        later = client.post("/entries", content=_stmt(vendor, 2), headers={**COSE, **JSON})
        assert later.status_code == 303  # acknowledged (durable), not integrated
        ready = client.get("/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["integration"] == "integration-stalled: Storage Error"
        assert checks["store"] == "ok"
        said = [r.getMessage() for r in caplog.records]
        assert (
            "transparency: readiness check integration fails: integration-stalled: the log "
            "integrates nothing: the log database's pending row 1 holds a str where bytes belong: "
            "it is "
            "damaged; registered entries stay pending (durable) while the sequencer retries"
        ) in said
        raw_sql(data, "DELETE FROM pending WHERE entry = 'text'")
        third = client.post("/entries", content=_stmt(vendor, 3), headers={**COSE, **JSON})
        assert third.status_code in (201, 303)
        for _ in range(100):
            if client.get("/ready").status_code == 200:
                break
            threading.Event().wait(0.05)
        assert client.get("/ready").json()["checks"]["integration"] == "ok"
        assert client.get(later.headers["Location"]).status_code == 200
