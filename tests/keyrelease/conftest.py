"""Fixtures: one memory-vault key service served over loopback HTTP for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _kr_helpers import NOW, Harness, build_harness

from ironroot.http import LoginThrottle
from ironroot.keyrelease import KeyReleaseServerThread, create_keyrelease_app


@pytest.fixture(scope="session")
def harness() -> Iterator[Harness]:
    built = build_harness()
    # the tests refuse on purpose, hundreds of times from one address: no per-client limit
    # here (test_keyrelease_refusal_commits.py tests it)
    app = create_keyrelease_app(built.service, refusals=LoginThrottle(0, 1))
    with KeyReleaseServerThread(app) as server:
        built.url = server.url
        try:
            yield built
        finally:
            built.http.close()


@pytest.fixture(autouse=True)
def _reset_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "harness" in request.fixturenames:
        request.getfixturevalue("harness").clock.now = NOW
