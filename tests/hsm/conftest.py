"""Fixtures for the HSM tests: one device identity per session, a fresh HSM per test."""

from __future__ import annotations

import pytest
from _hsm_helpers import DeviceChain, make_device, new_hsm, sessions

from ironroot.hsm import Hsm, Session


@pytest.fixture(scope="session")
def device() -> DeviceChain:
    return make_device()


@pytest.fixture
def hsm(device: DeviceChain) -> Hsm:
    return new_hsm(device.identity)


@pytest.fixture
def roles(hsm: Hsm) -> tuple[Session, Session, Session]:
    """(officer, user, auditor) sessions on ``hsm``."""
    return sessions(hsm)
