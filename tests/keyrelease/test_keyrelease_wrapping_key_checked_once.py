"""A release checks its wrapping key once (``ironroot.crypto.check_wrapping_key``), wherever
it enters: the :class:`~ironroot.hsm.WrappingKey` is checked when it is made and every later
step (the service, the HSM, the wrap) trusts it.

The checks are counted at the one place every check goes through, the ML-KEM and RSA checks
of ``ironroot.crypto._wrapping``, so a check made by any caller counts; before the change a
release over HTTP checked its key five times, an ``lru_cache`` hiding four of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _kr_helpers import Harness, build_harness

from ironroot.crypto import _wrapping
from ironroot.keyrelease import (
    KeyReleaseServerThread,
    ReleaseRequest,
    WrappingKey,
    create_keyrelease_app,
)
from ironroot.keyrelease.tee import TeeKeyPair


@pytest.fixture(scope="module")
def served() -> Iterator[Harness]:
    harness = build_harness()
    with KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server:
        harness.url = server.url
        try:
            yield harness
        finally:
            harness.http.close()


@pytest.fixture(scope="module", params=["ML-KEM-768", "ML-KEM-1024", "RSA-3072"])
def tee(request: pytest.FixtureRequest) -> TeeKeyPair:
    return TeeKeyPair.generate(request.param)


class Checks:
    """Counts the wrapping key checks made while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("_check_mlkem", "_check_rsa"):
            monkeypatch.setattr(_wrapping, name, self._counting(getattr(_wrapping, name)))

    def _counting(self, check: Callable[[Any], None]) -> Callable[[Any], None]:
        def counted(key: Any) -> None:
            self.count += 1
            check(key)

        return counted


@pytest.mark.parametrize("as_json", [False, True])
def test_a_release_over_http_checks_its_wrapping_key_once(
    served: Harness, tee: TeeKeyPair, as_json: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = served.nonce()
    ear = served.ear(nonce, tee=tee)
    checks = Checks(monkeypatch)
    released = served.post("cel-key", ear, nonce, wrapping_key=tee.public.spki, as_json=as_json)
    assert released.status_code == 200, released.content
    assert checks.count == 1


def test_a_release_through_the_library_checks_its_wrapping_key_once(
    served: Harness, tee: TeeKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = served.nonce()
    ear = served.ear(nonce, tee=tee)
    checks = Checks(monkeypatch)
    request = ReleaseRequest(ear=ear, wrapping_key=WrappingKey.parse(tee.public.spki), nonce=nonce)
    released = served.service.release("cel-key", request)
    assert checks.count == 1
    assert served.holds("cel-key", served.unwrap(released, nonce, tee=tee))


def test_a_release_asked_of_the_hsm_checks_its_wrapping_key_once(
    served: Harness, tee: TeeKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = served.nonce()
    ear = served.ear(nonce, tee=tee)
    checks = Checks(monkeypatch)
    served.hsm.release(
        served.user, served.handles["cel-key"], ear=ear, nonce=nonce, recipient=tee.public.spki
    )
    assert checks.count == 1


def test_a_wrapping_key_made_once_is_not_checked_again_by_the_release(
    served: Harness, tee: TeeKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    nonce = served.nonce()
    checks = Checks(monkeypatch)
    served.service.release("cel-key", served.request(served.ear(nonce, tee=tee), nonce, tee=tee))
    assert checks.count == 0  # the TEE's WrappingKey was checked when it was made
