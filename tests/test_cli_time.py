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
        ("0001-01-01T00:00:00+01:00", "out of range"),  # before year 1 in UTC
        ("9999-12-31T23:00:00-01:00", "out of range"),  # after year 9999 in UTC
        ("2026-W49-5", "is not a time"),  # ISO week date: Python reads it, RFC 3339 does not
        ("20261204T100000", "is not a time"),  # ISO basic format, likewise
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
        ["evidence", "verify", "x", "--at", "0001-01-01T00:00:00+01:00"],
        ["evidence", "verify", "x", "--at", "9999-12-31T23:00:00-01:00", "--json"],
    ],
)
def test_a_bad_at_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
