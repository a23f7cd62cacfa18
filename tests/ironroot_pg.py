"""PostgreSQL for the store-parametrized tests: the server, a fresh schema per use, raw SQL.

The server is ``$IRONROOT_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Each use gets its own schema (``t_<random>``), created here and dropped afterwards: other
test runs share the server. When the server cannot be reached the PostgreSQL
parametrizations skip, saying why; with ``IRONROOT_REQUIRE_PG=1`` (CI) they fail instead.

A uniquely named module (not ``conftest``) so any test or helper can import it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import socket
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from ironroot.log import StoreConfig, layout

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ("sqlite", "postgresql")


def test_dsn() -> str:
    return os.environ.get("IRONROOT_TEST_PG") or DEFAULT_DSN


test_dsn.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@functools.cache
def _unreachable_reason() -> str | None:
    try:
        with psycopg.connect(test_dsn(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at $IRONROOT_TEST_PG is unreachable ({first})"
    return None


def require_pg() -> None:
    """Skip the test, saying why, when PostgreSQL is unreachable (fail it in CI)."""
    reason = _unreachable_reason()
    if reason is None:
        return
    if os.environ.get("IRONROOT_REQUIRE_PG", "") not in ("", "0"):
        pytest.fail(f"{reason} (IRONROOT_REQUIRE_PG is set: PostgreSQL must be present)")
    pytest.skip(reason)


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(test_dsn(), autocommit=True, connect_timeout=5)


def drop_schema(schema: str) -> None:
    with admin() as conn:
        # Bounded: a session a test left open (a bug) must not hang the run.
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A new schema name (created by the store that opens it), dropped on exit."""
    require_pg()
    schema = "t_" + secrets.token_hex(6)
    try:
        yield schema
    finally:
        drop_schema(schema)


@dataclass(frozen=True)
class TestStore:
    """Where a test's log lives: SQLite under a data directory, or a PostgreSQL schema."""

    kind: str
    schema: str | None = None

    __test__ = False

    @property
    def dsn(self) -> str:
        return test_dsn()

    def toml_lines(self) -> list[str]:
        """The ``[log]`` keys that put a data directory's log here."""
        if self.kind == "sqlite":
            return []
        return ['store = "postgresql"', f'dsn = "{self.dsn}"', f'schema = "{self.schema}"']

    @classmethod
    def of_data_dir(cls, data_dir: Path) -> TestStore:
        """The store a data directory's configuration names."""
        config = StoreConfig.of_data_dir(data_dir)
        return cls(config.kind, config.schema)

    def config(self) -> StoreConfig:
        if self.kind == "sqlite":
            return StoreConfig()
        return StoreConfig("postgresql", self.dsn, self.schema)

    def where(self, data_dir: Path) -> str:
        return str(data_dir) if self.kind == "sqlite" else self.dsn


@contextlib.contextmanager
def test_store(kind: str) -> Iterator[TestStore]:
    if kind == "sqlite":
        yield TestStore("sqlite")
        return
    with fresh_schema() as schema:
        yield TestStore("postgresql", schema)


test_store.__test__ = False  # type: ignore[attr-defined]


def add_store_to_config(data_dir: Path, store: TestStore) -> None:
    """Put ``store``'s keys into the ``[log]`` table of ``data_dir/ironroot.toml``."""
    lines = store.toml_lines()
    if not lines:
        return
    path = layout.config_path(data_dir)
    text = path.read_text() if path.exists() else ""
    if "[log]" in text:
        text = text.replace("[log]", "[log]\n" + "\n".join(lines), 1)
    else:
        text += "\n[log]\n" + "\n".join(lines) + "\n"
    path.write_text(text)


def raw_sql(data_dir: Path, statement: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one SQL statement (``?`` placeholders) on the log store of ``data_dir``, outside
    Ironroot: how tests tamper with a stored log. Returns the rows, if any."""
    config = StoreConfig.of_data_dir(data_dir)
    if config.kind == "sqlite":
        conn = sqlite3.connect(layout.log_db_path(data_dir), isolation_level=None)
        try:
            return list(conn.execute(statement, args).fetchall())
        finally:
            conn.close()
    assert config.dsn is not None
    assert config.schema is not None
    with psycopg.connect(config.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(config.schema)))
        cursor = conn.execute(statement.replace("?", "%s"), args)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description else []


def clone_schema(source: str, target: str, tables: Sequence[str] | None = None) -> None:
    """Copy every table of ``source`` (structure, indexes, rows) into a new ``target``."""
    with admin() as conn:
        names = tables or [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (source,)
            ).fetchall()
        ]
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(target)))
        for name in names:
            src = sql.Identifier(source, name)
            dst = sql.Identifier(target, name)
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(dst, src))
            conn.execute(
                sql.SQL("INSERT INTO {} OVERRIDING SYSTEM VALUE SELECT * FROM {}").format(dst, src)
            )


@contextlib.contextmanager
def copy_data_dir(source: Path, target: Path) -> Iterator[Path]:
    """A copy of a data directory and of its log (PostgreSQL: a clone of its schema, dropped
    on exit), to damage without touching the original."""
    for path in source.rglob("*"):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(path.read_bytes())
    config = StoreConfig.of_data_dir(source)
    if config.kind == "sqlite":
        yield target
        return
    assert config.schema is not None
    with fresh_schema() as schema:
        clone_schema(config.schema, schema)
        toml = layout.config_path(target)
        toml.write_text(toml.read_text().replace(f'"{config.schema}"', f'"{schema}"'))
        yield target


class TcpProxy:
    """A TCP forwarder in front of PostgreSQL that a test can take down and bring back.

    ``down()`` closes the listening socket (new connections are refused) and cuts every
    forwarded connection, as a database host that goes away would; ``up()`` listens again
    on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = int(probe.getsockname()[1])
        probe.close()
        self.up()

    def dsn(self, base: str, **params: str) -> str:
        """``base`` (a postgresql:// URL) sent through this proxy."""
        parts = urlsplit(base)
        user = f"{parts.username}@" if parts.username else ""
        query = "&".join([*filter(None, [parts.query]), *(f"{k}={v}" for k, v in params.items())])
        return urlunsplit(
            (parts.scheme, f"{user}127.0.0.1:{self.port}", parts.path, query, parts.fragment)
        )

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    close = down

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def pg_host_port() -> tuple[str, int]:
    parts = urlsplit(test_dsn())
    return parts.hostname or "127.0.0.1", parts.port or 5432
