"""PostgreSQL going away under a running service: 503 with Retry-After (never 500, never a
hang), and the service recovers by itself when the database returns.

The database "goes away" behind a TCP proxy the test controls (refused connections, every
open connection cut), its sessions are killed with ``pg_terminate_backend``, or its state row
is held locked by another session (a stuck database: the lock and statement timeouts answer).
Nothing here compares durations: a hang fails by the HTTP client's own timeout.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config
from psycopg import sql

from ironroot.cli import main
from ironroot.cose import Receipt, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StoreUnavailable
from ironroot.log import layout, verify_log_dir
from ironroot.transparency import ServiceThread, TransparencyService
from ironroot_pg import (
    TcpProxy,
    TestStore,
    admin,
    fresh_schema,
    pg_host_port,
    require_pg,
    test_dsn,
)

STORE_INDEPENDENT = True  # PostgreSQL only: each test sets up its own schema
COSE = {"Content-Type": "application/cose"}
JSON = {"Accept": "application/json"}
pytestmark = pytest.mark.integration


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    require_pg()
    proxy = TcpProxy(*pg_host_port())
    yield proxy
    proxy.close()


def _data(tmp_path: Path, vendor: PrivateKey, schema: str, dsn: str) -> Path:
    data = write_config(
        tmp_path / "data",
        issuers=[(VENDOR_ISS, vendor)],
        store=TestStore("postgresql", schema),
        registration_wait=10.0,
    )
    toml = layout.config_path(data)
    text = toml.read_text().replace(f'dsn = "{test_dsn()}"', f'dsn = "{dsn}"')
    toml.write_text(text.replace("[log]", "[log]\nstore_timeout = 2.0", 1))
    return data


def _stmt(key: PrivateKey, n: int) -> bytes:
    return create_statement(key, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:outage/{n}")


def _unavailable(response: httpx.Response) -> None:
    """A 503 problem saying the store is unavailable, with a Retry-After to follow."""
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["code"] == "store-unavailable"


def _post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/entries", content=body, headers={**COSE, **JSON})


def _register_retrying(client: httpx.Client, body: bytes, attempts: int = 60) -> httpx.Response:
    """POST as a client should: on 503, wait what Retry-After says (at most a second here)."""
    for _ in range(attempts):
        response = client.post("/entries", content=body, headers={**COSE, **JSON})
        if response.status_code != 503:
            return response
        assert int(response.headers["Retry-After"]) >= 1
        time.sleep(1.0)
    raise AssertionError("still 503 after every retry")


def test_a_database_that_goes_away_gives_503_and_the_service_recovers(
    tmp_path: Path, vendor: PrivateKey, proxy: TcpProxy
) -> None:
    with fresh_schema() as schema:
        data = _data(tmp_path, vendor, schema, proxy.dsn(test_dsn()))
        service = TransparencyService.open(data)
        with (
            service,
            ServiceThread(service) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            first = client.post("/entries", content=_stmt(vendor, 0), headers=COSE)
            assert first.status_code == 201
            assert client.get("/ready").status_code == 200

            proxy.down()
            _unavailable(
                client.post("/entries", content=_stmt(vendor, 1), headers={**COSE, **JSON})
            )
            _unavailable(client.get("/tile/0/000.p/1", headers=JSON))
            _unavailable(
                client.post("/entries", content=_stmt(vendor, 2), headers={**COSE, **JSON})
            )
            assert client.get("/ready").status_code == 503
            # What is already in memory is still served.
            assert client.get("/checkpoint").status_code == 200

            proxy.up()
            for n in (1, 2, 3):
                assert _register_retrying(client, _stmt(vendor, n)).status_code == 201
            assert client.get("/ready").status_code == 200
            assert client.get("/tile/0/000.p/4").status_code == 200
        report = verify_log_dir(data)
        assert report.size == 4


def test_a_service_started_while_the_database_is_away_fails_at_once(
    tmp_path: Path, vendor: PrivateKey, proxy: TcpProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_schema() as schema:
        data = _data(tmp_path, vendor, schema, proxy.dsn(test_dsn()))
        proxy.down()
        with pytest.raises(StoreUnavailable) as info:
            TransparencyService.open(data)
        assert "cannot connect to PostgreSQL" in info.value.detail
        assert main(["log", "verify", str(data)]) == 1
        assert "store-unavailable" in capsys.readouterr().err
        proxy.up()
        TransparencyService.open(data).close()


def test_killed_database_sessions_are_replaced_and_nothing_acknowledged_is_lost(
    tmp_path: Path, vendor: PrivateKey
) -> None:
    require_pg()
    name = "ironroot-test-" + secrets.token_hex(4)
    with fresh_schema() as schema:
        dsn = test_dsn() + ("&" if "?" in test_dsn() else "?") + f"application_name={name}"
        data = _data(tmp_path, vendor, schema, dsn)
        service = TransparencyService.open(data)
        acknowledged: list[str] = []
        with (
            service,
            ServiceThread(service) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            for n in range(20):
                if n % 5 == 0:
                    with admin() as conn:
                        conn.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s",
                            (name,),
                        )
                response = _register_retrying(client, _stmt(vendor, n))
                assert response.status_code == 201
                acknowledged.append(response.headers["Location"])
            for location in acknowledged:
                assert client.get(location).status_code == 200
        assert verify_log_dir(data).size == 20


def test_a_stuck_database_answers_503_within_its_timeouts(
    tmp_path: Path, vendor: PrivateKey
) -> None:
    """Another session holds the state row: the write waits lock_timeout, not forever."""
    require_pg()
    with fresh_schema() as schema:
        data = _data(tmp_path, vendor, schema, test_dsn())
        service = TransparencyService.open(data)
        with (
            service,
            ServiceThread(service) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            assert (
                client.post("/entries", content=_stmt(vendor, 0), headers=COSE).status_code == 201
            )
            holder = admin()
            try:
                holder.execute("BEGIN")
                holder.execute(
                    sql.SQL("SELECT size FROM {} WHERE id = 1 FOR UPDATE").format(
                        sql.Identifier(schema, "state")
                    )
                )
                _unavailable(_post(client, _stmt(vendor, 1)))
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert _register_retrying(client, _stmt(vendor, 1)).status_code == 201
        assert verify_log_dir(data).size == 2


def test_the_database_going_away_while_the_floor_is_read_fails_the_opening(
    tmp_path: Path, vendor: PrivateKey, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away (every connection cut, new ones refused) just as a sequencer
    reads the latest stored receipt time: the opening fails with ``StoreUnavailable`` rather
    than leave no floor, and once the database is back a sequencer whose clock is 100 s
    behind signs the stored time, never an earlier one."""
    with fresh_schema() as schema:
        data = _data(tmp_path, vendor, schema, proxy.dsn(test_dsn()))
        ahead = datetime.now(UTC) + timedelta(seconds=100)
        with TransparencyService.open(data, clock=lambda: ahead) as first:
            first.submit(_stmt(vendor, 0)).integrated.result(30)
        real = TransparencyService.latest_receipt_time

        def away(self: TransparencyService) -> int | None:
            proxy.down()
            return real(self)

        monkeypatch.setattr(TransparencyService, "latest_receipt_time", away)
        with pytest.raises(StoreUnavailable) as caught:
            TransparencyService.open(data)
        assert type(caught.value) is StoreUnavailable
        monkeypatch.setattr(TransparencyService, "latest_receipt_time", real)
        proxy.up()
        behind = datetime.now(UTC)
        with TransparencyService.open(data, clock=lambda: behind) as second:
            ticket = second.submit(_stmt(vendor, 1))
            ticket.integrated.result(30)
            receipts = second.receipts(ticket.entry_id)
            assert receipts is not None
            assert Receipt.parse(receipts[0]).iat == int(ahead.timestamp())


