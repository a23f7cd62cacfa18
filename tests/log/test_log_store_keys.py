"""``[log] store_timeout`` is a PostgreSQL setting like ``dsn``, ``schema`` and ``pool_size``:
with the SQLite store it was ignored whatever it held (``"banana"`` included), so an operator
who forgot ``store = "postgresql"`` learnt nothing. It is refused as the others are."""

from __future__ import annotations

import logging

import pytest

from ironroot.errors import ConfigError
from ironroot.log import StoreConfig


@pytest.mark.parametrize("timeout", [2.0, "banana", float("nan")])
def test_a_store_timeout_without_postgresql_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigError) as caught:
        StoreConfig.from_table({"store_timeout": timeout}, environ={})
    assert caught.value.detail == 'log.store_timeout needs log.store = "postgresql"'
    assert caught.value.exit_code == 2


def test_a_store_timeout_with_postgresql_is_read() -> None:
    table = {"store": "postgresql", "dsn": "postgresql://h/d", "store_timeout": 2}
    assert StoreConfig.from_table(table, environ={}).timeout == 2.0


def test_a_dsn_in_the_environment_beside_a_sqlite_store_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """IRONROOT_PG_DSN set, [log] without store = "postgresql": the log is SQLite, which the
    operator who set the variable did not expect to hear nothing about."""
    env = {"IRONROOT_PG_DSN": "postgresql://ts:secret@db.example/ts"}
    with caplog.at_level(logging.WARNING, logger="ironroot.log"):
        assert StoreConfig.from_table({}, environ=env) == StoreConfig()
    assert (
        'IRONROOT_PG_DSN is set but [log] has no store = "postgresql": the log is SQLite in '
        "the data directory"
    ) in caplog.text
    assert "secret" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ironroot.log"):
        StoreConfig.from_table({}, environ={})
    assert caplog.text == ""
