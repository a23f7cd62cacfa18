"""The one parser of every ``--at``."""

from __future__ import annotations

import datetime as dt

import pytest

from ironroot.cli import main
from ironroot.cli._time import parse_instant
from ironroot.errors import ConfigError

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04T10:00:00Z", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
        ("2026-12-04T11:00:00+01:00", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
        ("2026-12-04T10:00:00.250Z", dt.datetime(2026, 12, 4, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-12-04", dt.datetime(2026, 12, 4, tzinfo=UTC)),
        ("1796378400", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
        ("@1796378400", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text: str, expected: dt.datetime) -> None:
    got = parse_instant(text)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-12-04T10:00:00", "needs Z or a UTC offset"),
        ("yesterday", "is not a time"),
        ("2026-13-40", "is not a time"),
        ("99999999999999", "is not a time"),
    ],
)
def test_refused_forms(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_instant(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["evidence", "verify", "x", "--at", "2026-12-04T10:00:00"],
        ["attest", "appraise", "x", "--data", "d", "--at", "soon"],
    ],
)
def test_a_bad_at_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
