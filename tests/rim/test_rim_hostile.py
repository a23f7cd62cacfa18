"""RIM verification and appraisal under inputs a caller or a hostile registrant controls: each
refused with the exact typed error."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from _rim_helpers import NOW, RimPki, swid

from ironroot.errors import ConfigError, MalformedRim
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


def test_an_xinclude_in_a_signed_rim_is_never_processed(pki: RimPki) -> None:
    """A signed tag whose payload asks the parser to pull in a local file: nothing is
    included (lxml processes XInclude only when asked), so the element stays what it is."""
    include = (
        '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/hostname" parse="text"/>'
    )
    resources = (
        f'<Resource type="Measurement" index="0" active="True" alternatives="1" '
        f'ns2:Hash0="{"11" * 48}" name="Measurement_0" size="48"/>{include}'
    )
    signed = pki.sign(swid(resources=resources))
    with pytest.raises(MalformedRim) as caught:
        verify_rim(signed, now=NOW, roots=[pki.root])
    assert caught.value.detail == (
        "the payload holds '{http://www.w3.org/2001/XInclude}include', not a Measurement resource"
    )


@pytest.mark.parametrize(
    ("declaration", "found"),
    [
        (b'<?xml version="1.0" encoding="x-unknown"?>', "Unsupported encoding: x-unknown"),
        (b'<?xml version="1.0" encoding="UTF-7"?>', "Invalid bytes in character encoding"),
    ],
)
def test_a_rim_in_an_encoding_the_parser_refuses_is_malformed(
    pki: RimPki, declaration: bytes, found: str
) -> None:
    with pytest.raises(MalformedRim, match=f"^the RIM is not well-formed XML: {found}"):
        verify_rim(declaration + pki.sign(swid()), now=NOW, roots=[pki.root])
