"""RIM verification and appraisal under inputs a caller or a hostile registrant controls: each
refused with the exact typed error."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from _rim_helpers import NOW, RimPki, swid

from ironroot.errors import ConfigError
from ironroot.rim import LoggedRim, LoggedRims, RimId, logged_rim_from_statement, verify_rim

VBIOS_ID = "NV_GPU_VBIOS_1010_0200_882_96005E0001"
NAIVE = NOW.replace(tzinfo=None)
AWARE_ONLY = f"^{re.escape('now must be a timezone-aware datetime')}$"


def _logged(pki: RimPki) -> LoggedRim:
    rim = verify_rim(pki.sign(swid()), now=NOW, roots=[pki.root])
    return LoggedRim(rim=rim, rim_id=RimId.parse(VBIOS_ID), issuer="https://rims.example")


def test_a_naive_now_is_refused_everywhere(pki: RimPki) -> None:
    """A ``now`` without a timezone was read as UTC by the chain check, as the machine's local
    time by the statement's CWT dates, and raised ``TypeError`` in appraisal: one instant
    is one instant, so it is a ``ConfigError`` of the call, as elsewhere in Ironroot."""
    with pytest.raises(ConfigError, match=AWARE_ONLY):
        verify_rim(pki.sign(swid()), now=NAIVE, roots=[pki.root])
    with pytest.raises(ConfigError, match=AWARE_ONLY):
        logged_rim_from_statement(b"\xd2", service_keys={}, now=NAIVE)
    logged = _logged(pki)
    with pytest.raises(ConfigError, match=AWARE_ONLY):
        logged.valid_at(NAIVE)
    with pytest.raises(ConfigError, match=AWARE_ONLY):
        LoggedRims([logged]).appraise(
            {},
            project="1010",
            sku="0200",
            chip="882",
            vbios_version="96.00.5E.00.01",
            driver_version="545.00",
            now=NAIVE,
        )


def test_an_aware_now_in_another_zone_is_the_same_instant(pki: RimPki) -> None:
    logged = _logged(pki)
    plus_two = NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert logged.valid_at(plus_two) == logged.valid_at(NOW) is True
    assert verify_rim(pki.sign(swid()), now=plus_two, roots=[pki.root]).tag_id == "test-tag"
