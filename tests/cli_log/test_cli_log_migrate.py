"""``ironroot log migrate`` and the schema version rules: an empty store is created, an older
schema is refused until migrated, a newer one is always refused (service, verify, migrate)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, StorageError
from ironroot.log import (
    DSN_ENV,
    Log,
    NoteSigner,
    PostgresLogStore,
    StoreConfig,
    layout,
    open_store,
)
from ironroot.log._postgres import MIGRATIONS, Migration
from ironroot_pg import TestStore, add_store_to_config, fresh_schema, raw_sql, test_dsn

ORIGIN = "migrate.example"


def _data_dir(path: Path, store: TestStore) -> Path:
    key = PrivateKey.generate(Algorithm.ED25519)
    (path / "keys").mkdir(parents=True)
    layout.checkpoint_key_path(path).write_bytes(key.to_pem())
    layout.checkpoint_public_key_path(path).write_bytes(key.public_key.to_pem())
    layout.config_path(path).write_text(f'[log]\norigin = "{ORIGIN}"\n')
    add_store_to_config(path, store)
    return path


@pytest.fixture
def pg_dir(tmp_path: Path) -> Iterator[Path]:
    with fresh_schema() as schema:
        yield _data_dir(tmp_path / "data", TestStore("postgresql", schema))


def _json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_migrate_creates_a_postgresql_store_once(
    pg_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "migrate", str(pg_dir), "--check"]) == 1
    assert "schema version 0, this Ironroot's is 1 (absent)" in capsys.readouterr().out
    assert main(["log", "migrate", str(pg_dir)]) == 0
    assert "created, schema version 1" in capsys.readouterr().out
    assert main(["log", "migrate", str(pg_dir), "--json"]) == 0
    result = _json(capsys)
    assert (result["ok"], result["before"], result["version"]) == (True, 1, 1)
    assert main(["log", "migrate", str(pg_dir), "--check", "--json"]) == 0
    assert _json(capsys)["current"] is True
    rows = raw_sql(pg_dir, "SELECT version, description FROM schema_version")
    assert rows == [(1, "the log's tables")]


def test_migrate_by_dsn_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    with fresh_schema() as schema:
        args = ["log", "migrate", "--dsn", test_dsn(), "--schema", schema]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert f"schema {schema}: created, schema version 1" in out
        assert "password" not in out
        assert main([*args, "--check"]) == 0


def test_migrate_a_sqlite_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _data_dir(tmp_path / "data", TestStore("sqlite"))
    assert main(["log", "migrate", str(data), "--check"]) == 1
    assert main(["log", "migrate", str(data)]) == 0
    assert "created, schema version 2" in capsys.readouterr().out
    assert layout.log_db_path(data).exists()
    assert main(["log", "migrate", str(data), "--check"]) == 0
    assert main(["log", "migrate", str(data)]) == 0
    assert "is current; nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["log", "migrate", "/nonexistent/dir"],
        ["log", "migrate", "."],  # a directory without ironroot.toml
        ["log", "migrate", ".", "--dsn", "postgresql://x/y"],
        ["log", "migrate", "--dsn", "mysql://x/y"],
        ["log", "migrate", "--dsn", "postgresql://x/y", "--schema", "Bad-Name"],
    ],
)
def test_migrate_usage_errors_exit_2(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    assert main(args) == 2


def test_migrate_without_a_target_needs_a_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    assert main(["log", "migrate"]) == 2


def test_migrate_takes_the_dsn_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with fresh_schema() as schema:
        monkeypatch.setenv(DSN_ENV, test_dsn())
        assert main(["log", "migrate", "--schema", schema]) == 0
        assert "created" in capsys.readouterr().out


# --- versions -------------------------------------------------------------------------------


def _set_version(data: Path, version: int) -> None:
    raw_sql(data, "INSERT INTO schema_version (version, description) VALUES (?, 'later')", version)


def test_a_newer_schema_is_refused_everywhere(
    pg_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "migrate", str(pg_dir)]) == 0
    _set_version(pg_dir, 99)
    capsys.readouterr()
    with pytest.raises(StorageError) as info:
        open_store(pg_dir)
    assert info.value.code == "store-schema"
    assert "version 99" in info.value.detail
    assert "upgrade Ironroot" in info.value.detail
    with pytest.raises(StorageError) as info:
        open_store(pg_dir, read_only=True)
    assert info.value.code == "store-schema"
    assert main(["log", "migrate", str(pg_dir)]) == 1
    assert "store-schema" in capsys.readouterr().err
    assert main(["log", "migrate", str(pg_dir), "--check"]) == 1
    assert main(["log", "verify", str(pg_dir)]) == 1


def test_a_newer_sqlite_schema_is_refused(tmp_path: Path) -> None:
    data = _data_dir(tmp_path / "data", TestStore("sqlite"))
    open_store(data).close()
    raw_sql(data, "UPDATE meta SET value = '3' WHERE key = 'schema'")
    for read_only in (False, True):
        with pytest.raises(StorageError) as info:
            open_store(data, read_only=read_only)
        assert info.value.code == "store-schema"
    assert main(["log", "migrate", str(data), "--check"]) == 1


_NEXT = (*MIGRATIONS, Migration(2, "a later step", ("CREATE TABLE later (x integer)",)))


def test_an_older_schema_is_refused_until_migrated(pg_dir: Path) -> None:
    """Code that knows one more step than the stored schema: refuses, then migrates."""
    config = StoreConfig.of_data_dir(pg_dir)
    assert config.dsn is not None
    open_store(pg_dir).close()  # version 1, as this Ironroot creates it

    def store(**kwargs: bool) -> PostgresLogStore:
        dsn = config.dsn or ""
        return PostgresLogStore(dsn, schema=config.schema, migrations=_NEXT, **kwargs)

    with pytest.raises(StorageError) as info:
        store()
    assert info.value.code == "store-schema"
    assert "older than this Ironroot's 2: run `ironroot log migrate`" in info.value.detail
    with pytest.raises(StorageError):
        store(read_only=True)
    migrated = store(migrate=True)
    assert migrated.schema_version == 2
    migrated.close()
    assert raw_sql(pg_dir, "SELECT count(*) FROM later") == [(0,)]
    # This Ironroot (version 1) now meets a newer schema.
    with pytest.raises(StorageError, match="upgrade Ironroot"):
        open_store(pg_dir)


def test_migration_steps_apply_once_under_concurrent_migrators(pg_dir: Path) -> None:
    import threading

    config = StoreConfig.of_data_dir(pg_dir)
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def migrate() -> None:
        start.wait()
        try:
            PostgresLogStore(
                config.dsn or "", schema=config.schema, pool_size=1, migrations=_NEXT, migrate=True
            ).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert raw_sql(pg_dir, "SELECT version FROM schema_version ORDER BY version") == [(1,), (2,)]


def test_a_schema_with_log_tables_but_no_version_is_refused(pg_dir: Path) -> None:
    config = StoreConfig.of_data_dir(pg_dir)
    open_store(pg_dir).close()
    raw_sql(pg_dir, "DROP TABLE schema_version")
    with pytest.raises(StorageError) as info:
        open_store(pg_dir)
    assert info.value.code == "store-schema"
    assert config.schema is not None


def test_the_log_opens_what_migrate_created(pg_dir: Path) -> None:
    assert main(["log", "migrate", str(pg_dir)]) == 0
    key = PrivateKey.from_pem(layout.checkpoint_key_path(pg_dir).read_bytes())
    with Log.open(pg_dir, origin=ORIGIN, note_signers=[NoteSigner(ORIGIN, key)]) as log:
        assert log.submit(b"one").integrated.result(30).index == 0
    assert main(["log", "verify", str(pg_dir)]) == 0


# --- configuration ---------------------------------------------------------------------------


def test_store_configuration_keys() -> None:
    assert StoreConfig.from_table({}) == StoreConfig()
    env = {DSN_ENV: "postgresql://u:secret@db.example/log"}
    config = StoreConfig.from_table({"store": "postgresql", "schema": "ts"}, environ=env)
    assert (config.kind, config.dsn, config.schema, config.dsn_from_env) == (
        "postgresql",
        env[DSN_ENV],
        "ts",
        True,
    )
    assert not config.has_password  # it came from the environment, not the file
    assert "secret" not in repr(config)
    assert "secret" not in config.describe(Path("."))
    in_file = StoreConfig.from_table(
        {"store": "postgresql", "dsn": "postgresql://u:secret@db.example:6432/log"}, environ={}
    )
    assert in_file.has_password
    assert in_file.describe(Path(".")) == "PostgreSQL db.example:6432/log as u"


@pytest.mark.parametrize(
    "table",
    [
        {"store": "mysql"},
        {"store": "postgresql"},  # no dsn and no IRONROOT_PG_DSN
        {"store": "postgresql", "dsn": "http://db.example"},
        {"store": "postgresql", "dsn": 5},
        {"store": "postgresql", "dsn": "postgresql://h/d", "schema": "Has Space"},
        {"store": "postgresql", "dsn": "postgresql://h/d", "schema": 3},
        {"store": "postgresql", "dsn": "postgresql://h/d", "pool_size": 0},
        {"store": "postgresql", "dsn": "postgresql://h/d", "pool_size": True},
        {"store": "postgresql", "dsn": "postgresql://h/d", "store_timeout": 0},
        {"store": "postgresql", "dsn": "postgresql://h/d", "store_timeout": "5"},
        {"dsn": "postgresql://h/d"},  # a dsn for the SQLite store
        {"schema": "s"},
    ],
)
def test_bad_store_configuration_is_a_config_error(table: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        StoreConfig.from_table(table, environ={})


def test_a_dsn_that_does_not_parse_names_no_password() -> None:
    with pytest.raises(ConfigError) as info:
        open_store("postgresql://u:hunter2@[bad/db")
    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("postgresql://127.0.0.1:5432/test?port=notaport", "port is not a port number"),
        ("postgresql://127.0.0.1:99999/test", "port is not a port number"),
        ("postgresql://a,b/test?port=5432,x", "port is not a port number"),
        ("postgresql://127.0.0.1/test?sslmode=bogus", "sslmode is not one of"),
        ("postgresql://127.0.0.1/test?connect_timeout=soon", "connect_timeout is not an integer"),
        ("postgresql://127.0.0.1/test?target_session_attrs=any-old", "target_session_attrs"),
    ],
)
def test_a_dsn_value_libpq_would_refuse_is_a_config_error_at_once(dsn: str, message: str) -> None:
    """libpq checks these values only when it connects: the pool retried the typo until its
    timeout and the store reported the database down (503, retry) instead of the mistake."""
    started = time.monotonic()
    with pytest.raises(ConfigError, match=message):
        open_store(dsn)
    assert time.monotonic() - started < 5


def test_open_store_refuses_other_urls() -> None:
    with pytest.raises(ConfigError):
        open_store("mysql://db.example/log")
    with pytest.raises(ConfigError):
        open_store(".", schema="s")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("varchar(50)", "1.2"),  # Flyway's table of old had this very name
        ("numeric", Decimal("1.5")),  # was read as version 1: opened with no log tables
        ("integer", -1),  # was taken for an older schema of Ironroot's and migrated over
    ],
)
def test_a_schema_version_table_that_is_not_ironroot_s_is_refused(
    pg_dir: Path, column: str, value: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """A schema holding another tool's ``schema_version`` table raised ``ValueError`` (an
    internal error) on a version such as ``'1.2'``, or read ``1.5`` as 1."""
    raw_sql(pg_dir, f'CREATE SCHEMA "{StoreConfig.of_data_dir(pg_dir).schema}"')
    raw_sql(pg_dir, f"CREATE TABLE schema_version (version {column}, description text)")
    raw_sql(pg_dir, "INSERT INTO schema_version VALUES (?, 'another tool')", value)
    expected = (
        "the PostgreSQL schema holds a schema_version table that is not Ironroot's: its "
        f"version {value} is no positive integer; give the log a schema of "
        "its own"
    )
    for read_only in (False, True):
        with pytest.raises(StorageError) as info:
            open_store(pg_dir, read_only=read_only)
        assert (info.value.code, info.value.detail) == ("store-schema", expected)
    capsys.readouterr()
    assert main(["log", "migrate", str(pg_dir)]) == 1
    assert "store-schema" in capsys.readouterr().err
    assert main(["log", "migrate", str(pg_dir), "--check"]) == 1
    assert raw_sql(pg_dir, "SELECT count(*) FROM schema_version") == [(1,)]  # nothing added
