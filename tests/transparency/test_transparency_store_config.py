"""``[log] store`` in ironroot.toml: read into the service's configuration, checked strictly,
and a DSN with a password in a file others can read is warned about (never logged)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.errors import ConfigError
from ironroot.log import StoreConfig
from ironroot.transparency import load_config

STORE_INDEPENDENT = True  # configuration only: no store is opened


def _config(tmp_path: Path, log_lines: str, mode: int = 0o600) -> Path:
    path = tmp_path / "ironroot.toml"
    path.write_text('[transparency]\nservice_issuer = "https://ts.example"\n[log]\n' + log_lines)
    path.chmod(mode)
    return tmp_path


def test_the_default_store_is_sqlite(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path, "")).store == StoreConfig()


def test_a_postgresql_store_is_read(tmp_path: Path) -> None:
    data = _config(
        tmp_path,
        'store = "postgresql"\ndsn = "postgresql://ts@db.example/ts"\nschema = "ts_log"\n'
        "pool_size = 8\nstore_timeout = 3\n",
    )
    store = load_config(data).store
    assert store == StoreConfig("postgresql", "postgresql://ts@db.example/ts", "ts_log", 8, 3.0)
    assert store.describe(data) == "PostgreSQL db.example:5432/ts as ts schema ts_log"


@pytest.mark.parametrize(
    "lines",
    [
        'store = "oracle"\n',
        'store = "postgresql"\n',  # no DSN here and none in the environment
        'store = "postgresql"\ndsn = "postgresql://h/d"\nschema = "Upper"\n',
        'dsn = "postgresql://h/d"\n',
        'store = "postgresql"\ndsn = "postgresql://h/d"\npool = 3\n',  # unknown key
    ],
)
def test_a_bad_store_configuration_stops_the_service(
    tmp_path: Path, lines: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IRONROOT_PG_DSN", raising=False)
    with pytest.raises(ConfigError):
        load_config(_config(tmp_path, lines))


def test_the_dsn_may_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IRONROOT_PG_DSN", "postgresql://ts:pw@db.example/ts")
    store = load_config(_config(tmp_path, 'store = "postgresql"\n')).store
    assert store.dsn == "postgresql://ts:pw@db.example/ts"
    assert store.dsn_from_env


def test_a_password_in_a_readable_file_is_warned_about_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = 'store = "postgresql"\ndsn = "postgresql://ts:hunter2@db.example/ts"\n'
    load_config(_config(tmp_path, lines, mode=0o644))
    assert "log.dsn (it holds a password)" in caplog.text
    assert "hunter2" not in caplog.text
    caplog.clear()
    load_config(_config(tmp_path, lines, mode=0o600))
    assert "log.dsn" not in caplog.text
