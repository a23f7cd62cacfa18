"""``[log] store_timeout`` is a PostgreSQL setting like ``dsn``, ``schema`` and ``pool_size``:
with the SQLite store it was ignored whatever it held (``"banana"`` included), so an operator
who forgot ``store = "postgresql"`` learnt nothing. It is refused as the others are."""

from __future__ import annotations

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