def test_cts_answers_what_it_holds_in_memory_while_the_database_is_away(
    tmp_path: Path, vendor: PrivateKey, proxy: TcpProxy
) -> None:
    """The CTS API under ``cts_prefix`` while the database is away: every refusal is a 503
    with ``Retry-After``; an operation whose receipts the service holds in memory succeeds,
    as its receipt is served (it was a 503: the operation looked the entry up in the
    database first, and pyscitt's wait for it gave up after 30 s of an outage)."""
    from ironroot.cose import Problem, SignedStatement, decode_cbor

    with fresh_schema() as schema:
        data = _data(tmp_path, vendor, schema, proxy.dsn(test_dsn()))
        toml = layout.config_path(data)
        text = toml.read_text()
        toml.write_text(text.replace("[transparency]\n", '[transparency]\ncts_prefix = "/cts"\n'))
        service = TransparencyService.open(data)
        with (
            service,
            ServiceThread(service) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            held, other = _stmt(vendor, 0), _stmt(vendor, 1)
            ids = [
                hashlib.sha256(SignedStatement.parse(s).log_entry()).hexdigest()
                for s in (held, other)
            ]
            assert client.post("/cts/entries", content=held, headers=COSE).status_code == 202
            assert client.get(f"/cts/entries/{ids[0]}").status_code == 200  # now in memory

            proxy.down()
            refused = [
                client.post("/cts/entries", content=other, headers=COSE),
                client.get(f"/cts/operations/{ids[1]}"),
                client.get(f"/cts/entries/{ids[1]}"),
            ]
            for response in refused:
                assert response.status_code == 503
                assert int(response.headers["Retry-After"]) >= 1
                assert Problem.from_cbor(response.content).extra["code"] == "store-unavailable"
            operation = client.get(f"/cts/operations/{ids[0]}")
            assert operation.status_code == 200
            assert decode_cbor(operation.content) == {
                "OperationId": ids[0],
                "Status": "succeeded",
                "EntryId": ids[0],
            }
            assert client.get(f"/cts/entries/{ids[0]}").status_code == 200
            proxy.up()
