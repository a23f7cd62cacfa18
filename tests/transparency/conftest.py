"""The transparency tests run on each log store: SQLite and PostgreSQL.

Every test of this folder runs once per store kind (grouped by module, so module-scoped
fixtures are built once per kind). ``write_config`` puts the current store into the data
directory's ``[log]`` table; a module-scoped fixture that writes a configuration passes
``store=`` (from ``module_store``) instead. A module whose tests never open a store sets
``STORE_INDEPENDENT = True`` and runs once. PostgreSQL: a fresh schema per test (and per
module fixture), dropped afterwards; skipped with the reason when the server is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator

import _tx_helpers
import pytest

from ironroot_pg import KINDS, TestStore, test_store


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" in metafunc.fixturenames and not getattr(
        metafunc.module, "STORE_INDEPENDENT", False
    ):
        metafunc.parametrize("store_kind", KINDS, indirect=True, scope="module")


@pytest.fixture(scope="module")
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store kind of this run of the module (SQLite where the module is independent)."""
    kind: str = getattr(request, "param", "sqlite")
    return kind


@pytest.fixture(scope="module")
def module_store(store_kind: str) -> Iterator[TestStore]:
    """A store for a module-scoped fixture's data directory."""
    with test_store(store_kind) as store:
        yield store


@pytest.fixture(autouse=True)
def log_store(store_kind: str) -> Iterator[TestStore]:
    """This test's store: what ``write_config`` configures unless told otherwise."""
    with test_store(store_kind) as store:
        _tx_helpers.CURRENT_STORE = store
        try:
            yield store
        finally:
            _tx_helpers.CURRENT_STORE = None
