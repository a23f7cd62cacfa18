"""Fixtures of the log tests: a durable store of each kind (SQLite, PostgreSQL) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from log_testkit import LogPlace

from ironroot_pg import test_store


@pytest.fixture(params=["sqlite", "postgresql"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogPlace]:
    """Each durable store in turn (PostgreSQL: a fresh schema, dropped afterwards)."""
    with test_store(request.param) as store:
        yield LogPlace(store, tmp_path / "data")
