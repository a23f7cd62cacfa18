"""A PostgreSQL server that refuses the connection for good (an unknown role, an unknown
database, a role that may not log in, a wrong password, ``pg_hba.conf``) is a configuration
error, not an outage: the store and the sequencer election fail closed at once with
:class:`ConfigError` (code ``store-refused``), never naming the password; a server that is not
there (a closed port) stays an outage (:class:`StoreUnavailable`, retried)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from ironroot.errors import ConfigError, StoreUnavailable
from ironroot.log import PostgresLogStore, SequencerLease
from ironroot.log._postgres import refused_connection
from ironroot_pg import admin, fresh_schema, require_pg, test_dsn

pytestmark = pytest.mark.integration
PASSWORD = "hunter2-" + secrets.token_hex(4)


def _with(url: str, *, user: str | None = None, dbname: str | None = None, port: int = 0) -> str:
    """``url`` (a postgresql:// URL) with another user (and ``PASSWORD``), database or port."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{host}:{port or parts.port or 5432}"
    if user is not None:
        netloc = f"{user}:{PASSWORD}@{netloc}"
    elif parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = f"/{dbname}" if dbname is not None else parts.path
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema() as name:
        yield name


@pytest.fixture
def nologin_role() -> Iterator[str]:
    require_pg()
    role = "ironroot_t_nologin_" + secrets.token_hex(4)
    with admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    try:
        yield role
    finally:
        with admin() as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _opens(dsn: str, schema: str) -> list[Callable[[], object]]:
    """Every way the log opens a DSN: the pooled store, the read-only snapshot, the election."""
    return [
        lambda: PostgresLogStore(dsn, schema=schema, timeout=2.0).close(),
        lambda: PostgresLogStore(dsn, schema=schema, read_only=True, timeout=2.0).close(),
        lambda: SequencerLease(dsn, holder="ironroot-seq-t", schema=schema).try_acquire(),
    ]


def _refused(dsn: str, schema: str, cause: str) -> None:
    for open_ in _opens(dsn, schema):
        with pytest.raises(ConfigError) as info:
            open_()
        error = info.value
        assert error.code == "store-refused"
        assert f"refused the connection: {cause}: check the DSN's user" in error.detail
        assert "retrying cannot cure this" in error.detail
        assert PASSWORD not in error.detail
        assert PASSWORD not in str(error)


def test_an_unknown_role_is_refused_as_configuration_not_retried_as_an_outage(
    schema: str,
) -> None:
    """A DSN naming a role the server does not have was reported as the database being
    unavailable (503, and a replica stood for election again for ever). Trust authentication
    does not help a role that does not exist."""
    role = "ironroot_t_missing_" + secrets.token_hex(4)
    _refused(_with(test_dsn(), user=role), schema, f'role "{role}" does not exist')


def test_an_unknown_database_is_refused_as_configuration(schema: str) -> None:
    require_pg()
    name = "ironroot_t_nodb_" + secrets.token_hex(4)
    _refused(_with(test_dsn(), dbname=name), schema, f'database "{name}" does not exist')


def test_a_role_that_may_not_log_in_is_refused_as_configuration(
    schema: str, nologin_role: str
) -> None:
    _refused(
        _with(test_dsn(), user=nologin_role),
        schema,
        f'role "{nologin_role}" is not permitted to log in',
    )


def test_a_closed_port_stays_an_outage(schema: str) -> None:
    """Nothing listening: an outage (StoreUnavailable: 503 with Retry-After, retried), not a
    configuration error."""
    dsn = _with(test_dsn(), port=_closed_port())
    for open_ in _opens(dsn, schema):
        with pytest.raises(StoreUnavailable) as info:
            open_()
        assert "Connection refused" in info.value.detail


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (
            'connection to server at "db", port 5432 failed: FATAL:  password authentication '
            'failed for user "ironroot"',
            'password authentication failed for user "ironroot"',
        ),
        (
            'connection to server at "db", port 5432 failed: FATAL:  no pg_hba.conf entry for '
            'host "10.0.0.7", user "ironroot", database "log", no encryption',
            'no pg_hba.conf entry for host "10.0.0.7", user "ironroot", database "log", '
            "no encryption",
        ),
        (
            'connection to server at "db", port 5432 failed: FATAL:  pg_hba.conf rejects '
            'connection for host "10.0.0.7", user "ironroot", database "log"',
            'pg_hba.conf rejects connection for host "10.0.0.7", user "ironroot", database "log"',
        ),
        (
            'connection to server at "db", port 5432 failed: FATAL:  Peer authentication '
            'failed for user "ironroot"',
            'Peer authentication failed for user "ironroot"',
        ),
        (
            'connection to server at "db", port 5432 failed: FATAL:  certificate authentication '
            'failed for user "ironroot"',
            'certificate authentication failed for user "ironroot"',
        ),
        (
            'connection to server at "db", port 5432 failed: fe_sendauth: no password supplied',
            'connection to server at "db", port 5432 failed: fe_sendauth: no password supplied',
        ),
    ],
)
def test_refusals_this_server_cannot_produce_are_told_by_their_message(
    text: str, cause: str
) -> None:
    """The messages the server gives for a wrong password or a ``pg_hba.conf`` rule (this
    test server trusts every local connection, so they are given here as psycopg raises them:
    an ``OperationalError`` with that text and no SQLSTATE)."""
    error = refused_connection(psycopg.OperationalError(text), "db:5432/log as ironroot")
    assert isinstance(error, ConfigError)
    assert error.code == "store-refused"
    assert error.detail.startswith(
        f"PostgreSQL at db:5432/log as ironroot refused the connection: {cause}: "
    )


@pytest.mark.parametrize(
    "text",
    [
        'connection to server at "db", port 5432 failed: Connection refused',
        'connection to server at "db", port 5432 failed: timeout expired',
        'connection to server at "db", port 5432 failed: FATAL:  the database system is '
        "starting up",
        'connection to server at "db", port 5432 failed: FATAL:  sorry, too many clients already',
        "server closed the connection unexpectedly",
    ],
)
def test_outages_are_not_taken_for_refusals(text: str) -> None:
    assert refused_connection(psycopg.OperationalError(text), "db") is None


@pytest.mark.parametrize("method", ["LDAP", "RADIUS", "PAM", "BSD", "GSSAPI", "SSPI", "Ident"])
def test_a_failed_login_checked_by_another_server_stays_an_outage(method: str) -> None:
    """These methods ask another server (an LDAP or RADIUS server, a KDC, identd, a PAM
    module's backend) and the PostgreSQL server answers its client with the same message
    whether that server said no or was unreachable: taken for a refusal, one blip of it would
    stop every replica for good (exit 2). It stays an outage, retried."""
    text = (
        f'connection to server at "db", port 5432 failed: FATAL:  {method} authentication '
        'failed for user "ironroot"'
    )
    assert refused_connection(psycopg.OperationalError(text), "db") is None


def test_an_error_with_a_sqlstate_is_never_judged_by_its_text() -> None:
    """Only a connection attempt (no SQLSTATE) is judged by its text: an error the server
    reported with a SQLSTATE (a statement's, here 57014 query_canceled) never is."""
    error = psycopg.errors.QueryCanceled('role "x" does not exist')
    assert error.sqlstate == "57014"
    assert refused_connection(error, "db") is None
